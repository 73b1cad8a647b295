"""Row-remapping query: ``nvidia-smi --query-remapped-rows=gpu_bus_id,gpu_uuid,
remapped_rows.correctable,remapped_rows.uncorrectable,remapped_rows.pending,
remapped_rows.failure --format=csv,noheader``.

HBM GPUs (A100 and later) replace failing memory rows with spares; ``pending`` means a remap
waits for a GPU reset and ``failure`` that no spare was left. GPUs without row remapping print
``[N/A]``/``[Not Supported]`` (None here). Flags read Yes/No, True/False or 1/0.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field

from provision.verify.parsers.common import is_na, strip_ansi, to_int

FIELDS = ("gpu_bus_id", "gpu_uuid", "remapped_rows.correctable", "remapped_rows.uncorrectable",
          "remapped_rows.pending", "remapped_rows.failure")


@dataclass(frozen=True, slots=True)
class RemapRow:
    bus_id: str
    uuid: str | None
    correctable: int | None
    uncorrectable: int | None
    pending: bool | None
    failure: bool | None


@dataclass(slots=True)
class RemapResult:
    gpus: list[RemapRow] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _flag(token: str) -> bool | None:
    t = token.strip().lower()
    if is_na(t):
        return None
    if t in ("yes", "true", "1"):
        return True
    if t in ("no", "false", "0"):
        return False
    return None


def parse_remap(text: str) -> RemapResult:
    result = RemapResult()
    lines = [ln for ln in strip_ansi(text).splitlines() if ln.strip()]
    for cells in csv.reader(lines, skipinitialspace=True):
        cells = [c.strip() for c in cells]
        if len(cells) != len(FIELDS) or ":" not in cells[0]:
            result.errors.append(", ".join(cells))
            continue
        result.gpus.append(RemapRow(
            bus_id=cells[0], uuid=None if is_na(cells[1]) else cells[1],
            correctable=to_int(cells[2]), uncorrectable=to_int(cells[3]),
            pending=_flag(cells[4]), failure=_flag(cells[5]),
        ))
    return result
