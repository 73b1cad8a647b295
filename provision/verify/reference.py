"""Per-SKU reference figures (data/reference.json) as typed values.

The JSON file is the single copy of the figures: the judge reads it through this module and the
simulated GPU tools read it with the stdlib (provision/simulate/simgpu.py), so a healthy
simulated node lands on the same known-good figures the judge expects. Data, not code: adding a
SKU is an entry in the JSON file, with a source next to every number.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

REFERENCE_FILE = "reference.json"
# A figure above peak x this margin cannot have been measured on the SKU: the output is corrupt
# (or the node is another SKU). Metrics whose measurements legitimately exceed the datasheet
# peak (NVLS all_reduce busbw) carry an explicit ``ceiling`` instead.
IMPOSSIBLE_MARGIN = 1.10


@dataclass(frozen=True, slots=True)
class Bands:
    """Bands on measured / reference: fail below ``fail_below``, warn below ``warn_below``."""

    fail_below: float
    warn_below: float
    source: str = ""

    def status(self, ratio: float) -> Literal["pass", "warn", "fail"]:
        if ratio < self.fail_below:
            return "fail"
        if ratio < self.warn_below:
            return "warn"
        return "pass"


@dataclass(frozen=True, slots=True)
class Metric:
    """One judged figure for one SKU."""

    name: str  # check name, e.g. "nccl.all_reduce"
    unit: str
    peak: float | None  # datasheet or line-rate ceiling
    reference: float | None  # known-good figure the bands apply to; None: reported, not judged
    reference_kind: str | None  # known-good | derived | line-rate
    source: str  # where the reference comes from
    peak_source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. ring_reference, per_nic

    @property
    def ceiling(self) -> float | None:
        """The largest figure a healthy node of this SKU can print (None: no bound known)."""
        explicit = self.extra.get("ceiling")
        if isinstance(explicit, int | float):
            return float(explicit)
        return self.peak * IMPOSSIBLE_MARGIN if self.peak else None


@dataclass(frozen=True, slots=True)
class NvlinkSpec:
    fabric: str  # nvswitch | none
    links_per_gpu: int
    pair_links: int  # NV# expected between every GPU pair in `nvidia-smi topo -m`
    link_gbps: float | None  # per-link speed `nvidia-smi nvlink --status` prints
    source: str
    # Boards without NVSwitches split a GPU's links between its peers: 4 x H100 show NV6.
    pair_links_by_gpus: dict[int, int] = field(default_factory=dict)

    @property
    def expected(self) -> bool:
        return self.fabric != "none" and self.links_per_gpu > 0

    def pair_links_for(self, gpus: int) -> int:
        """NV# every GPU pair shows in `nvidia-smi topo -m` on a node with ``gpus`` GPUs."""
        return self.pair_links_by_gpus.get(gpus, self.pair_links)


@dataclass(frozen=True, slots=True)
class IbSpec:
    ports: int  # InfiniBand ports per node (0: none expected)
    rate_gbps: float | None
    source: str


@dataclass(frozen=True, slots=True)
class SkuReference:
    """What a healthy node of one SKU looks like."""

    sku: str
    kind: str  # gpu | tpu
    catalog_name: str  # the name in provision/catalog/data/gpus.yaml
    count: int  # GPUs (or TPU chips) per node by default
    count_source: str
    metrics: dict[str, Metric]
    gpu_names: tuple[str, ...] = ()
    memory_mib: int | None = None
    memory_source: str = ""
    row_remapping: bool = False
    pcie_gen: int | None = None
    pcie_width: int | None = None
    pcie_source: str = ""
    nvlink: NvlinkSpec | None = None
    ib: IbSpec | None = None
    memory_gb: float | None = None  # TPU HBM per chip

    def metric(self, name: str) -> Metric | None:
        return self.metrics.get(name)


@dataclass(frozen=True, slots=True)
class ReferenceTable:
    """The whole reference file: SKUs, default bands, XID policy, PCIe lane rates."""

    skus: dict[str, SkuReference]
    bands: dict[str, Bands]  # "default" plus per-check defaults
    fatal_xids: frozenset[int]
    xid_source: str
    pcie_lane_gbps: dict[int, float]

    def sku(self, name: str) -> SkuReference | None:
        return self.skus.get(name.strip().lower())

    def bands_for(self, check: str) -> Bands:
        return self.bands.get(check, self.bands["default"])


def _metric(name: str, raw: dict[str, Any]) -> Metric:
    known = {"unit", "peak", "reference", "reference_kind", "source", "peak_source"}
    return Metric(
        name=name, unit=raw["unit"], peak=raw.get("peak"), reference=raw.get("reference"),
        reference_kind=raw.get("reference_kind"), source=raw.get("source", ""),
        peak_source=raw.get("peak_source", ""),
        extra={k: v for k, v in raw.items() if k not in known},
    )


def _sku(name: str, raw: dict[str, Any]) -> SkuReference:
    metrics = {m: _metric(m, r) for m, r in raw.get("metrics", {}).items()}
    if raw["kind"] == "tpu":
        return SkuReference(sku=name, kind="tpu", catalog_name=raw["catalog_name"],
                            count=raw["chips"], count_source=raw.get("chips_source", ""),
                            metrics=metrics, memory_gb=raw.get("memory_gb"))
    nv, ib, pcie = raw["nvlink"], raw["ib"], raw["pcie"]
    return SkuReference(
        sku=name, kind="gpu", catalog_name=raw["catalog_name"], count=raw["gpu_count"],
        count_source=raw.get("gpu_count_source", ""), metrics=metrics,
        gpu_names=tuple(raw["gpu_names"]), memory_mib=raw["memory_mib"],
        memory_source=raw.get("memory_source", ""), row_remapping=bool(raw["row_remapping"]),
        pcie_gen=pcie["gen"], pcie_width=pcie["width"], pcie_source=pcie.get("source", ""),
        nvlink=NvlinkSpec(fabric=nv["fabric"], links_per_gpu=nv["links_per_gpu"],
                          pair_links=nv["pair_links"], link_gbps=nv.get("link_gbps"),
                          source=nv.get("source", ""),
                          pair_links_by_gpus={int(k): int(v) for k, v in
                                              nv.get("pair_links_by_gpus", {}).items()}),
        ib=IbSpec(ports=ib["ports"], rate_gbps=ib.get("rate_gbps"), source=ib.get("source", "")),
    )


def parse_reference(raw: dict[str, Any]) -> ReferenceTable:
    """Build the table from the decoded JSON document."""
    bands = {name: Bands(b["fail_below"], b["warn_below"], b.get("source", ""))
             for name, b in raw["bands"].items()}
    return ReferenceTable(
        skus={name: _sku(name, r) for name, r in raw["skus"].items()},
        bands=bands,
        fatal_xids=frozenset(raw["xid"]["fatal"]),
        xid_source=raw["xid"].get("source", ""),
        pcie_lane_gbps={int(k): float(v) for k, v in raw["pcie_lane_gbps"]["values"].items()},
    )


def reference_path() -> Path:
    """Where the packaged reference.json lives (the simulator package ships a copy of it)."""
    return Path(str(resources.files("provision.verify") / "data" / REFERENCE_FILE))


@cache
def load_reference(path: str | None = None) -> ReferenceTable:
    """The reference table, from ``path`` or the packaged file."""
    file = Path(path) if path else reference_path()
    return parse_reference(json.loads(file.read_text(encoding="utf-8")))
