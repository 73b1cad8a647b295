"""``nvidia-smi --query-gpu=... --format=csv,noheader,nounits`` (the collector's field order).

One CSV line per GPU. Unsupported fields print ``[N/A]`` or ``[Not Supported]``; they become
None. A unit left in a value (the query run without ``nounits``) is tolerated. Lines that are
not GPU rows ("No devices were found", driver/library mismatch messages) go to ``errors``.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field

from provision.verify.parsers.common import is_na, strip_ansi, to_int

FIELDS = ("index", "name", "uuid", "memory.total", "driver_version", "pcie.link.gen.current",
          "pcie.link.width.current", "ecc.errors.uncorrected.volatile.total")
_UNIT = re.compile(r"\s*(MiB|GiB|W|MHz|%)$")


@dataclass(frozen=True, slots=True)
class GpuRow:
    index: int
    name: str
    uuid: str | None
    memory_mib: int | None
    driver: str | None
    pcie_gen: int | None
    pcie_width: int | None
    ecc_uncorrected: int | None  # volatile (since driver load); None when not reported


@dataclass(slots=True)
class QueryResult:
    gpus: list[GpuRow] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _num(token: str) -> int | None:
    return to_int(_UNIT.sub("", token.strip()))


def parse_query_gpu(text: str) -> QueryResult:
    result = QueryResult()
    lines = [ln for ln in strip_ansi(text).splitlines() if ln.strip()]
    for cells in csv.reader(lines, skipinitialspace=True):
        line = ", ".join(cells)
        if len(cells) != len(FIELDS) or not cells[0].strip().isdigit():
            result.errors.append(line.strip())
            continue
        cells = [c.strip() for c in cells]
        result.gpus.append(GpuRow(
            index=int(cells[0]), name=cells[1], uuid=None if is_na(cells[2]) else cells[2],
            memory_mib=_num(cells[3]), driver=None if is_na(cells[4]) else cells[4],
            pcie_gen=_num(cells[5]), pcie_width=_num(cells[6]), ecc_uncorrected=_num(cells[7]),
        ))
    return result
