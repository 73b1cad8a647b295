"""What every check function gets (HostContext) and the shared judging helpers."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provision.verify.artifacts import Artifact, read_artifact
from provision.verify.model import Check, Status
from provision.verify.reference import Bands, Metric, ReferenceTable, SkuReference

Overrides = dict[str, dict[str, float]]


@dataclass(slots=True)
class HostContext:
    """One host's artifacts and what the reference (plus the sku file) expects of it."""

    host: str
    directory: Path
    ref: SkuReference
    table: ReferenceTable
    expect_count: int  # GPUs (or TPU chips) this node should have
    expect_ib_ports: int  # InfiniBand ports this node should have (0: none)
    level: str
    overrides: Overrides = field(default_factory=dict)
    expected_driver: str | None = None
    _artifacts: dict[str, Artifact] = field(default_factory=dict)
    _parsed: dict[str, Any] = field(default_factory=dict)

    def artifact(self, name: str) -> Artifact:
        if name not in self._artifacts:
            self._artifacts[name] = read_artifact(self.directory, name)
        return self._artifacts[name]

    def parsed(self, name: str, parse: Callable[[str], Any]) -> Any:
        """``parse`` of an artifact's text, once per host: several checks read the GPU query."""
        if name not in self._parsed:
            self._parsed[name] = parse(self.artifact(name).text or "")
        return self._parsed[name]

    def bands(self, check: str) -> Bands:
        base = self.table.bands_for(check)
        o = self.overrides.get(check, {})
        if not o.keys() & {"fail_below", "warn_below"}:
            return base
        return Bands(fail_below=o.get("fail_below", base.fail_below),
                     warn_below=o.get("warn_below", base.warn_below),
                     source="override")

    def reference_override(self, check: str) -> float | None:
        return self.overrides.get(check, {}).get("reference")


def unavailable(names: list[str] | tuple[str, ...], problem: str, status: Status = "fail"
                ) -> list[Check]:
    """The same problem reported on every check a missing or unusable file feeds."""
    return [Check(name=n, status=status, detail=problem) for n in names]


def fmt(x: float) -> str:
    """A figure for a sentence: 3 significant digits, no trailing zeros."""
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def judge_metric(ctx: HostContext, name: str, measured: float, what: str,
                 metric: Metric | None = None, reference: float | None = None,
                 peak: float | None = None, source: str | None = None,
                 ceiling: float | None = None) -> Check:
    """Compare one measured figure with its reference and bands.

    ``what`` says which figure this is ("slowest GPU 3 host->device"); the reference comes from
    an override, the ``reference`` argument, or the SKU's metric, in that order. With no
    reference the figure is reported with its ratio to peak and the check is a skip. A figure
    that is not a finite non-negative number, or that is above what the SKU can physically do
    (``ceiling``, default the metric's ceiling), fails whatever the reference.
    """
    metric = metric if metric is not None else ctx.ref.metric(name)
    unit = metric.unit if metric else ""
    if not math.isfinite(measured) or measured < 0:
        return Check(name=name, status="fail", unit=unit,
                     detail=f"{what}: unusable output: {measured!r} is not a measurement")
    bound = ceiling if ceiling is not None else (metric.ceiling if metric else None)
    if bound is not None and measured > bound:
        return Check(name=name, status="fail", measured=measured, unit=unit,
                     detail=f"{what}: {fmt(measured)} {unit} is physically impossible on "
                            f"{ctx.ref.sku} (above {fmt(bound)} {unit}): corrupt output or "
                            "another SKU")
    override = ctx.reference_override(name)
    ref = override if override is not None else (
        reference if reference is not None else (metric.reference if metric else None))
    peak = peak if peak is not None else (metric.peak if metric else None)
    src = "override" if override is not None else (source or (metric.source if metric else None))
    to_peak = measured / peak if peak else None
    peak_text = f", {to_peak:.0%} of the {fmt(peak)} {unit} peak" if to_peak is not None else ""
    if ref is None:
        why = metric.source if metric else "no reference"
        return Check(name=name, status="skip", measured=measured, unit=unit,
                     ratio_to_peak=to_peak, source=src,
                     detail=f"{what}: {fmt(measured)} {unit}{peak_text}; not judged: {why}")
    ratio = measured / ref
    bands = ctx.bands(name)
    status = bands.status(ratio)
    line = ""
    if status != "pass":
        line = (f" (fails below {bands.fail_below:.0%}"
                + (f", warns below {bands.warn_below:.0%})"
                   if bands.warn_below > bands.fail_below else ")"))
    return Check(name=name, status=status, measured=measured, expected=ref, unit=unit,
                 ratio=ratio, ratio_to_peak=to_peak, source=src,
                 detail=f"{what}: {fmt(measured)} {unit} = {ratio:.0%} of the {fmt(ref)} {unit} "
                        f"reference{peak_text}{line}")


def list_some(items: list[str], limit: int = 6) -> str:
    """'a, b, c and 4 more' — keeps details readable on a 64-pair matrix."""
    if len(items) <= limit:
        return ", ".join(items)
    return ", ".join(items[:limit]) + f" and {len(items) - limit} more"


def index_problems(indices: Iterable[int], expect: int, what: str = "GPU") -> list[str]:
    """Why a per-GPU listing is not "each of 0..expect-1 exactly once" (empty when it is)."""
    counts = Counter(indices)
    problems = [f"{what} {i} listed {n} times" for i, n in sorted(counts.items()) if n > 1]
    extra = sorted(i for i in counts if not 0 <= i < expect)
    if extra:
        problems.append(f"{what} {list_some([str(i) for i in extra], 4)} beyond the "
                        f"{expect} expected")
    missing = [str(i) for i in range(expect) if i not in counts]
    if missing:
        problems.append(f"{what} {list_some(missing, 4)} missing")
    return problems


def unusable(names: list[str] | tuple[str, ...], file: str, problems: list[str],
             hint: str = "") -> list[Check]:
    """Every check a file feeds fails when the file holds numbers no tool prints."""
    detail = f"{file}: unusable output: {list_some(problems, 3)}" + (f"; {hint}" if hint else "")
    return [Check(name=n, status="fail", detail=detail) for n in names]
