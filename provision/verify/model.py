"""The verify report as typed values, and its JSON form.

JSON shape (stable; CI and the live `provision verify CLUSTER` read it):
``{"status": "pass|warn|fail", "hosts": {HOST: {"status", "checks": [CHECK, ...]}},
"cluster": {"status", "checks": [CHECK, ...]}}`` where CHECK is
``{"name", "status", "measured", "expected", "unit", "ratio", "ratio_to_peak", "detail",
"source"}``. ``status`` is pass | warn | fail | skip; a skip never changes the overall status.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["pass", "warn", "fail", "skip"]
STATUS_ORDER: dict[str, int] = {"skip": 0, "pass": 1, "warn": 2, "fail": 3}


def worst(statuses: list[str]) -> str:
    """Overall status of a set of checks: the worst of them; skips count as pass."""
    top = max((STATUS_ORDER[s] for s in statuses), default=STATUS_ORDER["pass"])
    return "pass" if top <= STATUS_ORDER["pass"] else ("warn" if top == 2 else "fail")


def _round(x: Any) -> Any:
    return round(x, 4) if isinstance(x, float) else x


@dataclass(slots=True)
class Check:
    """One judged figure or fact on one host (or the cluster)."""

    name: str  # e.g. "nccl.all_reduce"; keys of the overrides mapping
    status: Status
    detail: str  # a sentence a person can act on: what was seen, against what
    measured: float | int | str | None = None  # the figure judged (the worst one on the host)
    expected: float | int | str | None = None  # the reference it is compared with
    unit: str | None = None
    ratio: float | None = None  # measured / expected reference
    ratio_to_peak: float | None = None  # measured / datasheet or line-rate peak
    source: str | None = None  # where the expected figure comes from

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "status": self.status, "measured": _round(self.measured),
            "expected": _round(self.expected), "unit": self.unit, "ratio": _round(self.ratio),
            "ratio_to_peak": _round(self.ratio_to_peak), "detail": self.detail,
            "source": self.source,
        }


@dataclass(slots=True)
class HostReport:
    name: str
    sku: str | None
    checks: list[Check] = field(default_factory=list)

    @property
    def status(self) -> str:
        return worst([c.status for c in self.checks])

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "checks": [c.to_json() for c in self.checks]}


@dataclass(slots=True)
class ClusterReport:
    checks: list[Check] = field(default_factory=list)

    @property
    def status(self) -> str:
        return worst([c.status for c in self.checks])

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "checks": [c.to_json() for c in self.checks]}


@dataclass(slots=True)
class Report:
    """Everything `analyze()` found, per host and cluster-wide."""

    hosts: dict[str, HostReport]
    cluster: ClusterReport
    level: str
    directory: str

    @property
    def status(self) -> str:
        return worst([h.status for h in self.hosts.values()] + [self.cluster.status])

    def problems(self) -> list[tuple[str, Check]]:
        """(host or "_cluster", check) for every warn and fail, worst first."""
        found = [(h.name, c) for h in self.hosts.values() for c in h.checks]
        found += [("_cluster", c) for c in self.cluster.checks]
        bad = [(where, c) for where, c in found if c.status in ("warn", "fail")]
        return sorted(bad, key=lambda item: -STATUS_ORDER[item[1].status])

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "hosts": {name: h.to_json() for name, h in sorted(self.hosts.items())},
            "cluster": self.cluster.to_json(),
        }
