"""nvbandwidth text output.

Per test: ``Running <test>.``, a title (``memcpy CE CPU(row) -> GPU(column) bandwidth (GB/s)``),
a matrix whose header row holds the column indices and whose rows start with the source index,
then ``SUM <test> <value>`` (or ``&&&& PERF <test> <value>GB/s`` in perf-formatter builds).
Cells are ``N/A`` where a copy is not applicable (the diagonal); older builds print ``0.00``
there instead, which :meth:`NvbTest.pairs` skips as well. A waived test prints ``Waived:``
without its name, so a test that was asked for and is absent was waived or never ran.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from provision.verify.parsers.common import is_uint, lines, read_number, strip_prefixes, to_float

_RUNNING = re.compile(r"^Running (\S+?)\.?$")
_SUM = re.compile(r"^(?:SUM|&&&& PERF)\s+(\S+)\s+([0-9.eE+-]+)")
_DEVICE = re.compile(r"^Device (\d+): (.*)$")
# The matrix title ends in its unit: "... bandwidth (GB/s)", "... latency (ns)". Matching the bare
# word would take nvbandwidth's own ASSERT line (".../nvbandwidth/memcpy.cpp:165") for a title.
_TITLE = re.compile(r"\b(?:bandwidth|latency) \((?:GB/s|ns|us)\)\s*$")
_VERSION = re.compile(r"^nvbandwidth Version:\s*(\S+)")


@dataclass(slots=True)
class NvbTest:
    name: str
    title: str = ""
    columns: list[str] = field(default_factory=list)
    rows: dict[str, list[float | None]] = field(default_factory=dict)  # row label -> cells
    row_lines: dict[str, int] = field(default_factory=dict)  # row label -> line number
    duplicates: list[str] = field(default_factory=list)  # "row 3", "column 5" given twice
    total: float | None = None  # the SUM line
    messages: list[str] = field(default_factory=list)  # errors printed inside the test

    @property
    def is_device_to_device(self) -> bool:
        return "GPU(row)" in self.title or self.name.startswith("device_to_device")

    def per_gpu(self) -> dict[int, float | None]:
        """Host<->device tests: one figure per GPU (column), the best over source rows."""
        out: dict[int, float | None] = {}
        for i, col in enumerate(self.columns):
            values = [cells[i] for cells in self.rows.values()
                      if i < len(cells) and cells[i] is not None]
            out[int(col) if is_uint(col) else i] = max(values) if values else None
        return out

    def pairs(self) -> dict[tuple[int, int], float | None]:
        """Device-to-device tests: one figure per ordered GPU pair, diagonal left out."""
        out: dict[tuple[int, int], float | None] = {}
        for label, cells in self.rows.items():
            if not is_uint(label):
                continue
            src = int(label)
            for i, col in enumerate(self.columns):
                dst = int(col) if is_uint(col) else i
                if dst != src and i < len(cells):
                    out[(src, dst)] = cells[i]
        return out


@dataclass(slots=True)
class NvbResult:
    tests: dict[str, NvbTest] = field(default_factory=dict)
    devices: dict[int, str] = field(default_factory=dict)
    version: str | None = None
    waived: int = 0
    errors: list[str] = field(default_factory=list)
    unusable: list[str] = field(default_factory=list)
    duplicate_devices: list[int] = field(default_factory=list)


def parse_nvbandwidth(text: str) -> NvbResult:
    result = NvbResult()
    test: NvbTest | None = None
    state = "idle"  # idle | title | header | rows
    for number, raw in lines(text):
        line = strip_prefixes(raw).rstrip()
        stripped = line.strip()
        if m := _RUNNING.match(stripped):
            test = NvbTest(name=m[1])
            result.tests[test.name] = test
            state = "title"
            continue
        if m := _SUM.match(stripped):
            target = result.tests.get(m[1]) or test
            if target is not None:
                target.total = to_float(m[2])
            state = "idle"
            continue
        if stripped.lower().startswith("waived"):
            result.waived += 1
            state = "idle"
            continue
        if (m := _DEVICE.match(stripped)) and is_uint(m[1]):
            index = int(m[1])
            if index in result.devices:
                result.duplicate_devices.append(index)
            result.devices[index] = m[2].strip()
            continue
        if m := _VERSION.match(stripped):
            result.version = m[1]
            continue
        if not stripped:
            if state == "rows":
                state = "idle"
            continue
        if test is None:
            if stripped.upper().startswith("ERROR"):
                result.errors.append(stripped)
            continue
        if state == "title":
            if _TITLE.search(stripped):
                test.title = stripped
                state = "header"
            else:
                test.messages.append(stripped)
                if stripped.upper().startswith(("ERROR", "ASSERT")):
                    result.errors.append(f"{test.name}: {stripped[:300]}")
            continue
        tokens = stripped.split()
        if state == "header" and tokens and all(is_uint(t) for t in tokens):
            test.columns = tokens
            test.duplicates += [f"column {c}" for c, n in Counter(tokens).items() if n > 1]
            state = "rows"
            continue
        if state == "rows" and len(tokens) > 1 and is_uint(tokens[0]):
            label = tokens[0]
            if label in test.rows:
                test.duplicates.append(f"row {label}")
            where = f"line {number} {test.name} row {label}"
            test.rows[label] = [read_number(t, where, result.unusable) for t in tokens[1:]]
            test.row_lines.setdefault(label, number)
            continue
        test.messages.append(stripped)
        if stripped.upper().startswith(("ERROR", "ASSERT")):
            result.errors.append(f"{test.name}: {stripped}")
    return result
