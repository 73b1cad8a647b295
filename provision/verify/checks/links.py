"""NVLink checks: the bonded-link count between every GPU pair (``topo -m``) and every link's
state and speed (``nvlink --status``).

On NVSwitch SKUs every pair must show ``NV<pair_links>`` (NV18 on 8 x H100/H200, NV12 on
A100; boards without NVSwitches split the links between peers, NV6 on 4 x H100) and every GPU
``links_per_gpu`` active links at the SKU's link speed. PCIe-only SKUs (L40S, L4, A10G) expect
no NVLink: their PCIe paths and empty link lists pass. Both outputs are per-GPU listings, so
each GPU index 0..N-1 must appear exactly once (the matrix as both a row and a column, both
halves of it read), and ``nvlink --status`` must name the UUIDs the GPU query lists.
"""

from __future__ import annotations

from collections import Counter
from itertools import permutations

from provision.verify.checks.base import (
    HostContext,
    index_problems,
    list_some,
    unavailable,
    unusable,
)
from provision.verify.checks.inventory import uuid_problems
from provision.verify.model import Check
from provision.verify.parsers.smi_nvlink import NvlinkStatus, parse_nvlink
from provision.verify.parsers.smi_topo import Topology, parse_topo
from provision.verify.reference import IMPOSSIBLE_MARGIN

TOPO_FILE = "nvidia-smi-topo.txt"
NVLINK_FILE = "nvidia-smi-nvlink.txt"
# nvidia-smi rounds link speeds (26.562 for 26.5625); anything within 1 % is the same speed.
SPEED_TOLERANCE = 0.99


def _gpu_indices(names: list[str]) -> list[int]:
    return [int(n[3:]) for n in names]


def _topology_identity(topo: Topology, expect: int) -> list[str]:
    problems = [f"columns: {p}" for p in index_problems(_gpu_indices(topo.gpus), expect)]
    problems += [f"rows: {p}" for p in index_problems(_gpu_indices(topo.gpu_rows), expect)]
    return problems


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
    if topo.unusable:
        return unusable(["nvlink.topology"], TOPO_FILE, topo.unusable)
    if identity := _topology_identity(topo, ctx.expect_count):
        return [Check(name="nvlink.topology", status="fail", measured=len(gpus),
                      expected=ctx.expect_count, unit="GPUs",
                      detail=f"{TOPO_FILE} is not a matrix of GPU0-GPU{ctx.expect_count - 1}: "
                             f"{list_some(identity, 4)}")]
    spec = ctx.ref.nvlink
    pairs = list(permutations(gpus, 2))  # both halves: a corrupt cell may sit in either
    if spec is None or not spec.expected:
        nv = [f"{a}-{b} NV{topo.nvlinks(a, b)}" for a, b in pairs
              if a < b and topo.nvlinks(a, b)]
        extra = f"; NVLink bridges seen: {list_some(nv)}" if nv else ""
        return [Check(name="nvlink.topology", status="pass", measured=0, expected=0,
                      unit="links", source=spec.source if spec else None,
                      detail=f"no NVLink expected on {ctx.ref.sku}; "
                             f"{len(gpus)} GPUs on PCIe{extra}")]
    want = spec.pair_links_for(len(gpus))
    if not pairs:
        return [Check(name="nvlink.topology", status="pass", measured=None, expected=want,
                      unit="links", detail="one GPU: no GPU pairs to check")]
    counts = {(a, b): topo.nvlinks(a, b) for a, b in pairs}
    impossible = [f"{a}-{b} NV{n} (line {topo.row_lines.get(a, '?')})"
                  for (a, b), n in counts.items() if n > spec.links_per_gpu]
    if impossible:
        return [Check(name="nvlink.topology", status="fail", expected=want, unit="links",
                      source=spec.source,
                      detail=f"{TOPO_FILE}: more NVLinks than a {ctx.ref.sku} GPU has "
                             f"({spec.links_per_gpu}): {list_some(impossible, 3)}")]
    short = [f"{a}-{b} {topo.cells.get((a, b)) or '?'}" for (a, b), n in counts.items()
             if n < want]
    low = min(counts.values())
    if short:
        return [Check(name="nvlink.topology", status="fail", measured=low, expected=want,
                      unit="links", ratio=low / want, source=spec.source,
                      detail=f"{len(short)} of {len(pairs)} matrix cells below NV{want}: "
                             f"{list_some(short)}")]
    return [Check(name="nvlink.topology", status="pass", measured=low, expected=want,
                  unit="links", ratio=low / want, source=spec.source,
                  detail=f"NV{want} between all {len(pairs) // 2} GPU pairs")]


def _status_identity(ctx: HostContext, status: NvlinkStatus) -> list[str]:
    problems = index_problems([g.index for g in status.gpus], ctx.expect_count)
    uuids = [g.uuid for g in status.gpus if g.uuid]
    problems += [f"UUID {u} on {n} GPUs" for u, n in sorted(Counter(uuids).items()) if n > 1]
    problems += [f"GPU {g.index} lists link {','.join(map(str, sorted(set(g.duplicate_links))))}"
                 " twice" for g in status.gpus if g.duplicate_links]
    return problems + uuid_problems(ctx, uuids, NVLINK_FILE)


def check_nvlink_status(ctx: HostContext) -> list[Check]:
    art = ctx.artifact(NVLINK_FILE)
    if problem := art.problem():
        return unavailable(["nvlink.status"], problem)
    status = parse_nvlink(art.text or "")
    spec = ctx.ref.nvlink
    if status.unusable:
        return unusable(["nvlink.status"], NVLINK_FILE, status.unusable)
    if not status.gpus:
        why = "; ".join(status.errors) or "no GPU listed"
        if spec is None or not spec.expected:
            return [Check(name="nvlink.status", status="pass", measured=0, expected=0,
                          unit="links", detail=f"no NVLink expected on {ctx.ref.sku} ({why})")]
        hint = art.failure_hint()
        return [Check(name="nvlink.status", status="fail", detail=f"{NVLINK_FILE}: {why}"
                      + (f"; {hint}" if hint else ""))]
    identity = _status_identity(ctx, status)
    active = sum(len(g.active) for g in status.gpus)
    if identity and (spec is None or not spec.expected):
        return [Check(name="nvlink.status", status="fail", measured=len(status.gpus),
                      expected=ctx.expect_count, unit="GPUs",
                      detail=f"{NVLINK_FILE}: {list_some(identity, 4)}")]
    if spec is None or not spec.expected:
        extra = f"; {active} active links seen (a bridge?)" if active else ""
        return [Check(name="nvlink.status", status="pass", measured=active, expected=0,
                      unit="links", source=spec.source if spec else None,
                      detail=f"no NVLink expected on {ctx.ref.sku}{extra}")]
    return [_judge_links(ctx, status, identity)]


def _judge_links(ctx: HostContext, status: NvlinkStatus, identity: list[str]) -> Check:
    """Every link of every listed GPU, plus the listing's own problems (a GPU missing)."""
    spec = ctx.ref.nvlink
    assert spec is not None
    want_links, speed = spec.links_per_gpu, spec.link_gbps or 0.0
    problems: list[str] = [f"{NVLINK_FILE}: {p}" for p in identity]
    for g in status.gpus:
        if g.all_inactive:
            problems.append(f"GPU {g.index}: all links inactive")
            continue
        down = sorted(i for i, s in g.links.items() if not s)
        slow = sorted(i for i, s in g.links.items() if s and s < speed * SPEED_TOLERANCE)
        fast = sorted(i for i, s in g.links.items() if speed and s and
                      s > speed * IMPOSSIBLE_MARGIN)
        if fast:
            problems.append(f"GPU {g.index} link {','.join(map(str, fast))} above any "
                            f"{ctx.ref.sku} link speed ({speed:g} GB/s): corrupt output "
                            f"(line {g.line} onwards)")
        if down:
            problems.append(f"GPU {g.index} link {','.join(map(str, down))} inactive")
        if slow:
            problems.append(f"GPU {g.index} link {','.join(map(str, slow))} below {speed:g} GB/s")
        if len(g.links) < want_links:
            problems.append(f"GPU {g.index} lists {len(g.links)} of {want_links} links")
        elif len(g.links) > want_links or any(i >= want_links for i in g.links):
            problems.append(f"GPU {g.index} lists links a {ctx.ref.sku} GPU does not have "
                            f"({len(g.links)}, {want_links} expected)")
    good = sum(1 for g in status.gpus for s in g.links.values()
               if s and speed * SPEED_TOLERANCE <= s <= speed * IMPOSSIBLE_MARGIN)
    expected = want_links * len(status.gpus)
    if problems:
        return Check(name="nvlink.status", status="fail", measured=good, expected=expected,
                     unit="links", ratio=good / expected if expected else None,
                     source=spec.source, detail=list_some(problems))
    return Check(name="nvlink.status", status="pass", measured=good, expected=expected,
                 unit="links", ratio=1.0, source=spec.source,
                 detail=f"{want_links} links active at {speed:g} GB/s on each of "
                        f"{len(status.gpus)} GPUs")
