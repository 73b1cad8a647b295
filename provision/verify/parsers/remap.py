"""Row-remapping query: ``nvidia-smi --query-remapped-rows=gpu_bus_id,gpu_uuid,
remapped_rows.correctable,remapped_rows.uncorrectable,remapped_rows.pending,
remapped_rows.failure --format=csv,noheader``.

HBM GPUs (A100 and later) replace failing memory rows with spares; ``pending`` means a remap
waits for a GPU reset and ``failure`` that no spare was left. GPUs without row remapping print
``[N/A]``/``[Not Supported]`` (None here). Flags read Yes/No, True/False or 1/0; counts that
are not whole non-negative numbers go to ``unusable`` with their line.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field

from provision.verify.parsers.common import is_na, lines, read_int

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
    line: int = 0


@dataclass(slots=True)
class RemapResult:
    gpus: list[RemapRow] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    unusable: list[str] = field(default_factory=list)


def _flag(token: str, where: str, sink: list[str]) -> bool | None:
    t = token.strip().lower()
    if is_na(t):
        return None
    if t in ("yes", "true", "1"):
        return True
    if t in ("no", "false", "0"):
        return False
    sink.append(f"{where}: {token[:40]!r} is not Yes/No")
    return None


def parse_remap(text: str) -> RemapResult:
    result = RemapResult()
    for number, raw in lines(text):
        if not raw.strip():
            continue
        try:
            cells = [c.strip() for c in next(csv.reader([raw], skipinitialspace=True))]
        except (csv.Error, StopIteration):
            result.errors.append(f"line {number}: not CSV")
            continue
        if len(cells) != len(FIELDS) or ":" not in cells[0]:
            result.errors.append(", ".join(cells)[:200])
            continue
        where = f"line {number}"
        result.gpus.append(RemapRow(
            bus_id=cells[0], uuid=None if is_na(cells[1]) else cells[1],
            correctable=read_int(cells[2], f"{where} correctable rows", result.unusable),
            uncorrectable=read_int(cells[3], f"{where} uncorrectable rows", result.unusable),
            pending=_flag(cells[4], f"{where} pending", result.unusable),
            failure=_flag(cells[5], f"{where} failure", result.unusable), line=number,
        ))
    return result
