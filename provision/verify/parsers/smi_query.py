"""``nvidia-smi --query-gpu=... --format=csv,noheader,nounits`` (the collector's field order).

One CSV line per GPU. Unsupported fields print ``[N/A]`` or ``[Not Supported]``; they become
None. A unit left in a value (the query run without ``nounits``) is tolerated, and so is the
header line ``--format=csv`` prints (``index, name, uuid, memory.total [MiB], ...``): when it
is there, columns are mapped by its names, so a query with other fields in another order still
reads. Lines that are not GPU rows ("No devices were found", driver/library mismatch messages)
go to ``errors``; numbers no GPU reports (NaN, inf, negative) go to ``unusable`` with their line.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field

from provision.verify.parsers.common import is_na, is_uint, lines, read_int

FIELDS = ("index", "name", "uuid", "memory.total", "driver_version", "pcie.link.gen.current",
          "pcie.link.width.current", "ecc.errors.uncorrected.volatile.total")
_UNIT = re.compile(r"\s*(MiB|GiB|W|MHz|%)$")
_HEADER_UNIT = re.compile(r"\s*\[[^\]]*\]$")


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
    line: int = 0


@dataclass(slots=True)
class QueryResult:
    gpus: list[GpuRow] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    unusable: list[str] = field(default_factory=list)


def _header(cells: list[str]) -> list[str] | None:
    names = [_HEADER_UNIT.sub("", c.strip()) for c in cells]
    return names if names and names[0] == "index" and "name" in names else None


def parse_query_gpu(text: str) -> QueryResult:
    result = QueryResult()
    columns = list(FIELDS)
    for number, raw in lines(text):
        if not raw.strip():
            continue
        try:
            cells = next(csv.reader([raw], skipinitialspace=True))
        except (csv.Error, StopIteration):
            result.errors.append(f"line {number}: not CSV")
            continue
        cells = [c.strip() for c in cells]
        if (names := _header(cells)) is not None:
            columns = names
            continue
        if len(cells) != len(columns) or not is_uint(cells[0]):
            result.errors.append(", ".join(cells)[:200])
            continue
        value = dict(zip(columns, cells, strict=True))
        result.gpus.append(_row(value, number, result.unusable))
    return result


def _row(value: dict[str, str], number: int, sink: list[str]) -> GpuRow:
    def integer(name: str) -> int | None:
        token = value.get(name)
        if token is None:
            return None
        return read_int(_UNIT.sub("", token), f"line {number} {name}", sink)

    def text(name: str) -> str | None:
        token = value.get(name)
        return None if token is None or is_na(token) else token

    return GpuRow(
        index=int(value["index"]), name=value.get("name", ""), uuid=text("uuid"),
        memory_mib=integer("memory.total"), driver=text("driver_version"),
        pcie_gen=integer("pcie.link.gen.current"), pcie_width=integer("pcie.link.width.current"),
        ecc_uncorrected=integer("ecc.errors.uncorrected.volatile.total"), line=number,
    )
