"""Accelerator specifications (data/gpus.yaml): memory, peak FLOPS, bandwidth, NVLink, SKU id.

The planner ranks hardware by these figures, and the verify stage maps a GPU to its SKU
reference table through ``sku``. Data, not code: adding a GPU is an entry in the YAML file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from provision.datacache import load_yaml

_DATA = resources.files("provision.catalog") / "data"


@dataclass(frozen=True, slots=True)
class TpuTopology:
    """How a TPU generation's slice names and hosts work (Google Cloud TPU docs)."""

    suffix_counts: str  # "chips" (v5e, v6e) or "cores" (v2-v5p: two TensorCores per chip)
    chips_per_host: int  # chips per TPU VM host in multi-host slices
    max_single_host_chips: int  # largest slice that is one host
    ici_gbps: float  # ICI bandwidth per chip, GB/s

    def chips(self, suffix: int) -> int:
        """Chips in a slice named ``tpu-<gen>-<suffix>``."""
        return suffix if self.suffix_counts == "chips" else max(1, suffix // 2)

    def hosts(self, chips: int) -> int:
        """TPU VM hosts (one node record each) in a slice of ``chips`` chips."""
        if chips <= self.max_single_host_chips:
            return 1
        return -(-chips // self.chips_per_host)


@dataclass(frozen=True, slots=True)
class GpuSpec:
    """One accelerator model. Peaks are dense (no sparsity), per GPU or TPU chip."""

    name: str
    vendor: str
    arch: str
    gpu_class: str  # datacenter | workstation | consumer
    memory_gb: float
    hbm_gbps: float
    bf16_tflops: float
    fp32_tflops: float  # plain FP32 (CUDA cores; TPU: HIGHEST precision)
    fp8_tflops: float | None
    nvlink_gbps: float
    pcie_gen: int | None
    sku: str
    source: str
    aliases: tuple[str, ...] = ()
    tpu: TpuTopology | None = None
    tf32_tflops: float | None = None  # TF32 tensor cores (Ampere+); TPU: DEFAULT precision

    @property
    def is_tpu(self) -> bool:
        return self.tpu is not None

    def peak_tflops(self, precision: str, *, tf32: bool = False) -> float:
        """Dense peak that time estimates apply MFU to, for a job in ``precision``.

        BF16/FP16 and the weight formats (INT8/INT4 compute in BF16) use the BF16 rate. FP8 also
        uses the BF16 rate: end-to-end FP8 training gains far less than the 2× peak ratio, so
        the estimate applies a measured FP8 speed-up on top (provision.estimate). FP32 uses the
        TF32 tensor rate only when ``tf32`` is on, else the plain FP32 rate.
        """
        if precision == "fp32":
            return (self.tf32_tflops or self.fp32_tflops) if tf32 else self.fp32_tflops
        return self.bf16_tflops


def _key(name: str) -> str:
    """Normalise a GPU name for lookup: case, spaces, underscores and 'nvidia' do not matter."""
    k = re.sub(r"[\s_]+", "-", name.strip().lower())
    return k.removeprefix("nvidia-")


class GpuTable:
    """All known accelerators with alias lookup."""

    def __init__(self, specs: dict[str, GpuSpec]) -> None:
        self.specs = specs
        self._index: dict[str, str] = {}
        for spec in specs.values():
            for alias in (spec.name, *spec.aliases):
                self._index[_key(alias)] = spec.name

    def resolve(self, name: str) -> GpuSpec | None:
        """The spec for ``name`` or one of its aliases, or None."""
        canonical = self._index.get(_key(name))
        return self.specs[canonical] if canonical else None

    def names(self) -> list[str]:
        return sorted(self.specs)

    def __getitem__(self, name: str) -> GpuSpec:
        return self.specs[name]

    def __contains__(self, name: str) -> bool:
        return name in self.specs


def _spec(name: str, d: dict) -> GpuSpec:
    tpu = d.get("tpu")
    return GpuSpec(
        name=name,
        vendor=d["vendor"],
        arch=d["arch"],
        gpu_class=d["class"],
        memory_gb=float(d["memory_gb"]),
        hbm_gbps=float(d["hbm_gbps"]),
        bf16_tflops=float(d["bf16_tflops"]),
        fp32_tflops=float(d["fp32_tflops"]),
        fp8_tflops=float(d["fp8_tflops"]) if d.get("fp8_tflops") else None,
        nvlink_gbps=float(d.get("nvlink_gbps", 0)),
        pcie_gen=d.get("pcie_gen"),
        sku=d["sku"],
        source=d["source"],
        aliases=tuple(d.get("aliases", ())),
        tpu=TpuTopology(**tpu) if tpu else None,
        tf32_tflops=float(d["tf32_tflops"]) if d.get("tf32_tflops") else None,
    )


def load_gpu_table(path: Path | None = None) -> GpuTable:
    """Read a gpus.yaml (the shipped one by default)."""
    raw = load_yaml(path or (_DATA / "gpus.yaml"))
    return GpuTable({name: _spec(name, d) for name, d in raw.items()})


@cache
def gpu_table() -> GpuTable:
    """The shipped GPU table, read once per process."""
    return load_gpu_table()
