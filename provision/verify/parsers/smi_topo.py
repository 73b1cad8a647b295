"""``nvidia-smi topo -m``: the GPU/NIC connection matrix.

Cells are tab-separated and the ``CPU Affinity`` cell may be empty, so rows are split on tabs,
never on runs of whitespace (a copy without tabs falls back to whitespace, which is fine for the
GPU/NIC cells the checks use). On a terminal the header carries ANSI underline codes; they are
stripped first. Codes: ``X`` self, ``NV#`` a bonded set of # NVLinks, ``PIX``/``PXB``/``PHB``/
``NODE``/``SYS`` PCIe paths (``SOC`` in older drivers). The ``NIC Legend`` maps ``NIC0`` to a
device such as ``mlx5_0``. A GPU-to-GPU cell holding none of these codes goes to ``unusable``.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from provision.verify.parsers.common import lines

_NV = re.compile(r"^NV(\d{1,4})$")
_LEGEND = re.compile(r"^\s*(NIC\d+)\s*:\s*(\S+)")
_DEVICE = re.compile(r"^(GPU|NIC)\d{1,4}$")
_PATHS = frozenset({"X", "PIX", "PXB", "PHB", "NODE", "SYS", "SOC"})


@dataclass(slots=True)
class Topology:
    devices: list[str] = field(default_factory=list)  # matrix columns: GPU0.., NIC0..
    cells: dict[tuple[str, str], str] = field(default_factory=dict)  # (row, column) -> code
    row_lines: dict[str, int] = field(default_factory=dict)  # row name -> line number
    row_counts: Counter[str] = field(default_factory=Counter)
    cpu_affinity: dict[str, str] = field(default_factory=dict)
    nic_names: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    unusable: list[str] = field(default_factory=list)

    @property
    def gpus(self) -> list[str]:
        return [d for d in self.devices if d.startswith("GPU")]

    @property
    def gpu_rows(self) -> list[str]:
        return [r for r, n in self.row_counts.items() for _ in range(n) if r.startswith("GPU")]

    def nvlinks(self, a: str, b: str) -> int:
        """NVLinks bonded between two devices (0 when the path is PCIe or unknown)."""
        m = _NV.match(self.cells.get((a, b), ""))
        return int(m[1]) if m else 0


def _split(line: str) -> list[str]:
    return [c.strip() for c in line.split("\t")] if "\t" in line else line.split()


def parse_topo(text: str) -> Topology:
    topo = Topology()
    in_legend = False
    for number, raw in lines(text):
        if not raw.strip():
            continue
        if raw.strip().startswith(("Legend", "NIC Legend")):
            in_legend = True
            continue
        if in_legend:
            if m := _LEGEND.match(raw):
                topo.nic_names[m[1]] = m[2]
            continue
        cells = _split(raw)
        names = [c for c in cells if _DEVICE.match(c)]
        if not topo.devices and "GPU0" in names and "X" not in cells:
            topo.devices = names  # the header row: device names, no self ("X") cell
            continue
        if topo.devices and cells and _DEVICE.match(cells[0]):
            _row(topo, cells, number)
    if not topo.devices:
        topo.errors.append("no topology matrix (no header row naming GPU0)")
    return topo


def _row(topo: Topology, cells: list[str], number: int) -> None:
    row, values = cells[0], cells[1:]
    topo.row_counts[row] += 1
    topo.row_lines.setdefault(row, number)
    for col, code in zip(topo.devices, values, strict=False):
        topo.cells[(row, col)] = code
        if row.startswith("GPU") and col.startswith("GPU") and code not in _PATHS \
                and not _NV.match(code):
            topo.unusable.append(f"line {number}: {row}/{col} cell {code[:20]!r} is no "
                                 "topology code")
    if row.startswith("GPU") and len(values) > len(topo.devices):
        topo.cpu_affinity[row] = values[len(topo.devices)]
