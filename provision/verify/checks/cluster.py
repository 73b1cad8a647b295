"""Cluster-wide check: multi-node NCCL all_reduce (``_cluster/nccl-all_reduce.txt``).

Across nodes the network bounds busbw: the reference is the known-good busbw per NIC (46 GB/s
on NDR 400G, 24 on HDR 200G) times the InfiniBand ports per node, capped at the single-node
reference, and the slowest node's figure is the cluster's. The ranks must cover every GPU of
every host once; a figure above the single-node ceiling (NVLS may beat the per-NIC figure across
nodes, never the intra-node bound) is corrupt output.
"""

from __future__ import annotations

from pathlib import Path

from provision.verify.artifacts import read_artifact
from provision.verify.checks.bandwidth import judge_nccl
from provision.verify.checks.base import HostContext, fmt
from provision.verify.model import Check
from provision.verify.parsers.nccl import parse_nccl

CLUSTER_DIR = "_cluster"
NCCL_FILE = "nccl-all_reduce.txt"
NAME = "nccl.all_reduce.multinode"


def _reference(ctx: HostContext) -> tuple[float | None, float | None, str]:
    """(reference, peak, source) for one node's share of a multi-node all_reduce."""
    metric = ctx.ref.metric(NAME)
    per_nic = metric.extra.get("per_nic") if metric else None
    if metric is None or per_nic is None or ctx.expect_ib_ports == 0:
        return None, None, metric.source if metric else "no multi-node reference"
    ref = per_nic * ctx.expect_ib_ports
    single = ctx.ref.metric("nccl.all_reduce")
    cap = ""
    if single is not None and single.reference is not None and single.reference < ref:
        ref, cap = single.reference, f", capped at the single-node {fmt(single.reference)}"
    peak_nic = metric.extra.get("peak_per_nic")
    peak = peak_nic * ctx.expect_ib_ports if peak_nic else None
    return ref, peak, (f"{fmt(per_nic)} GB/s per NIC x {ctx.expect_ib_ports} NICs{cap}; "
                       f"{metric.source}")


def check_multinode_nccl(directory: Path, hosts: list[HostContext]) -> list[Check]:
    art = read_artifact(directory / CLUSTER_DIR, NCCL_FILE)
    if len(hosts) < 2 and not art.present:
        return [Check(name=NAME, status="skip",
                          detail="one host: no multi-node all_reduce to judge")]
    if problem := art.problem():
        where = f"{CLUSTER_DIR}/{problem}" if problem.startswith(NCCL_FILE) else problem
        return [Check(name=NAME, status="fail", detail=where)]
    parsed = parse_nccl(art.text or "")
    refs = [(_reference(h), h) for h in hosts]
    judged = [(r, h) for r, h in refs if r[0] is not None]
    ctx = min(judged, key=lambda item: item[0][0])[1] if judged else hosts[0]
    ref, peak, source = _reference(ctx)
    metric = ctx.ref.metric(NAME)
    check = judge_nccl(ctx, NAME, parsed, art.failure_hint(),
                       expect={h.host: h.expect_count for h in hosts},
                       reference=ref, peak=peak, source=source,
                       ceiling=metric.ceiling if metric else None)
    covered = set(parsed.hosts)
    if covered and len(covered) < len(hosts) and check.status != "fail":
        check.status = "fail"
        check.detail += f"; ran on {len(covered)} of {len(hosts)} hosts"
    return [check]
