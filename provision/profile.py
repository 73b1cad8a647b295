"""A plan's software profile: which hardware its nodes are, and what software each SKU gets.

The hardware comes from wherever the plan lands: the local target's (simulated) SKUs, the
bare-metal host list, or the optimizer's choice for cloud targets. Resolution against the
compatibility matrix happens here, before any node exists, so an impossible combination is an
input error (exit 2) naming the plan.yaml line of the field to change.
"""

from __future__ import annotations

from typing import Any

from provision.catalog.software import Hardware, Profile, SoftwareError, resolve
from provision.catalog.specs import GpuSpec, gpu_table
from provision.plan.load import LoadedPlan


def _by_sku() -> dict[str, GpuSpec]:
    return {spec.sku: spec for spec in gpu_table().specs.values()}


def _hardware(sku: str, spec: GpuSpec, provider: str, *, count: int | None = None,
              interconnect: str | None = None, multi_node: bool = True) -> Hardware:
    """A SKU's hardware, filled from the verify reference table where it knows the SKU."""
    from provision.verify.reference import load_reference

    ref = load_reference().sku(sku)
    if spec.is_tpu:
        return Hardware(sku=sku, gpu=spec.name, arch=spec.arch,
                        count=count or (ref.count if ref else 1), interconnect="ici",
                        provider=provider, multi_node=multi_node)
    link = interconnect
    if link is None and ref is not None and ref.nvlink is not None:
        link = "nvswitch" if ref.nvlink.fabric == "nvswitch" else "pcie"
    nccl = ref.metric("nccl.all_reduce") if ref else None
    return Hardware(
        sku=sku, gpu=spec.name, arch=spec.arch,
        count=count or (ref.count if ref else 1),
        interconnect=link or "pcie", provider=provider, multi_node=multi_node,
        ib_ports=ref.ib.ports if ref and ref.ib else 0,
        ib_rate_gbps=ref.ib.rate_gbps if ref and ref.ib else None,
        nvlinks_per_gpu=ref.nvlink.links_per_gpu if ref and ref.nvlink else 0,
        gpu_names=tuple(ref.gpu_names) if ref else (),
        nccl_busbw_gbps=nccl.reference if nccl is not None else None,
    )


def sku_hardware(sku: str, provider: str = "local") -> Hardware:
    """The hardware of one simulated (or known) node SKU, e.g. h100-sxm-80gb."""
    spec = _by_sku().get(sku)
    if spec is None:
        raise ValueError(f"unknown SKU {sku!r}; known: {', '.join(sorted(_by_sku()))}")
    return _hardware(sku, spec, provider)


def cluster_hardware(loaded: LoadedPlan, outcome: Any | None = None) -> list[Hardware]:
    """One entry per distinct accelerator SKU of the plan's nodes (CPU nodes have none)."""
    plan = loaded.plan
    by_sku = _by_sku()
    found: dict[str, Hardware] = {}
    if plan.target == "local" and plan.local is not None:
        for node in plan.local.node_list():
            sku = node.sku or plan.local.sku
            if sku in by_sku and sku not in found:
                found[sku] = _hardware(sku, by_sku[sku], "local")
    elif plan.target == "baremetal" and plan.baremetal is not None:
        from provision.backends.baremetal_catalog import interconnect

        for host in plan.baremetal.hosts:
            spec = by_sku.get(host.sku)
            if spec is not None and host.sku not in found:
                found[host.sku] = _hardware(
                    host.sku, spec, "baremetal", count=host.gpus or None,
                    interconnect=None if spec.is_tpu else interconnect(host, spec),
                    multi_node=len(plan.baremetal.hosts) > 1)
    elif outcome is not None and outcome.choice is not None:
        o = outcome.choice.offering
        spec = gpu_table().resolve(o.gpu)
        if spec is not None:
            # a multi-host TPU slice is one node per host, each with its share of the chips
            found[spec.sku] = _hardware(spec.sku, spec, o.provider,
                                        count=o.gpu_count // max(1, o.hosts),
                                        interconnect=o.interconnect, multi_node=o.multi_node)
    return list(found.values())


def plan_profiles(loaded: LoadedPlan, outcome: Any | None = None) -> dict[str, Profile]:
    """The software of every accelerator SKU in the plan; an InputError (exit 2) naming the
    plan line when the combination cannot work."""
    try:
        return resolve(loaded.plan.software, cluster_hardware(loaded, outcome),
                       loaded.plan.target)
    except SoftwareError as exc:
        raise loaded.error(exc.loc, exc.message) from None


def inventory_group_vars(profiles: dict[str, Profile]) -> tuple[dict[str, Any],
                                                                dict[str, dict[str, Any]]]:
    """(variables for every node, variables per ``sku_<sku>`` group) for the inventory.

    Nothing at all for a CPU-only cluster, so its converge is exactly what it was."""
    from provision.inventory import group_name

    if not profiles:
        return {}, {}
    first = next(iter(profiles.values()))
    cluster = {"mpi_flavour": first["mpi"]}
    return cluster, {group_name("sku", sku): p.role_vars() for sku, p in profiles.items()}


def software_inventory(loaded: LoadedPlan, outcome: Any | None, target: str,
                       event: Any = None) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """What `provision up` needs before creating nodes: the resolved profile as inventory
    variables (raising InputError, exit 2, when it cannot work), and on the local target the
    simulated nodes' stand-in repository, built now, with the variables that point the roles
    at it. Returns (variables for every node, variables per ``sku_<sku>`` group)."""
    profiles = plan_profiles(loaded, outcome)
    cluster, groups = inventory_group_vars(profiles)
    if target == "local" and profiles:
        from provision.inventory import group_name
        from provision.simulate import packages

        packages.ensure_repo(packages.Needs.from_profiles(profiles.values()),
                             event or (lambda m: None))
        sim = packages.role_vars()
        groups = {g: {**sim, **v} for g, v in groups.items()}
        for sku in profiles:
            groups.setdefault(group_name("sku", sku), dict(sim))
    return cluster, groups
