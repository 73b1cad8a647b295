"""Capacity- and quota-aware launch: try the next zone, region and offering, leaving nothing.

A launch that fails because the zone has no capacity for the type right now
(InsufficientInstanceCapacity, ZONE_RESOURCE_POOL_EXHAUSTED, a TPU zone "out of capacity") or
because an account quota is too low does not end `provision up` when the cluster is new:

1. the failed attempt is rolled back — `pulumi destroy` of everything it created — so a
   partial cluster is never left running and billed (all-or-nothing: a multi-node launch either
   has every node or none);
2. the failure blocks its scope, as SkyPilot's failover does: capacity blocks the zone, a
   regional quota the region, a global quota (GCP GPUS_ALL_REGIONS) the provider;
3. the next placement is tried, in this order: the chosen offering in the other zones of its
   region, then in other regions (cheapest first), then the optimizer's next-best
   configurations — every one of them within the plan's constraints and budget (prices differ
   per location, so each is judged again) and with a software profile that works on it.

Every attempt is reported (placement, outcome, why, whether it was cleaned up); `up -o json`
lists them. An existing cluster is never moved: later runs (`up`, `recover`) keep the placement
it was launched at, even when the optimizer now prefers the zone that had no capacity, and a
failure while replacing one of its nodes is reported as it is.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from provision.backends.base import ClusterSpec, Event, NodeRecord, SshAccess
from provision.errors import InputError, ProvisionError

MAX_ATTEMPTS_ENV = "PROVISION_MAX_LAUNCH_ATTEMPTS"
MAX_ATTEMPTS = 10


@dataclass(frozen=True)
class Failure:
    kind: str  # capacity | quota
    scope: str  # zone | region | provider
    code: str  # the API's error code as it appeared


# (pattern, kind, scope), first match wins. Codes from the providers' documentation and from
# SkyPilot's failover handlers (sky/backends/cloud_vm_ray_backend.py, FailoverCloudErrorHandlerV2).
FAILURES: tuple[tuple[re.Pattern[str], str, str], ...] = tuple(
    (re.compile(p), kind, scope) for p, kind, scope in (
        # GCP: a global GPU quota fails every region alike
        (r"Quota '?GPUS_ALL_REGIONS'? exceeded", "quota", "provider"),
        (r"QUOTA_EXCEEDED|quotaExceeded|Quota '[^']+' (?:exceeded|exhausted)", "quota", "region"),
        # AWS: per-region account limits
        (r"VcpuLimitExceeded|MaxSpotInstanceCountExceeded|InstanceLimitExceeded", "quota",
         "region"),
        # capacity, per zone
        (r"InsufficientInstanceCapacity|InsufficientCapacityOnHost|UnfulfillableCapacity",
         "capacity", "zone"),
        (r"ZONE_RESOURCE_POOL_EXHAUSTED(?:_WITH_DETAILS)?|insufficientCapacity|"
         r"REGION_RESOURCE_POOL_EXHAUSTED", "capacity", "zone"),
        # Cloud TPU: gRPC RESOURCE_EXHAUSTED (code 8) "There is no more capacity in the zone"
        (r"RESOURCE_EXHAUSTED|no more capacity in the zone", "capacity", "zone"),
    ))


def classify(text: str) -> Failure | None:
    """Whether a launch error is about capacity or quota (worth trying elsewhere), and where."""
    for pattern, kind, scope in FAILURES:
        m = pattern.search(text)
        if m:
            return Failure(kind, scope, m.group(0))
    return None


@dataclass(frozen=True)
class Placement:
    """One place to try: a candidate configuration on a backend, and why it is on the list."""

    backend: str
    candidate: Any  # provision.optimizer.Candidate
    why: str

    @property
    def offering(self) -> Any:
        return self.candidate.offering

    def label(self) -> str:
        o = self.offering
        market = "spot" if self.candidate.spot else "on-demand"
        where = f"{o.zone} ({o.region})" if o.zone else o.region
        return (f"{o.provider} {self.candidate.nodes} × {o.instance_type} in {where}, {market}, "
                f"${self.candidate.price_per_hour:,.2f}/h")

    def blocked_by(self, blocked: set[tuple[str, str | None, str | None]]) -> bool:
        o = self.offering
        return bool({(o.provider, None, None), (o.provider, o.region, None),
                     (o.provider, o.region, o.zone)} & blocked)


@dataclass
class Attempt:
    placement: Placement
    status: str  # launched | capacity | quota | failed | skipped
    reason: str = ""
    cleaned_up: bool | None = None  # after a failure: was everything it created removed?

    def to_json(self) -> dict[str, Any]:
        o = self.placement.offering
        return {"provider": o.provider, "instance_type": o.instance_type, "region": o.region,
                "zone": o.zone or None, "nodes": self.placement.candidate.nodes,
                "spot": self.placement.candidate.spot,
                "price_per_hour": round(self.placement.candidate.price_per_hour, 4),
                "why": self.placement.why, "status": self.status, "reason": self.reason,
                "cleaned_up": self.cleaned_up}


@dataclass
class Launched:
    records: list[NodeRecord]
    backend: str
    outcome: Any  # the PlanOutcome whose choice is what was launched (None: local/baremetal)
    attempts: list[Attempt] = field(default_factory=list)

    def attempts_json(self) -> list[dict[str, Any]]:
        return [a.to_json() for a in self.attempts]


class LaunchFailed(ProvisionError):
    """No placement could be launched; ``attempts`` says what was tried and why it failed."""

    exit_code = 1

    def __init__(self, message: str, attempts: list[Attempt]) -> None:
        super().__init__(message)
        self.attempts = attempts

    def attempts_json(self) -> list[dict[str, Any]]:
        return [a.to_json() for a in self.attempts]


def with_choice(outcome: Any, candidate: Any) -> Any:
    """``outcome`` as if the optimizer had chosen ``candidate``."""
    if outcome.choice is candidate:
        return outcome
    return dataclasses.replace(outcome, result=dataclasses.replace(outcome.result,
                                                                   choice=candidate))


def _same_group(a: Any, b: Any) -> bool:
    return (a.provider, a.instance_type, a.gpu, a.gpu_count, a.hosts) == \
        (b.provider, b.instance_type, b.gpu, b.gpu_count, b.hosts)


def _location_key(choice: Any) -> Callable[[Any], tuple]:
    """Other zones of the chosen region first, then other regions; cheapest first."""
    o = choice.offering
    return lambda m: (m.region != o.region, m.hourly(choice.spot) or 0.0, m.region, m.zone)


def placements(loaded: Any, outcome: Any, target: str,
               limit: int | None = None) -> list[Placement]:
    """Where to launch, best first (see the module docstring)."""
    from provision.backends.registry import backend_name
    from provision.optimizer import _Evaluator, rank_key
    from provision.profile import plan_profiles

    limit = limit or int(os.environ.get(MAX_ATTEMPTS_ENV, MAX_ATTEMPTS))
    choice = outcome.choice
    result = outcome.result
    criteria = result.criteria
    evaluate = _Evaluator(result.need, outcome.catalog, criteria).candidate
    out = [Placement(target, choice, "the optimizer's choice")]
    seen = {(choice.offering, choice.spot, choice.nodes)}

    def add(candidate: Any, why: str) -> None:
        key = (candidate.offering, candidate.spot, candidate.nodes)
        if key in seen or not candidate.feasible or len(out) >= limit:
            return
        if loaded.plan.target == "auto":
            try:
                backend = backend_name("auto", candidate.offering.provider)
            except InputError:
                return
        elif candidate.offering.provider != choice.offering.provider:
            return
        else:
            backend = target
        try:  # the software profile must work there, or this is no fallback
            plan_profiles(loaded, with_choice(outcome, candidate))
        except InputError:
            return
        seen.add(key)
        out.append(Placement(backend, candidate, why))

    o = choice.offering
    members = [m for m in outcome.catalog.offerings
               if _same_group(m, o) and m.hourly(choice.spot) is not None
               and criteria.location_ok(m)]
    for m in sorted(members, key=_location_key(choice)):
        why = ("another zone of the same region" if m.region == o.region
               else "the same offering in another region")
        add(evaluate(m, choice.spot, choice.nodes), why)
    for alternative in sorted(result.ranked[1:], key=lambda c: rank_key(c, criteria)):
        add(alternative, "the optimizer's next-best configuration")
    return out


Backends = Callable[[str], Any]


def _where(offering: Any, spot: bool) -> tuple:
    return (offering.provider, offering.instance_type, offering.region, offering.zone or None,
            spot)


def existing_placement(loaded: Any, outcome: Any, target: str,
                       placed: list[dict[str, Any]] | None) -> Placement:
    """Where the cluster runs now: the placement its last launch succeeded at (looked up
    among today's placements, so the plan's node count still applies), else the choice."""
    done = [a for a in placed or [] if a.get("status") == "launched"]
    if done:
        want = (done[-1]["provider"], done[-1]["instance_type"], done[-1]["region"],
                done[-1]["zone"], done[-1]["spot"])
        for place in placements(loaded, outcome, target, limit=10_000):
            if _where(place.offering, place.candidate.spot) == want:
                return Placement(place.backend, place.candidate, "where the cluster runs")
    return Placement(target, outcome.choice, "where the cluster runs")


def launch(loaded: Any, spec: ClusterSpec, outcome: Any, target: str, *, fresh: bool,
           backends: Backends, event: Event, ssh: SshAccess | None = None,
           placed: list[dict[str, Any]] | None = None) -> Launched:
    """Make the cluster's nodes exist, failing over as the module docstring says.

    ``fresh``: the cluster has no nodes yet, so a failed attempt may be rolled back and
    another placement tried. ``backends`` gives the backend instance for a backend name.
    ``placed``: the attempts of the cluster's last launch (its state), to keep it where it is.
    """
    if outcome is None or outcome.choice is None:  # local and bare metal: one fixed place
        return Launched(backends(target).apply(spec, event), target, outcome)
    from provision.backends.pulumi_runner import PulumiFailed
    from provision.backends.specs import candidate_spec

    tries = placements(loaded, outcome, target) if fresh else \
        [existing_placement(loaded, outcome, target, placed)]
    attempts: list[Attempt] = []
    blocked: set[tuple[str, str | None, str | None]] = set()
    for place in tries:
        if place.blocked_by(blocked):
            attempts.append(Attempt(place, "skipped", "its zone, region or provider failed "
                                    "for capacity or quota already"))
            continue
        this = spec if place.candidate is outcome.choice else candidate_spec(
            loaded, ssh or spec.ssh, place.candidate, place.backend,
            refresh_image=spec.refresh_image)
        backend = backends(place.backend)
        event(f"launch: trying {place.label()} ({place.why})")
        try:
            records = backend.apply(this, event)
        except PulumiFailed as exc:
            failure = classify(str(exc))
            attempt = Attempt(place, failure.kind if failure else "failed",
                              _first_error(str(exc)))
            attempts.append(attempt)
            if not fresh:
                raise LaunchFailed(f"could not bring {spec.cluster} to its goal on "
                                   f"{place.label()}:\n  {attempt.reason}", attempts) from None
            _roll_back(backend, spec.cluster, attempts, event)
            if failure is None:
                raise LaunchFailed(f"launch of {spec.cluster} failed on {place.label()} "
                                   f"(not a capacity or quota error, so no other placement was "
                                   f"tried; what it created was removed: "
                                   f"{attempt.cleaned_up}):\n  {attempt.reason}",
                                   attempts) from None
            o = place.offering
            blocked.add((o.provider, None if failure.scope == "provider" else o.region,
                         o.zone if failure.scope == "zone" else None))
            event(f"launch: {failure.kind} ({failure.code}) on {place.label()}; rolled back, "
                  f"{failure.scope} blocked")
            continue
        attempts.append(Attempt(place, "launched"))
        return Launched(records, place.backend, with_choice(outcome, place.candidate), attempts)
    tried = sum(a.status != "skipped" for a in attempts)
    raise LaunchFailed(f"no placement for {spec.cluster} could be launched ({tried} tried, "
                       "each rolled back: nothing is left running); wait and retry, widen "
                       "constraints.regions, or allow spot / other GPUs", attempts)


def _roll_back(backend: Any, cluster: str, attempts: list[Attempt], event: Event) -> None:
    """All-or-nothing: remove whatever the failed (last) attempt created."""
    attempt = attempts[-1]
    event(f"launch: rolling back {cluster} on {attempt.placement.label()}")
    report = backend.destroy(cluster, event)
    attempt.cleaned_up = report.clean
    if not report.clean:
        raise LaunchFailed(f"the failed launch of {cluster} left resources behind: "
                           f"{', '.join(report.leftovers)}; remove them (`provision down "
                           f"{cluster} --yes` retries) before trying again", attempts)


def _first_error(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    picked = [ln for ln in lines if classify(ln)] or [ln for ln in lines if "error" in ln.lower()]
    return (picked or lines or [""])[0][:300]
