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
from provision.orchestrator import Ui, down
from provision.plan.load import load_plan
from provision.recovery import RecoverResult, recover
from provision.state import ClusterState


@dataclass
class WatchResult:
    cluster: str
    recoveries: list[RecoverResult] = field(default_factory=list)
    stopped_because: str | None = None  # the guard that ended the cluster, if one did


def guard(state: ClusterState) -> str | None:
    """Why the cluster must end now, or None."""
    plan = load_plan(state.plan_file).plan
    budget = plan.constraints.budget_usd
    if budget is not None:
        spent = spent_usd(state)
        if spent >= budget:
            return f"budget reached: ${spent:,.2f} spent of constraints.budget_usd ${budget:,.2f}"
    from provision.lifecycle_guards import lifecycle_reason

    return lifecycle_reason(state, plan)


def watch(cluster: str, ui: Ui, *, interval: float = 30.0, duration: float | None = None,
          state_root: Path | None = None, inventories: Path = Path("inventories"),
          clock: Callable[[], float] = time.monotonic,
          sleep: Callable[[float], None] = time.sleep) -> WatchResult:
    """Run the loop described in the module docstring."""
    result = WatchResult(cluster)
    deadline = None if duration is None else clock() + duration
    while True:
        rec = recover(cluster, ui, state_root=state_root, inventories=inventories)
        if rec.lost:
            result.recoveries.append(rec)
            ui.step(f"watch: replaced {', '.join(rec.replaced)} in {rec.seconds:.0f} s")
        state = ClusterState.load(cluster, state_root)
        if state is None:
            result.stopped_because = "the cluster is gone"
            return result
        reason = guard(state)
        if reason:
            ui.step(f"watch: {reason}; tearing the cluster down")
            state.log(f"watch: {reason}")
            down(cluster, ui, state_root=state_root, inventories=inventories)
            result.stopped_because = reason
            return result
        if deadline is not None and clock() >= deadline:
            return result
        sleep(interval)
