"""``nvidia-smi nvlink --status``: per-GPU link list.

``GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-...)`` then one tab-indented line per link:
``Link 0: 26.562 GB/s`` (A100: ``25 GB/s``). A down link prints ``<inactive>`` (some builds
``0 GB/s``); a GPU whose links are all down prints ``NVML: Unable to retrieve NVLink information
as all links are inactive`` instead of the list. GPUs without NVLink print no link lines. A
speed that is no number a link can run at (NaN, inf, negative, text) goes to ``unusable``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from provision.verify.parsers.common import is_uint, lines, read_number

_GPU = re.compile(r"^GPU (\d+):\s*(.*?)(?:\s*\(UUID:\s*([^)]*)\))?\s*$")
_LINK = re.compile(r"^Link (\d+):\s*(.*)$")
_ALL_INACTIVE = "all links are inactive"


@dataclass(slots=True)
class NvlinkGpu:
    index: int
    name: str
    uuid: str | None
    line: int = 0
    links: dict[int, float | None] = field(default_factory=dict)  # None: inactive
    duplicate_links: list[int] = field(default_factory=list)
    all_inactive: bool = False

    @property
    def active(self) -> dict[int, float]:
        return {i: s for i, s in self.links.items() if s}


@dataclass(slots=True)
class NvlinkStatus:
    gpus: list[NvlinkGpu] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    unusable: list[str] = field(default_factory=list)


def _speed(value: str, where: str, sink: list[str]) -> float | None:
    value = value.strip()
    if value.startswith("<") or "inactive" in value.lower():
        return None
    parts = value.split()
    if not parts:
        sink.append(f"{where}: no speed")
        return None
    number = read_number(parts[0], where, sink)
    return number or None  # "0 GB/s" is a down link too


def parse_nvlink(text: str) -> NvlinkStatus:
    status = NvlinkStatus()
    gpu: NvlinkGpu | None = None
    for number, raw in lines(text):
        line = raw.strip()
        if not line:
            continue
        if (m := _GPU.match(line)) and is_uint(m[1]):
            gpu = NvlinkGpu(index=int(m[1]), name=m[2].strip(), uuid=m[3], line=number)
            status.gpus.append(gpu)
        elif (m := _LINK.match(line)) and gpu is not None and is_uint(m[1]):
            link = int(m[1])
            if link in gpu.links:
                gpu.duplicate_links.append(link)
            gpu.links[link] = _speed(m[2], f"line {number} GPU {gpu.index} link {link}",
                                     status.unusable)
        elif _ALL_INACTIVE in line.lower():
            if gpu is not None:
                gpu.all_inactive = True
            else:
                status.errors.append(line)
        elif line.startswith(("NVML", "Failed", "No devices", "NVIDIA-SMI has failed")):
            status.errors.append(line)
    return status
