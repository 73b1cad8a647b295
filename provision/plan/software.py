"""plan.yaml's `software:` section: what the GPU/TPU nodes run, from the driver up.

Every field is optional: what a plan leaves out is filled per GPU generation from the
compatibility matrix (provision/catalog/data/software_matrix.yaml), and `provision plan`
rejects combinations the matrix says cannot work before any node exists
(provision/catalog/software.py). The fields map onto role variables one to one, so what the
plan says is what the roles install (see the README's software profile section).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from provision.plan.schema_base import StrictModel

VERSION = r"^[0-9]+(\.[0-9]+){1,2}$"


class Software(StrictModel):
    """The software profile of the cluster's GPU (and TPU) nodes."""

    driver_branch: str | None = Field(
        None, pattern=r"^[0-9]{3}$",
        description="NVIDIA driver branch, e.g. 550 (production) or 570 (needed by Blackwell). "
        "Default per GPU generation.",
    )
    kernel_modules: Literal["open", "proprietary"] | None = Field(
        None,
        description="open (Turing and later; required by Blackwell) or proprietary (needed by "
        "Maxwell, Pascal, Volta). Default per GPU generation.",
    )
    driver_source: Literal["nvidia", "distribution"] = Field(
        "nvidia",
        description="Driver packages from NVIDIA's CUDA repository (pinned branch) or from the "
        "distribution (Debian non-free, Ubuntu's -server drivers).",
    )
    cuda: str | None = Field(
        None, pattern=VERSION,
        description="CUDA toolkit major.minor, e.g. 12.4; must not exceed what the driver "
        "branch supports. Default per GPU generation.",
    )
    nccl: str | None = Field(
        None, pattern=VERSION,
        description="NCCL version, e.g. 2.21.5; the build matching the CUDA toolkit is "
        "installed. Default per GPU generation.",
    )
    fabric_manager: Literal["auto", "on", "off"] = Field(
        "auto",
        description="NVIDIA Fabric Manager (at exactly the driver's version): auto runs it on "
        "NVSwitch systems only; on is an error elsewhere, off is an error on NVSwitch systems.",
    )
    mpi: Literal["openmpi", "hpcx"] = Field(
        "openmpi", description="MPI flavour: the distribution's OpenMPI, or NVIDIA HPC-X."
    )
    container_runtime: Literal["docker", "podman", "containerd", "none"] | None = Field(
        None,
        description="Container runtime the NVIDIA Container Toolkit configures. Default "
        "docker; podman on target: local (simulated nodes run it nested).",
    )
    apptainer: bool = Field(True, description="Install Apptainer (Singularity's successor).")
    fabric: Literal["auto", "infiniband", "efa", "none"] = Field(
        "auto",
        description="Inter-node RDMA fabric: auto (InfiniBand where the SKU has it, EFA on AWS "
        "multi-node instances, else none), infiniband (also RoCE), efa, none.",
    )
    ofed: Literal["inbox", "doca"] | None = Field(
        None,
        description="InfiniBand software: inbox (rdma-core, perftest, infiniband-diags from the "
        "distribution) or doca (NVIDIA DOCA-OFED). Default inbox; doca on target: local.",
    )
    jax: str | None = Field(
        None, pattern=VERSION,
        description="TPU VMs: the JAX version (with its matching libtpu). Default from the "
        "matrix.",
    )
