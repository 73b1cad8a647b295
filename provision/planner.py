"""plan.yaml → hardware plan: size the workload, resolve constraints, optimize, explain.

This is the `provision plan` stage end to end, as one function the CLI (and `provision up`)
calls: :func:`make_plan`. It returns a :class:`PlanOutcome` that renders as a table, JSON or
Markdown and that later stages read the chosen configuration from.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from provision.catalog import Catalog, Offering, Suspect, load_catalog
from provision.errors import NothingFits
from provision.explain import (
    DEFAULT_DEADLINE_HOURS,
    choice_warnings,
    label,
    lost_because,
    relax,
)
from provision.optimizer import Candidate, Criteria, Result, optimize, rank_key
from provision.plan.load import LoadedPlan
from provision.plan.schema import Resources, close_matches
from provision.sizing import Layout, Need, size

__all__ = ["DEFAULT_DEADLINE_HOURS", "PlanOutcome", "creatable_providers", "label",
           "lost_because", "make_plan"]

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
STALE_DAYS = 30  # prices older than this get a warning
SUSPECTS_NAMED = 3  # suspect rows named in a plan's warning (`catalog --suspect` lists all)


# Providers `provision up` can create nodes on: provision.backends.registry.PROVIDER_BACKENDS
# (a test keeps the two equal; importing the backends here would slow every `plan`), plus the
# fixed hardware of local and bare-metal plans.
CREATABLE = frozenset({"aws", "gcp", "local", "baremetal"})


def creatable_providers() -> frozenset[str]:
    return CREATABLE


@dataclass
class PlanOutcome:
    loaded: LoadedPlan
    catalog: Catalog
    need: Need
    result: Result
    warnings: list[str] = field(default_factory=list)
    relax: list[str] = field(default_factory=list)  # what to change when nothing fits
    today: date = field(default_factory=date.today)
    suspects: list[Suspect] = field(default_factory=list)  # set-aside rows this plan could use

    @property
    def choice(self) -> Candidate | None:
        return self.result.choice

    def layout(self) -> Layout:
        """The chosen configuration's layout (one GPU when nothing was chosen)."""
        choice = self.choice
        if choice is None:
            return self.need.layout(1, 1)
        o = choice.offering
        spec = self.catalog.gpus[o.gpu]
        return self.need.layout(o.gpu_count, choice.nodes, shards_kv=spec.is_tpu)

    def need_parts(self) -> tuple[float, float, float]:
        """(model state over the cluster, per-GPU part on each GPU, GPUs): the headline need
        told apart, so 2 GB of overhead × 256 chips is not mistaken for model size."""
        layout = self.layout()
        placed = self.need.placed(layout)
        per_gpu_names = {c.name for c in self.need.components if c.per_gpu}
        state = sum(v for k, v in placed.items() if k not in per_gpu_names) * layout.gpus
        each = sum(v for k, v in placed.items() if k in per_gpu_names)
        return state, each, layout.gpus

    def to_json(self) -> dict:
        """The documented machine-readable shape (README: `provision plan --output json`)."""
        choice = self.choice
        need = self.need
        layout = self.layout()
        creatable = creatable_providers()
        alts = [_candidate_json(c, creatable,
                                lost_because=lost_because(c, choice, self.result.criteria))
                for c in self.result.alternatives()]
        alts += [_candidate_json(c, creatable) for c in self.result.rejected_cheaper()]
        state, each, gpus = self.need_parts()
        return {
            "name": self.loaded.plan.name,
            "need": {
                "memory_gb": _r(need.total_gb(layout)),
                "breakdown": {k: _r(v) for k, v in need.breakdown(layout).items()},
                "model_state_gb": _r(state),
                "per_gpu_gb": _r(each),
                "peak_gpu_gb": _r(need.peak_gb(layout)),
                "peak_breakdown": {k: _r(v) for k, v in need.placed(layout).items()},
                "layout": {"gpus_per_node": layout.gpus_per_node, "nodes": layout.nodes,
                           "tensor_parallel": layout.tp, "pipeline_stages": layout.pp},
                "gpus": gpus,
                "flops": _finite(need.flops),
                "params_b": need.params_b,
                "active_params_b": need.active_params_b,
                "decode_weight_gb_per_step": _r(need.weight_bytes_per_step / 1e9),
            },
            "choice": _candidate_json(choice, creatable) if choice else None,
            "estimate": {
                "hours": _r(choice.hours) if choice else None,
                "cost_usd": _r(choice.cost_usd) if choice else None,
                "tokens_per_s": _r(choice.tokens_per_s) if choice else None,
            },
            "alternatives": alts,
            "warnings": list(self.warnings),
            "relax": list(self.relax),
            "considered": self.result.considered,
            "catalog": catalog_json(self.catalog, self.today, self.suspects),
        }


def _finite(x: float | None) -> float | None:
    """JSON has no NaN or Infinity: a non-finite figure is reported as unknown (null)."""
    return x if x is None or math.isfinite(x) else None


def _r(x: float | None, nd: int = 2) -> float | None:
    x = _finite(x)
    return None if x is None else round(x, nd)


def catalog_json(catalog: Catalog, today: date, suspects: Sequence[Suspect] = ()) -> dict:
    """Per-provider price dates, the count of rows set aside as suspect, and those of them this
    plan could have used (`provision catalog --suspect -o json` lists them all)."""
    return {
        "providers": {p: {"as_of": d.as_of.isoformat() if d.as_of else None,
                          "age_days": d.age_days(today), "basis": d.basis}
                      for p, d in sorted(catalog.dates.items())},
        "suspect_total": len(catalog.suspect),
        "suspect_rows": [s.to_json() for s in suspects],
    }


def _candidate_json(c: Candidate, creatable: frozenset[str],
                    lost_because: str | None = None) -> dict:
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
        "price_per_hour": _r(c.price_per_hour, 4),
        "billing_period": o.billing_period,
        "interconnect": o.interconnect,
        "hours": _r(c.hours),
        "cost_usd": _r(c.cost_usd),
        "peak_gpu_gb": _r(c.load_per_gpu_gb),
        "headroom": _r(c.headroom, 4),
        "tokens_per_s": _r(c.tokens_per_s),
        "catalog_only": o.provider not in creatable,
        "rejected_because": c.rejected_because,
    }
    if lost_because is not None:
        out["lost_because"] = lost_because
    return out


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


def criteria_for(loaded: LoadedPlan, catalog: Catalog, need: Need, *,
                 all_providers: bool = False) -> Criteria:
    plan = loaded.plan
    c, r, w = plan.constraints, plan.resources, plan.workload
    resolve = catalog.gpus.resolve
    pinned = _pins_hardware(r)
    if c.clouds:
        providers: frozenset[str] | None = frozenset(c.clouds)
    elif all_providers or (r is not None and (r.provider or r.gpu or r.instance_type)):
        providers = None  # pinned hardware beats the default; the output marks catalog-only
    else:
        providers = creatable_providers()
    if c.deadline_hours is not None:
        deadline = c.deadline_hours
    else:  # a default, not the user's: it yields to hardware the plan pins
        deadline = DEFAULT_DEADLINE_HOURS if need.flops and not pinned else None
    return Criteria(
        objective=c.objective,
        min_headroom=c.min_headroom,
        max_nodes=c.max_nodes,
        spot=c.spot,
        max_price_per_hour=c.max_price_per_hour,
        budget_usd=c.budget_usd,
        deadline_hours=deadline,
        providers=providers,
        regions=tuple(c.regions) if c.regions else None,
        gpus=frozenset(resolve(g).name for g in c.gpus) if c.gpus else None,  # type: ignore[union-attr]
        require_nvlink=bool(c.require_nvlink),
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


def _pins_hardware(r: Resources | None) -> bool:
    """resources names the node count and the hardware (an instance type, or a GPU with its
    count per node): the user's choice, which defaults must not overrule."""
    return r is not None and r.nodes is not None and (
        r.instance_type is not None or (r.gpu is not None and r.gpus_per_node is not None))


EXPLICIT_OVERRIDABLE = ("memory", "nvlink", "consumer", "precision")


def _explicit(c: Criteria) -> bool:
    """resources names the node count and the hardware: the user's choice, not ours."""
    return c.pin_nodes is not None and (c.pin_instance is not None or c.pin_gpu is not None)


def load_plan_catalog(loaded: LoadedPlan, extra: Sequence[Path] = (), *,
                      trust: bool = False) -> Catalog:
    """The built-in catalog plus the plan's `catalog:` entries and command-line extras.
    ``trust``: keep suspect rows of the files the user named (they are still listed)."""
    from provision.catalog.refresh import user_catalog_files

    paths = [*user_catalog_files(),
             *(loaded.resolve_path(p) for p in loaded.plan.catalog), *(Path(p) for p in extra)]
    for i, p in enumerate(loaded.plan.catalog):
        if not loaded.resolve_path(p).exists():
            raise loaded.error(("catalog", i), f"{p}: no such file or directory")
    named = [*(loaded.resolve_path(p) for p in loaded.plan.catalog), *(Path(p) for p in extra)]
    return load_catalog(paths, trust=named if trust else ())


def relevant_suspects(catalog: Catalog, criteria: Criteria, need: Need) -> list[Suspect]:
    """Suspect rows the plan could have used, the cheapest real-looking ones first: the rows
    that could have changed the choice."""
    return sorted((s for s in catalog.suspect if criteria.hardware_ok(s.offering)
                   and _could_run(need, catalog, s.offering)),
                  key=lambda s: (s.placeholder, s.per_gpu_hour))


def catalog_warnings(catalog: Catalog, criteria: Criteria, today: date,
                     relevant: Sequence[Suspect] = ()) -> list[str]:
    """Old prices, and the suspect rows this plan could have used."""
    out: list[str] = []
    stale = []
    for provider, d in sorted(catalog.dates.items()):
        if criteria.providers is not None and provider not in criteria.providers:
            continue
        age = d.age_days(today)
        if age is None:
            stale.append(f"{provider} (date unknown)")
        elif age > STALE_DAYS:
            stale.append(f"{provider} {age:,} days (as of {d.as_of})")
    if stale:
        out.append(f"catalog prices older than {STALE_DAYS} days: {', '.join(stale)}; run "
                   "`provision catalog refresh` or pass a newer SkyPilot catalog with --catalog")
    kept = [s for s in relevant if s.kept]
    aside = [s for s in relevant if not s.kept]
    for rows, what in ((kept, "kept because --trust-catalog was given"),
                       (aside, "set aside (`provision catalog --suspect` lists them)")):
        if rows:
            shown = "; ".join(s.describe() for s in rows[:SUSPECTS_NAMED])
            more = (f"; and {len(rows) - SUSPECTS_NAMED} more"
                    if len(rows) > SUSPECTS_NAMED else "")
            out.append(f"{len(rows)} suspect catalog row(s) {what}: {shown}{more}")
    return out


def _could_run(need: Need, catalog: Catalog, o: Offering) -> bool:
    """False for hardware the workload's framework rules out (TPUs for CUDA-only jobs)."""
    tpu = catalog.gpus[o.gpu].is_tpu
    return not (tpu and need.kind != "none"
                and (need.framework == "pytorch" or need.method == "qlora"))


def make_plan(
    loaded: LoadedPlan, catalog: Catalog | None = None, *, extra_catalogs: Sequence[Path] = (),
    all_providers: bool = False, trust_catalog: bool = False, today: date | None = None,
) -> PlanOutcome:
    """Size, optimize and explain. Raises NothingFits (exit 3) with the outcome attached.

    ``all_providers``: also consider catalog-only providers (ones `provision up` cannot
    create nodes on) without listing them in constraints.clouds."""
    if catalog is None:
        catalog = load_plan_catalog(loaded, extra_catalogs, trust=trust_catalog)
    _names_check(loaded, catalog)
    workload = loaded.plan.workload
    need = size(workload) if workload else NO_WORKLOAD
    criteria = criteria_for(loaded, catalog, need, all_providers=all_providers)
    result = optimize(need, catalog, criteria)
    outcome = PlanOutcome(loaded, catalog, need, result, warnings=list(need.warnings),
                          today=today or date.today())
    outcome.suspects = relevant_suspects(catalog, criteria, need)
    outcome.warnings += catalog_warnings(catalog, criteria, outcome.today, outcome.suspects)
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
        outcome.relax = relax(outcome)
        raise NothingFits(f"{loaded.path}: nothing in the catalog fits this plan", outcome)
    outcome.warnings += choice_warnings(outcome)
    # The software profile must work on the chosen hardware (or the local/bare-metal SKUs):
    # an impossible driver/CUDA/NCCL combination is an input error before any node exists.
    from provision.profile import plan_profiles

    plan_profiles(loaded, outcome)
    return outcome
