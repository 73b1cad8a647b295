"""Bandwidth checks inside a node: nvbandwidth host<->device and device<->device copies, and
NCCL all_reduce bus bandwidth at one large message size.

Each judges the worst figure on the node (the slowest GPU or GPU pair), because one slow link
slows every collective that crosses it. NCCL is judged at the largest size in the file, never
at the sweep's ``Avg bus bandwidth``, which averages small sizes that never reach peak. Every
matrix and rank list is a per-GPU listing: it must hold GPUs 0..N-1 exactly once, and a cell
that is not a measurement (NaN, inf, negative) or above what the SKU can do fails the check.
"""

from __future__ import annotations

from collections import Counter

from provision.verify.checks.base import (
    HostContext,
    fmt,
    index_problems,
    judge_metric,
    list_some,
    unavailable,
    unusable,
)
from provision.verify.model import Check
from provision.verify.parsers.nccl import NcclResult, parse_nccl
from provision.verify.parsers.nvbandwidth import NvbResult, NvbTest, parse_nvbandwidth

NVB_FILE = "nvbandwidth.txt"
NVB_CHECKS = ("nvbandwidth.h2d", "nvbandwidth.d2h", "nvbandwidth.d2d")
NCCL_FILE = "nccl-all_reduce.txt"
# Test names per check, preferred first, each with the metric its figures are judged against.
# The reference figures for D2D are SM bidirectional sums; the CE read test (what most guides
# and Azure's health checks run) reports one direction and has its own reference.
NVB_TESTS: dict[str, tuple[tuple[str, str], ...]] = {
    "nvbandwidth.h2d": (("host_to_device_memcpy_ce", "nvbandwidth.h2d"),
                        ("host_to_device_memcpy_sm", "nvbandwidth.h2d")),
    "nvbandwidth.d2h": (("device_to_host_memcpy_ce", "nvbandwidth.d2h"),
                        ("device_to_host_memcpy_sm", "nvbandwidth.d2h")),
    "nvbandwidth.d2d": (("device_to_device_bidirectional_memcpy_read_sm", "nvbandwidth.d2d"),
                        ("device_to_device_bidirectional_memcpy_write_sm", "nvbandwidth.d2d"),
                        ("device_to_device_memcpy_read_ce", "nvbandwidth.d2d_ce")),
}
LARGE_MESSAGE = 1 << 30  # below 1 GiB busbw has not reached its plateau on NVLink systems


def check_nvbandwidth(ctx: HostContext) -> list[Check]:
    art = ctx.artifact(NVB_FILE)
    if problem := art.problem():
        return unavailable(NVB_CHECKS, problem)
    parsed = parse_nvbandwidth(art.text or "")
    if parsed.unusable:
        return unusable(NVB_CHECKS, NVB_FILE, parsed.unusable, art.failure_hint())
    devices = [*parsed.devices, *parsed.duplicate_devices]
    if devices and (identity := index_problems(devices, ctx.expect_count)):
        return unavailable(NVB_CHECKS, f"{NVB_FILE}: the Device lines do not list GPUs "
                           f"0-{ctx.expect_count - 1} once each: {list_some(identity, 4)}")
    return [_nvb_check(ctx, name, parsed, art.failure_hint()) for name in NVB_CHECKS]


def _find(parsed: NvbResult, name: str) -> tuple[NvbTest | None, str]:
    """The first test of the check's list with results, and the metric that judges it."""
    for test, metric in NVB_TESTS[name]:
        if test in parsed.tests and parsed.tests[test].rows:
            return parsed.tests[test], metric
    return None, name


def _nvb_identity(test: NvbTest, expect: int, device_to_device: bool) -> list[str]:
    columns = [int(c) for c in test.columns]
    problems = [f"columns: {p}" for p in index_problems(columns, expect)]
    if device_to_device:
        problems += [f"rows: {p}" for p in index_problems([int(r) for r in test.rows], expect)]
    widths = Counter(len(cells) for cells in test.rows.values())
    if any(w != len(columns) for w in widths):
        problems.append(f"rows of {', '.join(map(str, sorted(widths)))} cells under "
                        f"{len(columns)} columns")
    return problems + [f"{d} given twice" for d in test.duplicates]


def _nvb_check(ctx: HostContext, name: str, parsed: NvbResult, hint: str) -> Check:
    test, metric_name = _find(parsed, name)
    metric = ctx.ref.metric(metric_name)
    if test is None:
        if name == "nvbandwidth.d2d" and (metric is None or metric.reference is None):
            return Check(name=name, status="skip",
                         detail=f"no peer-to-peer test in {NVB_FILE}; {ctx.ref.sku} has no "
                                "NVLink reference for it")
        wanted = [t for t, _ in NVB_TESTS[name]]
        ran = [parsed.tests[t] for t in wanted if t in parsed.tests]
        errors = "; ".join(parsed.errors[:2] + [m for t in ran for m in t.messages[:3]]) or (
            f"{parsed.waived} test(s) waived" if parsed.waived else "test not in the output")
        return Check(name=name, status="fail",
                     detail=f"{NVB_FILE}: no result for {' or '.join(wanted)} "
                            f"({errors[:300]})" + (f"; {hint}" if hint else ""))
    d2d = name == "nvbandwidth.d2d"
    if identity := _nvb_identity(test, ctx.expect_count, d2d):
        return Check(name=name, status="fail",
                     detail=f"{test.name} matrix does not cover GPUs 0-{ctx.expect_count - 1} "
                            f"once each: {list_some(identity, 4)}")
    if d2d:
        cells = {f"GPU {s}->{d}": v for (s, d), v in test.pairs().items()}
    else:
        cells = {f"GPU {g}": v for g, v in test.per_gpu().items()}
    missing = [k for k, v in cells.items() if v is None]
    values = {k: v for k, v in cells.items() if v is not None}
    if not values:
        return Check(name=name, status="fail", detail=f"{test.name}: every cell is N/A")
    top = max(values, key=lambda k: values[k])
    bound = metric.ceiling if metric else None
    if bound is not None and values[top] > bound:
        return judge_metric(ctx, name, values[top], f"{test.name}, {top}", metric=metric)
    worst = min(values, key=lambda k: values[k])
    check = judge_metric(ctx, name, values[worst], f"{test.name}, slowest {worst}",
                         metric=metric)
    spread = f"; range {fmt(min(values.values()))}-{fmt(max(values.values()))} over " \
             f"{len(values)} {'pairs' if d2d else 'GPUs'}"
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
                       expect={ctx.host: ctx.expect_count})]


def rank_problems(parsed: NcclResult, expect: dict[str, int]) -> list[str]:
    """Each GPU of each host exactly once among the ranks, and no rank number twice.

    ``expect`` maps host name to GPU count; with one host the rank lines may name it by its
    own hostname (the node calls itself what it likes), so a single host is matched by count.
    """
    problems = [f"rank {r} listed {n} times"
                for r, n in sorted(Counter(r.rank for r in parsed.ranks).items()) if n > 1]
    by_host: dict[str, list[int]] = {}
    for r in parsed.ranks:
        by_host.setdefault(r.host, []).append(r.device)
    total = sum(expect.values())
    if len(parsed.ranks) != total:
        problems.append(f"{len(parsed.ranks)} ranks, {total} expected (every GPU of "
                        f"{'every node' if len(expect) > 1 else 'the node'})")
    if len(expect) == 1 and len(by_host) > 1:
        problems.append(f"ranks on {len(by_host)} hosts: {list_some(sorted(by_host), 3)}")
    counts = list(expect.values())
    for host, devices in sorted(by_host.items()):
        want = expect.get(host, counts[0] if len(set(counts)) == 1 else max(counts))
        problems += [f"{host}: {p}" for p in index_problems(devices, want, "device")]
    return problems


def judge_nccl(ctx: HostContext, name: str, parsed: NcclResult, hint: str,
               expect: dict[str, int], reference: float | None = None,
               peak: float | None = None, source: str | None = None,
               ceiling: float | None = None) -> Check:
    """Judge one all_reduce_perf output at its largest message size."""
    if parsed.unusable:
        return unusable([name], NCCL_FILE, parsed.unusable, hint)[0]
    row = parsed.largest()
    if row is None or row.best_busbw is None:
        why = "; ".join(parsed.errors[:2]) or "no result rows"
        return Check(name=name, status="fail", detail=f"all_reduce_perf gave no result ({why})"
                     + (f"; {hint}" if hint else ""))
    if row.wrong_total > 0 or (parsed.out_of_bounds or 0) > 0:
        return Check(name=name, status="fail", measured=row.best_busbw, unit="GB/s",
                     detail=f"data corruption at {_size(row.size)} (line {row.line}): "
                            f"{row.wrong} out-of-place and {row.ip_wrong} in-place wrong values, "
                            f"{parsed.out_of_bounds} out of bounds")
    ranks = len(parsed.ranks) or None
    where = f"{ranks} ranks" if ranks else "ranks not listed"
    if len(parsed.hosts) > 1:
        where += f" on {len(parsed.hosts)} nodes"
    what = f"busbw at {_size(row.size)} ({where}, line {row.line})"
    if ranks is not None and (problems := rank_problems(parsed, expect)):
        return Check(name=name, status="fail", measured=row.best_busbw, unit="GB/s",
                     detail=f"{what}: {fmt(row.best_busbw)} GB/s, but the run did not use every "
                            f"GPU once: {list_some(problems, 3)}")
    worst_busbw = max(v for v in (row.busbw, row.ip_busbw) if v is not None)
    metric = ctx.ref.metric(name)
    bound = ceiling if ceiling is not None else (metric.ceiling if metric else None)
    if bound is not None and worst_busbw > bound:
        return judge_metric(ctx, name, worst_busbw, what, ceiling=bound)
    check = judge_metric(ctx, name, row.best_busbw, what, reference=reference, peak=peak,
                         source=source, ceiling=ceiling)
    ring = metric.extra.get("ring_reference") if metric else None
    if check.status == "fail" and isinstance(ring, int | float) and \
            abs(row.best_busbw / ring - 1) < 0.08:
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
