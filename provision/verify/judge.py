"""Which checks run at which level, and judging a host or the cluster with them.

A check whose level is at or below the requested one is expected: a missing file fails it.
A check above the requested level runs only when its file is there anyway (a collector that
fetched more than asked), so a missing file outside the level is never an error.

Default bands (reference.json ``bands``): fail below 0.90 x reference, warn from 0.90 to 0.95.
``overrides`` (plan.yaml will carry them) adjust them per check, and may set a reference where
the table has none: ``{"nccl.all_reduce": {"fail_below": 0.85, "warn_below": 0.9},
"tpu.ici_bandwidth": {"reference": 180}}``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from provision.errors import InputError
from provision.verify.artifacts import LEVELS, read_artifact
from provision.verify.checks import bandwidth, cluster, health, inventory, links, network, tpu
from provision.verify.checks.base import HostContext, Overrides
from provision.verify.model import Check

BANDED = frozenset({"gpu.memory", "nvbandwidth.h2d", "nvbandwidth.d2h", "nvbandwidth.d2d",
                    "nccl.all_reduce", "nccl.all_reduce.multinode", "ib.write_bw",
                    "tpu.ici_bandwidth"})
OVERRIDE_KEYS = frozenset({"fail_below", "warn_below", "reference"})


@dataclass(frozen=True, slots=True)
class CheckSpec:
    """A check function, the checks it reports, the files it reads and its lowest level."""

    checks: tuple[str, ...]
    files: tuple[str, ...]
    level: str
    kind: str  # gpu | tpu
    run: Callable[[HostContext], list[Check]]


HOST_CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec(inventory.QUERY_CHECKS, (inventory.QUERY_FILE,), "quick", "gpu",
              inventory.check_inventory),
    CheckSpec(("gpu.row_remap",), (inventory.REMAP_FILE,), "quick", "gpu",
              inventory.check_row_remap),
    CheckSpec(("nvlink.topology",), (links.TOPO_FILE,), "quick", "gpu", links.check_topology),
    CheckSpec(("nvlink.status",), (links.NVLINK_FILE,), "quick", "gpu",
              links.check_nvlink_status),
    CheckSpec(("xid",), (health.XID_FILE,), "quick", "gpu", health.check_xid),
    CheckSpec(("dcgm.diag",), (health.DCGM_FILE,), "quick", "gpu", health.check_dcgm),
    CheckSpec(bandwidth.NVB_CHECKS, (bandwidth.NVB_FILE,), "standard", "gpu",
              bandwidth.check_nvbandwidth),
    CheckSpec(("nccl.all_reduce",), (bandwidth.NCCL_FILE,), "standard", "gpu",
              bandwidth.check_nccl),
    CheckSpec(("ib.ports",), (network.IBSTAT_FILE,), "full", "gpu", network.check_ib_ports),
    CheckSpec(("ib.write_bw",), (network.IBBW_FILE,), "full", "gpu", network.check_ib_bandwidth),
    CheckSpec(("tpu.chips", "tpu.ici_bandwidth"), (tpu.TPU_FILE,), "quick", "tpu", tpu.check_tpu),
)
CLUSTER_LEVEL = "full"
ALL_CHECKS: tuple[str, ...] = (*(name for spec in HOST_CHECKS for name in spec.checks),
                               cluster.NAME)


def validate_overrides(overrides: Overrides | None) -> Overrides:
    """Check names and keys of an overrides mapping; InputError naming what is wrong."""
    problems: list[str] = []
    clean: Overrides = {}
    for name, values in (overrides or {}).items():
        if name not in ALL_CHECKS:
            problems.append(f"{name}: unknown check (known: {', '.join(sorted(BANDED))})")
            continue
        if name not in BANDED:
            problems.append(f"{name}: not judged by bands; nothing to override")
            continue
        if not isinstance(values, dict) or not set(values) <= OVERRIDE_KEYS:
            problems.append(f"{name}: use keys {', '.join(sorted(OVERRIDE_KEYS))}")
            continue
        try:
            clean[name] = {k: float(v) for k, v in values.items()}
        except (TypeError, ValueError):
            problems.append(f"{name}: values must be numbers")
            continue
        fail, warn = clean[name].get("fail_below"), clean[name].get("warn_below")
        if any(v is not None and not 0 <= v <= 2 for v in (fail, warn)):
            problems.append(f"{name}: fail_below and warn_below are fractions of the reference")
        if fail is not None and warn is not None and fail > warn:
            problems.append(f"{name}: fail_below {fail} is above warn_below {warn}")
        if clean[name].get("reference", 1.0) <= 0:
            problems.append(f"{name}: reference must be positive")
    if problems:
        raise InputError("invalid verify overrides", problems)
    return clean


def _wanted(spec: CheckSpec, ctx: HostContext) -> bool:
    if spec.kind != ctx.ref.kind:
        return False
    if LEVELS.index(spec.level) <= LEVELS.index(ctx.level):
        return True
    return any(read_artifact(ctx.directory, f).present for f in spec.files)


def with_exit_status(checks: list[Check], problem: str | None) -> list[Check]:
    """A tool that exited non-zero fails the checks its output feeds, even when the output
    parsed (a crash after the table); a check skipped for lack of a reference stays skipped."""
    if problem is None:
        return checks
    for check in checks:
        if check.status in ("pass", "warn"):
            check.status = "fail"
        check.detail += f"; {problem}"
    return checks


def judge_host(ctx: HostContext) -> list[Check]:
    """Every check the level expects (plus any outside it whose file was collected)."""
    checks: list[Check] = []
    for spec in HOST_CHECKS:
        if _wanted(spec, ctx):
            found = spec.run(ctx)
            for file in spec.files:
                found = with_exit_status(found, ctx.artifact(file).exit_problem())
            checks.extend(found)
    return checks


def judge_cluster(directory: Path, hosts: list[HostContext], level: str) -> list[Check]:
    """Cluster-wide checks: multi-node NCCL at level full, or whenever its file is there."""
    gpu_hosts = [h for h in hosts if h.ref.kind == "gpu"]
    if not gpu_hosts:
        return []
    art = read_artifact(directory / cluster.CLUSTER_DIR, cluster.NCCL_FILE)
    if LEVELS.index(level) < LEVELS.index(CLUSTER_LEVEL) and not art.present:
        return []
    exit_problem = art.exit_problem()
    return with_exit_status(cluster.check_multinode_nccl(directory, gpu_hosts),
                            f"{cluster.CLUSTER_DIR}/{exit_problem}" if exit_problem else None)
