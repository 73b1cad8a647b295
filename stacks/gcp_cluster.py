"""GCP GPU VM cluster: network, firewall, compact placement, GPUDirect NICs, one VM per node.

Resources (names prefixed with the cluster name):
  VPC network + subnetwork                 unless an existing network is given
  firewall <name>-ssh                      tcp:22 from the operator's CIDRs, to the cluster tag
  firewall <name>-internal                 all traffic between VMs carrying the cluster tag
  GPUDirect networks (+ subnet, firewall)  A3 multi-node: one VPC per extra GPU NIC
  resource policy (COLLOCATED)             compact placement for multi-node plans
  compute instance per node                scheduling per provisioning model, SSH key metadata,
                                           a named reservation when the plan gives one

The boot image is GPU-ready where Google publishes one for the GPU (gcp_data.GPU_IMAGES: Deep
Learning VM images with the NVIDIA driver); each node's labels tell the roles which image
family it runs and which driver branch it ships (``image_family``, ``image_driver``), and, on
A3 with GPUDirect NICs, which GPUDirect software its NICs need (``network_fabric``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_gcp as gcp

from stacks.common import NodeArgs, SshPolicy, child, field_of, node_record
from stacks.gcp_data import DEFAULT_IMAGE, family, scheduling

RESERVATION_KEY = "compute.googleapis.com/reservation-name"

PROVISIONING = ("standard", "spot", "preemptible")
GPUDIRECT_BASE = "192.168.0.0/16"  # carved into one /24 per GPU NIC network


@dataclass(frozen=True)
class GcpNetworkArgs:
    """Where the nodes attach: an existing network/subnetwork, or a new one with this range."""

    network: str | None = None
    subnetwork: str | None = None
    subnet_cidr: str = "10.43.0.0/20"


@dataclass(frozen=True)
class GcpClusterArgs:
    """Inputs of :class:`GcpCluster`, all plain values (the plan, resolved)."""

    cluster: str
    machine_type: str
    zone: str  # us-central1-a
    nodes: tuple[NodeArgs, ...]
    ssh: SshPolicy
    provisioning: str = "standard"  # standard | spot | preemptible
    termination_action: str = "DELETE"  # spot reclaim: DELETE | STOP
    guest_accelerator: tuple[str, int] | None = None  # N1 only: (nvidia-tesla-t4, count)
    placement: bool = False  # compact placement policy
    gpudirect: bool = False  # extra GPUDirect NICs where the family has them
    network: GcpNetworkArgs = field(default_factory=GcpNetworkArgs)
    image: str = DEFAULT_IMAGE
    image_family: str = "ubuntu"  # dlvm | ubuntu | custom (for the roles)
    image_driver: str | None = None  # driver branch the image ships; None: none or unknown
    reservation: str | None = None  # a specific reservation the VMs consume
    boot_disk_gb: int = 200
    boot_disk_type: str | None = None  # default: the family's
    service_account: str | None = None
    project: str | None = None  # default: the provider's configured project
    labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.provisioning not in PROVISIONING:
            raise ValueError(f"provisioning must be one of {PROVISIONING}")
        if not self.nodes:
            raise ValueError("a cluster needs at least one node")

    @property
    def region(self) -> str:
        return self.zone.rsplit("-", 1)[0]


def ssh_metadata(ssh: SshPolicy) -> dict[str, str]:
    """Instance metadata that installs the key for the user. OS Login would ignore ssh-keys,
    so it is switched off per instance (an organization policy can still enforce it)."""
    return {"ssh-keys": f"{ssh.user}:{ssh.public_key}", "enable-oslogin": "FALSE"}


class ClusterNetwork(pulumi.ComponentResource):
    """The network, subnetwork and firewall rules a GCP cluster (GPU or TPU) attaches to."""

    def __init__(self, name: str, cluster: str, net: GcpNetworkArgs, region: str,
                 ssh: SshPolicy, project: str | None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("provision:gcp:Network", name, None, opts)
        self.tag = f"provision-{cluster}"
        if net.network:
            self.network: Any = net.network
            self.subnetwork: Any = net.subnetwork
        else:
            network = gcp.compute.Network(f"{name}", name=f"provision-{cluster}",
                                          auto_create_subnetworks=False, project=project,
                                          opts=child(self))
            subnet = gcp.compute.Subnetwork(f"{name}-subnet", name=f"provision-{cluster}",
                                            network=network.id, region=region,
                                            ip_cidr_range=net.subnet_cidr, project=project,
                                            opts=child(self))
            self.network, self.subnetwork = network.id, subnet.id
        self.ssh_firewall = gcp.compute.Firewall(
            f"{name}-ssh", name=f"provision-{cluster}-ssh", network=self.network,
            direction="INGRESS", source_ranges=ssh.checked_cidrs(), target_tags=[self.tag],
            allows=[{"protocol": "tcp", "ports": ["22"]}], project=project,
            description="SSH from the operator", opts=child(self))
        self.internal_firewall = gcp.compute.Firewall(
            f"{name}-internal", name=f"provision-{cluster}-internal", network=self.network,
            direction="INGRESS", source_tags=[self.tag], target_tags=[self.tag],
            allows=[{"protocol": "tcp"}, {"protocol": "udp"}, {"protocol": "icmp"}],
            project=project, description="all traffic inside the cluster", opts=child(self))
        self.register_outputs({"network": self.network, "subnetwork": self.subnetwork})


class GcpCluster(pulumi.ComponentResource):
    """The GCP resources of one GPU VM cluster; ``nodes`` is the NodeRecord-shaped output."""

    nodes: pulumi.Output[list[dict[str, Any]]]

    def __init__(self, name: str, args: GcpClusterArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("provision:gcp:Cluster", name, None, opts)
        self.args = args
        fam = family(args.machine_type)
        labels = {"provision-cluster": args.cluster, **args.labels}
        net = ClusterNetwork(f"{name}-net", args.cluster, args.network, args.region, args.ssh,
                             args.project, opts=child(self))
        gpu_subnets = self._gpudirect(name, fam.gpudirect_nics if args.gpudirect else 0,
                                      fam.gpudirect_mtu)
        policy = None
        if args.placement:
            policy = gcp.compute.ResourcePolicy(
                f"{name}-placement", name=f"provision-{args.cluster}-compact",
                region=args.region, project=args.project,
                group_placement_policy={"collocation": "COLLOCATED"}, opts=child(self))

        records = []
        self.instances: list[gcp.compute.Instance] = []
        for node in args.nodes:
            nics: list[dict[str, Any]] = [{
                "subnetwork": net.subnetwork, "access_configs": [{}],
                **({"nic_type": fam.nic_type} if fam.nic_type else {}),
            }]
            nics += [{"subnetwork": s, "nic_type": fam.nic_type or "GVNIC"} for s in gpu_subnets]
            instance = gcp.compute.Instance(
                node.name,
                name=node.name,
                machine_type=args.machine_type,
                zone=args.zone,
                project=args.project,
                boot_disk={"auto_delete": True, "initialize_params": {
                    "image": args.image, "size": args.boot_disk_gb,
                    "type": args.boot_disk_type or fam.boot_disk_type}},
                network_interfaces=nics,
                scheduling=scheduling(args.provisioning, args.termination_action),
                guest_accelerators=([{"type": args.guest_accelerator[0],
                                      "count": args.guest_accelerator[1]}]
                                    if args.guest_accelerator else None),
                resource_policies=policy.self_link if policy is not None else None,
                metadata={**ssh_metadata(args.ssh),
                          # Deep Learning VM images install or load their driver at first boot
                          **({"install-nvidia-driver": "True"}
                             if args.image_family == "dlvm" else {})},
                reservation_affinity=({"type": "SPECIFIC_RESERVATION", "specific_reservation": {
                    "key": RESERVATION_KEY, "values": [args.reservation]}}
                    if args.reservation else None),
                tags=[net.tag],
                labels={**labels, "provision-role": node.role},
                service_account=({"email": args.service_account, "scopes": ["cloud-platform"]}
                                 if args.service_account else None),
                allow_stopping_for_update=True,
                opts=child(self, depends_on=[net]),
            )
            self.instances.append(instance)
            primary = instance.network_interfaces.apply(lambda n: field_of(n[0], "network_ip"))
            public = instance.network_interfaces.apply(_nat_ip)
            records.append(node_record(
                node, provider="gcp", address=public, private_address=primary,
                ssh_user=args.ssh.user, instance_id=instance.instance_id, zone=args.zone,
                spot=args.provisioning != "standard",
                labels={"machine_type": args.machine_type,
                        "provisioning": args.provisioning,
                        "gpudirect_nics": str(len(gpu_subnets)),
                        "image_family": args.image_family,
                        "image_driver": args.image_driver or "none",
                        **({"network_fabric": fam.gpudirect}
                           if gpu_subnets and fam.gpudirect else {})},
            ))
        self.nodes = pulumi.Output.all(*records)
        self.register_outputs({"nodes": self.nodes, "network": net.network})

    def _gpudirect(self, name: str, count: int, mtu: int) -> list[Any]:
        """One VPC, subnet and internal firewall per extra GPU NIC (GCP allows one NIC of a
        VM per VPC network)."""
        args = self.args
        ranges = list(ipaddress.ip_network(GPUDIRECT_BASE).subnets(new_prefix=24))
        subnets = []
        for i in range(count):
            network = gcp.compute.Network(
                f"{name}-gpunet-{i}", name=f"provision-{args.cluster}-gpu{i}",
                auto_create_subnetworks=False, mtu=mtu, project=args.project, opts=child(self))
            subnet = gcp.compute.Subnetwork(
                f"{name}-gpusub-{i}", name=f"provision-{args.cluster}-gpu{i}",
                network=network.id, region=args.region, ip_cidr_range=str(ranges[i]),
                project=args.project, opts=child(self))
            gcp.compute.Firewall(
                f"{name}-gpufw-{i}", name=f"provision-{args.cluster}-gpu{i}-internal",
                network=network.id, direction="INGRESS", source_ranges=[str(ranges[i])],
                allows=[{"protocol": "tcp"}, {"protocol": "udp"}, {"protocol": "icmp"}],
                project=args.project, description="GPUDirect traffic inside the cluster",
                opts=child(self))
            subnets.append(subnet.id)
        return subnets



def _nat_ip(nics: list[Any]) -> str | None:
    configs = field_of(nics[0], "access_configs") or []
    return field_of(configs[0], "nat_ip") if configs else None
