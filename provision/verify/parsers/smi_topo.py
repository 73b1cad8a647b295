"""``nvidia-smi topo -m``: the GPU/NIC connection matrix.

Cells are tab-separated and the ``CPU Affinity`` cell may be empty, so rows are split on tabs,
never on runs of whitespace (a copy without tabs falls back to whitespace, which is fine for the
GPU/NIC cells the checks use). On a terminal the header carries ANSI underline codes; they are
stripped first. Codes: ``X`` self, ``NV#`` a bonded set of # NVLinks, ``PIX``/``PXB``/``PHB``/
``NODE``/``SYS`` PCIe paths. The ``NIC Legend`` maps ``NIC0`` to a device such as ``mlx5_0``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from provision.verify.parsers.common import strip_ansi

_NV = re.compile(r"^NV(\d+)$")
_LEGEND = re.compile(r"^\s*(NIC\d+)\s*:\s*(\S+)")
_DEVICE = re.compile(r"^(GPU|NIC)\d+$")


@dataclass(slots=True)
class Topology:
    devices: list[str] = field(default_factory=list)  # matrix columns: GPU0.., NIC0..
    cells: dict[tuple[str, str], str] = field(default_factory=dict)  # (row, column) -> code
    cpu_affinity: dict[str, str] = field(default_factory=dict)
    nic_names: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def gpus(self) -> list[str]:
        return [d for d in self.devices if d.startswith("GPU")]

    def nvlinks(self, a: str, b: str) -> int:
        """NVLinks bonded between two devices (0 when the path is PCIe or unknown)."""
        m = _NV.match(self.cells.get((a, b), ""))
        return int(m[1]) if m else 0


def _split(line: str) -> list[str]:
    return [c.strip() for c in line.split("\t")] if "\t" in line else line.split()


def parse_topo(text: str) -> Topology:
    topo = Topology()
    in_legend = False
    for raw in strip_ansi(text).splitlines():
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
            row = cells[0]
            values = cells[1:]
            for col, code in zip(topo.devices, values, strict=False):
                topo.cells[(row, col)] = code
            if row.startswith("GPU") and len(values) > len(topo.devices):
                topo.cpu_affinity[row] = values[len(topo.devices)]
    if not topo.devices:
        topo.errors.append("no topology matrix (no header row naming GPU0)")
    return topo
