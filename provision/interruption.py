"""The interruption marker a spot/preemptible node writes when its cloud announces that it is
going away, and how the orchestrator reads it.

The spot watcher on each node (playbooks/roles/spot_watcher) writes
``/var/lib/provision/interruption.json`` atomically, first when the notice arrives
(``hook_status: "running"``, or ``"none"`` without a checkpoint command) and again when the
checkpoint hook has finished. The file is JSON::

    {"version": 1, "provider": "aws" | "gcp",
     "action": "terminate" | "stop" | "hibernate" | "preempted" | "terminate-on-host-maintenance",
     "detail": "instance-action terminate at 2026-01-01T00:02:00Z",
     "noticed_at": "2026-01-01T00:00:00+00:00", "deadline": "2026-01-01T00:02:00+00:00",
     "seconds_left": 120, "hostname": "...", "boot_id": "...",
     "hook_status": "running" | "ok" | "failed" | "timed_out" | "none",
     "hook_exit_code": 0 | null, "hook_seconds": 3.2 | null, "handled": ["..."]}

A node that came back (a new boot) moves an old marker aside, so an existing marker always
means "this boot was told it ends at ``deadline``". Read it with :data:`READ_COMMAND` over SSH
(it prints nothing when there is no notice) and parse the output with :func:`parse`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

MARKER_PATH = "/var/lib/provision/interruption.json"
READ_COMMAND = f"cat {MARKER_PATH} 2>/dev/null || true"
HOOK_STATES = ("running", "ok", "failed", "timed_out", "none")


@dataclass(frozen=True)
class Interruption:
    """One node's notice: who announced it, what happens, by when, and how the hook went."""

    provider: str
    action: str
    noticed_at: datetime
    deadline: datetime
    hook_status: str  # running | ok | failed | timed_out | none
    hook_exit_code: int | None
    hostname: str = ""
    detail: str = ""

    def seconds_left(self, now: datetime | None = None) -> float:
        """Seconds until the node goes away (negative once the deadline has passed)."""
        return (self.deadline - (now or datetime.now(UTC))).total_seconds()

    @property
    def checkpointed(self) -> bool:
        """The checkpoint hook ran to a successful end."""
        return self.hook_status == "ok"

    def to_json(self) -> dict[str, Any]:
        return {"provider": self.provider, "action": self.action,
                "noticed_at": self.noticed_at.isoformat(), "deadline": self.deadline.isoformat(),
                "hook_status": self.hook_status, "hook_exit_code": self.hook_exit_code,
                "hostname": self.hostname, "detail": self.detail}


def _time(value: Any) -> datetime | None:
    try:
        t = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def parse(text: str) -> Interruption | None:
    """The marker's content as an :class:`Interruption`; None when there is no notice (empty
    output) or the content is not a marker (never raises: a half-read file is no notice)."""
    if not text.strip():
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    noticed, deadline = _time(data.get("noticed_at")), _time(data.get("deadline"))
    provider, action = data.get("provider"), data.get("action")
    if not (isinstance(provider, str) and isinstance(action, str) and noticed and deadline):
        return None
    status = data.get("hook_status")
    code = data.get("hook_exit_code")
    return Interruption(
        provider=provider, action=action, noticed_at=noticed, deadline=deadline,
        hook_status=status if status in HOOK_STATES else "none",
        hook_exit_code=code if isinstance(code, int) and not isinstance(code, bool) else None,
        hostname=str(data.get("hostname") or ""), detail=str(data.get("detail") or ""))
