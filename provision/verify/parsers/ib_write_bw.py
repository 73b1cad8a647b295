"""``ib_write_bw`` (perftest) output, one or more runs appended in one file.

Each run prints a banner (``RDMA_Write BW Test``) whose settings include ``Device : mlx5_0``,
then a table ``#bytes #iterations BW peak[Gb/sec] BW average[Gb/sec] MsgRate[Mpps]`` with
``--report_gbits`` (``[MB/sec]`` without it; converted here: perftest's MB is 2^20 bytes).
The figure to judge is ``BW average`` of the largest message size (one row normally; a sweep
with ``-a`` prints one per size). Error lines ("Couldn't ...", "Unable to ...") are kept; a
bandwidth that no link can carry (NaN, inf, negative, text) goes to ``unusable`` with its line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from provision.verify.parsers.common import (
    is_uint,
    lines,
    read_number,
    strip_prefixes,
    to_int,
)

_DEVICE = re.compile(r"Device\s*:\s*(\S+)")
_HEADER = re.compile(r"#bytes\s+#iterations\s+BW peak\[([^\]]+)\]\s+BW average\[([^\]]+)\]")
_ERROR = re.compile(r"(Couldn't|Unable to|Failed to|failed|ERROR|Error|state is Down)")


@dataclass(slots=True)
class IbBwRun:
    device: str | None
    size: int | None = None
    iterations: int | None = None
    bw_peak_gbps: float | None = None
    bw_avg_gbps: float | None = None
    line: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(slots=True)
class IbBwResult:
    runs: list[IbBwRun] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # outside any recognisable run
    unusable: list[str] = field(default_factory=list)


def _to_gbps(value: float | None, unit: str) -> float | None:
    if value is None:
        return None
    if unit.lower().startswith("gb"):
        return value
    return value * 2**20 * 8 / 1e9  # MB/sec (MiB) -> Gb/s


def parse_ib_write_bw(text: str) -> IbBwResult:
    result = IbBwResult()
    run: IbBwRun | None = None
    unit: str | None = None  # set while inside a result table
    for number, raw in lines(text):
        line = strip_prefixes(raw).strip()
        if not line:
            continue
        if "RDMA_Write BW Test" in line:
            run = IbBwRun(device=None)
            result.runs.append(run)
            unit = None
            continue
        if run is not None and run.device is None and (m := _DEVICE.search(line)):
            run.device = m[1]
            continue
        if m := _HEADER.search(line):
            unit = m[2]
            continue
        tokens = line.split()
        if unit is not None and run is not None and len(tokens) >= 4 and is_uint(tokens[0]):
            _row(run, tokens, unit, number, result.unusable)
            continue
        if line.startswith("---"):
            unit = None
            continue
        if _ERROR.search(line):
            (run.errors if run is not None else result.errors).append(line[:300])
    return result


def _row(run: IbBwRun, tokens: list[str], unit: str, number: int, sink: list[str]) -> None:
    """One message size of the table; the run keeps its largest size."""
    size = int(tokens[0])
    peak = read_number(tokens[2], f"line {number} BW peak", sink)
    average = read_number(tokens[3], f"line {number} BW average", sink)
    if run.size is not None and size < run.size:
        return
    run.size, run.iterations, run.line = size, to_int(tokens[1]), number
    run.bw_peak_gbps, run.bw_avg_gbps = _to_gbps(peak, unit), _to_gbps(average, unit)
