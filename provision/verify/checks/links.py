"""NVLink checks: the bonded-link count between every GPU pair (``topo -m``) and every link's
state and speed (``nvlink --status``).

On NVSwitch SKUs every pair must show ``NV<pair_links>`` (NV18 on 8 x H100/H200, NV12 on
A100) and every GPU ``links_per_gpu`` active links at the SKU's link speed. PCIe-only SKUs
(L40S, L4, A10G) expect no NVLink: their PCIe paths and empty link lists pass.
"""

from __future__ import annotations

from itertools import combinations

from provision.verify.checks.base import HostContext, list_some, unavailable
from provision.verify.model import Check
from provision.verify.parsers.smi_nvlink import parse_nvlink
from provision.verify.parsers.smi_topo import parse_topo

TOPO_FILE = "nvidia-smi-topo.txt"
NVLINK_FILE = "nvidia-smi-nvlink.txt"
# nvidia-smi rounds link speeds (26.562 for 26.5625); anything within 1 % is the same speed.
SPEED_TOLERANCE = 0.99


def check_topology(ctx: HostContext) -> list[Check]:
    art = ctx.artifact(TOPO_FILE)
    if problem := art.problem():
        return unavailable(["nvlink.topology"], problem)
    topo = parse_topo(art.text or "")
    gpus = topo.gpus
    if not gpus:
        hint = art.failure_hint()
        return [Check(name="nvlink.topology", status="fail",
                      detail=f"{TOPO_FILE}: {'; '.join(topo.errors)}"
                             + (f"; {hint}" if hint else ""))]
    spec = ctx.ref.nvlink
    pairs = list(combinations(gpus, 2))
    if spec is None or not spec.expected:
        nv = [f"{a}-{b} NV{topo.nvlinks(a, b)}" for a, b in pairs if topo.nvlinks(a, b)]
        extra = f"; NVLink bridges seen: {list_some(nv)}" if nv else ""
        return [Check(name="nvlink.topology", status="pass", measured=0, expected=0,
                      unit="links", source=spec.source if spec else None,
                      detail=f"no NVLink expected on {ctx.ref.sku}; "
                             f"{len(gpus)} GPUs on PCIe{extra}")]
    want = spec.pair_links
    if not pairs:
        return [Check(name="nvlink.topology", status="pass", measured=None, expected=want,
                      unit="links", detail="one GPU: no GPU pairs to check")]
    counts = {(a, b): topo.nvlinks(a, b) for a, b in pairs}
    short = [f"{a}-{b} {topo.cells.get((a, b)) or '?'}" for (a, b), n in counts.items() if n < want]
    low = min(counts.values())
    count_note = (f"; the matrix lists {len(gpus)} GPUs, {ctx.expect_count} expected"
                  if len(gpus) != ctx.expect_count else "")
    if short:
        return [Check(name="nvlink.topology", status="fail", measured=low, expected=want,
                      unit="links", ratio=low / want, source=spec.source,
                      detail=f"{len(short)} of {len(pairs)} GPU pairs below NV{want}: "
                             f"{list_some(short)}{count_note}")]
    return [Check(name="nvlink.topology", status="pass", measured=low, expected=want,
                  unit="links", ratio=low / want, source=spec.source,
                  detail=f"NV{want} between all {len(pairs)} GPU pairs{count_note}")]


def check_nvlink_status(ctx: HostContext) -> list[Check]:
    art = ctx.artifact(NVLINK_FILE)
    if problem := art.problem():
        return unavailable(["nvlink.status"], problem)
    status = parse_nvlink(art.text or "")
    spec = ctx.ref.nvlink
    if not status.gpus:
        why = "; ".join(status.errors) or "no GPU listed"
        if spec is None or not spec.expected:
            return [Check(name="nvlink.status", status="pass", measured=0, expected=0,
                          unit="links", detail=f"no NVLink expected on {ctx.ref.sku} ({why})")]
        hint = art.failure_hint()
        return [Check(name="nvlink.status", status="fail", detail=f"{NVLINK_FILE}: {why}"
                      + (f"; {hint}" if hint else ""))]
    active = sum(len(g.active) for g in status.gpus)
    if spec is None or not spec.expected:
        extra = f"; {active} active links seen (a bridge?)" if active else ""
        return [Check(name="nvlink.status", status="pass", measured=active, expected=0,
                      unit="links", source=spec.source if spec else None,
                      detail=f"no NVLink expected on {ctx.ref.sku}{extra}")]
    want_links, speed = spec.links_per_gpu, spec.link_gbps or 0.0
    problems: list[str] = []
    for g in status.gpus:
        if g.all_inactive:
            problems.append(f"GPU {g.index}: all links inactive")
            continue
        down = sorted(i for i, s in g.links.items() if not s)
        slow = sorted(i for i, s in g.links.items() if s and s < speed * SPEED_TOLERANCE)
        if down:
            problems.append(f"GPU {g.index} link {','.join(map(str, down))} inactive")
        if slow:
            problems.append(f"GPU {g.index} link {','.join(map(str, slow))} below {speed:g} GB/s")
        missing = want_links - len(g.links)
        if missing > 0 and not g.all_inactive:
            problems.append(f"GPU {g.index} lists {len(g.links)} of {want_links} links")
    good = sum(1 for g in status.gpus for s in g.links.values()
               if s and s >= speed * SPEED_TOLERANCE)
    expected = want_links * len(status.gpus)
    if problems:
        return [Check(name="nvlink.status", status="fail", measured=good, expected=expected,
                      unit="links", ratio=good / expected if expected else None,
                      source=spec.source, detail=list_some(problems))]
    return [Check(name="nvlink.status", status="pass", measured=good, expected=expected,
                  unit="links", ratio=1.0, source=spec.source,
                  detail=f"{want_links} links active at {speed:g} GB/s on each of "
                         f"{len(status.gpus)} GPUs")]
