"""Health checks: XID events in the kernel log and DCGM diagnostics.

XIDs on Azure's fatal list (reference.json ``xid.fatal``) fail the node; other XIDs, usually an
application's fault (13, 31, 43), warn. DCGM fails on any failed test, on a status DCGM does
not document ("Error", "Fail (XID 79)"), when no test ran at all (every result Skip/Not Run, or
none parsed) and when its per-GPU results do not cover GPUs 0..N-1 exactly (a GPU twice in one
test, a GPU no result names); it warns on warnings and when it ran a lower -r level than the
verify level expects (r1 quick, r2 standard, r3 full).
"""

from __future__ import annotations

from collections import Counter

from provision.verify.artifacts import DCGM_LEVEL
from provision.verify.checks.base import HostContext, index_problems, list_some, unavailable
from provision.verify.model import Check
from provision.verify.parsers.dcgm import DcgmDiag, parse_dcgm
from provision.verify.parsers.xid import parse_xid

XID_FILE = "xid.txt"
DCGM_FILE = "dcgmi-diag.json"


def check_xid(ctx: HostContext) -> list[Check]:
    art = ctx.artifact(XID_FILE)
    if problem := art.problem():
        return unavailable(["xid"], problem)
    log = parse_xid(art.text or "")
    fatal = [e for e in log.events if e.code in ctx.table.fatal_xids]
    other = [e for e in log.events if e.code not in ctx.table.fatal_xids]

    def summary(events: list) -> str:
        counts = Counter((e.code, e.pci) for e in events)
        return list_some([f"Xid {code} on {pci}" + (f" x{n}" if n > 1 else "")
                          for (code, pci), n in sorted(counts.items())])

    if fatal:
        first = fatal[0]
        return [Check(name="xid", status="fail", measured=len(fatal), expected=0, unit="events",
                      source=ctx.table.xid_source,
                      detail=f"fatal XID events: {summary(fatal)} "
                             f"(e.g. \"{first.message[:120]}\")")]
    if other:
        return [Check(name="xid", status="warn", measured=len(other), expected=0, unit="events",
                      source=ctx.table.xid_source,
                      detail=f"non-fatal XID events: {summary(other)}; usually an application "
                             "fault, look if they repeat")]
    return [Check(name="xid", status="pass", measured=0, expected=0, unit="events",
                  source=ctx.table.xid_source, detail="no NVRM Xid lines in the kernel log")]


def check_dcgm(ctx: HostContext) -> list[Check]:
    art = ctx.artifact(DCGM_FILE)
    if problem := art.problem():
        return unavailable(["dcgm.diag"], problem)
    diag = parse_dcgm(art.text or "")
    want = DCGM_LEVEL[ctx.level]
    if diag.runtime_error:
        return [Check(name="dcgm.diag", status="fail",
                      detail=f"DCGM could not run the diagnostic: {diag.runtime_error}")]
    if not diag.results:
        hint = art.failure_hint()
        return [Check(name="dcgm.diag", status="fail", detail=f"{DCGM_FILE}: "
                      f"{'; '.join(diag.errors)}" + (f"; {hint}" if hint else ""))]
    ran = diag.level_ran()
    failed = [r for r in diag.results if r.status == "fail"]
    unknown = [r for r in diag.results if r.status == "unknown"]
    warned = [r for r in diag.results if r.status == "warn"]
    tests = len(diag.tests)

    def items(results: list) -> str:
        return list_some([f"{r.test}" + (f" GPU {r.gpu}" if r.gpu not in (None, "") else "")
                          + (f": {r.messages[0][:100]}" if r.messages else "") for r in results],
                         limit=4)

    version = f"DCGM {diag.version} " if diag.version else ""
    if failed or unknown:
        parts = [items(failed)] if failed else []
        if unknown:
            parts.append("statuses DCGM does not document: " + list_some(
                [f"{r.test} {r.raw_status!r}" for r in unknown], 4))
        return [Check(name="dcgm.diag", status="fail", measured=len(failed) + len(unknown),
                      expected=0, unit="failed results",
                      detail=f"{version}-r {ran}: {'; '.join(parts)}")]
    if not any(r.status in ("pass", "warn") for r in diag.results):
        return [Check(name="dcgm.diag", status="fail", measured=0, unit="tests run",
                      detail=f"{version}: none of {tests} tests ran (every result Skip or Not "
                             "Run): the GPUs were not diagnosed")]
    if identity := _gpu_identity(diag, ctx.expect_count):
        return [Check(name="dcgm.diag", status="fail", unit="GPUs",
                      detail=f"{DCGM_FILE}: results do not cover GPUs 0-{ctx.expect_count - 1} "
                             f"once each: {list_some(identity, 4)}")]
    skipped = sorted({r.test for r in diag.results if r.status in ("skip", "notrun")})
    notes = []
    status = "pass"
    if warned:
        status = "warn"
        notes.append(f"warnings: {items(warned)}")
    if ran < want:
        status = "warn"
        notes.append(f"ran -r {ran}, level {ctx.level} expects -r {want}")
    detail = f"{version}-r {ran}: {tests} tests, none failed"
    if skipped:
        detail += f" (skipped: {list_some(skipped, 4)})"
    return [Check(name="dcgm.diag", status=status, measured=0, expected=0, unit="failed results",
                  detail=detail + (f"; {'; '.join(notes)}" if notes else ""))]


def _gpu_identity(diag: DcgmDiag, expect: int) -> list[str]:
    """GPUs named twice within one test, beyond the node's count, or never named."""
    problems: list[str] = []
    covered: set[int] = set()
    per_test: dict[str, list[int]] = {}
    for r in diag.results:
        if r.gpu is not None and not r.gpus and r.gpu.startswith("unreadable"):
            problems.append(f"{r.test}: {r.gpu}")
        per_test.setdefault(r.test, []).extend(r.gpus)
        covered.update(r.gpus)
    for test, ids in per_test.items():
        twice = sorted(i for i, n in Counter(ids).items() if n > 1)
        if twice:
            problems.append(f"{test} reports GPU {list_some([str(i) for i in twice], 3)} twice")
    if covered:  # results that name no GPU at all are node-wide: nothing to match
        problems += index_problems(sorted(covered), expect)
    return problems
