"""What a cluster has cost so far: node-hours × price, kept in the cluster's state.

Each node's start time and hourly price are recorded when it is created; a replaced node's
hours stay counted. Local nodes cost nothing. The watch loop compares the spend with
``constraints.budget_usd`` and ``max_price_per_hour``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from provision.backends.base import NodeRecord
from provision.state import ClusterState


def _now() -> datetime:
    return datetime.now(UTC)


def node_price(outcome: Any | None, nodes: int) -> float:
    """USD per node-hour for the plan's choice (a TPU slice's price spread over its hosts)."""
    if outcome is None or outcome.choice is None or nodes == 0:
        return 0.0
    return outcome.choice.price_per_hour / nodes


def track(state: ClusterState, records: list[NodeRecord], price_per_node_hour: float) -> None:
    """Start the clock for new nodes, stop it (keeping the spend) for nodes that are gone."""
    billing = state.extra.setdefault("billing", {"price_per_node_hour": 0.0, "nodes": {},
                                                 "closed_usd": 0.0})
    billing["price_per_node_hour"] = price_per_node_hour
    now = _now()
    live = {r.name: r for r in records}
    for name, since in list(billing["nodes"].items()):
        if name not in live or live[name].instance_id != since.get("instance_id"):
            billing["closed_usd"] += _hours(since["at"], now) * since["price"]
            del billing["nodes"][name]
    for r in records:
        if r.name not in billing["nodes"]:
            billing["nodes"][r.name] = {"at": now.isoformat(), "price": price_per_node_hour,
                                        "instance_id": r.instance_id}


def spent_usd(state: ClusterState) -> float:
    billing = state.extra.get("billing")
    if not billing:
        return 0.0
    now = _now()
    running = sum(_hours(n["at"], now) * n["price"] for n in billing["nodes"].values())
    return billing["closed_usd"] + running


def price_per_hour(state: ClusterState) -> float:
    billing = state.extra.get("billing") or {}
    return sum(n["price"] for n in billing.get("nodes", {}).values())


def _hours(since: str, now: datetime) -> float:
    return max(0.0, (now - datetime.fromisoformat(since)).total_seconds() / 3600.0)
