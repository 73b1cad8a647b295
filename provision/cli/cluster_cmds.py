"""`provision up`, `down`, `status` and `image build`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from provision.cli.app import Output, app

StateDir = Annotated[
    Path | None,
    typer.Option("--state-dir", envvar="PROVISION_STATE_DIR",
                 help="Where cluster state lives (default ~/.local/state/provision)."),
]
Inventories = Annotated[
    Path,
    typer.Option("--inventories", envvar="PROVISION_INVENTORIES",
                 help="Directory that receives inventories/<cluster>/ (default ./inventories)."),
]


@app.command()
def up(
    plan_file: Annotated[Path, typer.Argument(metavar="PLAN", help="The plan.yaml to bring up.")],
    state_dir: StateDir = None,
    inventories: Inventories = Path("inventories"),
    output: Annotated[Output, typer.Option("--output", "--format", "-o")] = Output.table,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Never ask (CI/GitOps).")] = False,
    watch: Annotated[bool, typer.Option(
        "--watch", help="Afterwards keep the cluster at its goal (see `provision watch`).")]
    = False,
    interval: Annotated[float, typer.Option(help="With --watch: seconds between checks.",
                                            min=1)] = 30.0,
    refresh_image: Annotated[bool, typer.Option(
        "--refresh-image", help="Look up the boot image again (a new DLAMI release) instead "
        "of the one pinned at the first `up`; nodes are replaced onto it.")] = False,
) -> None:
    """Create the plan's nodes, render the inventory and converge them with Ansible.

    Safe to rerun: existing nodes are converged, lost ones recreated, nothing is duplicated.
    `provision up examples/local.yaml` needs no cloud account (podman nodes on this machine).
    """
    from provision.cli.progress import ui
    from provision.orchestrator import RunFailed
    from provision.orchestrator import up as do_up

    try:
        with ui() as u:
            result = do_up(plan_file, u, state_root=state_dir, inventories=inventories,
                           refresh_image=refresh_image)
    except RunFailed as exc:
        if exc.result is not None and hasattr(exc.result, "converge"):
            _render_up(exc.result, output)
        raise
    _render_up(result, output)
    if watch:
        from provision.watch import watch as do_watch

        with ui() as u:
            ended = do_watch(result.cluster, u, interval=interval, state_root=state_dir,
                             inventories=inventories)
        typer.echo(f"watch ended: {ended.stopped_because or 'time is up'}", err=True)


def _render_up(result, output: Output) -> None:
    """The converge summary table, the verify report, and one line about the cluster."""
    from provision.cli.console import out_console
    from provision.cli.progress import summary_table

    con = out_console()
    if output == Output.json:
        con.print_json(json.dumps(result.to_json()))
        return
    if len(result.attempts) > 1 or any(a["status"] != "launched" for a in result.attempts):
        con.print(attempts_table(result.attempts))
    if result.converge:
        con.print(summary_table(result.converge))
    if result.verify is not None and result.verify.report is not None:
        from provision.verify.report import render

        render(result.verify.report, "table", con)
    elif result.verify is not None:
        con.print("verify: no GPU or TPU nodes to measure")
    con.print(f"cluster {result.cluster}: {len(result.nodes)} node(s) "
              f"({', '.join(n.name + ' ' + n.address for n in result.nodes)}) in "
              f"{result.seconds:,.0f} s; inventory {result.inventory}/hosts.yml")


def attempts_table(attempts: list[dict]):
    """The placements a launch tried, in order, with what became of each."""
    from rich.table import Table

    table = Table("#", "placement", "why tried", "outcome", "cleaned up",
                  title="launch attempts", title_justify="left")
    for i, a in enumerate(attempts, 1):
        where = f"{a['zone']} ({a['region']})" if a["zone"] else a["region"]
        outcome = a["status"] + (f": {a['reason']}" if a["reason"] else "")
        cleaned = {None: "—", True: "yes", False: "NO"}[a["cleaned_up"]]
        table.add_row(str(i), f"{a['provider']} {a['nodes']} × {a['instance_type']} in {where}",
                      a["why"], outcome, cleaned)
    return table


@app.command()
def down(
    cluster: Annotated[str, typer.Argument(help="Cluster name, or the plan.yaml it came from.")],
    state_dir: StateDir = None,
    inventories: Inventories = Path("inventories"),
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
    = False,
    output: Annotated[Output, typer.Option("--output", "--format", "-o")] = Output.table,
) -> None:
    """Remove everything the cluster created (nodes, networks, volumes), then its inventory
    and state, and say what, if anything, could not be removed (exit 1)."""
    from provision.cli.console import out_console
    from provision.errors import InputError, ProvisionError
    from provision.orchestrator import down as do_down

    name = _cluster_name(cluster)
    if not yes:
        if not sys.stdin.isatty():
            raise InputError("refusing to remove a cluster without --yes when not on a terminal")
        typer.confirm(f"Remove cluster {name!r} and everything it created?", abort=True)
    from provision.cli.progress import ui

    with ui() as u:
        report = do_down(name, u, state_root=state_dir, inventories=inventories)
    con = out_console()
    if output == Output.json:
        con.print_json(json.dumps({"cluster": name, "removed": report.removed,
                                   "leftovers": report.leftovers}))
    else:
        for item in report.removed:
            con.print(f"removed {item}")
    if report.leftovers:
        raise ProvisionError("could not remove: " + ", ".join(report.leftovers))
    if output != Output.json:
        con.print(f"cluster {name} is gone")


def _cluster_name(arg: str) -> str:
    path = Path(arg)
    if arg.endswith((".yaml", ".yml")) and path.is_file():
        from provision.plan import load_plan

        return load_plan(path).plan.name
    return arg


@app.command()
def status(
    cluster: Annotated[str | None, typer.Argument(help="Cluster name or plan.yaml; "
                                                  "omit to list clusters.")] = None,
    state_dir: StateDir = None,
    output: Annotated[Output, typer.Option("--output", "--format", "-o")] = Output.table,
) -> None:
    """Nodes, addresses, live state and the last converge result per host."""
    from rich.table import Table

    from provision.cli.console import out_console
    from provision.orchestrator import status as do_status
    from provision.state import list_clusters

    con = out_console()
    if cluster is None:
        names = list_clusters(state_dir)
        if output == Output.json:
            con.print_json(json.dumps(names))
        else:
            con.print("\n".join(names) if names else "no clusters")
        return
    info = do_status(_cluster_name(cluster), state_root=state_dir)
    if output == Output.json:
        con.print_json(json.dumps(info))
        return
    table = Table(title=f"{info['cluster']} ({info['target']})", title_justify="left")
    for col in ("node", "address", "sku", "role", "state", "last converge"):
        table.add_column(col)
    for n in info["nodes"]:
        table.add_row(n["name"], n["address"], n["sku"], n["role"], n["state"], n["converge"])
    con.print(table)
    con.print(("stopped (`provision up` starts it); " if info["stopped"] else "")
              + f"now ${info['price_per_hour']:,.2f}/h, spent so far ${info['spent_usd']:,.2f}")
    last = info["last_converge"]
    if last:
        con.print(f"last converge: {last['status']} (rc {last['rc']}) at {last['at']}")


image_app = typer.Typer(help="The local target's node image.", no_args_is_help=True)
app.add_typer(image_app, name="image")


@image_app.command("build")
def image_build(
    if_missing: Annotated[bool, typer.Option(
        "--if-missing", help="Only build when no image of the current recipe exists.")] = False,
) -> None:
    """Rebuild the node image (debootstrap → podman import). `provision up` builds it on
    first use; run this to pick up newer Debian packages."""
    from provision.backends.node_image import ensure_image

    tag = ensure_image(lambda m: print(f"• {m}", file=sys.stderr, flush=True),
                       force=not if_missing)
    print(tag)
