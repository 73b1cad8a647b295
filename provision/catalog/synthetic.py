"""Synthetic catalogs for the optimizer's benchmark and property tests.

Shaped like real ones: a few hundred instance types, each offered in many regions at slightly
different prices, some with spot prices, some billed monthly. Seeded, so runs are repeatable.
"""

from __future__ import annotations

import random

from provision.catalog import Catalog
from provision.catalog.offerings import HOURS_PER_MONTH, Offering
from provision.catalog.specs import GpuTable, gpu_table

INTERCONNECTS = ("nvswitch", "nvlink", "nvlink-pairs", "pcie")


def synthetic_offerings(
    n: int, *, seed: int = 0, gpus: GpuTable | None = None, providers: int = 8,
    regions: int = 20,
) -> list[Offering]:
    """``n`` offerings: about n / regions instance types × up to ``regions`` locations."""
    rng = random.Random(seed)
    gpus = gpus or gpu_table()
    names = [g for g in gpus.names() if not gpus[g].is_tpu]
    out: list[Offering] = []
    shapes = max(1, n // regions)
    for i in range(shapes):
        gpu = rng.choice(names)
        spec = gpus[gpu]
        count = rng.choice((1, 1, 2, 4, 8, 8))
        provider = f"p{rng.randrange(providers)}"
        interconnect = "pcie" if count == 1 else rng.choice(INTERCONNECTS)
        network = rng.choice((10.0, 25.0, 100.0, 400.0, 800.0, 3200.0))
        multi = rng.random() < 0.6
        monthly = rng.random() < 0.05
        per_gpu = spec.bf16_tflops / 250.0 * rng.uniform(0.6, 1.6)
        base = round(per_gpu * count + rng.uniform(0.05, 2.0), 4)
        for r in range(regions):
            if len(out) >= n:
                break
            price = round(base * rng.uniform(0.9, 1.3), 4)
            spot = round(price * rng.uniform(0.2, 0.7), 4) if rng.random() < 0.7 else None
            out.append(Offering(
                provider=provider,
                instance_type=f"{provider}-{gpu.lower()}-{count}x-{i}",
                region=f"region-{r % 7}",
                zone=f"region-{r % 7}-{'abc'[r % 3]}{r}",
                gpu=gpu,
                gpu_count=count,
                vcpus=float(8 * count),
                memory_gib=float(64 * count),
                price=price,
                spot_price=None if monthly else spot,
                interconnect=interconnect,
                network_gbps=network,
                multi_node=multi,
                billing_period="month" if monthly else "hour",
                period_price=round(price * HOURS_PER_MONTH, 2) if monthly else price,
                source="synthetic",
            ))
    while len(out) < n:  # top up when n is not a multiple of regions
        out.append(out[len(out) % shapes]._replace(zone=f"extra-{len(out)}"))
    return out


def synthetic_catalog(n: int, *, seed: int = 0) -> Catalog:
    gpus = gpu_table()
    return Catalog(gpus=gpus, offerings=synthetic_offerings(n, seed=seed, gpus=gpus))
