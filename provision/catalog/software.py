"""The software compatibility matrix (data/software_matrix.yaml) and the resolved profile.

`provision plan` and `provision up` call :func:`resolve_cluster` with the plan's `software:`
section and the hardware the plan lands on (the optimizer's choice, the local target's
simulated SKUs or the bare-metal hosts). Fields the plan leaves out take the GPU generation's
defaults, adapted to what the plan does say (a plan that pins driver branch 535 on Hopper gets
CUDA 12.2, not the Hopper default 12.4); fields the plan sets that cannot work together are
input errors naming the field and what to change. The result becomes role variables in the
inventory (:meth:`Profile.role_vars`), so the roles never read provision's internals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from provision.datacache import load_yaml
from provision.plan.software import Software

_DATA = resources.files("provision.catalog") / "data"
Loc = tuple[str, ...]


def vtuple(version: str) -> tuple[int, ...]:
    """"12.4" → (12, 4); "550.54.14" → (550, 54, 14): versions compare numerically."""
    return tuple(int(p) for p in version.split("."))


class SoftwareError(ValueError):
    """An incompatible or unknown software choice: the plan field to blame and what to do."""

    def __init__(self, loc: Loc, message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


@dataclass(frozen=True)
class Matrix:
    """software_matrix.yaml as read; accessors keep the rules' code short."""

    raw: dict[str, Any]

    @property
    def branches(self) -> dict[str, dict[str, Any]]:
        return self.raw["driver_branches"]

    @property
    def cuda(self) -> dict[str, dict[str, Any]]:
        return self.raw["cuda"]

    @property
    def nccl(self) -> dict[str, dict[str, Any]]:
        return self.raw["nccl"]

    @property
    def arches(self) -> dict[str, dict[str, Any]]:
        return self.raw["architectures"]

    @property
    def jax(self) -> dict[str, dict[str, Any]]:
        return self.raw["jax"]

    def supports(self, branch: str, arch: str, modules: str | None = None) -> bool:
        b = self.branches[branch]
        kinds = [modules] if modules else ["open", "proprietary"]
        return any(arch in b[k] for k in kinds)

    def branches_for(self, arch: str, modules: str | None = None) -> list[str]:
        return [b for b in sorted(self.branches, key=int) if self.supports(b, arch, modules)]

    def cuda_fits(self, cuda: str, branch: str, arch: str) -> bool:
        a = self.arches[arch]
        v = vtuple(cuda)
        return (v <= vtuple(self.branches[branch]["cuda"]) and v >= vtuple(a["min_cuda"])
                and ("max_cuda" not in a or v <= vtuple(a["max_cuda"])))

    def nccl_build(self, nccl: str, cuda: str) -> str | None:
        """The newest build of ``nccl`` for the toolkit: same CUDA major, not newer."""
        v = vtuple(cuda)
        builds = [b for b in self.nccl[nccl]["builds"]
                  if vtuple(b)[0] == v[0] and vtuple(b) <= v]
        return max(builds, key=vtuple) if builds else None

    def nccl_fits(self, nccl: str, cuda: str, arch: str) -> bool:
        floor = self.arches[arch].get("min_nccl")
        return (self.nccl_build(nccl, cuda) is not None
                and (floor is None or vtuple(nccl) >= vtuple(floor)))


@cache
def software_matrix() -> Matrix:
    """The shipped matrix, read once per process."""
    return Matrix(load_yaml(_DATA / "software_matrix.yaml"))


@dataclass(frozen=True)
class Hardware:
    """What one node SKU of the cluster is, as far as its software needs to know."""

    sku: str
    gpu: str  # catalog name (H100, tpu-v5e)
    arch: str  # gpus.yaml arch (hopper, tpu-v5e)
    count: int  # GPUs (or TPU chips) per node
    interconnect: str  # nvswitch | nvlink | nvlink-pairs | pcie | ici
    provider: str  # local, aws, gcp, baremetal, ...
    multi_node: bool = True
    ib_ports: int = 0
    ib_rate_gbps: float | None = None
    nvlinks_per_gpu: int = 0
    gpu_names: tuple[str, ...] = ()
    nccl_busbw_gbps: float | None = None  # known-good single-node all_reduce busbw

    @property
    def is_tpu(self) -> bool:
        return self.arch.startswith("tpu")


@dataclass(frozen=True)
class Profile:
    """The resolved software of one node SKU."""

    hardware: Hardware
    values: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def role_vars(self) -> dict[str, Any]:
        """Role variables for the SKU's inventory group (group_vars/sku_<sku>.yml)."""
        hw, v = self.hardware, self.values
        if hw.is_tpu:
            return {
                "tpu_runtime_jax_version": v["jax"],
                "tpu_runtime_libtpu_version": v["libtpu"],
                "tpu_runtime_expected_chips": hw.count,
            }
        out: dict[str, Any] = {
            "nvidia_driver_branch": v["driver_branch"],
            "nvidia_driver_kernel_modules": v["kernel_modules"],
            "nvidia_driver_source": v["driver_source"],
            "nvidia_driver_expected_gpus": hw.count,
            "nvidia_driver_expected_models": list(hw.gpu_names),
            "nvidia_fabricmanager_enabled": v["fabric_manager"],
            "nvidia_fabricmanager_expected_nvlinks": hw.nvlinks_per_gpu,
            "cuda_version": v["cuda"],
            "cuda_package_version": v["cuda_package"],
            "cuda_expected_gpus": hw.count,
            "cuda_expected_compute_capability": v["compute_capability"],
            "nccl_version": v["nccl"],
            "nccl_cuda_build": v["nccl_build"],
            "nccl_tests_gpus": hw.count,
            "container_toolkit_runtime": v["container_runtime"],
            "container_toolkit_expected_gpus": hw.count,
            "apptainer_enabled": v["apptainer"],
            "apptainer_expected_gpus": hw.count,
            "rdma_fabric": v["fabric"],
            "rdma_stack": v["ofed"],
            "rdma_expected_ports": hw.ib_ports if v["fabric"] == "infiniband" else 0,
            "mpi_slots_per_node": hw.count,
        }
        if hw.ib_rate_gbps:
            out["rdma_expected_rate_gbps"] = hw.ib_rate_gbps
        if hw.nccl_busbw_gbps:
            out["nccl_tests_check_min_busbw"] = hw.nccl_busbw_gbps
        return out


def _label(hw: Hardware) -> str:
    return f"{hw.arch.capitalize()} ({hw.gpu})"


def _gpu_profile(sw: Software, hw: Hardware, target: str, m: Matrix) -> dict[str, Any]:
    """Defaults for the generation, adapted to the plan's explicit fields; errors otherwise."""
    if hw.arch not in m.arches:
        raise SoftwareError(("software",), f"no software defaults for GPU generation "
                            f"{hw.arch!r} ({hw.gpu}); known: {', '.join(m.arches)}")
    a = m.arches[hw.arch]
    d = a["defaults"]
    label = _label(hw)

    branch = sw.driver_branch or d["driver_branch"]
    if branch not in m.branches:
        raise SoftwareError(("software", "driver_branch"), (
            f"unknown driver branch {branch!r}; the matrix knows "
            f"{', '.join(sorted(m.branches, key=int))} "
            f"(provision/catalog/data/software_matrix.yaml)"))
    if not m.supports(branch, hw.arch):
        ok = m.branches_for(hw.arch)
        newer = [b for b in ok if int(b) > int(branch)]
        hint = (f"use {newer[0]} or newer" if newer else f"use one of {', '.join(ok)}")
        last = a.get("max_driver_branch")
        why = (f"; branch {last} is the last to support {hw.arch.capitalize()}"
               if last and int(branch) > int(last) else "")
        raise SoftwareError(("software", "driver_branch"), (
            f"driver branch {branch} does not support {label}{why}: {hint} "
            f"(set software.driver_branch: \"{newer[0] if newer else ok[-1]}\")"))

    modules = sw.kernel_modules or d["kernel_modules"]
    if sw.kernel_modules is None and not m.supports(branch, hw.arch, modules):
        modules = "proprietary" if modules == "open" else "open"
    if not m.supports(branch, hw.arch, modules):
        other = "proprietary" if modules == "open" else "open"
        if modules == "proprietary":
            msg = (f"{label} is supported only by the open kernel modules: set "
                   f"software.kernel_modules: open")
        else:
            msg = (f"{label} has no open kernel module support (open modules need Turing or "
                   f"later): set software.kernel_modules: {other}")
        raise SoftwareError(("software", "kernel_modules"), msg)

    cuda = sw.cuda
    if cuda is None:
        cuda = d["cuda"]
        if not m.cuda_fits(cuda, branch, hw.arch):
            fitting = [c for c in m.cuda if m.cuda_fits(c, branch, hw.arch)]
            if not fitting:
                raise SoftwareError(("software", "driver_branch"), (
                    f"no CUDA toolkit in the matrix runs on driver branch {branch} with "
                    f"{label}; use driver branch {d['driver_branch']}"))
            cuda = max(fitting, key=vtuple)
    if cuda not in m.cuda:
        raise SoftwareError(("software", "cuda"), (
            f"unknown CUDA version {cuda!r}; the matrix knows {', '.join(m.cuda)}"))
    bcuda = m.branches[branch]["cuda"]
    if vtuple(cuda) > vtuple(bcuda):
        need = [b for b in sorted(m.branches, key=int)
                if vtuple(m.branches[b]["cuda"]) >= vtuple(cuda) and m.supports(b, hw.arch)]
        blame: Loc = ("software", "cuda") if sw.cuda else ("software", "driver_branch")
        fix = (f"set software.driver_branch: \"{need[0]}\" or newer" if need
               else "choose an older CUDA")
        raise SoftwareError(blame, (
            f"CUDA {cuda} needs driver >= {m.cuda[cuda]['min_driver']}, but driver branch "
            f"{branch} supports CUDA up to {bcuda}: {fix}, or set software.cuda to {bcuda} "
            f"or lower"))
    if vtuple(cuda) < vtuple(a["min_cuda"]):
        raise SoftwareError(("software", "cuda"), (
            f"{label} needs CUDA {a['min_cuda']} or newer (compute capability "
            f"{a['compute_capability']}): set software.cuda: \"{a['min_cuda']}\""))
    if "max_cuda" in a and vtuple(cuda) > vtuple(a["max_cuda"]):
        raise SoftwareError(("software", "cuda"), (
            f"CUDA {cuda} dropped {label}; its last CUDA is {a['max_cuda']}: set "
            f"software.cuda: \"{a['max_cuda']}\""))

    nccl = sw.nccl
    if nccl is None:
        nccl = d["nccl"]
        if nccl not in m.nccl or not m.nccl_fits(nccl, cuda, hw.arch):
            fitting = [n for n in m.nccl if m.nccl_fits(n, cuda, hw.arch)]
            if not fitting:
                raise SoftwareError(("software", "cuda"), (
                    f"no NCCL in the matrix has a build for CUDA {cuda} on {label}"))
            nccl = max(fitting, key=vtuple)
    if nccl not in m.nccl:
        raise SoftwareError(("software", "nccl"), (
            f"unknown NCCL version {nccl!r}; the matrix knows {', '.join(m.nccl)}"))
    build = m.nccl_build(nccl, cuda)
    if build is None:
        builds = ", ".join(f"+cuda{b}" for b in m.nccl[nccl]["builds"])
        others = [n for n in m.nccl if m.nccl_build(n, cuda)]
        alt = (f"; with CUDA {cuda} use NCCL {max(others, key=vtuple)}" if others else "")
        raise SoftwareError(("software", "nccl"), (
            f"NCCL {nccl} is published for {builds} only, none of which runs with CUDA "
            f"{cuda}{alt} (set software.nccl), or change software.cuda"))
    floor = a.get("min_nccl")
    if floor and vtuple(nccl) < vtuple(floor):
        raise SoftwareError(("software", "nccl"), (
            f"{label} needs NCCL {floor} or newer: set software.nccl: \"{floor}\""))

    nvswitch = hw.interconnect in m.raw["fabric_manager"]["interconnects"]
    if sw.fabric_manager == "on" and not nvswitch:
        raise SoftwareError(("software", "fabric_manager"), (
            f"fabric manager is only for NVSwitch systems; {hw.sku} joins its GPUs by "
            f"{hw.interconnect}: set software.fabric_manager: auto"))
    if sw.fabric_manager == "off" and nvswitch:
        raise SoftwareError(("software", "fabric_manager"), (
            f"{hw.sku} is an NVSwitch system: without fabric manager its GPUs cannot join "
            f"the NVLink fabric and CUDA fails to initialize; set software.fabric_manager: "
            f"auto"))

    fabric = sw.fabric
    if fabric == "auto":
        if hw.provider == "aws":
            fabric = "efa" if hw.multi_node else "none"
        elif hw.provider == "gcp":
            fabric = "none"
        else:
            fabric = "infiniband" if hw.ib_ports > 0 and hw.multi_node else "none"
    if fabric == "efa" and hw.provider != "aws":
        raise SoftwareError(("software", "fabric"), (
            f"EFA exists only on AWS instances; {hw.sku} comes from {hw.provider}: set "
            f"software.fabric: {'infiniband' if hw.ib_ports else 'none'} (or auto)"))
    if fabric == "infiniband" and target == "local" and hw.ib_ports == 0:
        raise SoftwareError(("software", "fabric"), (
            f"simulated {hw.sku} nodes have no InfiniBand ports: set software.fabric: auto "
            f"or none"))
    ofed = sw.ofed or ("doca" if target == "local" else "inbox")
    if sw.ofed is not None and fabric != "infiniband":
        raise SoftwareError(("software", "ofed"), (
            f"applies to InfiniBand/RoCE, but the fabric here is {fabric}: remove "
            f"software.ofed or set software.fabric: infiniband"))

    runtime = sw.container_runtime or ("podman" if target == "local" else "docker")
    if target == "local" and runtime not in ("podman", "none"):
        raise SoftwareError(("software", "container_runtime"), (
            f"simulated nodes run containers with nested podman; {runtime} needs a real "
            f"host: set software.container_runtime: podman"))

    return {
        "driver_branch": branch, "driver_version": m.branches[branch]["version"],
        "kernel_modules": modules, "driver_source": sw.driver_source, "cuda": cuda,
        "cuda_package": m.cuda[cuda]["package"], "nccl": nccl, "nccl_build": build,
        "compute_capability": a["compute_capability"], "fabric_manager": nvswitch,
        "mpi": sw.mpi, "container_runtime": runtime, "apptainer": sw.apptainer,
        "fabric": fabric, "ofed": ofed,
    }


def _tpu_profile(sw: Software, m: Matrix) -> dict[str, Any]:
    jax = sw.jax or m.raw["tpu_defaults"]["jax"]
    if jax not in m.jax:
        raise SoftwareError(("software", "jax"), (
            f"unknown JAX version {jax!r}; the matrix pins libtpu for "
            f"{', '.join(m.jax)}"))
    return {"jax": jax, "libtpu": m.jax[jax]["libtpu"], "mpi": sw.mpi}


GPU_FIELDS = ("driver_branch", "kernel_modules", "cuda", "nccl", "container_runtime", "ofed")


def resolve(software: Software | None, hardware: list[Hardware], target: str
            ) -> dict[str, Profile]:
    """One profile per node SKU; raise SoftwareError on the first incompatible field."""
    sw = software or Software()
    m = software_matrix()
    gpus = [h for h in hardware if not h.is_tpu]
    tpus = [h for h in hardware if h.is_tpu]
    explicit = sw.model_fields_set
    for name in GPU_FIELDS:
        if name in explicit and getattr(sw, name) is not None and not gpus:
            raise SoftwareError(("software", name), (
                "applies to NVIDIA GPU nodes, and this plan has none"
                + (" (its nodes are TPU VMs)" if tpus else "")))
    if "jax" in explicit and sw.jax is not None and not tpus:
        raise SoftwareError(("software", "jax"), "applies to TPU VMs, and this plan has none")
    profiles: dict[str, Profile] = {}
    for hw in hardware:
        values = _tpu_profile(sw, m) if hw.is_tpu else _gpu_profile(sw, hw, target, m)
        profiles[hw.sku] = Profile(hw, values)
    return profiles
