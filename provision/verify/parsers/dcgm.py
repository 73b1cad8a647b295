"""``dcgmi diag -r N -j``: DCGM diagnostic results as JSON.

Two shapes exist. DCGM 3.x: ``{"DCGM GPU Diagnostic": {"test_categories": [{"category",
"tests": [{"name", "results": [{"gpu_ids": "0", "status": "Pass", "warnings": [...]}]}]}]}}``
(warnings are strings or ``{"warning": ...}`` objects). DCGM 4.x: ``{"DCGM Diagnostic":
{"test_categories": [... "results": [{"entity_group": "GPU", "entity_id": 0, "status",
"warnings": [{"warning", "error_id", ...}]}], "test_summary": {"status"}]}, "metadata":
{"version"}}``. Text before the JSON (a warning line) is skipped. Statuses are normalised to
pass | fail | warn | skip | notrun; any other status ("Error", "Fail (XID 79)", a number) is
``unknown`` and keeps its raw text, because a status nobody documented is not a pass. GPU ids
come as ``"0,1,2,3,4,5,6,7"`` (one result for several GPUs, DCGM 3), a number, or an
``entity_id`` (DCGM 4); they are read into ``gpus`` so the checks can match them with the node.
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
    gpus: tuple[int, ...] = ()  # the GPU indices the result covers (empty: node-wide/unknown)
    raw_status: str = ""


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

    def level_ran(self) -> int:
        """The -r level the tests that actually ran show (skipped tests do not count)."""
        ran = {r.test for r in self.results if r.status in ("pass", "fail", "warn", "unknown")}
        return max((lvl for lvl, names in LEVEL_MARKERS.items() if ran & names), default=1)


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


def _gpu_ids(value: Any) -> tuple[tuple[int, ...], bool]:
    """(GPU indices, readable) from DCGM's ``gpu_ids``/``entity_id`` in any of its shapes."""
    if isinstance(value, bool):
        return (), False
    if isinstance(value, int):
        return ((value,), True) if 0 <= value < 1 << 20 else ((), False)
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",") if p.strip()]
        if parts and all(re.fullmatch(r"[0-9]{1,6}", p) for p in parts):
            return tuple(int(p) for p in parts), True
        return (), False
    if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool)
                                       and 0 <= v < 1 << 20 for v in value):
        return tuple(value), True
    return (), False


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
    except (ValueError, RecursionError) as exc:
        diag.errors.append(f"not DCGM JSON: {str(exc)[:200]}")
        return diag
    if not isinstance(doc, dict):
        diag.errors.append("not DCGM JSON: the document is not an object")
        return diag
    root = doc.get("DCGM Diagnostic") or doc.get("DCGM GPU Diagnostic")
    if not isinstance(root, dict):
        diag.errors.append("no 'DCGM Diagnostic' (4.x) or 'DCGM GPU Diagnostic' (3.x) object")
        return diag
    meta = _dict(doc.get("metadata"))
    version = meta.get("version") or root.get("version")
    diag.version = str(version)[:40] if version is not None else None
    runtime_error = root.get("runtime_error") or doc.get("runtime_error")
    diag.runtime_error = str(runtime_error)[:300] if runtime_error else None
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
                diag.results.append(_result(r, name, cat))
    if not diag.results and not diag.runtime_error:
        diag.errors.append("the diagnostic reported no test results")
    return diag


def _result(r: dict[str, Any], test: str, category: str) -> DcgmResult:
    gpu = r.get("gpu_ids", r.get("gpu_id", r.get("entity_id")))
    group = r.get("entity_group")
    gpus: tuple[int, ...] = ()
    if group in (None, "GPU") and gpu is not None:
        gpus, readable = _gpu_ids(gpu)
        if not readable:
            gpu = f"unreadable id {str(gpu)[:20]!r}"
    elif group is not None:
        gpu = f"{str(group)[:20]} {str(gpu)[:20]}"
    raw = r.get("status")
    text = raw.strip() if isinstance(raw, str) else repr(raw)[:40]
    return DcgmResult(test=test, category=category, gpu=None if gpu is None else str(gpu)[:60],
                      status=_STATUS.get(text.lower(), "unknown"), messages=_messages(r),
                      gpus=gpus, raw_status=text[:40])
