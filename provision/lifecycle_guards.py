"""Lifecycle guards: a cluster that outlived its time to live, or whose GPUs sat idle too
long, is ended by the watch loop — idle GPU instances are the classic money leak.

Idle is measured on the nodes themselves (``nvidia-smi --query-gpu=utilization.gpu`` over the
cluster's SSH key, bounded timeouts); the time a cluster has been idle is kept in its state so
a restarted watch loop carries on counting. Durations come from plan.yaml's lifecycle section
(provision.plan.lifecycle).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from provision.node_ssh import run_on_all
from provision.state import ClusterState


def _age_seconds(state: ClusterState) -> float:
    return (datetime.now(UTC) - datetime.fromisoformat(state.created)).total_seconds()


def gpu_utilisation(state: ClusterState) -> list[float] | None:
    """Utilisation (%) of every GPU of every GPU node, or None when there is none or a node
    did not answer (an unknown is never taken for idle)."""
    nodes = [n for n in state.nodes if n.sku != "cpu" and not n.sku.startswith("tpu-")]
    if not nodes:
        return None
    values: list[float] = []
    answers = run_on_all(state, nodes, "nvidia-smi --query-gpu=utilization.gpu "
                                       "--format=csv,noheader,nounits")
    for n in nodes:
        out = answers.get(n.name)
        if out is None:
            return None
        try:
            values += [float(x.strip().rstrip("%")) for x in out.splitlines() if x.strip()]
        except ValueError:
            return None
    return values or None


def lifecycle_reason(state: ClusterState, plan: Any) -> tuple[str, str] | None:
    """(action, why) when the plan's lifecycle says the cluster must end now; action is
    ``stop`` or ``down`` (lifecycle.on_ttl / on_idle)."""
    life = plan.lifecycle
    if life is None:
        return None
    ttl = life.ttl_seconds
    if ttl is not None and _age_seconds(state) >= ttl:
        return life.on_ttl, (f"lifecycle.ttl {life.ttl} reached: up for "
                             f"{_age_seconds(state) / 3600:.2f} h")
    if not life.idle_minutes:
        return None
    util = gpu_utilisation(state)
    now = datetime.now(UTC)
    if util is None or max(util) >= life.idle_gpu_util_percent:
        if state.extra.pop("idle_since", None) is not None:
            state.save()
        return None
    since = state.extra.setdefault("idle_since", now.isoformat())
    state.save()
    idle = (now - datetime.fromisoformat(since)).total_seconds() / 60
    if idle >= life.idle_minutes:
        return life.on_idle, (f"lifecycle.idle_minutes reached: every GPU below "
                              f"{life.idle_gpu_util_percent:g} % for {idle:.1f} min")
    return None
