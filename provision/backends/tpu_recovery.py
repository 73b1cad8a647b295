"""Recreate preempted TPU slices through their stack.

A spot or preemptible TPU that Google reclaims stays in the project as state PREEMPTED (or
TERMINATED) and never comes back by itself; its workers are gone. Recovery is: refresh the
stack so Pulumi sees the TPU's real state, decide per slice (:func:`decide`), and for each slice
to recreate run `pulumi up --replace <urn>` — the TPU resource is ``delete_before_replace``, so
the old slice is deleted and a new one with the same name and settings is created.

The decision is a table over the TPU API's node states, kept apart from the mechanics so it is
testable on its own and the next stage (health checks / auto-recovery) can reuse it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from provision.backends.base import Event
from provision.backends.pulumi_runner import StackProgram

TPU_TYPE = "gcp:tpu/v2Vm:V2Vm"
QUEUED_KIND = "tpu-queued-resource"  # stacks/tpu_queued.py's dynamic resource


class Action(StrEnum):
    KEEP = "keep"  # healthy
    WAIT = "wait"  # in transition; look again later
    RECREATE = "recreate"  # gone for good: delete and create again
    REPORT = "report"  # needs a human (or a start call), not a recreate


# TPU node states (tpu.googleapis.com v2 Node.State) → what to do.
STATE_ACTIONS: dict[str, Action] = {
    "READY": Action.KEEP,
    "CREATING": Action.WAIT,
    "RESTARTING": Action.WAIT,
    "REIMAGING": Action.WAIT,
    "REPAIRING": Action.WAIT,
    "STARTING": Action.WAIT,
    "STOPPING": Action.WAIT,
    "DELETING": Action.WAIT,
    "UNHIDING": Action.WAIT,
    "PREEMPTED": Action.RECREATE,
    "TERMINATED": Action.RECREATE,
    "STOPPED": Action.REPORT,  # a user stopped it; starting keeps its disks
    "HIDING": Action.REPORT,
    "HIDDEN": Action.REPORT,
    "STATE_UNSPECIFIED": Action.REPORT,
}
MAX_RECREATES = 3  # per slice and recovery episode, so a zone without capacity cannot loop


@dataclass(frozen=True)
class Decision:
    slice: str
    state: str | None
    action: Action
    reason: str


def decide(name: str, state: str | None, *, attempts: int = 0,
           max_attempts: int = MAX_RECREATES) -> Decision:
    """What to do with one slice in ``state`` (None: missing from the project)."""
    if state is None:
        action, why = Action.RECREATE, "missing from the project"
    else:
        action = STATE_ACTIONS.get(state.upper(), Action.REPORT)
        why = f"state {state}"
    if action is Action.RECREATE and attempts >= max_attempts:
        return Decision(name, state, Action.REPORT,
                        f"{why}; recreated {attempts} times already, giving up (no capacity?)")
    return Decision(name, state, action, why)


class StackRunner(Protocol):
    """The part of PulumiRunner recovery uses."""

    def refresh(self, target: StackProgram, event: Event) -> None: ...

    def resources(self, target: StackProgram) -> list[dict[str, Any]]: ...

    def outputs(self, target: StackProgram) -> dict[str, Any]: ...

    def up(self, target: StackProgram, event: Event,
           replace: list[str] | None = None) -> dict[str, Any]: ...


def tpu_states(resources: Sequence[dict[str, Any]]) -> dict[str, tuple[str, str | None]]:
    """slice name → (urn, state) from a refreshed stack's resources."""
    out = {}
    for r in resources:
        outputs = r.get("outputs") or {}
        if r.get("type") == TPU_TYPE or outputs.get("kind") == QUEUED_KIND:
            out[outputs.get("name") or r["urn"].rsplit("::", 1)[-1]] = (r["urn"],
                                                                          outputs.get("state"))
    return out


def recreate_preempted(runner: StackRunner, program: StackProgram, event: Event,
                       attempts: dict[str, int] | None = None) -> list[Decision]:
    """Refresh, decide per slice, and replace the slices that must be recreated in one `up`.

    ``program`` must carry the stack's program (the plan's), because recreating runs it.
    ``attempts`` counts earlier recreations per slice in this recovery episode (updated).
    Returns every decision, so the caller can report waits and give-ups.
    """
    attempts = attempts if attempts is not None else {}
    expected = [t["name"] for t in runner.outputs(program).get("tpus") or []]
    runner.refresh(program, event)
    states = tpu_states(runner.resources(program))
    # a slice deleted outside Pulumi drops out of state on refresh: a plain up recreates it
    names = sorted(set(expected) | set(states))
    decisions = [decide(name, states[name][1] if name in states else None,
                        attempts=attempts.get(name, 0)) for name in names]
    recreate = [d for d in decisions if d.action is Action.RECREATE]
    replace = [states[d.slice][0] for d in recreate if d.slice in states]
    for d in decisions:
        event(f"TPU {d.slice}: {d.action.value} ({d.reason})")
    if recreate:
        runner.up(program, event, replace=replace)
        for d in decisions:
            if d.action is Action.RECREATE:
                attempts[d.slice] = attempts.get(d.slice, 0) + 1
    return decisions
