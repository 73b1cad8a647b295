"""`provision up --watch` / `provision watch CLUSTER`: keep a cluster at its goal.

Every interval: replace lost nodes (provision.recovery), then apply the plan's guards:
``constraints.budget_usd`` against the spend so far (provision.billing) and the lifecycle
limits (time to live, idle GPUs). A guard that fires tears the cluster down (or stops it,
where the backend can) and ends the loop. The loop is bounded: it ends after ``duration``
seconds when one is given, and on Ctrl-C.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from provision.billing import spent_usd
from provision.interruption import READ_COMMAND, Interruption, parse
from provision.node_ssh import close_shells, run_on_all
from provision.orchestrator import Ui, backend_for, down_locked, stop_locked
from provision.plan.load import load_plan
from provision.recovery import RecoverResult, recover_locked
from provision.state import ClusterState


@dataclass
class WatchResult:
    cluster: str
    recoveries: list[RecoverResult] = field(default_factory=list)
    stopped_because: str | None = None  # the guard that ended the cluster, if one did


def guard(state: ClusterState) -> tuple[str, str] | None:
    """(action, why) when the cluster must end now: ``stop`` or ``down``."""
    plan = load_plan(state.plan_file).plan
    budget = plan.constraints.budget_usd
    if budget is not None:
        spent = spent_usd(state)
        if spent >= budget:
            return "stop", (f"budget reached: ${spent:,.2f} spent of "
                            f"constraints.budget_usd ${budget:,.2f}")
    from provision.lifecycle_guards import lifecycle_reason

    return lifecycle_reason(state, plan)


def notices(state: ClusterState, ui: Ui) -> dict[str, Interruption]:
    """Interruption notices on spot nodes (markers the spot watcher wrote), logged once each."""
    seen = state.extra.setdefault("interruptions", {})
    found: dict[str, Interruption] = {}
    spot = [n for n in state.nodes if n.spot]
    answers = run_on_all(state, spot, READ_COMMAND)
    for node in spot:
        out = answers.get(node.name)
        notice = parse(out) if out else None
        if notice is None:
            continue
        found[node.name] = notice
        if seen.get(node.name) != notice.noticed_at.isoformat():
            seen[node.name] = notice.noticed_at.isoformat()
            message = (f"watch: {node.name}: {notice.provider} announced {notice.action}, "
                       f"{notice.seconds_left():.0f} s left, checkpoint {notice.hook_status}")
            ui.step(message)
            state.log(message)
            state.save()
    return found


def watch(cluster: str, ui: Ui, *, interval: float = 30.0, duration: float | None = None,
          state_root: Path | None = None, inventories: Path = Path("inventories"),
          clock: Callable[[], float] = time.monotonic,
          sleep: Callable[[float], None] = time.sleep) -> WatchResult:
    """Run the loop described in the module docstring."""
    try:
        return _loop(cluster, ui, interval, duration, state_root, inventories, clock, sleep)
    finally:
        close_shells()  # the probes' pooled connections


def _loop(cluster: str, ui: Ui, interval: float, duration: float | None,
          state_root: Path | None, inventories: Path, clock: Callable[[], float],
          sleep: Callable[[float], None]) -> WatchResult:
    result = WatchResult(cluster)
    deadline = None if duration is None else clock() + duration
    while True:
        if ClusterState.load(cluster, state_root) is None:
            result.stopped_because = "the cluster is gone"
            return result
        # one locked pass: state read after the lock, every save made while holding it; the
        # lock is released between passes so `status`, `verify` or `down` can run meanwhile
        with ClusterState.locked(cluster, "watch", state_root) as state:
            ended = _pass(state, ui, result, inventories)
        if ended:
            result.stopped_because = ended
            return result
        if deadline is not None and clock() >= deadline:
            return result
        sleep(interval)


def _pass(state: ClusterState, ui: Ui, result: WatchResult, inventories: Path) -> str | None:
    """One check of the loop (with the lock held); why the cluster ended, if it did."""
    if state.stopped:
        return "the cluster is stopped (`provision up` starts it)"
    rec = recover_locked(state, ui, inventories=inventories)
    if rec.lost:
        result.recoveries.append(rec)
        ui.step(f"watch: replaced {', '.join(rec.replaced)} in {rec.seconds:.0f} s")
    notices(state, ui)
    verdict = guard(state)
    if not verdict:
        return None
    action, reason = verdict
    backend = backend_for(state.target, state)
    if action == "stop" and not backend.capabilities.get("stop"):
        action = "down"
        reason += f" (the {state.target} backend cannot stop nodes, so: down)"
    ui.step(f"watch: {reason}; {action}")
    state.log(f"watch: {reason}; {action}")
    if action == "stop":
        stop_locked(state, ui)
    else:
        down_locked(state, ui, inventories=inventories)
    return f"{reason} ({action})"
