"""Catalog rows are data to check, not to trust.

Published price catalogs carry mistakes that would make the optimizer pick nonsense: RunPod's
L40S rows list spot at twice on-demand (the two swapped), some GCP H100 rows price spot above
on-demand, SkyPilot writes $700 for TPU slices a region does not offer, and Vast rows can lack
their place name (``, US, NA``). :func:`check` finds such rows; the catalog keeps them out of
the choice (unless the user named the file and trusts it) and every listing names them.

Rules, each with its reason:

- spot above on-demand (beyond rounding, 0.1 %): spot is a discount market; AWS caps spot at
  the on-demand price, so spot *equal* to on-demand is real and kept.
- a known placeholder price: SkyPilot's GCP fetcher writes 700.0 for TPU slices it found no
  price for (tpu-v6e-1 at $700/h, 260× the v6e median per chip-hour).
- on-demand price per GPU-hour more than 10× above the median for the same GPU (placeholders
  and unit errors), or more than 50× below it (cents read as dollars; marketplace prices such
  as Vast's 8×V100 at $0.11 per GPU-hour, 1/29 of the AWS-dominated median, are real, so the
  low side is looser). Spot prices are not compared: deep discounts are what spot is.
- a region that is not a region name (letters, digits, '-', '_', '.', spaces; a place name
  first): such rows never match ``regions:`` patterns.
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from provision.catalog.offerings import Offering

SPOT_TOLERANCE = 1.001
PLACEHOLDER_PRICES = {700.0: "SkyPilot's $700 'not offered' placeholder"}
HIGH_FACTOR = 10.0
LOW_FACTOR = 50.0
_REGION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$")


@dataclass(frozen=True, slots=True)
class Suspect:
    """A catalog row set aside (or kept, when trusted), and why."""

    offering: Offering
    reason: str
    kept: bool = False

    @property
    def placeholder(self) -> bool:
        return self.reason in PLACEHOLDER_PRICES.values()

    @property
    def per_gpu_hour(self) -> float:
        """The row's lowest price per GPU-hour (for ordering)."""
        o = self.offering
        prices = [p for p in (o.price, o.spot_price) if p]
        return min(prices) / o.gpu_count if prices else float("inf")

    def describe(self) -> str:
        o = self.offering
        where = o.zone or o.region or "(no region)"
        return (f"{o.provider} {o.instance_type} {where}: {self.reason} (on-demand "
                f"{_money(o.price)}, spot {_money(o.spot_price)})")

    def to_json(self) -> dict:
        o = self.offering
        return {"provider": o.provider, "instance_type": o.instance_type, "region": o.region,
                "zone": o.zone or None, "price": o.price, "spot_price": o.spot_price,
                "reason": self.reason, "kept": self.kept}


def _money(x: float | None) -> str:
    return "—" if x is None else f"{_usd(x)}/h"


def _usd(x: float) -> str:
    return f"${x:,.2f}" if x >= 0.01 else f"${x:.4f}"


def medians(offerings: Iterable[Offering]) -> dict[str, float]:
    """Median on-demand price per GPU-hour for each GPU (hourly rows, placeholders excluded)."""
    per: dict[str, list[float]] = defaultdict(list)
    for o in offerings:
        if o.price and o.billing_period == "hour" and o.price not in PLACEHOLDER_PRICES:
            per[o.gpu].append(o.price / o.gpu_count)
    return {gpu: statistics.median(v) for gpu, v in per.items()}


def reason(o: Offering, median: dict[str, float]) -> str | None:
    """Why ``o`` is suspect, or None."""
    if not o.region or not _REGION.match(o.region):
        return f"unparseable region {o.region!r}"
    for price in (o.price, o.spot_price):
        if price in PLACEHOLDER_PRICES:
            return PLACEHOLDER_PRICES[price]  # type: ignore[index]
    if o.price and o.spot_price and o.spot_price > o.price * SPOT_TOLERANCE:
        return "spot price above on-demand (swapped or stale)"
    mid = median.get(o.gpu)
    if o.price and mid and o.billing_period == "hour":
        per_gpu = o.price / o.gpu_count
        if per_gpu > mid * HIGH_FACTOR:
            return (f"{_usd(per_gpu)} per GPU-hour is {per_gpu / mid:,.1f}× the {o.gpu} "
                    f"median {_usd(mid)}")
        if per_gpu * LOW_FACTOR < mid:
            return (f"{_usd(per_gpu)} per GPU-hour is 1/{mid / per_gpu:,.0f} of the {o.gpu} "
                    f"median {_usd(mid)}")
    return None


def check(offerings: Sequence[Offering],
          trusted: frozenset[Offering] = frozenset()) -> tuple[list[Offering], list[Suspect]]:
    """(rows the optimizer may use, suspect rows). Suspect rows in ``trusted`` (from files the
    user named with --trust-catalog) stay usable and are still listed."""
    median = medians(offerings)
    usable: list[Offering] = []
    suspects: list[Suspect] = []
    for o in offerings:
        why = reason(o, median)
        if why is None:
            usable.append(o)
            continue
        kept = o in trusted
        suspects.append(Suspect(o, why, kept))
        if kept:
            usable.append(o)
    return usable, suspects
