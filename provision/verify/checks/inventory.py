"""Inventory checks from ``nvidia-smi --query-gpu`` and the row-remap query.

gpu.count, gpu.model and gpu.memory compare the node with its SKU; gpu.driver compares the
driver with an expected version (when one is given) and across GPUs; gpu.pcie the current link
generation and width; gpu.ecc the volatile uncorrectable ECC count; gpu.row_remap pending and
failed row remaps (Azure's health checks fail any). Both files are per-GPU listings: each GPU
index 0..N-1 appears exactly once (N from the SKU or the sku file), UUIDs are unique, and the
row-remap query names the same UUIDs as the GPU query. A number no GPU reports (NaN, inf,
negative) makes every check the file feeds fail, naming the line.
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
from provision.verify.parsers.remap import parse_remap
from provision.verify.parsers.smi_query import GpuRow, parse_query_gpu
from provision.verify.reference import Metric

QUERY_FILE = "nvidia-smi-query.csv"
QUERY_CHECKS = ("gpu.count", "gpu.model", "gpu.memory", "gpu.driver", "gpu.pcie", "gpu.ecc")
REMAP_FILE = "remap.csv"
PCIE_WIDTHS = frozenset({1, 2, 4, 8, 12, 16, 32})


def query_uuids(ctx: HostContext) -> dict[int, str] | None:
    """GPU index -> UUID from the GPU query, when it was collected and reads cleanly."""
    art = ctx.artifact(QUERY_FILE)
    if art.problem() or art.text is None:
        return None
    parsed = ctx.parsed(QUERY_FILE, parse_query_gpu)
    if parsed.unusable or parsed.errors or not parsed.gpus:
        return None
    return {g.index: g.uuid for g in parsed.gpus if g.uuid}


def uuid_problems(ctx: HostContext, seen: list[str], file: str) -> list[str]:
    """UUIDs in another per-GPU file that the GPU query does not list (or lists differently)."""
    known = query_uuids(ctx)
    if known is None:
        return []
    listed = set(known.values())
    strangers = sorted({u for u in seen if u not in listed})
    return [f"{file} names {list_some(strangers, 2)}, which {QUERY_FILE} does not list"] \
        if strangers else []


def check_inventory(ctx: HostContext) -> list[Check]:
    art = ctx.artifact(QUERY_FILE)
    if problem := art.problem():
        return unavailable(QUERY_CHECKS, problem)
    parsed = ctx.parsed(QUERY_FILE, parse_query_gpu)
    if parsed.unusable:
        return unusable(QUERY_CHECKS, QUERY_FILE, parsed.unusable, art.failure_hint())
    gpus = sorted(parsed.gpus, key=lambda g: g.index)
    if not gpus:
        why = "; ".join(parsed.errors[:2]) or "empty output"
        hint = art.failure_hint()
        count = Check(name="gpu.count", status="fail", measured=0, expected=ctx.expect_count,
                      unit="GPUs", detail=f"{QUERY_FILE} lists no GPUs ({why})"
                      + (f"; {hint}" if hint else ""))
        return [count, *unavailable(QUERY_CHECKS[1:], "no GPU rows to judge (see gpu.count)",
                                    status="skip")]
    return [_count(ctx, gpus), _model(ctx, gpus), _memory(ctx, gpus), _driver(ctx, gpus),
            _pcie(ctx, gpus), _ecc(gpus)]


def _count(ctx: HostContext, gpus: list[GpuRow]) -> Check:
    n, want = len(gpus), ctx.expect_count
    problems = index_problems([g.index for g in gpus], want)
    uuids = Counter(g.uuid for g in gpus if g.uuid)
    problems += [f"UUID {u} on {c} GPUs" for u, c in sorted(uuids.items()) if c > 1]
    if n != want:
        problems.insert(0, f"{n} GPUs visible, {want} expected for {ctx.ref.sku}")
    if problems:
        return Check(name="gpu.count", status="fail", measured=n, expected=want, unit="GPUs",
                     ratio=n / want if want else None, source=ctx.ref.count_source,
                     detail=f"{QUERY_FILE}: {list_some(problems, 4)}")
    return Check(name="gpu.count", status="pass", measured=n, expected=want, unit="GPUs",
                 ratio=1.0, source=ctx.ref.count_source,
                 detail=f"{n} GPUs, index 0-{n - 1} each once, as {ctx.ref.sku} nodes have")


def _model(ctx: HostContext, gpus: list[GpuRow]) -> Check:
    names = set(ctx.ref.gpu_names)
    wrong = [f"GPU {g.index}: {g.name}" for g in gpus if g.name not in names]
    seen = sorted({g.name for g in gpus})
    if wrong:
        return Check(name="gpu.model", status="fail", measured=", ".join(seen),
                     expected=ctx.ref.gpu_names[0],
                     detail=f"{list_some(wrong)}; {ctx.ref.sku} expects {ctx.ref.gpu_names[0]}")
    return Check(name="gpu.model", status="pass", measured=seen[0], expected=ctx.ref.gpu_names[0],
                 detail=f"all {len(gpus)} GPUs are {seen[0]} ({ctx.ref.sku})")


def _memory(ctx: HostContext, gpus: list[GpuRow]) -> Check:
    known = [g for g in gpus if g.memory_mib is not None]
    if not known or not ctx.ref.memory_mib:
        return Check(name="gpu.memory", status="skip", unit="MiB",
                     detail="memory.total not reported")
    low = min(known, key=lambda g: g.memory_mib or 0)
    high = max(known, key=lambda g: g.memory_mib or 0)
    metric = Metric(name="gpu.memory", unit="MiB", peak=None, reference=ctx.ref.memory_mib,
                    reference_kind="known-good", source=ctx.ref.memory_source)
    # Capacity is fixed per SKU: a GPU reporting more than the reference (beyond rounding) is
    # another SKU or corrupt output, so the ceiling sits just above the reference.
    ceiling = ctx.ref.memory_mib / ctx.bands("gpu.memory").fail_below
    if (high.memory_mib or 0) > ceiling:
        return judge_metric(ctx, "gpu.memory", float(high.memory_mib or 0),
                            f"largest memory.total (GPU {high.index}, {QUERY_FILE} line "
                            f"{high.line})", metric=metric, ceiling=ceiling)
    return judge_metric(ctx, "gpu.memory", float(low.memory_mib or 0),
                        f"smallest memory.total (GPU {low.index})", metric=metric)


def _driver(ctx: HostContext, gpus: list[GpuRow]) -> Check:
    versions = sorted({g.driver for g in gpus if g.driver})
    if not versions:
        return Check(name="gpu.driver", status="skip", detail="driver_version not reported")
    want = ctx.expected_driver
    if len(versions) > 1:
        return Check(name="gpu.driver", status="fail", measured=", ".join(versions),
                     expected=want, detail=f"GPUs report different drivers: {', '.join(versions)}")
    have = versions[0]
    if want is None:
        return Check(name="gpu.driver", status="pass", measured=have,
                     detail=f"driver {have} on every GPU (no expected version given)")
    ok = have == want or have.startswith(want.rstrip(".") + ".")
    return Check(name="gpu.driver", status="pass" if ok else "fail", measured=have, expected=want,
                 detail=f"driver {have}" + (f" matches {want}" if ok else f", expected {want}"))


def _pcie(ctx: HostContext, gpus: list[GpuRow]) -> Check:
    want_gen, want_width = ctx.ref.pcie_gen, ctx.ref.pcie_width
    known = [g for g in gpus if g.pcie_gen is not None and g.pcie_width is not None]
    if not known or want_gen is None or want_width is None:
        return Check(name="gpu.pcie", status="skip", detail="PCIe link not reported")
    expected = f"Gen{want_gen} x{want_width}"
    impossible = [f"GPU {g.index} Gen{g.pcie_gen} x{g.pcie_width} (line {g.line})" for g in known
                  if not 1 <= (g.pcie_gen or 0) <= want_gen or (g.pcie_width or 0) > want_width
                  or g.pcie_width not in PCIE_WIDTHS]
    if impossible:
        return Check(name="gpu.pcie", status="fail", expected=expected, source=ctx.ref.pcie_source,
                     detail=f"{QUERY_FILE}: link no {ctx.ref.sku} GPU can run at: "
                            f"{list_some(impossible, 3)}: corrupt output or another SKU")
    narrow = [g for g in known if (g.pcie_width or 0) < want_width]
    slow = [g for g in known if (g.pcie_gen or 0) < want_gen]
    worst = min(known, key=lambda g: ((g.pcie_width or 0), (g.pcie_gen or 0)))
    measured = f"Gen{worst.pcie_gen} x{worst.pcie_width}"
    if narrow:
        items = [f"GPU {g.index} x{g.pcie_width}" for g in narrow]
        return Check(name="gpu.pcie", status="fail", measured=measured, expected=expected,
                     source=ctx.ref.pcie_source,
                     detail=f"link narrower than x{want_width}: {list_some(items)}")
    if slow:
        items = [f"GPU {g.index} Gen{g.pcie_gen}" for g in slow]
        return Check(name="gpu.pcie", status="warn", measured=measured, expected=expected,
                     source=ctx.ref.pcie_source,
                     detail=f"link below Gen{want_gen}: {list_some(items)}; idle GPUs may "
                            "downshift to save power, so judge by nvbandwidth host<->device")
    return Check(name="gpu.pcie", status="pass", measured=measured, expected=expected,
                 source=ctx.ref.pcie_source,
                 detail=f"every GPU at Gen{want_gen} x{want_width}")


def _ecc(gpus: list[GpuRow]) -> Check:
    known = [g for g in gpus if g.ecc_uncorrected is not None]
    if not known:
        return Check(name="gpu.ecc", status="skip",
                     detail="uncorrectable ECC count not reported (ECC off or unsupported)")
    bad = [g for g in known if (g.ecc_uncorrected or 0) > 0]
    total = sum(g.ecc_uncorrected or 0 for g in known)
    if bad:
        items = [f"GPU {g.index}: {g.ecc_uncorrected}" for g in bad]
        return Check(name="gpu.ecc", status="fail", measured=total, expected=0, unit="errors",
                     detail=f"uncorrectable ECC errors since driver load: {list_some(items)}; "
                            "reset the GPU and check row remapping")
    return Check(name="gpu.ecc", status="pass", measured=0, expected=0, unit="errors",
                 detail=f"no uncorrectable ECC errors on {len(known)} GPUs")


def check_row_remap(ctx: HostContext) -> list[Check]:
    art = ctx.artifact(REMAP_FILE)
    if problem := art.problem():
        return unavailable(["gpu.row_remap"], problem)
    parsed = parse_remap(art.text or "")
    if parsed.unusable:
        return unusable(["gpu.row_remap"], REMAP_FILE, parsed.unusable, art.failure_hint())
    rows = [r for r in parsed.gpus if r.pending is not None or r.failure is not None]
    if not rows:
        support = "" if ctx.ref.row_remapping else f" ({ctx.ref.sku} has no row remapping)"
        why = "; ".join(parsed.errors[:2])
        return [Check(name="gpu.row_remap", status="skip",
                      detail=f"row remapping not reported{support}" + (f": {why}" if why else ""))]
    if identity := _remap_identity(ctx, parsed.gpus):
        return [Check(name="gpu.row_remap", status="fail", measured=len(parsed.gpus),
                      expected=ctx.expect_count, unit="GPUs",
                      detail=f"{REMAP_FILE}: {list_some(identity, 4)}")]
    failed = [r.bus_id for r in rows if r.failure]
    pending = [r.bus_id for r in rows if r.pending]
    remapped = sum((r.correctable or 0) + (r.uncorrectable or 0) for r in rows)
    if failed or pending:
        parts = []
        if failed:
            parts.append(f"remap failure (no spare rows left) on {list_some(failed)}")
        if pending:
            parts.append(f"remap pending a GPU reset on {list_some(pending)}")
        return [Check(name="gpu.row_remap", status="fail", measured=len(set(failed + pending)),
                      expected=0, unit="GPUs",
                      detail="; ".join(parts) + " (any pending or failed remap fails, as in "
                                                "Azure's health checks)")]
    return [Check(name="gpu.row_remap", status="pass", measured=0, expected=0, unit="GPUs",
                  detail=f"no pending or failed row remaps on {len(rows)} GPUs "
                         f"({fmt(remapped)} rows remapped so far)")]


def _remap_identity(ctx: HostContext, rows: list) -> list[str]:
    """One row per GPU: N rows, no bus id or UUID twice, UUIDs the GPU query knows."""
    problems = []
    if len(rows) != ctx.expect_count:
        problems.append(f"{len(rows)} GPU rows, {ctx.expect_count} expected")
    for label, values in (("bus id", [r.bus_id.lower() for r in rows]),
                          ("UUID", [r.uuid for r in rows if r.uuid])):
        problems += [f"{label} {v} listed {n} times" for v, n in Counter(values).items() if n > 1]
    return problems + uuid_problems(ctx, [r.uuid for r in rows if r.uuid], REMAP_FILE)
