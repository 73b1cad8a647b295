"""Bandwidth checks inside a node: nvbandwidth host<->device and device<->device copies, and
NCCL all_reduce bus bandwidth at one large message size.

Each judges the worst figure on the node (the slowest GPU or GPU pair), because one slow link
slows every collective that crosses it. NCCL is judged at the largest size in the file, never
at the sweep's ``Avg bus bandwidth``, which averages small sizes that never reach peak.
"""

from __future__ import annotations

from provision.verify.checks.base import HostContext, fmt, judge_metric, list_some, unavailable
from provision.verify.model import Check
from provision.verify.parsers.nccl import NcclResult, parse_nccl
from provision.verify.parsers.nvbandwidth import NvbResult, NvbTest, parse_nvbandwidth

NVB_FILE = "nvbandwidth.txt"
NVB_CHECKS = ("nvbandwidth.h2d", "nvbandwidth.d2h", "nvbandwidth.d2d")
NCCL_FILE = "nccl-all_reduce.txt"
# Test names per check, preferred first. D2D accepts only the SM bidirectional tests: the
# reference figures are SM bidirectional sums, and CE bidirectional tests report one direction.
NVB_TESTS = {
    "nvbandwidth.h2d": ("host_to_device_memcpy_ce", "host_to_device_memcpy_sm"),
    "nvbandwidth.d2h": ("device_to_host_memcpy_ce", "device_to_host_memcpy_sm"),
    "nvbandwidth.d2d": ("device_to_device_bidirectional_memcpy_read_sm",
                        "device_to_device_bidirectional_memcpy_write_sm"),
}
LARGE_MESSAGE = 1 << 30  # below 1 GiB busbw has not reached its plateau on NVLink systems


def check_nvbandwidth(ctx: HostContext) -> list[Check]:
    art = ctx.artifact(NVB_FILE)
    if problem := art.problem():
        return unavailable(NVB_CHECKS, problem)
    parsed = parse_nvbandwidth(art.text or "")
    return [_nvb_check(ctx, name, parsed, art.failure_hint()) for name in NVB_CHECKS]


def _find(parsed: NvbResult, names: tuple[str, ...]) -> NvbTest | None:
    for n in names:
        if n in parsed.tests and parsed.tests[n].rows:
            return parsed.tests[n]
    return None


def _nvb_check(ctx: HostContext, name: str, parsed: NvbResult, hint: str) -> Check:
    test = _find(parsed, NVB_TESTS[name])
    metric = ctx.ref.metric(name)
    if test is None:
        if name == "nvbandwidth.d2d" and (metric is None or metric.reference is None):
            return Check(name=name, status="skip",
                         detail=f"no peer-to-peer test in {NVB_FILE}; {ctx.ref.sku} has no "
                                "NVLink reference for it")
        errors = "; ".join(parsed.errors[:2]) or (
            f"{parsed.waived} test(s) waived" if parsed.waived else "test not in the output")
        return Check(name=name, status="fail",
                     detail=f"{NVB_FILE}: no result for {NVB_TESTS[name][0]} ({errors})"
                            + (f"; {hint}" if hint else ""))
    if name == "nvbandwidth.d2d":
        cells = {f"GPU {s}->{d}": v for (s, d), v in test.pairs().items()}
    else:
        cells = {f"GPU {g}": v for g, v in test.per_gpu().items()}
    missing = [k for k, v in cells.items() if v is None]
    values = {k: v for k, v in cells.items() if v is not None}
    if not values:
        return Check(name=name, status="fail", detail=f"{test.name}: every cell is N/A")
    worst = min(values, key=lambda k: values[k])
    check = judge_metric(ctx, name, values[worst], f"{test.name}, slowest {worst}")
    spread = f"; range {fmt(min(values.values()))}-{fmt(max(values.values()))} over " \
             f"{len(values)} {'pairs' if name.endswith('d2d') else 'GPUs'}"
    check.detail += spread
    if missing and check.status != "skip":
        check.status = "fail"
        check.detail += f"; not measured (N/A): {list_some(missing)}"
    return check


def check_nccl(ctx: HostContext) -> list[Check]:
    art = ctx.artifact(NCCL_FILE)
    if problem := art.problem():
        return unavailable(["nccl.all_reduce"], problem)
    return [judge_nccl(ctx, "nccl.all_reduce", parse_nccl(art.text or ""), art.failure_hint(),
                       expect_ranks=ctx.expect_count)]


def judge_nccl(ctx: HostContext, name: str, parsed: NcclResult, hint: str, expect_ranks: int,
               reference: float | None = None, peak: float | None = None,
               source: str | None = None) -> Check:
    """Judge one all_reduce_perf output at its largest message size."""
    row = parsed.largest()
    if row is None or row.best_busbw is None:
        why = "; ".join(parsed.errors[:2]) or "no result rows"
        return Check(name=name, status="fail", detail=f"all_reduce_perf gave no result ({why})"
                     + (f"; {hint}" if hint else ""))
    if row.wrong_total > 0 or (parsed.out_of_bounds or 0) > 0:
        return Check(name=name, status="fail", measured=row.best_busbw, unit="GB/s",
                     detail=f"data corruption: {row.wrong_total} wrong values at {_size(row.size)}"
                            f" (out of bounds: {parsed.out_of_bounds})")
    ranks = len(parsed.ranks) or None
    where = f"{ranks} ranks" if ranks else "ranks unknown"
    hosts = parsed.hosts
    if len(hosts) > 1:
        where += f" on {len(hosts)} nodes"
    what = f"busbw at {_size(row.size)} ({where})"
    if ranks is not None and ranks != expect_ranks:
        return Check(name=name, status="warn", measured=row.best_busbw, unit="GB/s",
                     detail=f"{what}: {fmt(row.best_busbw)} GB/s, but the reference is for "
                            f"{expect_ranks} ranks; run with all GPUs")
    check = judge_metric(ctx, name, row.best_busbw, what, reference=reference, peak=peak,
                         source=source)
    metric = ctx.ref.metric(name)
    ring = metric.extra.get("ring_reference") if metric else None
    if check.status == "fail" and ring and abs(row.best_busbw / ring - 1) < 0.08:
        check.detail += (f"; close to the ring-algorithm figure (~{fmt(ring)} GB/s): NVLS may be "
                         "off (fabric manager, NCCL_NVLS_ENABLE)")
    if row.size < LARGE_MESSAGE:
        check.detail += "; judged below 1 GiB: run -b 8G -e 8G for a figure at its plateau"
    if parsed.errors:
        check.detail += f"; errors: {list_some(parsed.errors, 2)}"
    return check


def _size(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):g} {unit}"
    return f"{n} B"
