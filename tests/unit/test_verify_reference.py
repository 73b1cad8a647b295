"""reference.json: every figure has a source, and it agrees with the catalog (gpus.yaml)."""

from __future__ import annotations

import json

import pytest

from provision.catalog.specs import gpu_table
from provision.verify.reference import load_reference, reference_path

TABLE = load_reference()
RAW = json.loads(reference_path().read_text())


@pytest.mark.parametrize("sku", sorted(TABLE.skus))
def test_sku_matches_the_catalog_entry(sku):
    ref = TABLE.skus[sku]
    spec = gpu_table()[ref.catalog_name]
    assert spec.sku == sku
    if ref.kind == "tpu":
        assert ref.metric("tpu.ici_bandwidth").peak == spec.tpu.ici_gbps
        assert ref.memory_gb == spec.memory_gb
        return
    assert ref.pcie_gen == spec.pcie_gen
    # nvidia-smi reports at least the nominal capacity (80 GB card: 81,559 MiB = 85.5 GB).
    assert ref.memory_mib * 2**20 >= spec.memory_gb * 1e9
    nccl = ref.metric("nccl.all_reduce")
    if ref.nvlink.expected:
        # nvlink --status prints the signalling rate, a few % above the data rate.
        link_total = ref.nvlink.links_per_gpu * ref.nvlink.link_gbps * 2
        assert spec.nvlink_gbps <= link_total <= spec.nvlink_gbps * 1.07
        assert nccl.peak == spec.nvlink_gbps / 2
        assert ref.metric("nvbandwidth.d2d").peak == spec.nvlink_gbps
    else:
        assert spec.nvlink_gbps == 0 and ref.nvlink.pair_links == 0


@pytest.mark.parametrize("sku", sorted(RAW["skus"]))
def test_every_figure_carries_a_source(sku):
    raw = RAW["skus"][sku]
    for name, metric in raw["metrics"].items():
        assert metric.get("source"), (sku, name)
        if metric.get("peak") is not None or metric.get("peak_per_nic") is not None:
            assert metric.get("peak_source"), (sku, name)
        if metric.get("reference") is not None:
            assert metric["reference_kind"] in ("known-good", "derived", "line-rate")
            assert metric["peak"] is None or metric["reference"] <= metric["peak"] * 1.1
    if raw["kind"] == "gpu":
        for part in ("pcie", "nvlink", "ib", "dcgm"):
            assert raw[part]["source"], (sku, part)
        assert raw["memory_source"] and raw["gpu_count_source"]


def test_known_good_figures_from_the_hardware_notes():
    ref = {s: {m: x.reference for m, x in r.metrics.items()} for s, r in TABLE.skus.items()}
    assert ref["h100-sxm-80gb"]["nccl.all_reduce"] == 475
    assert ref["h200-sxm-141gb"]["nccl.all_reduce"] == 480
    assert ref["a100-sxm-80gb"]["nccl.all_reduce"] == 230
    assert ref["h100-sxm-80gb"]["nvbandwidth.d2d"] == 672
    assert ref["a100-sxm-40gb"]["nvbandwidth.h2d"] == 25
    assert TABLE.skus["h100-sxm-80gb"].nvlink.pair_links == 18
    assert TABLE.skus["a100-sxm-80gb"].nvlink.pair_links == 12
    assert TABLE.fatal_xids == {48, 56, 57, 58, 62, 63, 64, 65, 68, 69, 73, 74, 79, 80, 81, 92,
                                119, 120}
    default = TABLE.bands_for("nccl.all_reduce")
    assert (default.fail_below, default.warn_below) == (0.90, 0.95)
