"""InfiniBand checks: every IB port Active/LinkUp at the expected rate (``ibstat``), and RDMA
write bandwidth per HCA (``ib_write_bw --report_gbits``).

How many ports a node should have comes from the SKU reference or the sku file's
``ib_ports=N`` (0 on nodes whose fabric is EFA, TCPX or plain Ethernet: then both checks skip).
Ethernet-link-layer ports (RoCE, management NICs) are left out. An IB port without a ``Rate``
line, a rate above the SKU's line rate, an ``ibpanic`` (a device that vanished mid-listing) or
a bandwidth that is no measurement fails, naming the file and line.
"""

from __future__ import annotations

from collections import Counter

from provision.verify.checks.base import (
    HostContext,
    judge_metric,
    list_some,
    unavailable,
    unusable,
)
from provision.verify.model import Check
from provision.verify.parsers.ib_write_bw import parse_ib_write_bw
from provision.verify.parsers.ibstat import parse_ibstat
from provision.verify.reference import IMPOSSIBLE_MARGIN

IBSTAT_FILE = "ibstat.txt"
IBBW_FILE = "ib_write_bw.txt"


def _no_ib(ctx: HostContext, name: str) -> Check:
    return Check(name=name, status="skip",
                 detail=f"no InfiniBand expected on this node ({ctx.ref.sku}; set ib_ports=N in "
                        "the sku file if it has some)")


def check_ib_ports(ctx: HostContext) -> list[Check]:
    if ctx.expect_ib_ports == 0:
        return [_no_ib(ctx, "ib.ports")]
    art = ctx.artifact(IBSTAT_FILE)
    if problem := art.problem():
        return unavailable(["ib.ports"], problem)
    parsed = parse_ibstat(art.text or "")
    if parsed.unusable:
        return unusable(["ib.ports"], IBSTAT_FILE, parsed.unusable, art.failure_hint())
    ports = [p for p in parsed.ports if p.is_infiniband]
    rate = ctx.ref.ib.rate_gbps if ctx.ref.ib else None
    want = ctx.expect_ib_ports
    source = ctx.ref.ib.source if ctx.ref.ib else None
    good = [p for p in ports if p.up and p.rate is not None and (rate is None or p.rate >= rate)]
    problems = [f"{p.name} {p.state}/{p.physical_state}" for p in ports if not p.up]
    problems += [f"{p.name} has no Rate line (line {p.line} onwards)" for p in ports
                 if p.rate is None]
    problems += [f"{p.name} at {p.rate:g} Gb/s" for p in ports
                 if p.up and rate is not None and p.rate is not None and p.rate < rate]
    problems += [f"{p.name} at {p.rate:g} Gb/s, above any {ctx.ref.sku} port: corrupt output"
                 for p in ports if rate is not None and p.rate is not None
                 and p.rate > rate * IMPOSSIBLE_MARGIN]
    problems += [f"{n} listed {c} times" for n, c in
                 sorted(Counter(p.name for p in parsed.ports).items()) if c > 1]
    problems += [f"ibstat error: {e[:160]}" for e in parsed.errors[:2]]
    if len(ports) < want:
        problems.append(f"{len(ports)} InfiniBand ports found, {want} expected")
    expected = f"{want} x {rate:g} Gb/s" if rate else want
    if problems:
        return [Check(name="ib.ports", status="fail", measured=len(good), expected=expected,
                      unit="ports", source=source, detail=list_some(problems))]
    return [Check(name="ib.ports", status="pass", measured=len(good), expected=expected,
                  unit="ports", source=source,
                  detail=f"{len(good)} InfiniBand ports Active/LinkUp"
                         + (f" at {rate:g} Gb/s" if rate else ""))]


def check_ib_bandwidth(ctx: HostContext) -> list[Check]:
    if ctx.expect_ib_ports == 0:
        return [_no_ib(ctx, "ib.write_bw")]
    art = ctx.artifact(IBBW_FILE)
    if problem := art.problem():
        return unavailable(["ib.write_bw"], problem)
    parsed = parse_ib_write_bw(art.text or "")
    if parsed.unusable:
        return unusable(["ib.write_bw"], IBBW_FILE, parsed.unusable, art.failure_hint())
    measured = {r.device or f"run {i}": r for i, r in enumerate(parsed.runs)}
    broken = [f"{dev}: {r.errors[0] if r.errors else 'no result'}"
              for dev, r in measured.items() if r.bw_avg_gbps is None]
    values = {dev: r.bw_avg_gbps for dev, r in measured.items() if r.bw_avg_gbps is not None}
    if not values:
        why = list_some(broken + parsed.errors, 3) or "no result table"
        hint = art.failure_hint()
        return [Check(name="ib.write_bw", status="fail",
                      detail=f"{IBBW_FILE}: {why}" + (f"; {hint}" if hint else ""))]
    top = max(values, key=lambda d: values[d])
    metric = ctx.ref.metric("ib.write_bw")
    if metric is not None and metric.ceiling is not None and values[top] > metric.ceiling:
        return [judge_metric(ctx, "ib.write_bw", values[top],
                             f"BW average of {top} ({IBBW_FILE} line {measured[top].line})")]
    worst = min(values, key=lambda d: values[d])
    check = judge_metric(ctx, "ib.write_bw", values[worst],
                         f"BW average, slowest HCA {worst} (line {measured[worst].line})")
    check.detail += f"; {len(values)} HCAs measured"
    if broken:
        check.status = "fail"
        check.detail += f"; failed: {list_some(broken, 3)}"
    elif len(values) < ctx.expect_ib_ports:
        check.status = "fail"
        hint = art.failure_hint()
        check.detail += f" of {ctx.expect_ib_ports} expected" + (f" ({hint})" if hint else "")
    return [check]
