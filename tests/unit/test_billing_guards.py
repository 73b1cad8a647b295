"""Spend tracking and the watch loop's guards (budget, time to live, idle)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from provision.backends.base import NodeRecord
from provision.billing import price_per_hour, spent_usd, track
from provision.lifecycle_guards import lifecycle_reason
from provision.plan.lifecycle import Lifecycle
from provision.state import ClusterState
from provision.watch import guard


def node(name: str, instance: str) -> NodeRecord:
    return NodeRecord(name=name, address="10.0.0.1", ssh_user="root", sku="h100-sxm-80gb",
                      provider="aws", instance_id=instance)


def state_with_plan(tmp_path: Path, plan: str) -> ClusterState:
    state = ClusterState.open("c1", tmp_path)
    state.plan_file.parent.mkdir(parents=True, exist_ok=True)
    state.plan_file.write_text(plan)
    state.save()
    return state


def backdate(state: ClusterState, hours: float) -> None:
    for n in state.extra["billing"]["nodes"].values():
        n["at"] = (datetime.fromisoformat(n["at"]) - timedelta(hours=hours)).isoformat()


def test_spend_counts_node_hours_and_keeps_replaced_nodes(tmp_path):
    state = ClusterState.open("c1", tmp_path)
    track(state, [node("c1-1", "i-1"), node("c1-2", "i-2")], 10.0)
    assert price_per_hour(state) == 20.0
    backdate(state, 2.0)
    assert spent_usd(state) == pytest.approx(40.0, rel=1e-3)
    track(state, [node("c1-1", "i-1"), node("c1-2", "i-9")], 10.0)  # c1-2 was replaced
    backdate(state, 1.0)
    # c1-1: 3 h; the old c1-2: 2 h (closed); the new c1-2: 1 h
    assert spent_usd(state) == pytest.approx(60.0, rel=1e-3)


def test_budget_guard_fires_once_the_spend_reaches_it(tmp_path):
    plan = ("name: c1\nworkload:\n  kind: training\n  model: llama-3-8b\n  tokens_b: 1\n"
            "constraints:\n  budget_usd: 50\n")
    state = state_with_plan(tmp_path, plan)
    track(state, [node("c1-1", "i-1")], 10.0)
    assert guard(state) is None
    backdate(state, 6.0)
    action, why = guard(state)
    assert action == "stop"
    assert why.startswith("budget reached: $60.00 spent of constraints.budget_usd")


def test_ttl_guard(tmp_path):
    class Plan:
        lifecycle = Lifecycle(ttl="1h", on_ttl="down")

    state = ClusterState.open("c1", tmp_path)
    assert lifecycle_reason(state, Plan()) is None
    state.created = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    action, why = lifecycle_reason(state, Plan())
    assert action == "down" and why.startswith("lifecycle.ttl 1h reached: up for 2.00 h")


def test_no_lifecycle_no_guard(tmp_path):
    class Plan:
        lifecycle = None

    assert lifecycle_reason(ClusterState.open("c1", tmp_path), Plan()) is None


@pytest.mark.parametrize("target", ["aws", "gcp", "baremetal"])
def test_stop_says_what_to_do_where_nodes_cannot_be_stopped(tmp_path, target):
    from provision.errors import InputError
    from provision.orchestrator import Ui, stop

    state = ClusterState.open("c1", tmp_path)
    state.target = target
    state.save()
    with pytest.raises(InputError, match=f"the {target} backend cannot stop nodes; use "
                                         "`provision down`"):
        stop("c1", Ui(step=lambda m: None), state_root=tmp_path)
    assert not ClusterState.load("c1", tmp_path).stopped
