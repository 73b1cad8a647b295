"""Offerings: what can be rented where, for how much, and with what interconnect.

An :class:`Offering` is one instance type in one region/zone of one provider, priced on demand
and (where the provider has it) on spot. Prices are USD for the whole instance; bare metal billed
by the month keeps its monthly price and period so the estimate can charge whole months.
"""

from __future__ import annotations

from typing import NamedTuple

HOURS_PER_MONTH = 730.0  # 365 × 24 / 12, the convention cloud price pages use


class Offering(NamedTuple):
    """One rentable node shape at one location.

    A NamedTuple rather than a dataclass: catalogs hold thousands of these and are cached as a
    pickle, which tuples load several times faster than frozen dataclasses."""

    provider: str  # aws, gcp, lambda, runpod, vast, coreweave, sakura, or a user's name
    instance_type: str  # provider's instance/machine type or TPU slice name
    region: str
    zone: str  # availability zone; "" when the provider has none
    gpu: str  # canonical accelerator name (gpus.yaml)
    gpu_count: int  # GPUs per node, or TPU chips per slice
    vcpus: float | None
    memory_gib: float | None  # host RAM
    price: float | None  # on-demand USD per hour (hour-equivalent when billed monthly)
    spot_price: float | None  # spot/preemptible/interruptible USD per hour, None if not offered
    interconnect: str  # nvswitch | nvlink | nvlink-pairs | pcie | ici
    network_gbps: float  # inter-node network per node, Gb/s
    multi_node: bool  # can several be joined on one fast network
    hosts: int = 1  # machines behind one offering (multi-host TPU slices)
    billing_period: str = "hour"  # hour | month
    period_price: float | None = None  # price per billing period as the provider states it
    source: str = ""  # the catalog file the row came from

    @property
    def nvlink_domain(self) -> int:
        """How many of this node's GPUs share one NVLink/NVSwitch (or ICI) domain."""
        if self.interconnect in ("nvswitch", "nvlink", "ici"):
            return self.gpu_count
        if self.interconnect == "nvlink-pairs":
            return min(2, self.gpu_count)
        return 1

    @property
    def location(self) -> str:
        return self.zone or self.region

    def hourly(self, spot: bool) -> float | None:
        return self.spot_price if spot else self.price
