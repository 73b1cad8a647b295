"""``dcgmi diag -r N -j``: DCGM diagnostic results as JSON.

Two shapes exist. DCGM 3.x: ``{"DCGM GPU Diagnostic": {"test_categories": [{"category",
"tests": [{"name", "results": [{"gpu_ids": "0", "status": "Pass", "warnings": [...]}]}]}]}}``
(warnings are strings or ``{"warning": ...}`` objects). DCGM 4.x: ``{"DCGM Diagnostic":
{"test_categories": [... "results": [{"entity_group": "GPU", "entity_id": 0, "status",
"warnings": [{"warning", "error_id", ...}]}], "test_summary": {"status"}]}, "metadata":
{"version"}}``. Text before the JSON (a warning line) is skipped. Statuses are normalised to
pass | fail | warn | skip | notrun.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

_STATUS = {"pass": "pass", "passed": "pass", "fail": "fail", "failed": "fail", "warn": "warn",
           "warning": "warn", "skip": "skip", "skipped": "skip", "not run": "notrun",
           "notrun": "notrun", "not_run": "notrun"}
# Test names DCGM 3 and 4 use for the plugins that only run at -r 2 or -r 3.
LEVEL_MARKERS: dict[int, frozenset[str]] = {
    2: frozenset({"pcie", "memory", "gpu_memory"}),
    3: frozenset({"diagnostic", "targeted_stress", "targeted_power", "memory_bandwidth",
                  "sm_stress"}),
}


@dataclass(frozen=True, slots=True)
class DcgmResult:
    test: str  # normalised: lower case, underscores ("memory_bandwidth")
    category: str
    gpu: str | None  # GPU id(s) as DCGM printed them; None for node-wide results
    status: str
    messages: tuple[str, ...]


@dataclass(slots=True)
class DcgmDiag:
    results: list[DcgmResult] = field(default_factory=list)
    version: str | None = None
    runtime_error: str | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def tests(self) -> set[str]:
        return {r.test for r in self.results}

    def level_run(self) -> int:
        """The -r level the result set shows (1 when only deployment/software tests ran)."""
        tests = self.tests
        return max((lvl for lvl, names in LEVEL_MARKERS.items() if tests & names), default=1)


def _dict(x: Any) -> dict[str, Any]:
    return x if isinstance(x, dict) else {}


def _list(x: Any) -> list[Any]:
    return x if isinstance(x, list) else []


def _norm_test(name: str) -> str:
    return re.sub(r"[\s-]+", "_", name.strip().lower())


def _messages(entry: dict[str, Any]) -> tuple[str, ...]:
    out = []
    for key in ("warnings", "errors"):
        for w in _list(entry.get(key)):
            if isinstance(w, dict):
                out.append(str(w.get("warning") or w.get("error") or json.dumps(w)))
            else:
                out.append(str(w))
    return tuple(out)


def _json_part(text: str) -> Any:
    start = text.find("{")
    end = text.rfind("}")
    if start < 0 or end < start:
        raise ValueError("no JSON object in the output")
    return json.loads(text[start:end + 1])


def parse_dcgm(text: str) -> DcgmDiag:
    diag = DcgmDiag()
    try:
        doc = _json_part(text)
    except ValueError as exc:
        diag.errors.append(f"not DCGM JSON: {exc}")
        return diag
    root = doc.get("DCGM Diagnostic") or doc.get("DCGM GPU Diagnostic")
    if not isinstance(root, dict):
        diag.errors.append("no 'DCGM Diagnostic' (4.x) or 'DCGM GPU Diagnostic' (3.x) object")
        return diag
    meta = _dict(doc.get("metadata"))
    diag.version = meta.get("version") or root.get("version")
    diag.runtime_error = root.get("runtime_error") or doc.get("runtime_error")
    for category in _list(root.get("test_categories")):
        cat = str(_dict(category).get("category", ""))
        for test in _list(_dict(category).get("tests")):
            if not isinstance(test, dict):
                continue  # DCGM 3 emits nulls between tests
            name = _norm_test(str(test.get("name", "")))
            results = _list(test.get("results"))
            if not results and isinstance(test.get("test_summary"), dict):
                results = [test["test_summary"]]
            for r in results:
                if not isinstance(r, dict):
                    continue
                gpu = r.get("gpu_ids", r.get("entity_id"))
                if r.get("entity_group") not in (None, "GPU"):
                    gpu = f"{r['entity_group']} {gpu}"
                raw = str(r.get("status", "")).strip().lower()
                diag.results.append(DcgmResult(
                    test=name, category=cat, gpu=None if gpu is None else str(gpu),
                    status=_STATUS.get(raw, "notrun"), messages=_messages(r)))
    if not diag.results and not diag.runtime_error:
        diag.errors.append("the diagnostic reported no test results")
    return diag
