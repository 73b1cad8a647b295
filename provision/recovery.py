"""Notice lost nodes and bring the cluster back: replace only them, re-converge only them,
verify only them, restart the job.

A node is lost when the backend no longer lists it running (a deleted or stopped container, a
terminated or preempted instance). Recovery then:

1. asks the backend for the plan's nodes again — backends keep what exists and recreate what
   is missing, under the same names;
2. teaches every node the new membership (playbooks/membership.yml: /etc/hosts, SSH host keys);
3. converges site.yml on the replacement nodes only;
4. verifies the replacement nodes (when they have accelerators);
5. restarts the plan's job (checkpoints in the shared directory let it resume).

The time from noticing the loss to a verified replacement is recorded in the cluster's state.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provision.errors import InputError
from provision.orchestrator import (
    RunFailed,
    Ui,
    backend_for,
    converge,
    converge_failure_text,
    prepare,
    run_job,
)
from provision.plan.load import load_plan
from provision.state import ClusterState


@dataclass
class RecoverResult:
    cluster: str
    lost: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    seconds: float = 0.0  # from noticing the loss to a converged (and verified) replacement
    verify_status: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "lost": self.lost, "replaced": self.replaced,
                "seconds": round(self.seconds, 1), "verify": self.verify_status}


def lost_nodes(state: ClusterState) -> list[str]:
    """Recorded nodes the backend does not list as running, after it re-read the real world
    (a spot-terminated instance or a preempted TPU must not count as alive)."""
    from provision.backends.base import live_nodes

    live = {n.name for n in live_nodes(backend_for(state.target, state), state.name)}
    return [n.name for n in state.nodes if n.name not in live]


def recover(cluster: str, ui: Ui, *, state_root: Path | None = None,
            inventories: Path = Path("inventories")) -> RecoverResult:
    """Replace the cluster's lost nodes (see the module docstring); a no-op when none is."""
    with ClusterState.locked(cluster, "recover", state_root) as state:
        return recover_locked(state, ui, inventories=inventories)


def recover_locked(state: ClusterState, ui: Ui, *, inventories: Path) -> RecoverResult:
    """`recover` for a caller that already holds the cluster's lock (the watch loop)."""
    cluster = state.name
    if state.stopped:
        raise InputError(f"cluster {cluster!r} is stopped; `provision up` starts its nodes "
                         "again (recovery replaces lost nodes of a running cluster)")
    result = RecoverResult(cluster)
    lost = lost_nodes(state)
    result.lost = lost
    if not lost:
        return result
    noticed = time.monotonic()
    state.log(f"recover: lost {', '.join(lost)}")
    ui.step(f"recover: lost {', '.join(lost)}")
    loaded = load_plan(state.plan_file)
    outcome = None
    if loaded.plan.target in ("auto", "aws", "gcp"):
        from provision.planner import make_plan

        outcome = make_plan(loaded)
    prepared = prepare(loaded, state, ui, inventories=inventories, outcome=outcome)
    replaced = [n for n in lost if n in {r.name for r in prepared.records}]
    result.replaced = replaced
    membership = converge(prepared, ui, playbook="membership.yml")
    if not membership.ok:
        raise RunFailed(converge_failure_text(membership), result)
    site = converge(prepared, ui, limit=replaced)
    if not site.ok:
        raise RunFailed(converge_failure_text(site), result)
    settings = loaded.plan.verify
    if settings.enabled:
        from provision.verify_live import failure_text, verify_cluster

        run = verify_cluster(state, prepared.hosts_file, settings, progress=ui.progress,
                             limit=replaced)
        result.verify_status = run.report.status if run.report else None
        if run.failed:
            raise RunFailed(failure_text(run), result)
    result.seconds = time.monotonic() - noticed
    job = loaded.plan.job
    if job is not None and job.restart_on_recovery:
        run_job(prepared, ui, restart=True)
    state.record_stage("recover", lost=lost, replaced=replaced,
                       seconds=round(result.seconds, 1), verify=result.verify_status)
    return result
