"""Hardware facts per offering row (data/hardware_rules.yaml): canonical GPU, interconnect,
inter-node network, multi-node support. Price catalogs carry none of these, yet the planner needs
them to decide whether tensor parallelism has NVLink and whether nodes can be joined.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from provision.datacache import load_yaml


@dataclass(frozen=True, slots=True)
class HardwareFacts:
    gpu: str | None  # canonical name override, or None to keep the row's
    interconnect: str
    network_gbps: float
    multi_node: bool


@dataclass(frozen=True, slots=True)
class _Rule:
    instance: re.Pattern | None
    accelerator: re.Pattern | None
    gpu: str | None
    gpu_by_memory: tuple[tuple[float, str], ...]
    facts: HardwareFacts

    def matches(self, instance_type: str, accelerator: str) -> bool:
        if self.instance and not self.instance.search(instance_type):
            return False
        return not (self.accelerator and not self.accelerator.search(accelerator))


class HardwareRules:
    """First-match rule lists per provider, with a default list for unknown providers."""

    def __init__(self, raw: dict[str, list[dict]]) -> None:
        self._rules = {p: [self._compile(r) for r in rules] for p, rules in raw.items()}
        self._cache: dict[tuple, HardwareFacts] = {}

    @staticmethod
    def _compile(r: dict) -> _Rule:
        def rx(key: str) -> re.Pattern | None:
            return re.compile(r[key], re.IGNORECASE) if key in r else None

        by_mem = tuple(sorted((float(k), v) for k, v in (r.get("gpu_by_memory") or {}).items()))
        return _Rule(
            instance=rx("instance"),
            accelerator=rx("accelerator"),
            gpu=r.get("gpu"),
            gpu_by_memory=by_mem,
            facts=HardwareFacts(
                gpu=r.get("gpu"),
                interconnect=r["interconnect"],
                network_gbps=float(r["network_gbps"]),
                multi_node=bool(r["multi_node"]),
            ),
        )

    def facts(
        self, provider: str, instance_type: str, accelerator: str, mem_gib: float | None
    ) -> HardwareFacts:
        """Facts for one row; memoised because catalogs repeat shapes across regions."""
        key = (provider, instance_type, accelerator, mem_gib)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        rules = self._rules.get(provider) or self._rules["default"]
        facts = HardwareFacts(None, "pcie", 10.0, True)
        for rule in rules:
            if rule.matches(instance_type, accelerator):
                facts = rule.facts
                if rule.gpu_by_memory and mem_gib:
                    # nearest listed capacity: 40960 MiB → 40, 81920 MiB → 80
                    _, gpu = min(rule.gpu_by_memory, key=lambda m: abs(m[0] - mem_gib))
                    facts = HardwareFacts(gpu, facts.interconnect, facts.network_gbps,
                                          facts.multi_node)
                break
        self._cache[key] = facts
        return facts


@cache
def hardware_rules() -> HardwareRules:
    return HardwareRules(load_yaml(resources.files("provision.catalog") / "data"
                                   / "hardware_rules.yaml"))
