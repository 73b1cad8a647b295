"""The bare-metal host list as a one-offering catalog, so `provision plan` sizes a workload
against the machines the plan names with the same optimizer, estimates and JSON as clouds.

Nothing is rented: the one offering is the hosts' hardware and the node count is capped at the
number of hosts, so the outcome says how many of them the workload needs (or why they are not
enough), how long it runs and what to change. Owned hardware has no hourly price ($0.00/h).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from provision.catalog import Catalog, Offering
from provision.catalog.specs import GpuSpec, gpu_table
from provision.plan.cloud import BaremetalHost, BaremetalTarget
from provision.plan.load import LoadedPlan
from provision.plan.schema import Resources

# (substring of the SKU id, interconnect) in order: SXM2 (V100) is an NVLink mesh, later SXM
# boards (HGX A100/H100/H200/B200) an NVSwitch; GH200 is one GPU per module.
SKU_INTERCONNECT: tuple[tuple[str, str], ...] = (("-sxm2-", "nvlink"), ("-sxm", "nvswitch"))
REGION = "on-premises"


def interconnect(host: BaremetalHost, spec: GpuSpec) -> str:
    if host.interconnect:
        return host.interconnect
    for part, kind in SKU_INTERCONNECT:
        if part in host.sku and host.gpus > 1:
            return kind
    return "nvlink-pairs" if spec.nvlink_gbps > 0 and host.gpus > 1 else "pcie"


@dataclass
class HostHardware:
    """The hosts that share one hardware shape, as an offering."""

    offering: Offering | None
    hosts: list[BaremetalHost] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def host_hardware(target: BaremetalTarget) -> HostHardware:
    """The largest group of identical GPU hosts (others are named in a warning)."""
    table = gpu_table()
    by_sku = {spec.sku: spec for spec in table.specs.values()}
    groups: dict[tuple, list[BaremetalHost]] = {}
    for h in target.hosts:
        spec = by_sku.get(h.sku)
        if spec is None or h.gpus == 0:
            continue
        groups.setdefault((spec.name, h.gpus, interconnect(h, spec), h.network_gbps),
                          []).append(h)
    if not groups:
        return HostHardware(None, warnings=[
            "no host lists GPUs (a GPU sku and gpus:), so there is nothing to size against"])
    key = max(groups, key=lambda k: (table[k[0]].memory_gb * k[1] * len(groups[k]), k[0]))
    gpu, count, link, net = key
    hosts = groups[key]
    out = HostHardware(Offering("baremetal", f"{count}x{gpu}", REGION, "", gpu, count, None,
                                None, 0.0, None, link, net, len(hosts) > 1), hosts)
    others = len(target.hosts) - len(hosts)
    if others:
        out.warnings.append(f"sized on the {len(hosts)} host(s) with {count}×{gpu}; "
                            f"{others} other host(s) are not counted")
    return out


def pinned_plan(loaded: LoadedPlan, offering: Offering, max_nodes: int) -> LoadedPlan:
    """The plan pinned to fixed hardware (bare-metal hosts, local nodes), with at most
    ``max_nodes`` nodes: the optimizer then says how many of them the workload needs, or why
    they are not enough."""
    o = offering
    plan = loaded.plan
    pins = Resources(gpu=o.gpu, gpus_per_node=o.gpu_count, provider=o.provider,
                     instance_type=o.instance_type)
    constraints = plan.constraints.model_copy(update={
        "clouds": None, "regions": None, "gpus": None, "spot": "never",
        "max_nodes": max_nodes})
    return LoadedPlan(plan.model_copy(update={"resources": pins, "constraints": constraints}),
                      loaded.source)


def fixed_catalog(offering: Offering | None) -> Catalog:
    """A catalog of exactly the fixed hardware a plan names."""
    return Catalog(gpus=gpu_table(), offerings=[offering] if offering else [])


def host_view(loaded: LoadedPlan) -> dict[str, Any]:
    """The hosts as the plan names them, for display next to the outcome."""
    from provision.backends.baremetal import host_nodes

    target = loaded.plan.baremetal
    assert target is not None
    nodes = host_nodes(loaded.plan.name, target)
    actions = []
    if target.power_on:
        actions.append("power on")
    if target.reinstall:
        actions.append(f"reinstall ({target.reinstall.method}, generation "
                       f"{target.reinstall.generation})")
    return {
        "hosts": [{"name": n.name, "address": h.address, "ssh_port": h.ssh_port, "sku": h.sku,
                   "gpus": h.gpus, "role": n.role,
                   "bmc": f"{h.bmc.protocol} {h.bmc.endpoint}" if h.bmc else None}
                  for n, h in zip(nodes, target.hosts, strict=True)],
        "actions": actions or ["wait for SSH"],
    }
