"""InfiniBand checks: every IB port Active/LinkUp at the expected rate (``ibstat``), and RDMA
write bandwidth per HCA (``ib_write_bw --report_gbits``).

How many ports a node should have comes from the SKU reference or the sku file's
``ib_ports=N`` (0 on nodes whose fabric is EFA, TCPX or plain Ethernet: then both checks skip).
Ethernet-link-layer ports (RoCE, management NICs) are left out.
"""

from __future__ import annotations

from provision.verify.checks.base import HostContext, judge_metric, list_some, unavailable
from provision.verify.model import Check
from provision.verify.parsers.ib_write_bw import parse_ib_write_bw
from provision.verify.parsers.ibstat import parse_ibstat

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
    ports = [p for p in parsed.ports if p.is_infiniband]
    rate = ctx.ref.ib.rate_gbps if ctx.ref.ib else None
    want = ctx.expect_ib_ports
    source = ctx.ref.ib.source if ctx.ref.ib else None
    good = [p for p in ports if p.up and (rate is None or (p.rate or 0) >= rate)]
    problems = [f"{p.name} {p.state}/{p.physical_state}" for p in ports if not p.up]
    problems += [f"{p.name} at {p.rate:g} Gb/s" for p in ports
                 if p.up and rate is not None and (p.rate or 0) < rate]
    if len(ports) < want:
        why = "; ".join(parsed.errors[:2])
        problems.append(f"{len(ports)} InfiniBand ports found, {want} expected"
                        + (f" ({why})" if why else ""))
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
    measured = {r.device or f"run {i}": r for i, r in enumerate(parsed.runs)}
    broken = [f"{dev}: {r.errors[0] if r.errors else 'no result'}"
              for dev, r in measured.items() if r.bw_avg_gbps is None]
    values = {dev: r.bw_avg_gbps for dev, r in measured.items() if r.bw_avg_gbps is not None}
    if not values:
        why = list_some(broken + parsed.errors, 3) or "no result table"
        hint = art.failure_hint()
        return [Check(name="ib.write_bw", status="fail",
                      detail=f"{IBBW_FILE}: {why}" + (f"; {hint}" if hint else ""))]
    worst = min(values, key=lambda d: values[d])
    check = judge_metric(ctx, "ib.write_bw", values[worst], f"BW average, slowest HCA {worst}")
    check.detail += f"; {len(values)} HCAs measured"
    if broken:
        check.status = "fail"
        check.detail += f"; failed: {list_some(broken, 3)}"
    elif len(values) < ctx.expect_ib_ports:
        check.status = "fail"
        hint = art.failure_hint()
        check.detail += f" of {ctx.expect_ib_ports} expected" + (f" ({hint})" if hint else "")
    return [check]
