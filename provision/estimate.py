"""Time and cost of a workload on a chosen configuration.

- Training time = FLOPs / (GPUs × peak × MFU × multi-node scaling), FLOPs = 6·N·D (sizing.py).
- Multi-node scaling: each doubling of the node count keeps a fraction of per-GPU throughput
  that depends on the inter-node bandwidth per GPU: 0.97 at ≥ 100 Gb/s per GPU (InfiniBand/EFA
  class fabrics), 0.90 at ≥ 25 Gb/s, 0.75 below (plain Ethernet). A planning assumption, not a
  measurement; it makes the optimizer prefer fewer, fuller nodes at equal price.
- Cost = cluster price per hour × hours; monthly-billed bare metal is charged in whole months.
- Inference decode throughput (memory-bound estimate): each decode step reads the active weights
  and the resident KV cache once; at 70 % of peak HBM bandwidth per node, a step of a pipeline
  over nodes takes bytes / (GPUs per node × bandwidth), and produces one token per sequence.
"""

from __future__ import annotations

import math

from provision.catalog.offerings import HOURS_PER_MONTH, Offering
from provision.catalog.specs import GpuSpec
from provision.sizing import Need

HBM_EFFICIENCY = 0.7


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


def training_hours(
    need: Need, spec: GpuSpec, offering: Offering, nodes: int, mfu: float
) -> float | None:
    if not need.flops:
        return None
    gpus = offering.gpu_count * nodes
    rate = gpus * spec.peak_tflops(need.precision) * 1e12 * mfu
    return need.flops / (rate * scaling_efficiency(offering, nodes)) / 3600.0


def cost_usd(offering: Offering, spot: bool, nodes: int, hours: float) -> float:
    """Cost of ``hours`` on ``nodes`` nodes, whole months for monthly billing."""
    if offering.billing_period == "month" and offering.period_price:
        return offering.period_price * nodes * max(1, math.ceil(hours / HOURS_PER_MONTH))
    price = offering.hourly(spot)
    assert price is not None
    return price * nodes * hours


def decode_tokens_per_s(
    need: Need, spec: GpuSpec, offering: Offering, nodes: int, context: int, batch: int
) -> float:
    step_bytes = need.weight_bytes_per_step + need.kv_bytes_per_token * context * batch
    node_bw = offering.gpu_count * spec.hbm_gbps * 1e9 * HBM_EFFICIENCY
    # a pipeline over nodes reads every stage's share at its node's bandwidth in turn
    return batch / (step_bytes / node_bw) if nodes >= 1 else 0.0
