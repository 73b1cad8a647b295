"""Simulated GPU nodes' tools: SIMULATED stand-ins for nvidia-smi, nvbandwidth, nccl-tests,
dcgmi, ibstat, ib_write_bw and XID kernel-log lines, printing real output formats for a SKU.

``simgpu.py`` holds everything (stdlib only, so it can ship in a .deb without this package);
``bin/`` holds one thin executable per tool that finds ``simgpu.py`` and calls
``simgpu.main(<tool>, argv)``. See simgpu.py's docstring for the configuration and faults.
"""

from __future__ import annotations

from pathlib import Path

BIN_DIR = Path(__file__).resolve().parent / "bin"
TOOL_NAMES = ("nvidia-smi", "nvbandwidth", "all_reduce_perf", "dcgmi", "ibstat", "ib_write_bw",
              "nvidia-sim-dmesg")


def tool_path(name: str) -> Path:
    """The simulated executable for ``name`` (e.g. "nvidia-smi") in this source tree."""
    if name not in TOOL_NAMES:
        raise ValueError(f"no simulated tool {name!r}; known: {', '.join(TOOL_NAMES)}")
    return BIN_DIR / name
