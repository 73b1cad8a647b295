"""The planner's words: why an option lost, what to watch on the choice, what to relax.

Each text is derived from the same numbers the optimizer used, and says only what holds for
the configuration it talks about (no NVLink claims on PCIe nodes, no suggestion to raise a
limit the plan pinned, no advice to turn on what is already on).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from provision.catalog.offerings import Offering
from provision.optimizer import Candidate, Criteria

if TYPE_CHECKING:
    from provision.planner import PlanOutcome

TIGHT_MARGIN = 0.05  # warn when the headroom is within 5 points of the minimum
DEFAULT_DEADLINE_HOURS = 720.0  # 30 days: a pre-training run longer than that needs a human
NODE_SEARCH_LIMIT = 1 << 20  # the largest node count a "you need N nodes" tip looks for


def lost_because(c: Candidate, choice: Candidate | None, criteria: Criteria) -> str:
    if choice is None:
        return ""
    if criteria.objective == "time" and c.hours and choice.hours:
        return f"slower: {c.hours:,.1f} h vs {choice.hours:,.1f} h"
    if criteria.objective == "time" and c.tokens_per_s and choice.tokens_per_s:
        return f"slower: ~{c.tokens_per_s:,.0f} vs ~{choice.tokens_per_s:,.0f} tokens/s"
    if c.cost_usd is not None and choice.cost_usd is not None:
        d = c.cost_usd - choice.cost_usd
        pct = d / choice.cost_usd if choice.cost_usd else 0.0
        if abs(pct) < 0.005 and c.hours and choice.hours:
            return f"same cost, slower: {c.hours:,.1f} h vs {choice.hours:,.1f} h"
        return f"costs ${d:,.0f} more (+{pct:.0%})"
    d = c.price_per_hour - choice.price_per_hour
    pct = d / choice.price_per_hour if choice.price_per_hour else 0.0
    if abs(d) < 0.005:
        return "same price; loses the tie-break (provider, type, region order)"
    return f"${d:,.2f}/h more (+{pct:.0%})"


def label(c: Candidate) -> str:
    o = c.offering
    nodes = f"{c.nodes} × " if c.nodes > 1 else ""
    return f"{nodes}{o.gpu_count}×{o.gpu} {o.provider} {o.instance_type}{' spot' if c.spot else ''}"


def _link(o: Offering) -> str:
    """What joins a node's GPUs, in words that do not contradict the interconnect."""
    if o.interconnect == "ici":
        return "ICI"
    if o.nvlink_domain >= o.gpu_count:
        return "NVSwitch" if o.interconnect == "nvswitch" else "NVLink"
    if o.interconnect == "nvlink-pairs":
        return "NVLink between pairs, PCIe beyond"
    return "PCIe"


def _interconnect_warnings(outcome: PlanOutcome) -> list[str]:
    choice, need = outcome.choice, outcome.need
    assert choice is not None
    o = choice.offering
    out: list[str] = []
    slow_link = o.gpu_count > 1 and o.nvlink_domain < o.gpu_count
    if need.kind == "inference":
        if slow_link:
            out.append(f"tensor parallel across {o.gpu_count} GPUs over {_link(o)}: expect "
                       "lower throughput than on an NVLink/NVSwitch node")
        if choice.nodes > 1:
            out.append(f"needs {choice.nodes} nodes: tensor parallel inside each node over "
                       f"{_link(o)}, {choice.nodes} pipeline stages across nodes over "
                       f"{o.network_gbps:g} Gb/s")
    elif need.kind in ("training", "finetune"):
        tp = min(need.tensor_parallel, o.gpu_count)
        if slow_link and choice.gpus > 1:
            out.append(f"FSDP all-gathers parameters and reduce-scatters gradients over "
                       f"{_link(o)} between the {o.gpu_count} GPUs of a node: slower than "
                       "NVLink, so expect a lower MFU than the estimate assumes")
        if choice.nodes > 1:
            inside = f"tensor parallel {tp} inside each node, " if tp > 1 else ""
            out.append(f"needs {choice.nodes} nodes: {inside}FSDP over all {choice.gpus} GPUs, "
                       f"with parameters and gradients crossing nodes over "
                       f"{o.network_gbps:g} Gb/s")
    return out


def choice_warnings(outcome: PlanOutcome) -> list[str]:
    choice, need, crit = outcome.choice, outcome.need, outcome.result.criteria
    out: list[str] = []
    if choice is None:
        return out
    o = choice.offering
    spec = outcome.catalog.gpus[o.gpu]
    if need.components and choice.headroom < crit.min_headroom + TIGHT_MARGIN:
        gpus = outcome.catalog.gpus
        bigger = sorted({o2.gpu for o2 in outcome.catalog.offerings
                         if gpus[o2.gpu].vendor == spec.vendor
                         and gpus[o2.gpu].memory_gb >= 1.25 * spec.memory_gb
                         and gpus[o2.gpu].gpu_class == spec.gpu_class
                         and (gpus[o2.gpu].nvlink_gbps > 0 or not spec.nvlink_gbps)},
                        key=lambda g: (gpus[g].memory_gb, g))[:2]
        hint = ("consider " + " or ".join(f"{g} ({gpus[g].memory_gb:g} GB)" for g in bigger)
                if bigger else "consider more GPUs")
        shrink = " or a shorter context / smaller batch" if need.kind == "inference" else ""
        out.append(f"fits with only {choice.headroom:.0%} headroom on the busiest GPU; "
                   f"{hint}{shrink}")
    out += _interconnect_warnings(outcome)
    if choice.spot:
        out.append("spot capacity can be reclaimed with 30 s–2 min notice: checkpoint often")
    if spec.gpu_class == "consumer":
        out.append(f"{o.gpu} is a consumer GPU: no ECC and no server cooling; fine for "
                   "experiments, risky for long multi-GPU runs")
    if need.precision == "fp8" and not spec.fp8_tflops and need.kind != "none":
        out.append(f"{o.gpu} has no FP8 tensor cores: FP8 runs at BF16 speed")
    if o.billing_period == "month":
        out.append(f"{o.provider} bills monthly: the minimum charge is one month "
                   f"(${(o.period_price or 0) * choice.nodes:,.0f})")
    if o.hosts > 1:
        out.append(f"{o.instance_type} is a multi-host slice: {o.hosts} TPU VM hosts")
    if (crit.deadline_hours is None and choice.hours is not None
            and choice.hours > DEFAULT_DEADLINE_HOURS and need.flops):
        out.append(f"the pinned hardware needs {choice.hours:,.0f} h ({choice.hours / 24:,.0f} "
                   f"days), beyond the {DEFAULT_DEADLINE_HOURS:,.0f} h default deadline; "
                   "honoured because resources pins it")
    best_spot = outcome.result.best_spot
    if crit.spot == "never" and best_spot and best_spot.price_per_hour < choice.price_per_hour:
        save = 1 - best_spot.price_per_hour / choice.price_per_hour
        out.append(
            f"spot would cost ${best_spot.price_per_hour:,.2f}/h ({save:.0%} less) on "
            f"{best_spot.offering.provider} {best_spot.offering.instance_type}: set "
            "constraints.spot: allowed if the job checkpoints")
    if crit.budget_usd is None and choice.cost_usd is None and need.kind == "inference":
        out.append("no workload.hours given: the estimate has no total cost, only $/h")
    return out


def _shrink_tips(outcome: PlanOutcome) -> str:
    """Ways to make the need smaller that the plan does not already use."""
    w, crit = outcome.loaded.plan.workload, outcome.result.criteria
    tips: list[str] = []
    if w is None:
        return ""
    if w.kind == "inference":
        if w.precision not in ("int8", "int4"):
            tips.append("lower precision (int8/int4)")
        if w.kv_precision not in ("fp8", "int8", "int4"):
            tips.append("kv_precision: fp8")
    else:
        if w.kind == "finetune" and w.method == "full":
            tips.append("method: lora/qlora")
        elif w.kind == "finetune" and w.method == "lora":
            tips.append("method: qlora")
        if w.kind != "inference" and w.method in (None, "full") and w.optimizer == "adamw":
            tips.append("optimizer: adamw_8bit")
        if not w.activation_checkpointing:
            tips.append("activation_checkpointing: true")
    if w.batch > 1:
        tips.append("a smaller batch")
    tips.append("a shorter context")
    return (f"or shrink the need: {', '.join(tips)}; or lower constraints.min_headroom "
            f"(now {crit.min_headroom:.0%})")


def relax(outcome: PlanOutcome) -> list[str]:
    """What to change when nothing fits, from the rejections' reasons."""
    res, crit = outcome.result, outcome.result.criteria
    if res.considered == 0:
        return why_nothing_considered(outcome)
    by_kind: dict[str, list[Candidate]] = {}
    for c in res.rejected:
        by_kind.setdefault(c.reason_kind or "", []).append(c)
    nodes_pinned = crit.pin_nodes is not None
    tips: list[str] = []
    if "max_price" in by_kind:
        cheapest = min(by_kind["max_price"], key=lambda c: c.price_per_hour)
        tips.append(f"raise constraints.max_price_per_hour to ≥ ${cheapest.price_per_hour:,.2f}"
                    f" ({label(cheapest)})")
    if "budget" in by_kind:
        cheapest = min(by_kind["budget"], key=lambda c: c.cost_usd or 0.0)
        tips.append(f"raise constraints.budget_usd to ≥ ${cheapest.cost_usd or 0:,.0f} "
                    f"({label(cheapest)}), or train on fewer tokens")
    if "deadline" in by_kind:
        fastest = min(by_kind["deadline"], key=lambda c: c.hours or 0.0)
        more = "" if nodes_pinned else f" or constraints.max_nodes (now {crit.max_nodes})"
        tips.append(f"raise constraints.deadline_hours to ≥ {fastest.hours or 0:,.0f} "
                    f"({label(fastest)}){more}")
    if "nvlink" in by_kind:
        tips.append("allow PCIe nodes: constraints.require_nvlink: false, or a smaller "
                    "workload.tensor_parallel (FSDP needs no NVLink)")
    if "framework" in by_kind:
        tips.append("TPUs need workload.framework: jax (or pytorch_xla), and a method other "
                    "than qlora")
    if "consumer" in by_kind:
        tips.append("set constraints.allow_consumer: true to allow consumer GPUs")
    if "multi_node" in by_kind:
        tips.append("allow a provider that joins nodes into clusters (constraints.clouds)")
    if "precision" in by_kind:
        tips.append("use precision: fp16 on GPUs without bf16")
    if "memory" in by_kind:
        tips += _memory_tips(outcome, by_kind["memory"], nodes_pinned)
    return tips


def _memory_tips(outcome: PlanOutcome, rejected: list[Candidate],
                 nodes_pinned: bool) -> list[str]:
    crit, need, gpus = outcome.result.criteria, outcome.need, outcome.catalog.gpus
    tips: list[str] = []
    largest = max(rejected, key=lambda c: c.offering.gpu_count * gpus[c.offering.gpu].memory_gb
                  * (crit.max_nodes if c.offering.multi_node else 1))
    o = largest.offering
    spec = gpus[o.gpu]
    if o.multi_node and not nodes_pinned:
        cap = spec.memory_gb * (1 - crit.min_headroom)
        n = need.min_nodes(o.gpu_count, cap, NODE_SEARCH_LIMIT, shards_kv=spec.is_tpu)
        if n is not None and n > crit.max_nodes:
            tips.append(f"the workload needs {n} nodes of {o.gpu_count}×{o.gpu}: raise "
                        f"constraints.max_nodes (now {crit.max_nodes}) to ≥ {n}")
        elif n is None and need.kind == "inference":
            tips.append(f"no number of {o.gpu_count}×{o.gpu} nodes holds it: even one layer "
                        "per pipeline stage leaves more than a GPU's memory on the busiest GPU")
        elif n is None:
            tips.append(f"no number of {o.gpu_count}×{o.gpu} nodes holds it: activations "
                        f"and overhead alone take {need.per_gpu_gb:,.1f} GB on every GPU")
    tips.append(_shrink_tips(outcome))
    return [t for t in tips if t]


def why_nothing_considered(outcome: PlanOutcome) -> list[str]:
    crit, cat = outcome.result.criteria, outcome.catalog
    tips = []
    checks = [
        ("constraints.clouds (default: the providers `provision up` can create: "
         f"{', '.join(sorted(crit.providers or ()))}; --all-providers widens it)",
         crit.providers, lambda o: o.provider in crit.providers),
        ("constraints.gpus", crit.gpus, lambda o: o.gpu in crit.gpus),
        ("resources.gpu", crit.pin_gpu, lambda o: o.gpu == crit.pin_gpu),
        ("resources.gpus_per_node", crit.pin_gpus_per_node,
         lambda o: o.gpu_count == crit.pin_gpus_per_node),
        ("resources.provider", crit.pin_provider, lambda o: o.provider == crit.pin_provider),
        ("resources.instance_type", crit.pin_instance,
         lambda o: o.instance_type == crit.pin_instance),
        ("constraints.regions / resources.region", crit.region_re, crit.location_ok),
        ("constraints.spot: required", crit.spot == "required" or None,
         lambda o: o.spot_price is not None),
    ]
    pool = cat.offerings
    for name, active, test in checks:
        if not active:
            continue
        kept = [o for o in pool if test(o)]
        if not kept:
            tips.append(f"no offering is left once {name} applies (on top of the filters "
                        "before it); widen it")
            break
        pool = kept
    return tips or ["no offering matches the plan's filters; widen them"]
