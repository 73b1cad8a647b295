"""Lifecycle guards: a cluster that outlived its time to live, or whose GPUs sat idle too
long, is ended by the watch loop — idle GPU instances are the classic money leak.

Idle is measured on the nodes themselves (``nvidia-smi --query-gpu=utilization.gpu`` over the
cluster's SSH key, bounded timeouts); the time a cluster has been idle is kept in its state so
a restarted watch loop carries on counting.
"""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime
from typing import Any

from provision.state import ClusterState

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "": 60}


def seconds(value: Any) -> float | None:
    """A duration from plan.yaml: seconds as a number, or '90m', '8h', '2d' (bare = minutes)."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if hasattr(value, "total_seconds"):
        return float(value.total_seconds())
    m = _DURATION.match(str(value))
    if not m:
        raise ValueError(f"not a duration: {value!r}")
    return float(m.group(1)) * _UNIT[m.group(2)]


def _age_seconds(state: ClusterState) -> float:
    return (datetime.now(UTC) - datetime.fromisoformat(state.created)).total_seconds()


def gpu_utilisation(state: ClusterState, timeout: float = 15.0) -> list[float] | None:
    """Utilisation (%) of every GPU of every accelerator node, or None when there is none
    or a node did not answer (an unknown is never taken for idle)."""
    key = state.ssh_dir / "id_ed25519"
    values: list[float] = []
    nodes = [n for n in state.nodes if n.sku != "cpu" and not n.sku.startswith("tpu-")]
    if not nodes:
        return None
    for n in nodes:
        cmd = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
               "-o", "UserKnownHostsFile=/dev/null", "-o", f"ConnectTimeout={int(timeout)}",
               "-p", str(n.ssh_port), *(["-i", str(key)] if key.exists() else []),
               f"{n.ssh_user}@{n.address}",
               "nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 5)
        except subprocess.TimeoutExpired:
            return None
        if proc.returncode != 0:
            return None
        try:
            values += [float(x.strip().rstrip("%")) for x in proc.stdout.splitlines()
                       if x.strip()]
        except ValueError:
            return None
    return values or None


def lifecycle_reason(state: ClusterState, plan: Any) -> str | None:
    """Why the plan's lifecycle says the cluster must end now, or None."""
    life = getattr(plan, "lifecycle", None)
    if life is None:
        return None
    ttl = seconds(getattr(life, "ttl", None))
    if ttl is not None and _age_seconds(state) >= ttl:
        return f"lifecycle.ttl reached: up for {_age_seconds(state) / 3600:.2f} h"
    idle_minutes = getattr(life, "idle_minutes", None)
    if not idle_minutes:
        return None
    threshold = float(getattr(life, "idle_gpu_util_percent", 5.0) or 0.0)
    util = gpu_utilisation(state)
    now = datetime.now(UTC)
    if util is None or max(util) >= threshold:
        state.extra.pop("idle_since", None)
        state.save()
        return None
    since = state.extra.setdefault("idle_since", now.isoformat())
    state.save()
    idle = (now - datetime.fromisoformat(since)).total_seconds() / 60
    if idle >= idle_minutes:
        return (f"lifecycle.idle_minutes reached: every GPU below {threshold:g} % for "
                f"{idle:.1f} min")
    return None
