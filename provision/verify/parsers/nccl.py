"""nccl-tests text output (all_reduce_perf, all_gather_perf, ...).

The result table is located through its header line (``#  size  count  type  redop  root
time  algbw  busbw  #wrong ...``) and columns are mapped by name, so the layouts seen in the wild
all read the same: current builds, builds without the ``root`` column that print ``error``
instead of ``#wrong``, builds with per-iteration columns, ``N/A`` in ``#wrong`` under ``-c 0``,
times in ``1e+06`` notation, and lines prefixed by ``mpirun --tag-output``, ``srun --label`` or
a log collector's timestamp, with ``NCCL INFO`` lines interleaved. A time, bandwidth or error
count that no run can print (NaN, inf, negative, text) goes to ``unusable`` with its line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from provision.verify.parsers.common import (
    is_uint,
    lines,
    read_int,
    read_number,
    strip_prefixes,
    to_float,
)

_NCCL_LOG = re.compile(r"\bNCCL (INFO|WARN|TRACE|ERROR)\b")
_RANK = re.compile(r"#\s*Rank\s+(\d+)\s+(?:Group\s+\d+\s+)?Pid\s+\d+\s+on\s+(\S+)\s+"
                   r"device\s+(\d+)\s+\[([^\]]*)\]\s*(.*)$")
_SETUP = re.compile(r"nThread\s+(\d+)\s+nGpus\s+(\d+)\s+minBytes\s+(\d+)\s+maxBytes\s+(\d+)")
_AVG = re.compile(r"#\s*Avg bus bandwidth\s*:\s*(\S+)\s*(FAILED|OK)?")
_OOB = re.compile(r"#\s*Out of bounds values\s*:\s*(\S+)\s*(FAILED|OK)?")
_ERROR = re.compile(r"(Test \w{0,20} ?failure|Invalid number of GPUs|# error:|NCCL failure|"
                    r"CUDA failure|Segmentation fault|MPI_ABORT)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Rank:
    rank: int
    host: str
    device: int
    bus_id: str
    gpu_name: str


@dataclass(frozen=True, slots=True)
class NcclRow:
    """One message size. Bandwidths in GB/s, times in µs; ``wrong`` None when not checked."""

    size: int
    count: int | None
    dtype: str | None
    redop: str | None
    root: int | None
    time_us: float | None
    algbw: float | None
    busbw: float | None
    wrong: int | None
    ip_time_us: float | None
    ip_algbw: float | None
    ip_busbw: float | None
    ip_wrong: int | None
    line: int = 0

    @property
    def best_busbw(self) -> float | None:
        """The larger of out-of-place and in-place busbw (in-place is often a hair faster)."""
        values = [v for v in (self.busbw, self.ip_busbw) if v is not None]
        return max(values) if values else None

    @property
    def wrong_total(self) -> int:
        return (self.wrong or 0) + (self.ip_wrong or 0)


@dataclass(slots=True)
class NcclResult:
    rows: list[NcclRow] = field(default_factory=list)
    ranks: list[Rank] = field(default_factory=list)
    gpus_per_process: int | None = None
    min_bytes: int | None = None
    max_bytes: int | None = None
    avg_busbw: float | None = None
    avg_check_failed: bool = False  # NCCL_TESTS_MIN_BW tripped
    out_of_bounds: int | None = None
    errors: list[str] = field(default_factory=list)
    nccl_warnings: list[str] = field(default_factory=list)
    unusable: list[str] = field(default_factory=list)

    @property
    def hosts(self) -> list[str]:
        return sorted({r.host for r in self.ranks})

    def largest(self) -> NcclRow | None:
        """The row to judge: the largest message size (never the sweep average)."""
        return max(self.rows, key=lambda r: r.size) if self.rows else None


def _columns(header: str) -> list[str]:
    return header.lstrip("#").split()


def _row(tokens: list[str], cols: list[str], number: int, sink: list[str]) -> NcclRow | None:
    """Map a data row onto the header's column names; None when it is not a data row."""
    if not tokens or not is_uint(tokens[0]) or len(tokens) < len(cols) - 1:
        return None
    if len(tokens[0]) > 18:  # 10^18 bytes: no buffer a GPU can hold
        sink.append(f"line {number} size: {tokens[0][:24]!r} is no message size")
        return None
    named: dict[str, list[str]] = {}
    for name, token in zip(cols, tokens, strict=False):
        named.setdefault(name.lower(), []).append(token)

    def get(name: str, i: int = 0) -> str | None:
        values = named.get(name)
        return values[i] if values and len(values) > i else None

    def num(*names: str, i: int = 0) -> float | None:
        for n in names:
            t = get(n, i)
            if t is not None:
                return read_number(t, f"line {number} {n}", sink)
        return None

    def wrong(i: int) -> int | None:
        if "#wrong" in named:
            t = get("#wrong", i)
            return read_int(t, f"line {number} #wrong", sink) if t is not None else None
        t = get("error", i)  # older builds: the largest error as a float, 0e+00 when exact
        value = read_number(t, f"line {number} error", sink) if t is not None else None
        return None if value is None else (0 if value == 0 else max(1, int(min(value, 1e9))))

    root = get("root")
    count = get("count")
    return NcclRow(
        size=int(tokens[0]),
        count=read_int(count, f"line {number} count", sink) if count is not None else None,
        dtype=get("type"), redop=get("redop"),
        root=read_int(root, f"line {number} root", sink, signed=True) if root is not None
        else None,
        time_us=num("time", "cputime"), algbw=num("algbw"), busbw=num("busbw"), wrong=wrong(0),
        ip_time_us=num("time", "cputime", i=1), ip_algbw=num("algbw", i=1),
        ip_busbw=num("busbw", i=1), ip_wrong=wrong(1), line=number,
    )


def parse_nccl(text: str) -> NcclResult:
    result = NcclResult()
    cols: list[str] | None = None
    for number, raw in lines(text):
        line = strip_prefixes(raw).rstrip()
        if not line.strip():
            continue
        if _NCCL_LOG.search(line):
            if "WARN" in line or "ERROR" in line:
                result.nccl_warnings.append(line.strip())
            continue
        stripped = line.strip()
        if stripped.startswith("#"):
            _comment(result, stripped, number)
            low = stripped.lower()
            if " size " in f" {low} " and " count " in f" {low} " and "busbw" in low:
                cols = _columns(stripped)
            continue
        if cols is not None and (row := _row(stripped.split(), cols, number,
                                             result.unusable)) is not None:
            result.rows.append(row)
        elif _ERROR.search(stripped) or ("failed" in stripped.lower()
                                         and "nccl" in stripped.lower()):
            result.errors.append(stripped[:300])
    return result


def _comment(result: NcclResult, stripped: str, number: int) -> None:
    """The ``#`` lines: ranks, the run's settings, the footer."""
    if m := _RANK.search(stripped):
        result.ranks.append(Rank(int(m[1]), m[2], int(m[3]), m[4], m[5].strip()))
    elif m := _SETUP.search(stripped):
        result.gpus_per_process = int(m[2])
        result.min_bytes, result.max_bytes = int(m[3]), int(m[4])
    elif m := _AVG.search(stripped):
        result.avg_busbw = to_float(m[1])
        result.avg_check_failed = m[2] == "FAILED"
    elif m := _OOB.search(stripped):
        result.out_of_bounds = read_int(m[1], f"line {number} out of bounds values",
                                        result.unusable)
    elif stripped.startswith("# error:"):
        result.errors.append(stripped[:300])
