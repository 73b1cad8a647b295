"""plan.yaml sections for the cloud and bare-metal targets: `aws:`, `gcp:`, `baremetal:`.

They hold what the optimizer does not decide: networks, images, disks, markets and, for bare
metal, the fixed host list with its BMCs. Where the nodes go (region, zone, instance type,
count, spot) stays the plan's `resources:` / `constraints:` and the optimizer's choice.

Secrets are never written here: a BMC password is named by reference (`password_env:` or
`password_file:`) and read only at the moment a BMC is contacted.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from provision.plan.addresses import HostAddress
from provision.plan.schema_base import StrictModel
from provision.plan.targets import SKU_PATTERN

NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


def _cidr(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise ValueError(f"{value!r} is not a CIDR block such as 10.42.0.0/16") from None


class AwsTarget(StrictModel):
    """`target: aws` settings. Instance type, region, zone, node count and spot come from the
    plan's resources/constraints through the optimizer; this section says how to build around
    them."""

    vpc_id: str | None = Field(
        None, pattern=r"^vpc-[0-9a-f]+$",
        description="Use this existing VPC (with subnet_id) instead of creating one.",
    )
    subnet_id: str | None = Field(
        None, pattern=r"^subnet-[0-9a-f]+$",
        description="Existing subnet for the nodes (with vpc_id). Its availability zone wins "
        "over the catalog's zone; it needs a route to the operator.",
    )
    vpc_cidr: str = Field(
        "10.42.0.0/16", description="Address range of the VPC provision creates (one subnet "
        "uses all of it)."
    )
    image: Literal["dlami-base", "ubuntu-22.04"] = Field(
        "dlami-base",
        description="Image family, looked up per region: dlami-base (AWS Deep Learning Base OSS "
        "Nvidia Driver AMI, Ubuntu 22.04: driver and EFA installer included) or ubuntu-22.04 "
        "(Canonical's plain image; the playbooks install the NVIDIA stack).",
    )
    ami: str | None = Field(
        None, pattern=r"^ami-[0-9a-f]+$", description="An exact AMI id; overrides image."
    )
    root_volume_gb: Annotated[int, Field(ge=20, le=16384)] = Field(
        200, description="Root EBS volume (gp3, encrypted), GB."
    )
    market: Literal["auto", "on-demand", "spot", "capacity-block"] = Field(
        "auto",
        description="auto: spot when the plan chose spot, else on-demand. capacity-block runs "
        "inside an EC2 Capacity Block (needs capacity_reservation_id).",
    )
    capacity_reservation_id: str | None = Field(
        None, pattern=r"^cr-[0-9a-f]+$",
        description="Launch into this reservation: a Capacity Block (with market: "
        "capacity-block) or an On-Demand Capacity Reservation (on-demand market; reservations "
        "do not serve spot).",
    )
    spot_interruption: Literal["terminate", "stop", "hibernate"] = Field(
        "terminate", description="What EC2 does when it reclaims a spot node (stop and "
        "hibernate make the request persistent)."
    )
    spot_max_price: float | None = Field(
        None, gt=0, description="Highest spot price per node, USD/h (default: on-demand price)."
    )
    efa: bool | None = Field(
        None, description="Attach Elastic Fabric Adapters. Default: on for EFA-capable types in "
        "multi-node plans."
    )
    efa_interfaces: Annotated[int, Field(ge=1, le=32)] | None = Field(
        None, description="EFA interfaces per node (default: the instance type's maximum from "
        "provision's table)."
    )
    placement_group: bool | None = Field(
        None, description="Put the nodes in a cluster placement group (default: multi-node)."
    )
    public_ip: Literal["auto", "head", "elastic", "none"] = Field(
        "auto",
        description="auto: a public IPv4 at launch for single-interface nodes; with several "
        "network interfaces (EFA types, where EC2 refuses a public IP at launch) as head. "
        "head: an Elastic IP on the head node's primary interface, workers private and reached "
        "through the head (SSH ProxyJump), outbound traffic through a NAT gateway. elastic: an "
        "Elastic IP per node. none: private addresses only (operator inside the VPC; the nodes "
        "get the SSM role).",
    )
    checkpoint_bucket: str | None = Field(
        None, pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
        description="S3 bucket the nodes may read (checkpoints, datasets): their instance role "
        "gets s3:ListBucket and s3:GetObject on it and nothing else.",
    )
    tags: dict[str, str] = Field(
        default_factory=dict, description="Extra tags on every resource provision creates."
    )

    @field_validator("vpc_cidr")
    @classmethod
    def _cidr_ok(cls, v: str) -> str:
        return _cidr(v)

    @model_validator(mode="after")
    def _consistent(self) -> AwsTarget:
        if (self.vpc_id is None) != (self.subnet_id is None):
            raise ValueError("give vpc_id and subnet_id together (an existing network), or "
                             "neither (provision creates one)")
        if self.market == "capacity-block" and self.capacity_reservation_id is None:
            raise ValueError("market: capacity-block needs capacity_reservation_id (cr-...)")
        return self


class GcpTarget(StrictModel):
    """`target: gcp` settings, for GPU VMs and TPU slices alike."""

    project: str | None = Field(
        None, pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$",
        description="Project id (default: the gcp:project config, GOOGLE_CLOUD_PROJECT or "
        "gcloud's default project).",
    )
    network: str | None = Field(
        None, description="Existing VPC network name or self link (default: create one)."
    )
    subnetwork: str | None = Field(
        None, description="Existing subnetwork in the chosen region (with network)."
    )
    subnet_cidr: str = Field(
        "10.43.0.0/20", description="Range of the subnetwork provision creates."
    )
    image: str | None = Field(
        None, description="GPU VM boot image or family. Default: a GPU-ready Deep Learning VM "
        "family with the NVIDIA driver for the GPU's architecture (common-cu124-ubuntu-2204-"
        "nvidia-550 for Turing to Hopper, common-cu128-ubuntu-2204-nvidia-570 for Blackwell), "
        "else Ubuntu 22.04 LTS, where the nvidia_driver role installs the driver."
    )
    reservation: str | None = Field(
        None, pattern=r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$",
        description="A Compute Engine reservation the GPU VMs consume (specific reservation "
        "affinity), or, for TPUs, use the zone's TPU reservation (reserved scheduling).",
    )
    boot_disk_gb: Annotated[int, Field(ge=20, le=65536)] = Field(
        200, description="Boot disk size, GB."
    )
    boot_disk_type: Literal["pd-balanced", "pd-ssd", "hyperdisk-balanced"] | None = Field(
        None, description="Boot disk type (default: what the machine family supports, "
        "pd-balanced or hyperdisk-balanced on A3 Ultra/A4)."
    )
    provisioning: Literal["auto", "standard", "spot", "preemptible"] = Field(
        "auto", description="auto: spot when the plan chose spot; preemptible is the legacy "
        "24-hour model."
    )
    termination_action: Literal["DELETE", "STOP"] = Field(
        "DELETE", description="What happens to a reclaimed spot VM (GPU VMs only)."
    )
    placement: bool | None = Field(
        None, description="Compact placement policy for multi-node GPU plans (default: on)."
    )
    gpudirect: bool | None = Field(
        None, description="Extra GPUDirect NICs and networks on A3 multi-node plans "
        "(default: on)."
    )
    tpu_runtime_version: str | None = Field(
        None, description="TPU software version (default per generation: v2-alpha-tpuv5-lite, "
        "v2-alpha-tpuv5, v2-alpha-tpuv6e, tpu-ubuntu2204-base)."
    )
    service_account: str | None = Field(
        None, description="Service account email the nodes run as (default: none attached)."
    )
    tpu_queued: bool = Field(
        False, description="Obtain TPU slices through queued resources (how v5e, v5p and v6e "
        "capacity is usually granted): the request waits for capacity, on spot capacity when "
        "the plan chose spot, until tpu_queue_hours.",
    )
    tpu_queue_hours: Annotated[float, Field(gt=0, le=720)] | None = Field(
        None, description="How long a queued TPU request may wait before it fails (and `up` "
        "tries the next zone). Default: the TPU service's own limit.",
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="Extra labels on every resource provision creates."
    )

    @field_validator("subnet_cidr")
    @classmethod
    def _cidr_ok(cls, v: str) -> str:
        return _cidr(v)

    @field_validator("labels")
    @classmethod
    def _label_keys(cls, v: dict[str, str]) -> dict[str, str]:
        bad = [k for k in v if not LABEL_KEY.match(k)]
        if bad:
            raise ValueError(f"label keys must be lower-case letters, digits, - and _: {bad}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> GcpTarget:
        if self.subnetwork and not self.network:
            raise ValueError("subnetwork needs network (the VPC it belongs to)")
        return self


class Bmc(StrictModel):
    """A host's baseboard management controller. The password is a reference, never a value."""

    protocol: Literal["redfish", "ipmi"] = Field(
        "redfish", description="redfish (HTTPS API) or ipmi (IPMI over LAN, via pyghmi)."
    )
    endpoint: str = Field(
        description="Redfish: https://bmc.example (the service root is /redfish/v1). "
        "IPMI: host or host:port."
    )
    system_id: str | None = Field(
        None, description="Redfish ComputerSystem id (default: the BMC's only system)."
    )
    username: str = Field(description="BMC user name.")
    password_env: str | None = Field(
        None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Environment variable holding the BMC password.",
    )
    password_file: str | None = Field(
        None, description="File holding the BMC password (first line), relative to the plan."
    )
    verify_tls: bool = Field(True, description="Check the BMC's TLS certificate (Redfish).")
    ca_file: str | None = Field(
        None, description="CA certificate(s) the BMC's TLS certificate is checked against "
        "(PEM file, relative to the plan); default: the system's CAs."
    )

    @model_validator(mode="after")
    def _one_password(self) -> Bmc:
        if (self.password_env is None) == (self.password_file is None):
            raise ValueError("give exactly one of password_env (a variable name) or "
                             "password_file (a path); never the password itself")
        if self.protocol == "redfish" and not self.endpoint.startswith(("https://", "http://")):
            raise ValueError(f"redfish endpoint must be a URL (https://...), got "
                             f"{self.endpoint!r}")
        return self


class BaremetalHost(StrictModel):
    """One machine of the cluster. It exists already; provision may power or reinstall it."""

    name: str | None = Field(
        None, pattern=NAME_PATTERN, description="Node name (default: <cluster>-<n>)."
    )
    address: HostAddress = Field(description="Where SSH reaches the host from this machine "
                                 "(an IP address or DNS name).")
    private_address: HostAddress | None = Field(
        None, description="Cluster-internal address (MPI, NCCL, NFS), if different."
    )
    private_mac: str | None = Field(
        None, pattern=r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$",
        description="MAC of the cluster interface: an image install configures "
        "private_address on it (other interfaces use DHCP).",
    )
    private_prefix: Annotated[int, Field(ge=8, le=30)] = Field(
        24, description="Prefix length of the cluster network (with private_mac)."
    )
    ssh_port: Annotated[int, Field(ge=1, le=65535)] = Field(22, description="SSH port.")
    ssh_user: str | None = Field(
        None, pattern=r"^[a-z_][a-z0-9_-]*$", description="Login user (default: access.ssh_user)."
    )
    sku: str = Field(
        "cpu", pattern=SKU_PATTERN,
        description="Node SKU id from gpus.yaml (e.g. h100-sxm-80gb), or cpu.",
    )
    gpus: Annotated[int, Field(ge=0, le=64)] = Field(
        0, description="GPUs in the host (for sizing a workload against the host list)."
    )
    interconnect: Literal["nvswitch", "nvlink", "nvlink-pairs", "pcie"] | None = Field(
        None, description="How the host's GPUs are joined (default from the SKU: SXM parts "
        "nvswitch, V100 SXM2 nvlink, bridged cards nvlink-pairs, others pcie)."
    )
    network_gbps: float = Field(
        100, gt=0, description="Network between hosts, Gb/s (for multi-node estimates)."
    )
    role: Literal["head", "worker"] | None = Field(
        None, description="head or worker (default: the first host is the head)."
    )
    bmc: Bmc | None = Field(None, description="The host's BMC, for power and reinstall.")


class RootDevice(StrictModel):
    """Which disk the OS is written to (an image install), like Ironic's root device hints."""

    serial: str | None = Field(None, description="The disk's serial number (most stable).")
    path: str | None = Field(None, pattern=r"^/dev/", description="Device path, e.g. /dev/sda.")

    @model_validator(mode="after")
    def _one(self) -> RootDevice:
        if (self.serial is None) == (self.path is None):
            raise ValueError("give exactly one of serial or path")
        return self


class Reinstall(StrictModel):
    """Reinstall the OS through the BMC; disks are wiped.

    ``image: debian-12`` is an image install done by provision itself (as Ironic or MAAS do):
    the BMC boots a medium provision builds and serves (virtual media), whose deploy ramdisk
    writes the OS image and a seed with the cluster's SSH key, then the host boots from disk;
    "installed" means the install's marker is read over SSH with the cluster key. Without
    ``image``, the installer is the operator's (``image_url`` ISO or PXE infrastructure) and
    must put access.ssh_public_key on the host; only SSH answering is checked."""

    method: Literal["pxe", "virtual-media"] = Field(
        description="pxe: one-time network boot; virtual-media: boot an ISO (Redfish only)."
    )
    image: Literal["debian-12"] | None = Field(
        None, description="Image install by provision (virtual-media only): the OS image "
        "provision builds (Debian 12 with cloud-init)."
    )
    image_url: str | None = Field(
        None, description="Installer ISO URL for virtual-media (the BMC downloads it)."
    )
    generation: Annotated[int, Field(ge=1)] = Field(
        1, description="Raise to reinstall again; hosts already at this generation are kept."
    )
    root_device: RootDevice | None = Field(
        None, description="The disk the image goes to (image installs; default /dev/sda)."
    )
    media_address: str = Field(
        "127.0.0.1", description="Address of this machine that the BMCs reach (image "
        "installs: the install medium is served there over HTTP while they fetch it)."
    )
    boot_timeout_seconds: Annotated[int, Field(ge=30, le=7200)] = Field(
        1800, description="Per phase: deploy ramdisk done, then OS up with its marker. "
        "Real servers need minutes (an HGX system's POST alone can take 5+)."
    )
    attempts: Annotated[int, Field(ge=1, le=5)] = Field(
        2, description="Install attempts per host before it is reported as failed."
    )

    @model_validator(mode="after")
    def _needs_image(self) -> Reinstall:
        if self.image and self.method != "virtual-media":
            raise ValueError("image installs boot provision's medium through virtual media: "
                             "use method: virtual-media")
        if self.image and self.image_url:
            raise ValueError("give image (provision installs) or image_url (your installer), "
                             "not both")
        if self.method == "virtual-media" and not (self.image_url or self.image):
            raise ValueError("method: virtual-media needs image: debian-12 (provision's image "
                             "install) or image_url (your installer ISO)")
        return self


class BaremetalTarget(StrictModel):
    """`target: baremetal`: a fixed list of hosts that exist already."""

    hosts: list[BaremetalHost] = Field(min_length=1, description="The cluster's machines.")
    power_on: bool = Field(
        False, description="Power hosts on through their BMC before waiting for SSH."
    )
    reinstall: Reinstall | None = Field(
        None, description="Reinstall the OS through the BMC (wipes the disks)."
    )
    ssh_wait_seconds: Annotated[int, Field(ge=0, le=7200)] = Field(
        900, description="How long to wait for SSH after power-on or reinstall (0: do not "
        "wait)."
    )
    power_off_on_destroy: bool = Field(
        False, description="`provision down` powers the hosts off (default: leave them running)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> BaremetalTarget:
        names = [h.name for h in self.hosts if h.name]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"host names must be unique: {', '.join(dup)}")
        addrs = [(h.address, h.ssh_port) for h in self.hosts]
        dup_addr = sorted({f"{a}:{p}" for a, p in addrs if addrs.count((a, p)) > 1})
        if dup_addr:
            raise ValueError(f"host addresses must be unique: {', '.join(dup_addr)}")
        if (self.power_on or self.reinstall) and any(h.bmc is None for h in self.hosts):
            missing = [h.name or h.address for h in self.hosts if h.bmc is None]
            raise ValueError(f"power_on/reinstall need a bmc on every host; missing on "
                             f"{', '.join(missing)}")
        if self.reinstall and self.reinstall.method == "virtual-media" and any(
                h.bmc and h.bmc.protocol != "redfish" for h in self.hosts):
            raise ValueError("virtual-media reinstall needs Redfish BMCs (IPMI has no virtual "
                             "media); use method: pxe")
        return self
