"""``ib_write_bw`` (perftest) output, one or more runs appended in one file.

Each run prints a banner (``RDMA_Write BW Test``) whose settings include ``Device : mlx5_0``,
then a table ``#bytes #iterations BW peak[Gb/sec] BW average[Gb/sec] MsgRate[Mpps]`` with
``--report_gbits`` (``[MB/sec]`` without it; converted here: perftest's MB is 2^20 bytes).
The figure to judge is ``BW average``. Error lines ("Couldn't ...", "Unable to ...") are kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from provision.verify.parsers.common import strip_ansi, strip_prefixes, to_float

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
    errors: list[str] = field(default_factory=list)


@dataclass(slots=True)
class IbBwResult:
    runs: list[IbBwRun] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # outside any recognisable run


def _to_gbps(value: float | None, unit: str) -> float | None:
    if value is None:
        return None
    if unit.lower().startswith("gb"):
        return value
    return value * 2**20 * 8 / 1e9  # MB/sec (MiB) -> Gb/s


def parse_ib_write_bw(text: str) -> IbBwResult:
    result = IbBwResult()
    run: IbBwRun | None = None
    unit: str | None = None
    for raw in strip_ansi(text).splitlines():
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
        if unit is not None and run is not None and len(tokens) >= 4 and tokens[0].isdigit():
            run.size, run.iterations = int(tokens[0]), int(tokens[1])
            run.bw_peak_gbps = _to_gbps(to_float(tokens[2]), unit)
            run.bw_avg_gbps = _to_gbps(to_float(tokens[3]), unit)
            unit = None
            continue
        if _ERROR.search(line):
            (run.errors if run is not None else result.errors).append(line)
    return result
