"""``tpu-check.json`` written by provision/verify/tpu_check.py on a TPU VM."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

FORMAT = "provision-tpu-check"


@dataclass(slots=True)
class TpuCheck:
    platform: str | None = None  # "tpu" on real hardware; "cpu" when forced onto host devices
    device_kind: str | None = None
    local_chips: int | None = None
    global_chips: int | None = None
    psum_correct: bool | None = None
    busbw_gbps: float | None = None
    algbw_gbps: float | None = None
    bytes_per_chip: int | None = None
    errors: list[str] = field(default_factory=list)


def _int(x: Any) -> int | None:
    """A count as JSON gives it; None for anything else, or a count no host can have."""
    ok = isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 1 << 53
    return x if ok else None


def _float(x: Any, name: str, errors: list[str]) -> float | None:
    if not isinstance(x, int | float) or isinstance(x, bool):
        return None
    if not math.isfinite(x) or x < 0:
        errors.append(f"unusable output: {name} is {x!r}, not a measurement")
        return None
    return float(x)


def parse_tpu_check(text: str) -> TpuCheck:
    out = TpuCheck()
    try:
        doc: dict[str, Any] = json.loads(text)
    except (ValueError, RecursionError) as exc:
        out.errors.append(f"not JSON: {exc}")
        return out
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        out.errors.append(f"not a {FORMAT} document")
        return out
    out.platform = str(doc["platform"]) if doc.get("platform") is not None else None
    out.device_kind = str(doc["device_kind"]) if doc.get("device_kind") is not None else None
    out.local_chips = _int(doc.get("local_chips"))
    out.global_chips = _int(doc.get("global_chips"))
    psum = doc.get("psum") if isinstance(doc.get("psum"), dict) else {}
    correct = psum.get("correct")
    out.psum_correct = correct if isinstance(correct, bool) else None
    out.busbw_gbps = _float(psum.get("busbw_gbps"), "psum.busbw_gbps", out.errors)
    out.algbw_gbps = _float(psum.get("algbw_gbps"), "psum.algbw_gbps", out.errors)
    out.bytes_per_chip = _int(psum.get("bytes_per_chip"))
    errors = doc.get("errors")
    out.errors.extend(str(e) for e in (errors if isinstance(errors, list) else []))
    return out
