"""`provision plan` for target local: the podman nodes the plan asks for, and — when it has a
workload and its nodes are simulated GPU nodes — the workload sized on them with the same
optimizer, estimate and JSON shape as a cloud plan ($0.00/h: it runs on this machine)."""

from __future__ import annotations

import json
from typing import Any

import typer

from provision.catalog import Offering
from provision.plan.load import LoadedPlan

REGION = "localhost"


def local_view(loaded: LoadedPlan) -> dict[str, Any]:
    from provision.backends.local import plan_node_specs

    nodes = plan_node_specs(loaded.plan)
    return {"nodes": [{"name": n.name, "sku": n.sku, "role": n.role,
                       "faults": list(n.faults)} for n in nodes]}


def local_offering(loaded: LoadedPlan) -> Offering | None:
    """The local nodes' hardware as one offering, when they are simulated GPU nodes of one
    SKU (CPU nodes have no GPU memory to size against)."""
    from provision.backends.baremetal_catalog import SKU_INTERCONNECT
    from provision.catalog.specs import gpu_table
    from provision.verify.reference import load_reference

    skus = {n["sku"] for n in local_view(loaded)["nodes"]}
    if len(skus) != 1:
        return None
    sku = skus.pop()
    spec = next((s for s in gpu_table().specs.values() if s.sku == sku), None)
    ref = load_reference().sku(sku)
    if spec is None or ref is None:
        return None
    link = next((kind for part, kind in SKU_INTERCONNECT if part in sku and ref.count > 1),
                "pcie")
    return Offering("local", f"podman-{sku}", REGION, "", spec.name, ref.count, None, None,
                    0.0, None, link, 10.0, True)


def render_local_plan(loaded: LoadedPlan, output: str, alternatives: int = 0) -> None:
    from rich.table import Table

    from provision.backends.baremetal_catalog import fixed_catalog, pinned_plan
    from provision.cli.console import out_console
    from provision.cli.render_plan import render_outcome
    from provision.errors import NothingFits
    from provision.planner import make_plan

    view = local_view(loaded)
    offering = local_offering(loaded) if loaded.plan.workload is not None else None
    outcome, code = None, 0
    if offering is not None:
        try:
            outcome = make_plan(pinned_plan(loaded, offering, len(view["nodes"])),
                                fixed_catalog(offering))
        except NothingFits as exc:
            outcome, code = exc.result, exc.exit_code
    if output == "json":
        data = outcome.to_json() if outcome is not None else {
            "name": loaded.plan.name, "need": None, "choice": None, "estimate": None,
            "alternatives": [], "warnings": [], "relax": []}
        data.update(target="local", **view)
        typer.echo(json.dumps(data, indent=2, allow_nan=False))
    else:
        table = Table("node", "sku", "role", "faults",
                      title=f"Local nodes of {loaded.plan.name}: podman containers on this "
                      "machine, $0.00/h", title_justify="left")
        for n in view["nodes"]:
            table.add_row(n["name"], n["sku"], n["role"], ", ".join(n["faults"]) or "—")
        out_console().print(table)
        if outcome is not None:
            render_outcome(outcome, output, alternatives)
        out_console().print("`provision up` creates them (the node image is built on first "
                            "use), converges them and verifies GPU nodes.")
    if code:
        raise typer.Exit(code)
