"""plan.yaml `lifecycle:`: day-2 limits and what a node does when it is about to go away.

Two halves, read by different parts of provision:

- the orchestrator's watch loop enforces ``ttl`` and ``idle_minutes`` /
  ``idle_gpu_util_percent`` (``on_ttl`` / ``on_idle`` say whether it stops or removes the
  cluster);
- the nodes' roles get ``checkpoint_command``, ``notify_url``, ``poll_seconds`` and the idle
  figures as Ansible variables (:meth:`Lifecycle.role_vars`): the spot watcher runs the
  checkpoint command when the cloud announces an interruption, and the monitoring role's idle
  alert uses the same threshold as the watch loop.
"""

from __future__ import annotations

import re
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from provision.plan.schema_base import StrictModel

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd]?)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "": 60}  # a bare number is minutes


def duration_seconds(text: str) -> float:
    """Seconds in a duration: "90s", "45m", "8h", "2d", or a bare number of minutes."""
    m = _DURATION.match(text.strip().lower())
    if not m:
        raise ValueError(
            f"{text!r} is not a duration; write a number with a unit: 90s, 45m, 8h, 2d "
            "(a bare number is minutes)"
        )
    return float(m.group(1)) * _UNIT_SECONDS[m.group(2)]


class Lifecycle(StrictModel):
    """Time to live, idle limits and interruption handling for the cluster's nodes."""

    checkpoint_command: str | None = Field(
        None,
        min_length=1,
        description="Shell command the spot watcher runs on a node when its cloud announces "
        "an interruption (AWS spot instance-action, GCP preemption or terminating "
        "maintenance). It gets PROVISION_SECONDS_LEFT (seconds until the node goes away), "
        "PROVISION_INTERRUPTION_PROVIDER, _ACTION, _DEADLINE and _MARKER in its environment, "
        "runs once per notice and is killed when its time is up.",
    )
    checkpoint_timeout_seconds: int = Field(
        110,
        gt=0,
        le=3600,
        description="Longest the checkpoint command may run; it is also cut off at the "
        "interruption deadline (AWS gives 120 s, GCP preemption 30 s).",
    )
    notify_url: str | None = Field(
        None,
        description="Optional webhook (http or https): the spot watcher POSTs the "
        "interruption record (JSON) to it when a notice arrives and when the checkpoint "
        "command has finished.",
    )
    poll_seconds: float = Field(
        5.0,
        ge=1,
        le=60,
        description="How often the spot watcher asks the instance metadata service for a "
        "notice; it reacts within one interval.",
    )
    ttl: str | None = Field(
        None,
        description="Time to live of the whole cluster from its creation: 90m, 8h, 2d (a bare "
        "number is minutes). When it is reached the watch loop applies on_ttl.",
    )
    idle_minutes: int | None = Field(
        None,
        gt=0,
        le=100_000,
        description="End the cluster (on_idle) when every GPU has stayed below "
        "idle_gpu_util_percent for this many minutes. Also the duration of the monitoring "
        "role's idle-GPU alert.",
    )
    idle_gpu_util_percent: float = Field(
        5.0,
        ge=0,
        le=100,
        description="GPU utilisation (%) below which a GPU counts as idle.",
    )
    on_idle: Literal["stop", "down"] = Field(
        "stop",
        description="What the watch loop does to an idle cluster: stop (halt the nodes, keep "
        "disks and state; only storage is billed) or down (remove everything).",
    )
    on_ttl: Literal["stop", "down"] = Field(
        "down",
        description="What the watch loop does when ttl is reached: stop or down (see on_idle).",
    )

    @field_validator("ttl", mode="before")
    @classmethod
    def _ttl(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, bool):
            raise ValueError("ttl must be a duration such as 8h, not a boolean")
        if isinstance(value, int | float):
            value = f"{value}m"  # a bare number is minutes, as in the string form
        if not isinstance(value, str):
            raise ValueError("ttl must be a duration such as 90m, 8h or 2d")
        text = value.strip().lower()
        if duration_seconds(text) <= 0:
            raise ValueError("ttl must be longer than zero")
        return text

    @field_validator("notify_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{value!r} is not an http(s) URL, e.g. https://hooks.example/x")
        return value

    @property
    def ttl_seconds(self) -> float | None:
        """``ttl`` in seconds, or None when the cluster has no time to live."""
        return None if self.ttl is None else duration_seconds(self.ttl)

    def role_vars(self) -> dict[str, Any]:
        """Ansible variables for every node (group_vars/all.yml): what the spot_watcher and
        monitoring roles read from this section. Unset optional fields are left out so the
        roles' defaults apply."""
        out: dict[str, Any] = {
            "spot_watcher_poll_seconds": self.poll_seconds,
            "spot_watcher_checkpoint_timeout_seconds": self.checkpoint_timeout_seconds,
            "monitoring_idle_gpu_util_percent": self.idle_gpu_util_percent,
        }
        if self.checkpoint_command is not None:
            out["spot_watcher_checkpoint_command"] = self.checkpoint_command
        if self.notify_url is not None:
            out["spot_watcher_notify_url"] = self.notify_url
        if self.idle_minutes is not None:
            out["monitoring_idle_minutes"] = self.idle_minutes
        return out
