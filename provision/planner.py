"""plan.yaml → hardware plan: size the workload, resolve constraints, optimize, explain.

This is the `provision plan` stage end to end, as one function the CLI (and `provision up`)
calls: :func:`make_plan`. It returns a :class:`PlanOutcome` that renders as a table, JSON or
Markdown and that later stages read the chosen configuration from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from provision.catalog import Catalog, load_catalog
from provision.errors import NothingFits
from provision.optimizer import Candidate, Criteria, Result, optimize, rank_key
from provision.plan.load import LoadedPlan
from provision.plan.schema import close_matches
from provision.sizing import Need, size

NO_WORKLOAD = Need(
    kind="none",
    precision="bf16",
    params_b=0.0,
    active_params_b=0.0,
    components=(),
    flops=None,
    weight_bytes_per_step=0.0,
    kv_bytes_per_token=0.0,
)


@dataclass
class PlanOutcome:
    loaded: LoadedPlan
    catalog: Catalog
    need: Need
    result: Result
    warnings: list[str] = field(default_factory=list)
    relax: list[str] = field(default_factory=list)  # what to change when nothing fits

    @property
    def choice(self) -> Candidate | None:
        return self.result.choice

    def to_json(self) -> dict:
        """The documented machine-readable shape (README: `provision plan --output json`)."""
        choice = self.choice
        gpus = choice.gpus if choice else 1
        need = self.need
        alts = [_candidate_json(c, lost_because=lost_because(c, choice, self.result.criteria))
                for c in self.result.alternatives()]
        alts += [_candidate_json(c) for c in self.result.rejected_cheaper()]
        return {
            "name": self.loaded.plan.name,
            "need": {
                "memory_gb": round(need.total_gb(gpus), 2),
                "breakdown": {k: round(v, 2) for k, v in need.breakdown(gpus).items()},
                "shared_gb": round(need.shared_gb, 2),
                "per_gpu_gb": round(need.per_gpu_gb, 2),
                "gpus": gpus,
                "flops": need.flops,
                "params_b": need.params_b,
                "active_params_b": need.active_params_b,
            },
            "choice": _candidate_json(choice) if choice else None,
            "estimate": {
                "hours": _r(choice.hours) if choice else None,
                "cost_usd": _r(choice.cost_usd) if choice else None,
                "tokens_per_s": _r(choice.tokens_per_s) if choice else None,
            },
            "alternatives": alts,
            "warnings": list(self.warnings),
            "relax": list(self.relax),
            "considered": self.result.considered,
        }


def _r(x: float | None, nd: int = 2) -> float | None:
    return None if x is None else round(x, nd)


def _candidate_json(c: Candidate, lost_because: str | None = None) -> dict:
    o = c.offering
    out = {
        "gpu": o.gpu,
        "gpus_per_node": o.gpu_count,
        "nodes": c.nodes,
        "hosts_per_node": o.hosts,
        "provider": o.provider,
        "instance_type": o.instance_type,
        "region": o.region,
        "zone": o.zone or None,
        "spot": c.spot,
        "price_per_hour": round(c.price_per_hour, 4),
        "billing_period": o.billing_period,
        "interconnect": o.interconnect,
        "hours": _r(c.hours),
        "cost_usd": _r(c.cost_usd),
        "headroom": round(c.headroom, 4),
        "rejected_because": c.rejected_because,
    }
    if lost_because is not None:
        out["lost_because"] = lost_because
    return out


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


def _names_check(loaded: LoadedPlan, catalog: Catalog) -> None:
    """Names in the plan that the catalog does not know: input errors with suggestions."""
    plan = loaded.plan
    providers = catalog.providers()
    c, r = plan.constraints, plan.resources
    for i, cloud in enumerate(c.clouds or []):
        if cloud not in providers:
            raise loaded.error(("constraints", "clouds", i), (
                f"unknown provider {cloud!r}{close_matches(cloud, providers)} "
                f"(catalog has: {', '.join(providers)})"))
    gpu_names = catalog.gpus.names()
    for i, gpu in enumerate(c.gpus or []):
        if catalog.gpus.resolve(gpu) is None:
            raise loaded.error(("constraints", "gpus", i), (
                f"unknown GPU {gpu!r}{close_matches(gpu, gpu_names)} "
                f"(known: {', '.join(gpu_names)})"))
    if r is not None:
        if r.gpu and catalog.gpus.resolve(r.gpu) is None:
            raise loaded.error(("resources", "gpu"), (
                f"unknown GPU {r.gpu!r}{close_matches(r.gpu, gpu_names)} "
                f"(known: {', '.join(gpu_names)})"))
        if r.provider and r.provider not in providers:
            raise loaded.error(("resources", "provider"), (
                f"unknown provider {r.provider!r}{close_matches(r.provider, providers)} "
                f"(catalog has: {', '.join(providers)})"))
        if r.instance_type:
            types = sorted({o.instance_type for o in catalog.offerings
                            if r.provider in (None, o.provider)})
            if r.instance_type not in types:
                raise loaded.error(("resources", "instance_type"), (
                    f"{r.instance_type!r} is not in the catalog"
                    f"{' for ' + r.provider if r.provider else ''}"
                    f"{close_matches(r.instance_type, types)}"))


def criteria_for(loaded: LoadedPlan, catalog: Catalog, need: Need) -> Criteria:
    plan = loaded.plan
    c, r, w = plan.constraints, plan.resources, plan.workload
    multi_gpu_training = need.multi_gpu_needs_nvlink
    resolve = catalog.gpus.resolve
    return Criteria(
        objective=c.objective,
        min_headroom=c.min_headroom,
        max_nodes=c.max_nodes,
        spot=c.spot,
        max_price_per_hour=c.max_price_per_hour,
        budget_usd=c.budget_usd,
        deadline_hours=(c.deadline_hours if c.deadline_hours is not None
                        else DEFAULT_DEADLINE_HOURS if need.flops else None),
        providers=frozenset(c.clouds) if c.clouds else None,
        regions=tuple(c.regions) if c.regions else None,
        gpus=frozenset(resolve(g).name for g in c.gpus) if c.gpus else None,  # type: ignore[union-attr]
        require_nvlink=c.require_nvlink if c.require_nvlink is not None else multi_gpu_training,
        allow_consumer=(c.allow_consumer if c.allow_consumer is not None
                        else need.kind in ("inference", "none")),
        mfu=w.mfu if w else 0.4,
        context=w.context if w else 0,
        batch=w.batch if w else 1,
        hours=w.hours if w else None,
        pin_gpu=resolve(r.gpu).name if r and r.gpu else None,  # type: ignore[union-attr]
        pin_gpus_per_node=r.gpus_per_node if r else None,
        pin_nodes=r.nodes if r else None,
        pin_provider=r.provider if r else None,
        pin_instance=r.instance_type if r else None,
        pin_region=r.region if r else None,
        pin_spot=r.spot if r else None,
    )


def _choice_warnings(outcome: PlanOutcome) -> list[str]:
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
        out.append(f"fits with only {choice.headroom:.0%} headroom; {hint}{shrink}")
    if choice.gpus > 1 and o.nvlink_domain < o.gpu_count and need.kind != "none":
        out.append(f"tensor parallel over {o.interconnect} (no NVLink) across {o.gpu_count} "
                   "GPUs: expect lower throughput than an NVLink system")
    if choice.nodes > 1:
        out.append(f"needs {choice.nodes} nodes: tensor parallel inside each node "
                   f"({o.nvlink_domain}-GPU NVLink domain), pipeline/data parallel across "
                   f"nodes over {o.network_gbps:g} Gb/s")
    if choice.spot:
        out.append("spot capacity can be reclaimed with 30 s–2 min notice: checkpoint often")
    if spec.gpu_class == "consumer":
        out.append(f"{o.gpu} is a consumer GPU: no ECC and no server cooling; fine for "
                   "experiments, risky for long multi-GPU runs")
    if need.precision == "fp8" and not spec.fp8_tflops and need.kind != "none":
        out.append(f"{o.gpu} has no FP8 tensor cores: FP8 weights run at BF16 speed")
    if o.billing_period == "month":
        out.append(f"{o.provider} bills monthly: the minimum charge is one month "
                   f"(${(o.period_price or 0) * choice.nodes:,.0f})")
    if o.hosts > 1:
        out.append(f"{o.instance_type} is a multi-host slice: {o.hosts} TPU VM hosts")
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


TIGHT_MARGIN = 0.05  # warn when the headroom is within 5 points of the minimum
DEFAULT_DEADLINE_HOURS = 720.0  # 30 days: a pre-training run longer than that needs a human


def _relax(outcome: PlanOutcome) -> list[str]:
    """What to change when nothing fits, from the rejections' reasons."""
    res, crit, need = outcome.result, outcome.result.criteria, outcome.need
    if res.considered == 0:
        return _why_nothing_considered(outcome)
    by_kind: dict[str, list[Candidate]] = {}
    for c in res.rejected:
        by_kind.setdefault(c.reason_kind or "", []).append(c)
    tips: list[str] = []
    if "max_price" in by_kind:
        cheapest = min(by_kind["max_price"], key=lambda c: c.price_per_hour)
        tips.append(f"raise constraints.max_price_per_hour to ≥ ${cheapest.price_per_hour:,.2f}"
                    f" ({_label(cheapest)})")
    if "budget" in by_kind:
        cheapest = min(by_kind["budget"], key=lambda c: c.cost_usd or 0.0)
        tips.append(f"raise constraints.budget_usd to ≥ ${cheapest.cost_usd or 0:,.0f} "
                    f"({_label(cheapest)}), or train on fewer tokens")
    if "deadline" in by_kind:
        fastest = min(by_kind["deadline"], key=lambda c: c.hours or 0.0)
        tips.append(f"raise constraints.deadline_hours to ≥ {fastest.hours or 0:,.0f} "
                    f"({_label(fastest)}) or constraints.max_nodes (now {crit.max_nodes})")
    if "nvlink" in by_kind:
        tips.append("set constraints.require_nvlink: false to allow tensor parallel over PCIe "
                    "(slower)")
    if "consumer" in by_kind:
        tips.append("set constraints.allow_consumer: true to allow consumer GPUs")
    if "multi_node" in by_kind:
        tips.append("allow a provider that joins nodes into clusters (constraints.clouds)")
    if "precision" in by_kind:
        tips.append("use precision: fp16 on GPUs without bf16")
    if "memory" in by_kind:
        largest = max(res.rejected, key=lambda c: c.offering.gpu_count
                      * outcome.catalog.gpus[c.offering.gpu].memory_gb
                      * (crit.max_nodes if c.offering.multi_node else 1))
        o = largest.offering
        cap = outcome.catalog.gpus[o.gpu].memory_gb * (1 - crit.min_headroom)
        g = need.min_gpus(cap, 1_000_000)
        if g and o.multi_node:
            nodes = -(-g // o.gpu_count)
            tips.append(f"the workload needs {nodes} nodes of {o.gpu_count}×{o.gpu}: raise "
                        f"constraints.max_nodes (now {crit.max_nodes}) to ≥ {nodes}")
        shrink = ("lower precision (int8/int4), a shorter context or a smaller batch"
                  if need.kind == "inference" else
                  "method: lora/qlora, optimizer: adamw_8bit, or activation_checkpointing")
        tips.append(f"or shrink the need: {shrink}; or lower constraints.min_headroom "
                    f"(now {crit.min_headroom:.0%})")
    return tips


def _label(c: Candidate) -> str:
    o = c.offering
    nodes = f"{c.nodes} × " if c.nodes > 1 else ""
    return f"{nodes}{o.gpu_count}×{o.gpu} {o.provider} {o.instance_type}{' spot' if c.spot else ''}"


def _why_nothing_considered(outcome: PlanOutcome) -> list[str]:
    crit, cat = outcome.result.criteria, outcome.catalog
    tips = []
    checks = [
        ("constraints.clouds", crit.providers, lambda o: o.provider in crit.providers),
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


EXPLICIT_OVERRIDABLE = ("memory", "nvlink", "consumer", "precision")


def _explicit(c: Criteria) -> bool:
    """resources names the node count and the hardware: the user's choice, not ours."""
    return c.pin_nodes is not None and (c.pin_instance is not None or c.pin_gpu is not None)


def load_plan_catalog(loaded: LoadedPlan, extra: Sequence[Path] = ()) -> Catalog:
    """The built-in catalog plus the plan's `catalog:` entries and command-line extras."""
    from provision.catalog.refresh import user_catalog_files

    paths = [*user_catalog_files(),
             *(loaded.resolve_path(p) for p in loaded.plan.catalog), *(Path(p) for p in extra)]
    for i, p in enumerate(loaded.plan.catalog):
        if not loaded.resolve_path(p).exists():
            raise loaded.error(("catalog", i), f"{p}: no such file or directory")
    return load_catalog(paths)


def make_plan(
    loaded: LoadedPlan, catalog: Catalog | None = None, *, extra_catalogs: Sequence[Path] = ()
) -> PlanOutcome:
    """Size, optimize and explain. Raises NothingFits (exit 3) with the outcome attached."""
    if catalog is None:
        catalog = load_plan_catalog(loaded, extra_catalogs)
    _names_check(loaded, catalog)
    workload = loaded.plan.workload
    need = size(workload) if workload else NO_WORKLOAD
    criteria = criteria_for(loaded, catalog, need)
    result = optimize(need, catalog, criteria)
    outcome = PlanOutcome(loaded, catalog, need, result, warnings=list(need.warnings))
    if result.choice is None and _explicit(criteria):
        # An explicit choice bypasses the optimizer: honour it and say what is wrong with it.
        usable = [c for c in result.rejected if c.reason_kind in EXPLICIT_OVERRIDABLE]
        if usable:
            pick = min(usable, key=lambda c: rank_key(c, criteria))
            result.choice = pick
            result.ranked = [pick]
            outcome.warnings.append(
                f"explicit resources honoured although {pick.rejected_because}: "
                "expect out-of-memory or slow runs")
    if result.choice is None:
        outcome.relax = _relax(outcome)
        raise NothingFits(f"{loaded.path}: nothing in the catalog fits this plan", outcome)
    outcome.warnings += _choice_warnings(outcome)
    # The software profile must work on the chosen hardware (or the local/bare-metal SKUs):
    # an impossible driver/CUDA/NCCL combination is an input error before any node exists.
    from provision.profile import plan_profiles

    plan_profiles(loaded, outcome)
    return outcome
