"""GCP facts for GPU VMs and TPU VMs that the price catalog does not carry.

Sources: GCP "GPU machine types" (A2/A3/A4/G2 bundle their GPUs; N1 takes guest accelerators;
A3 needs gVNIC), "Maximize GPU network bandwidth" (A3 High: 4 extra GPUDirect-TCPX NICs, A3 Mega:
8 GPUDirect-TCPXO NICs, each on its own VPC with MTU 8244), "Spot VMs" (provisioning model
fields), and "TPU software versions" (runtime per generation).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from provision.catalog.specs import gpu_table


# Machine-type family → facts. Families not listed bundle nothing special.
@dataclass(frozen=True)
class MachineFamily:
    nic_type: str | None = None  # GVNIC where the family requires it
    boot_disk_type: str = "pd-balanced"  # the default boot disk the family supports
    gpudirect_nics: int = 0  # extra GPU NICs (each on its own VPC) for multi-node jobs
    gpudirect_mtu: int = 8244
    gpudirect: str | None = None  # the software those NICs need: gcp-tcpx | gcp-tcpxo


MACHINE_FAMILIES: dict[str, MachineFamily] = {
    "a2-highgpu": MachineFamily(),
    "a2-megagpu": MachineFamily(),
    "a2-ultragpu": MachineFamily(),
    "a3-highgpu": MachineFamily(nic_type="GVNIC", gpudirect_nics=4, gpudirect="gcp-tcpx"),
    "a3-edgegpu": MachineFamily(nic_type="GVNIC", gpudirect_nics=4, gpudirect="gcp-tcpx"),
    "a3-megagpu": MachineFamily(nic_type="GVNIC", gpudirect_nics=8, gpudirect="gcp-tcpxo"),
    # A3 Ultra / A4 use RDMA NICs on a RoCE network profile, which needs a reservation-scoped
    # setup provision does not create; they run on the primary NIC here.
    "a3-ultragpu": MachineFamily(nic_type="GVNIC", boot_disk_type="hyperdisk-balanced"),
    "a4-highgpu": MachineFamily(nic_type="GVNIC", boot_disk_type="hyperdisk-balanced"),
    "g2-standard": MachineFamily(nic_type="GVNIC"),
}

# GPUs attached to N1 machine types as guest accelerators (canonical name → GCP type).
GUEST_ACCELERATORS: dict[str, str] = {
    "T4": "nvidia-tesla-t4",
    "V100": "nvidia-tesla-v100",
    "P100": "nvidia-tesla-p100",
    "P4": "nvidia-tesla-p4",
}

DEFAULT_IMAGE = "projects/ubuntu-os-cloud/global/images/family/ubuntu-2204-lts"


@dataclass(frozen=True)
class GpuImage:
    """A boot image for GPU VMs and what the roles find on it."""

    image: str  # image family self link
    family: str  # provision_image_family: dlvm | ubuntu
    driver_branch: str | None  # NVIDIA driver branch the image ships, None: none


# GPU-ready images per GPU architecture (gpus.yaml `arch`): Google's Deep Learning VM images
# (project deeplearning-platform-release, "Choose a Deep Learning VM image": the
# common-cu<cuda>-ubuntu-2204-nvidia-<branch> families ship that NVIDIA driver branch and CUDA
# toolkit). Architectures without a row (Volta, Pascal: branch 535 with proprietary modules in
# provision's software matrix, which no DLVM family ships) boot plain Ubuntu 22.04 LTS, which has
# no NVIDIA driver: the nvidia_driver role installs it, and preview says so.
UBUNTU_IMAGE = GpuImage(DEFAULT_IMAGE, "ubuntu", None)
DLVM = "projects/deeplearning-platform-release/global/images/family/"
GPU_IMAGES: dict[str, GpuImage] = {
    "turing": GpuImage(DLVM + "common-cu124-ubuntu-2204-nvidia-550", "dlvm", "550"),
    "ampere": GpuImage(DLVM + "common-cu124-ubuntu-2204-nvidia-550", "dlvm", "550"),
    "ada": GpuImage(DLVM + "common-cu124-ubuntu-2204-nvidia-550", "dlvm", "550"),
    "hopper": GpuImage(DLVM + "common-cu124-ubuntu-2204-nvidia-550", "dlvm", "550"),
    "blackwell": GpuImage(DLVM + "common-cu128-ubuntu-2204-nvidia-570", "dlvm", "570"),
}


def gpu_image(gpu: str) -> GpuImage:
    """The boot image for GPU VMs with ``gpu`` (a catalog name such as H100)."""
    spec = gpu_table().resolve(gpu)
    return GPU_IMAGES.get(spec.arch, UBUNTU_IMAGE) if spec is not None else UBUNTU_IMAGE


def family(machine_type: str) -> MachineFamily:
    """Facts for ``machine_type`` (a3-highgpu-8g → the a3-highgpu family)."""
    return MACHINE_FAMILIES.get("-".join(machine_type.split("-")[:2]), MachineFamily())


def scheduling(provisioning: str, termination_action: str) -> dict[str, object]:
    """The ``scheduling`` block per provisioning model. GPU VMs cannot live-migrate, so host
    maintenance always terminates them; spot VMs must not auto-restart and say what a
    reclaim does (DELETE or STOP)."""
    table: dict[str, dict[str, object]] = {
        "standard": {"provisioning_model": "STANDARD", "on_host_maintenance": "TERMINATE",
                     "automatic_restart": True},
        "spot": {"provisioning_model": "SPOT", "preemptible": True, "automatic_restart": False,
                 "on_host_maintenance": "TERMINATE",
                 "instance_termination_action": termination_action},
        "preemptible": {"preemptible": True, "automatic_restart": False,
                        "on_host_maintenance": "TERMINATE"},
    }
    return table[provisioning]


# -- TPU ------------------------------------------------------------------------------------
# TPU software versions for JAX/PyTorch per generation (Cloud TPU "TPU software versions").
TPU_RUNTIME: dict[str, str] = {
    "tpu-v2": "tpu-ubuntu2204-base",
    "tpu-v3": "tpu-ubuntu2204-base",
    "tpu-v4": "tpu-ubuntu2204-base",
    "tpu-v5e": "v2-alpha-tpuv5-lite",
    "tpu-v5p": "v2-alpha-tpuv5",
    "tpu-v6e": "v2-alpha-tpuv6e",
}

# SkyPilot names slices "tpu-<gcp accelerator type>" (tpu-v5litepod-8); the TPU API takes the
# accelerator type itself (v5litepod-8).
_SLICE = re.compile(r"^(?:tpu-)?(v[0-9]+[a-z]*(?:litepod|pod)?)-([0-9]+)$")


@dataclass(frozen=True)
class TpuSlice:
    """One TPU slice shape as the TPU API and the inventory need it."""

    accelerator_type: str  # v5p-16, v5litepod-8
    generation: str  # canonical name in gpus.yaml: tpu-v5p
    sku: str  # node SKU id for the inventory
    chips: int
    hosts: int  # TPU VM workers, one node record each
    runtime_version: str


def tpu_slice(name: str) -> TpuSlice:
    """Parse a catalog slice name (tpu-v5p-16 or v5p-16) with the generation's topology."""
    m = _SLICE.match(name.strip().lower())
    if not m:
        raise ValueError(f"{name!r} is not a TPU slice name such as tpu-v5p-16 or v5litepod-8")
    spec = gpu_table().resolve(f"tpu-{m.group(1)}")
    if spec is None or spec.tpu is None:
        raise ValueError(f"{name!r}: unknown TPU generation {m.group(1)!r}")
    chips = spec.tpu.chips(int(m.group(2)))
    return TpuSlice(
        accelerator_type=f"{m.group(1)}-{m.group(2)}",
        generation=spec.name,
        sku=spec.sku,
        chips=chips,
        hosts=spec.tpu.hosts(chips),
        runtime_version=TPU_RUNTIME.get(spec.name, "tpu-ubuntu2204-base"),
    )
