"""`provision preview PLAN [--offline]`: the resources `provision up` would create.

``--offline`` runs the plan's stack program under Pulumi's mock engine (no CLI, no plugins, no
credentials): for pull requests. Without it, a real `pulumi preview` runs through the Automation
API against the cluster's stack (needs the Pulumi CLI, plugins and cloud credentials).
"""

from __future__ import annotations

import json
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from provision.cli.app import CatalogOpt, app


class PreviewOutput(StrEnum):
    table = "table"
    json = "json"
    markdown = "markdown"


INLINE_WIDTH = 110  # characters of inputs shown per resource in the table view


@app.command()
def preview(
    plan_file: Annotated[Path, typer.Argument(metavar="PLAN", help="The plan.yaml to preview.")],
    offline: Annotated[bool, typer.Option(
        "--offline", help="Run the stack program under Pulumi's mock engine: no Pulumi CLI, "
        "plugins or credentials needed.")] = False,
    output: Annotated[PreviewOutput, typer.Option(
        "--output", "--format", "-o", help="table for people; json: [{type, name, inputs}]; "
        "markdown for pull-request comments.")]
    = PreviewOutput.table,
    catalog: CatalogOpt = None,
    state_dir: Annotated[Path | None, typer.Option(
        "--state-dir", envvar="PROVISION_STATE_DIR",
        help="Where cluster state lives (real preview only).")] = None,
) -> None:
    """Show the cloud resources `provision up` would create for a plan (type, name, inputs).

    Secrets never appear: secret inputs print as [secret], and BMC passwords are only ever
    referenced by variable or file name. Offline, values the cloud assigns (ids, addresses)
    print as "(known after apply)".
    """
    from provision.errors import InputError
    from provision.plan import load_plan

    loaded = load_plan(plan_file)
    if loaded.plan.target == "local":
        raise InputError(f"{plan_file}: target local has no cloud stack to preview; "
                         "`provision up` creates podman containers on this machine")
    require_cloud_extra()
    from provision.access import DEFAULT_USER
    from provision.backends.registry import get_backend
    from provision.backends.specs import cluster_spec, preview_ssh, target_of
    outcome = None
    if loaded.plan.target != "baremetal":
        from provision.planner import make_plan

        outcome = make_plan(loaded, extra_catalogs=catalog or ())
    name = target_of(loaded, outcome)
    spec = cluster_spec(loaded, preview_ssh(loaded, DEFAULT_USER.get(name, "ubuntu")), outcome)
    if offline:
        from provision.backends.api_rules import ApiRefusal
        from provision.backends.offline import run_offline

        backend = get_backend(name, state_dir=Path("(offline)"), detect_cidr=None)
        try:
            run = run_offline(backend.component(spec, offline=True), project=backend.project,
                              stack=spec.cluster)
        except ApiRefusal as exc:
            raise InputError(f"{plan_file}: {name} would refuse this launch: {exc} (rule: "
                             f"{exc.source})") from None
        resources = sorted((r for r in run.resources if r.custom),
                           key=lambda r: (r.type, r.name))
        _render(resources, output, _headline(spec, name, backend))
        return
    from provision.cli.console import err_console
    from provision.state import ClusterState

    directory = ClusterState.open(loaded.plan.name, state_dir).directory
    backend = get_backend(name, state_dir=directory)
    changes = backend.preview(spec, lambda m: err_console().print(m, highlight=False))
    if output is PreviewOutput.json:
        typer.echo(json.dumps(changes, indent=2))
    else:
        typer.echo(", ".join(f"{n} to {op}" for op, n in sorted(changes.items())) or
                   "no changes")


def require_cloud_extra() -> None:
    """Stacks run on Pulumi, which comes with the `cloud` extra: say how to install it
    (exit 2) instead of failing on the import."""
    import importlib.util

    from provision.errors import InputError

    try:
        found = importlib.util.find_spec("pulumi") is not None
    except ImportError:
        found = False
    if not found:
        raise InputError("`provision preview` needs Pulumi and the cloud SDKs, which the cloud "
                         "extra installs: pip install 'provision[cloud]'")


def _headline(spec: Any, name: str, backend: Any = None) -> str:
    o = spec.offering
    if o is None:
        return f"{spec.cluster}: {len(spec.nodes)} bare-metal host(s)"
    market = "spot" if spec.spot else "on-demand"
    line = (f"{spec.cluster}: {len(spec.nodes)} node(s) of {o.instance_type} "
            f"({o.gpu_count}×{o.gpu}) in {o.zone or o.region}, {market}, via {name}")
    if hasattr(backend, "gcp_project"):
        project = backend.gcp_project(spec)
        line += f"; project {project.id} (from {project.source})"
    return line


def _inline(inputs: dict[str, Any]) -> str:
    text = json.dumps(inputs, separators=(", ", "="), sort_keys=True)[1:-1].replace('"', "")
    return text if len(text) <= INLINE_WIDTH else text[:INLINE_WIDTH - 1] + "…"


def _render(resources: list[Any], output: PreviewOutput, headline: str) -> None:
    if output is PreviewOutput.json:
        typer.echo(json.dumps([r.to_json() for r in resources], indent=2, sort_keys=True))
        return
    if output is PreviewOutput.markdown:
        typer.echo(preview_markdown(resources, headline), nl=False)
        return
    from rich.table import Table

    from provision.cli.console import out_console

    table = Table("type", "name", "inputs", title=headline, title_justify="left")
    for r in resources:
        table.add_row(r.type, r.name, _inline(r.inputs))
    con = out_console()
    con.print(table)
    con.print(f"{len(resources)} resources (offline preview: ids and addresses are known "
              "after apply; `--output json` shows every input)")



def preview_markdown(resources: list[Any], headline: str) -> str:
    """A pull-request comment: one row per resource, inputs abbreviated."""
    lines = [f"### provision preview: {headline}", "", "| type | name | inputs |",
             "|---|---|---|"]
    for r in resources:
        inputs = _inline(r.inputs).replace("|", "\\|")
        lines.append(f"| `{r.type}` | {r.name} | {inputs} |")
    lines += ["", f"{len(resources)} resources (offline preview: ids and addresses are "
              "known after apply)."]
    return "\n".join(lines) + "\n"


def render_host_plan(loaded: Any, output: str, alternatives: int = 0) -> None:
    """`provision plan` for target baremetal: the hosts, and the workload sized on them with
    the same optimizer, estimate and JSON shape as a cloud plan (price $0: owned hardware).
    Exits 3 when the workload does not fit on the hosts."""
    from rich.table import Table

    from provision.backends.baremetal_catalog import (
        fixed_catalog,
        host_hardware,
        host_view,
        pinned_plan,
    )
    from provision.cli.console import out_console
    from provision.cli.render_plan import render_outcome
    from provision.errors import NothingFits
    from provision.planner import make_plan

    view = host_view(loaded)
    hw = host_hardware(loaded.plan.baremetal)
    outcome, code = None, 0
    if hw.offering is not None:
        try:
            outcome = make_plan(pinned_plan(loaded, hw.offering, len(hw.hosts)),
                                fixed_catalog(hw.offering))
        except NothingFits as exc:
            outcome, code = exc.result, exc.exit_code
            # the node limit is the host list here, not a constraint to raise
            outcome.relax = [re.sub(r"raise constraints\.max_nodes \(now (\d+)\) to ≥ (\d+)",
                                    r"list ≥ \2 such hosts in baremetal.hosts (the plan has \1)",
                                    tip) for tip in outcome.relax]
        outcome.warnings[:0] = hw.warnings
        used = outcome.choice.nodes if outcome.choice is not None else 0
        if used and used < len(hw.hosts):
            outcome.warnings.insert(0, f"the workload needs {used} of the {len(hw.hosts)} "
                                    "hosts; `provision up` still prepares them all")
    fits = None if outcome is None else (code == 0)
    if output == "json":
        data = outcome.to_json() if outcome is not None else {
            "name": loaded.plan.name, "need": None, "choice": None, "estimate": None,
            "alternatives": [], "warnings": hw.warnings, "relax": []}
        data.update(target="baremetal", fits=fits, **view)
        typer.echo(json.dumps(data, indent=2, allow_nan=False))
    else:
        table = Table("node", "address", "sku", "gpus", "role", "bmc",
                      title=f"Hosts of {loaded.plan.name} (bare metal: fixed, nothing to choose)"
                      f"; on up: {', '.join(view['actions'])}", title_justify="left")
        for h in view["hosts"]:
            table.add_row(h["name"], f"{h['address']}:{h['ssh_port']}", h["sku"],
                          str(h["gpus"]), h["role"], h["bmc"] or "—")
        out_console().print(table)
        if outcome is not None:
            render_outcome(outcome, output, alternatives)
        else:
            for w in hw.warnings:
                out_console().print(f"  ! {w}")
    if code:
        raise typer.Exit(code)
