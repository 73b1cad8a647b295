"""Choose the hardware: enumerate (offering × spot × node count), reject with reasons, rank.

Exactness: the optimizer returns the true optimum of its objective over the catalog, ties broken
by (provider, instance type, region, zone, spot, nodes). :func:`brute_force` states the problem
literally — every offering, both markets, every node count — and the tests hold :func:`optimize`
to it on randomized catalogs.

Speed: offerings that share an instance type share hardware, so :func:`optimize` sizes each
group once and walks its members cheapest first; within a group a cheaper member is never worse
(same hours, lower cost, at least as many affordable nodes). For a group it then needs one node
count: the fewest that fit for the cost objective (cost grows with nodes because multi-node
scaling is below 1) once the deadline is met, the most that the price and budget limits allow
for the time objective. Hours fall and price and cost rise with nodes, so each limit holds on
one side of a node count, found by binary search. Monthly billing charges whole
months, which breaks that monotonicity, so those groups try every node count.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from provision.catalog import Catalog, Offering, OfferingGroup
from provision.catalog.specs import GpuSpec
from provision.estimate import cost_usd, decode_tokens_per_s, training_hours
from provision.search import first_true, last_true
from provision.sizing import Layout, Need

NO_BF16 = ("volta", "turing", "pascal")
SIZE_FREE_REASONS = ("framework", "consumer", "precision")  # hold whatever the GPU count


@dataclass(frozen=True)
class Criteria:
    """Everything the optimizer honours, resolved from the plan (see planner.criteria_for)."""

    objective: str = "cost"  # cost | time
    min_headroom: float = 0.10
    max_nodes: int = 16
    spot: str = "never"  # never | allowed | required
    max_price_per_hour: float | None = None
    budget_usd: float | None = None
    deadline_hours: float | None = None
    providers: frozenset[str] | None = None
    regions: tuple[str, ...] | None = None  # shell patterns matched against region and zone
    gpus: frozenset[str] | None = None  # canonical names
    require_nvlink: bool = False  # every GPU of a node on one NVLink/NVSwitch domain
    allow_consumer: bool = True
    mfu: float = 0.4
    context: int = 4096
    batch: int = 1
    hours: float | None = None  # fixed duration (serving, time-boxed jobs)
    pin_gpu: str | None = None
    pin_gpus_per_node: int | None = None
    pin_nodes: int | None = None
    pin_provider: str | None = None
    pin_instance: str | None = None
    pin_region: str | None = None
    pin_spot: bool | None = None
    region_re: re.Pattern | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        pats = list(self.regions or ())
        if self.pin_region:
            pats = [self.pin_region]
        if pats:
            rx = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in pats), re.IGNORECASE)
            object.__setattr__(self, "region_re", rx)

    def markets(self) -> tuple[bool, ...]:
        """Which spot flags to consider."""
        if self.pin_spot is not None:
            return (self.pin_spot,)
        return {"never": (False,), "allowed": (False, True), "required": (True,)}[self.spot]

    def location_ok(self, o: Offering) -> bool:
        rx = self.region_re
        return rx is None or bool(rx.match(o.region) or (o.zone and rx.match(o.zone)))

    def hardware_ok(self, o: Offering) -> bool:
        """Allow-lists and pins that do not depend on location or market."""
        if self.providers is not None and o.provider not in self.providers:
            return False
        if self.gpus is not None and o.gpu not in self.gpus:
            return False
        if self.pin_gpu is not None and o.gpu != self.pin_gpu:
            return False
        if self.pin_gpus_per_node is not None and o.gpu_count != self.pin_gpus_per_node:
            return False
        if self.pin_provider is not None and o.provider != self.pin_provider:
            return False
        return self.pin_instance is None or o.instance_type == self.pin_instance


@dataclass(frozen=True)
class Candidate:
    """One configuration: an offering, a market, a node count, and how it fares."""

    offering: Offering
    spot: bool
    nodes: int
    price_per_hour: float  # whole cluster, USD
    hours: float | None
    cost_usd: float | None
    load_per_gpu_gb: float  # memory on the busiest GPU of the layout (need.peak_gb)
    headroom: float  # fraction of the busiest GPU's memory left free
    tokens_per_s: float | None = None  # inference decode estimate
    rejected_because: str | None = None
    reason_kind: str | None = None  # memory | multi_node | nvlink | consumer | precision |
    # framework | deadline | max_price | budget

    @property
    def gpus(self) -> int:
        return self.offering.gpu_count * self.nodes

    @property
    def feasible(self) -> bool:
        return self.rejected_because is None


@dataclass
class Result:
    need: Need
    criteria: Criteria
    choice: Candidate | None
    ranked: list[Candidate]  # feasible, best first (choice included)
    rejected: list[Candidate]  # one per group and market, cheapest first
    best_spot: Candidate | None = None  # best spot option when spot was not allowed
    considered: int = 0
    gpu_memory: dict[str, float] = field(default_factory=dict)  # GB per GPU, for ordering

    def alternatives(self, n: int = 5) -> list[Candidate]:
        return self.ranked[1 : 1 + n]

    def rejected_cheaper(self, n: int = 6) -> list[Candidate]:
        """Rejected options cheaper than the choice (or all, when nothing fits), closest to
        winning first, one per GPU shape and reason: the 'why not this cheaper thing?' list.
        Cheaper compares total cost when both have one (the workload has a length), else the
        price per hour. Closest: options that fit in memory but broke another rule, then the
        ones with the most memory."""
        choice = self.choice
        seen: set[tuple] = set()
        out = []
        pool = [c for c in self.rejected if choice is None or _cheaper(c, choice)]
        pool.sort(key=lambda c: (c.reason_kind == "memory", -c.offering.gpu_count
                                 * self.gpu_memory.get(c.offering.gpu, 0.0) * c.nodes,
                                 c.price_per_hour))
        for c in pool:
            key: tuple = (c.offering.gpu, c.offering.gpu_count, c.reason_kind)
            if c.reason_kind in SIZE_FREE_REASONS:  # one line says it for every size
                key = (c.reason_kind, c.rejected_because)
            if key in seen:
                continue
            seen.add(key)
            out.append(c)
            if len(out) == n:
                break
        return out


def _cheaper(c: Candidate, choice: Candidate) -> bool:
    if c.cost_usd is not None and choice.cost_usd is not None:
        return c.cost_usd < choice.cost_usd
    return c.price_per_hour < choice.price_per_hour


def rank_key(c: Candidate, criteria: Criteria) -> tuple:
    o = c.offering
    tie = (o.provider, o.instance_type, o.region, o.zone, c.spot, c.nodes)
    if criteria.objective == "time":
        if c.hours is not None:
            return (c.hours, c.cost_usd, *tie)
        if c.tokens_per_s is not None:
            return (-c.tokens_per_s, c.price_per_hour, *tie)
    primary = c.cost_usd if c.cost_usd is not None else c.price_per_hour
    return (primary, c.hours or 0.0, *tie)


class _Evaluator:
    """Evaluates one (offering, market, nodes) with every rule; shared by both searches."""

    def __init__(self, need: Need, catalog: Catalog, criteria: Criteria) -> None:
        self.need = need
        self.criteria = criteria
        self.gpus = catalog.gpus
        self._spec_cache: dict[str, GpuSpec] = {}
        self._hw_cache: dict[tuple, tuple[str, str] | None] = {}

    def spec(self, o: Offering) -> GpuSpec:
        spec = self._spec_cache.get(o.gpu)
        if spec is None:
            spec = self.gpus[o.gpu]
            self._spec_cache[o.gpu] = spec
        return spec

    def capacity(self, spec: GpuSpec) -> float:
        return spec.memory_gb * (1.0 - self.criteria.min_headroom)

    def layout(self, o: Offering, nodes: int) -> Layout:
        """How the workload is placed on ``nodes`` nodes of ``o`` (JAX shards the KV cache
        over a TPU slice's chips; GPU serving engines split it by heads and stages)."""
        return self.need.layout(o.gpu_count, nodes, shards_kv=self.spec(o).is_tpu)

    def hardware_reason(self, o: Offering) -> tuple[str, str] | None:
        """Reasons that hold for every node count and market (memoised per hardware)."""
        key = (o.gpu, o.gpu_count, o.interconnect)
        if key not in self._hw_cache:
            self._hw_cache[key] = self._hardware_reason(o)
        return self._hw_cache[key]

    def _hardware_reason(self, o: Offering) -> tuple[str, str] | None:
        spec = self.spec(o)
        c, need = self.criteria, self.need
        if spec.gpu_class == "consumer" and not c.allow_consumer:
            return ("consumer", f"consumer GPU ({o.gpu}: no ECC, not built for long multi-GPU "
                                "runs); set constraints.allow_consumer: true to allow")
        if spec.is_tpu and need.kind != "none":
            if need.method == "qlora":
                return ("framework", "QLoRA (bitsandbytes) runs on CUDA GPUs only, not TPUs")
            if need.framework == "pytorch":
                return ("framework", "TPUs run JAX or PyTorch/XLA: set workload.framework: jax "
                                     "(or pytorch_xla) to consider them")
        if need.kind in ("training", "finetune") and need.precision == "bf16" and (
            spec.arch in NO_BF16
        ):
            return ("precision", f"{o.gpu} ({spec.arch}) has no bf16; use precision: fp16")
        if c.require_nvlink and o.gpu_count > 1 and o.nvlink_domain < o.gpu_count:
            return ("nvlink", f"constraints.require_nvlink: {o.interconnect} does not join all "
                              f"{o.gpu_count} GPUs with NVLink")
        tp = min(need.tensor_parallel, o.gpu_count)
        if need.asks_tensor_parallel and tp > 1 and o.nvlink_domain < tp:
            return ("nvlink", f"tensor_parallel {need.tensor_parallel} needs NVLink between "
                              f"{tp} GPUs ({o.interconnect}: NVLink domain of "
                              f"{o.nvlink_domain})")
        return None

    def min_nodes(self, o: Offering) -> int | None:
        spec = self.spec(o)
        limit = self.criteria.max_nodes if o.multi_node else 1
        return self.need.min_nodes(o.gpu_count, self.capacity(spec), limit,
                                   shards_kv=spec.is_tpu)

    def memory_reason(self, o: Offering, nodes: int) -> tuple[str, str] | None:
        spec = self.spec(o)
        layout = self.layout(o, nodes)
        cap = self.capacity(spec)
        peak = self.need.peak_gb(layout)
        if peak <= cap:
            return None
        where = f"{nodes} × " if nodes > 1 else ""
        per_gpu = self.need.placed(layout)
        biggest = ", ".join(f"{k} {v:,.1f}" for k, v in
                            sorted(per_gpu.items(), key=lambda kv: -kv[1])[:3])
        text = (f"does not fit: {peak:,.1f} GB on the busiest GPU of {where}{o.gpu_count} × "
                f"{o.gpu} ({biggest}) > {cap:,.1f} GB usable of {spec.memory_gb:g} GB")
        if self.need.per_gpu_gb >= cap:
            text = (f"does not fit: {self.need.per_gpu_gb:.1f} GB per GPU (activations, "
                    f"overhead) > {cap:.1f} GB usable on {o.gpu}")
        return ("memory", text)

    def _numbers(self, o: Offering, spot: bool, nodes: int) -> tuple[float, float | None,
                                                                     float | None]:
        """(cluster $/h, hours, cost) for one configuration."""
        price = o.hourly(spot)
        assert price is not None
        c, need = self.criteria, self.need
        hours = training_hours(need, self.spec(o), o, nodes, c.mfu) if need.flops else c.hours
        cost = cost_usd(o, spot, nodes, hours) if hours is not None else None
        return price * nodes, hours, cost

    def violation(self, o: Offering, spot: bool, nodes: int) -> str | None:
        """The first rule this configuration breaks (its kind), or None. The fast path of
        :meth:`candidate`, used by the node-count searches."""
        c = self.criteria
        if self.hardware_reason(o) is not None:
            return "hardware"
        if nodes > 1 and not o.multi_node:
            return "multi_node"
        if not self.need.fits(self.layout(o, nodes), self.capacity(self.spec(o))):
            return "memory"
        cluster_price, hours, cost = self._numbers(o, spot, nodes)
        if (c.deadline_hours is not None and self.need.flops and hours is not None
                and hours > c.deadline_hours):
            return "deadline"
        if c.max_price_per_hour is not None and cluster_price > c.max_price_per_hour:
            return "max_price"
        if c.budget_usd is not None and cost is not None and cost > c.budget_usd:
            return "budget"
        return None

    def candidate(
        self, o: Offering, spot: bool, nodes: int, reason: tuple[str, str] | None = None
    ) -> Candidate:
        """Price, time and the first failing rule (with its explanation) for this
        configuration; ``reason`` overrides the rules when the caller already knows it."""
        spec = self.spec(o)
        c, need = self.criteria, self.need
        cluster_price, hours, cost = self._numbers(o, spot, nodes)
        layout = self.layout(o, nodes)
        load = need.peak_gb(layout)
        tps = (decode_tokens_per_s(need, spec, layout, c.context, c.batch)
               if need.kind == "inference" else None)
        if reason is None:
            kind = self.violation(o, spot, nodes)
            if kind == "hardware":
                reason = self.hardware_reason(o)
            elif kind == "multi_node":
                reason = (kind, f"{o.provider} {o.instance_type} cannot be joined into a "
                                f"cluster; {nodes} nodes are needed")
            elif kind == "memory":
                reason = self.memory_reason(o, nodes)
            elif kind == "deadline":
                reason = (kind, f"too slow: {hours:,.0f} h > deadline_hours "
                                f"{c.deadline_hours:,.0f} on {nodes} node"
                                f"{'s' if nodes > 1 else ''}")
            elif kind == "max_price":
                reason = (kind, f"over max_price_per_hour: ${cluster_price:,.2f}/h > "
                                f"${c.max_price_per_hour:,.2f}/h")
            elif kind == "budget":
                reason = (kind, f"over budget: ${cost:,.0f} > ${c.budget_usd:,.0f}")
        return Candidate(
            offering=o,
            spot=spot,
            nodes=nodes,
            price_per_hour=cluster_price,
            hours=hours,
            cost_usd=cost,
            load_per_gpu_gb=load,
            headroom=1.0 - load / spec.memory_gb,
            tokens_per_s=tps,
            rejected_because=reason[1] if reason else None,
            reason_kind=reason[0] if reason else None,
        )


def _cheapest(members: Iterable[Offering], criteria: Criteria) -> Offering | None:
    for o in members:
        if criteria.location_ok(o):
            return o
    return None


def _group_candidate(ev: _Evaluator, o: Offering, spot: bool) -> Candidate:
    """The best node count for one offering and market (see the module docstring)."""
    c = ev.criteria
    hw = ev.hardware_reason(o)
    if c.pin_nodes is not None:
        return ev.candidate(o, spot, c.pin_nodes, hw)
    n_min = ev.min_nodes(o)
    if n_min is None:  # shown at one node, with the reason for the largest cluster allowed
        return ev.candidate(o, spot, 1, hw or ev.memory_reason(o, c.max_nodes if o.multi_node
                                                                else 1))
    if hw is not None:
        return ev.candidate(o, spot, n_min, hw)
    n_max = c.max_nodes if o.multi_node else 1
    if o.billing_period == "month" and ev.need.flops:
        options = [ev.candidate(o, spot, n) for n in range(n_min, n_max + 1)]
        feasible = [x for x in options if x.feasible]
        return min(feasible, key=lambda x: rank_key(x, c)) if feasible else options[0]
    n_low = n_min
    if c.deadline_hours is not None and ev.need.flops:
        # hours fall as nodes grow: the deadline holds from some node count on
        def too_slow(n: int) -> bool:
            return ev.violation(o, spot, n) == "deadline"

        if too_slow(n_max):
            return ev.candidate(o, spot, n_max)
        n_low = first_true(n_min, n_max, lambda n: not too_slow(n))
    first = ev.candidate(o, spot, n_low)
    if not first.feasible or c.objective != "time" or not ev.need.flops:
        return first
    # price and budget grow with nodes: they hold up to some node count
    n_best = last_true(n_low, n_max, lambda n: ev.violation(o, spot, n) is None)
    return ev.candidate(o, spot, n_best) if n_best != n_low else first


def optimize(need: Need, catalog: Catalog, criteria: Criteria) -> Result:
    """The best configuration for ``need`` under ``criteria``, plus ranked alternatives and
    the rejected options with their reasons."""
    ev = _Evaluator(need, catalog, criteria)
    markets = criteria.markets()
    feasible: list[Candidate] = []
    rejected: list[Candidate] = []
    best_spot: Candidate | None = None
    considered = 0
    group: OfferingGroup
    spot_for_info = criteria.spot == "never" and criteria.pin_spot is None
    for group in catalog.groups:
        if not criteria.hardware_ok(group.head):
            continue
        for spot in (False, True):
            members = group.by_spot_price if spot else group.by_price
            if not members or (spot not in markets and not (spot and spot_for_info)):
                continue
            o = _cheapest(members, criteria)
            if o is None:
                continue
            considered += 1
            cand = _group_candidate(ev, o, spot)
            if spot not in markets:  # only to tell the user what spot would save
                if cand.feasible and (best_spot is None or
                                      rank_key(cand, criteria) < rank_key(best_spot, criteria)):
                    best_spot = cand
                continue
            (feasible if cand.feasible else rejected).append(cand)
    feasible.sort(key=lambda x: rank_key(x, criteria))
    rejected.sort(key=lambda x: (x.price_per_hour, rank_key(x, criteria)))
    return Result(
        need=need,
        criteria=criteria,
        choice=feasible[0] if feasible else None,
        ranked=feasible,
        rejected=rejected,
        best_spot=best_spot,
        considered=considered,
        gpu_memory={name: spec.memory_gb for name, spec in catalog.gpus.specs.items()},
    )


def brute_force(need: Need, catalog: Catalog, criteria: Criteria) -> Candidate | None:
    """Reference optimum by exhaustive enumeration (for tests; far slower than optimize)."""
    ev = _Evaluator(need, catalog, criteria)
    best: Candidate | None = None
    for o in catalog.offerings:
        if not criteria.hardware_ok(o) or not criteria.location_ok(o):
            continue
        for spot in criteria.markets():
            if o.hourly(spot) is None:
                continue
            counts = ([criteria.pin_nodes] if criteria.pin_nodes
                      else range(1, criteria.max_nodes + 1))
            for n in counts:
                cand = ev.candidate(o, spot, n)
                if cand.feasible and (best is None or
                                      rank_key(cand, criteria) < rank_key(best, criteria)):
                    best = cand
    return best
