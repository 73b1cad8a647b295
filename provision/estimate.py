"""Time and cost of a workload on a chosen configuration.

- Training time = FLOPs / (GPUs × peak × MFU × fp8 speed-up × multi-node scaling), FLOPs =
  6·N·D (sizing.py). MFU applies to the BF16 dense peak. FP8 training on GPUs with FP8 tensor
  cores gets a measured end-to-end speed-up of 1.3× over BF16, the low end of published
  Transformer Engine results (NVIDIA NeMo FP8 blog, "Faster Training Throughput in FP8
  Precision with NVIDIA NeMo": 1.3–1.5× on H100; torchao float8 training: 1.25× on
  Llama-3-8B), not the 2× of the peak figures; when the plan gives its own mfu, that figure is
  taken as the end-to-end result and no speed-up is added. FP32 runs at the TF32 tensor rate
  only when the plan turns TF32 on.
- Multi-node scaling: each doubling of the node count keeps a fraction of per-GPU throughput
  that depends on the inter-node bandwidth per GPU: 0.97 at ≥ 100 Gb/s per GPU (InfiniBand/EFA
  class fabrics), 0.90 at ≥ 25 Gb/s, 0.75 below (plain Ethernet). A planning assumption, not a
  measurement; it makes the optimizer prefer fewer, fuller nodes at equal price.
- Cost = cluster price per hour × hours; monthly-billed bare metal is charged in whole months.
- Inference decode throughput (memory-bound estimate): each decode step reads the weights the
  batch touches (all of a dense model; the shared weights and the distinct experts the batch
  routes to in an MoE, sizing.decode_weight_bytes) and the resident KV cache once, at 70 % of
  peak HBM bandwidth. A stage's tp GPUs read in parallel and stages run in turn, so summed over
  the stages a step takes (weights / tp + KV cache × the KV heads one GPU holds / all heads) /
  bandwidth, whatever the number of stages; replicated KV heads are read by every GPU that
  holds them. Each step produces one token per sequence.
"""

from __future__ import annotations

import math

from provision.catalog.offerings import HOURS_PER_MONTH, Offering
from provision.catalog.specs import GpuSpec
from provision.sizing import Layout, Need

HBM_EFFICIENCY = 0.7
FP8_TRAINING_SPEEDUP = 1.3  # end-to-end over BF16 (see the module docstring for sources)


def per_doubling(network_gbps: float, gpus_per_node: int) -> float:
    per_gpu = network_gbps / max(1, gpus_per_node)
    if per_gpu >= 100:
        return 0.97
    if per_gpu >= 25:
        return 0.90
    return 0.75


def scaling_efficiency(offering: Offering, nodes: int) -> float:
    """Fraction of single-node per-GPU throughput kept at ``nodes`` nodes."""
    if nodes <= 1:
        return 1.0
    return per_doubling(offering.network_gbps, offering.gpu_count) ** math.log2(nodes)


def compute_rate_tflops(need: Need, spec: GpuSpec, mfu: float) -> float:
    """Sustained TFLOPS per GPU the estimate assumes: peak × MFU (× the fp8 speed-up)."""
    rate = spec.peak_tflops(need.precision, tf32=need.tf32) * mfu
    if need.precision == "fp8" and spec.fp8_tflops and not need.mfu_given:
        rate *= FP8_TRAINING_SPEEDUP
    return rate


def training_hours(
    need: Need, spec: GpuSpec, offering: Offering, nodes: int, mfu: float
) -> float | None:
    if not need.flops:
        return None
    gpus = offering.gpu_count * nodes
    rate = gpus * compute_rate_tflops(need, spec, mfu) * 1e12
    return need.flops / (rate * scaling_efficiency(offering, nodes)) / 3600.0


def cost_usd(offering: Offering, spot: bool, nodes: int, hours: float) -> float:
    """Cost of ``hours`` on ``nodes`` nodes, whole months for monthly billing."""
    if offering.billing_period == "month" and offering.period_price:
        return offering.period_price * nodes * max(1, math.ceil(hours / HOURS_PER_MONTH))
    price = offering.hourly(spot)
    assert price is not None
    return price * nodes * hours


def decode_tokens_per_s(need: Need, spec: GpuSpec, layout: Layout, context: int,
                        batch: int) -> float:
    """Decode tokens per second of ``batch`` sequences at ``context`` (memory-bound)."""
    kv_total = need.kv_bytes_per_token * context * batch
    per_gpu = need.weight_bytes_per_step / layout.tp + kv_total * layout.head_share
    step_s = per_gpu / (spec.hbm_gbps * 1e9 * HBM_EFFICIENCY)
    return batch / step_s
