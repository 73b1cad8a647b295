"""Day-2 commands: `provision recover`, `watch`, `stop` and `diff`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from provision.cli.app import Output, app
from provision.cli.cluster_cmds import Inventories, StateDir, _cluster_name


@app.command()
def recover(
    cluster: Annotated[str, typer.Argument(help="Cluster name or the plan.yaml it came from.")],
    state_dir: StateDir = None,
    inventories: Inventories = Path("inventories"),
    output: Annotated[Output, typer.Option("--output", "--format", "-o")] = Output.table,
) -> None:
    """Replace lost or preempted nodes: only those are recreated, converged and verified;
    the plan's job is restarted. A no-op when every node is running."""
    from provision.cli.console import out_console
    from provision.cli.progress import ui
    from provision.recovery import recover as do_recover

    with ui() as u:
        result = do_recover(_cluster_name(cluster), u, state_root=state_dir,
                            inventories=inventories)
    con = out_console()
    if output == Output.json:
        con.print_json(json.dumps(result.to_json()))
    elif not result.lost:
        con.print(f"cluster {result.cluster}: every node is running; nothing to recover")
    else:
        con.print(f"cluster {result.cluster}: replaced {', '.join(result.replaced)} "
                  f"(verify: {result.verify_status or 'no accelerators'}) in "
                  f"{result.seconds:,.0f} s")


@app.command()
def watch(
    cluster: Annotated[str, typer.Argument(help="Cluster name or the plan.yaml it came from.")],
    interval: Annotated[float, typer.Option(help="Seconds between checks.", min=1)] = 30.0,
    for_: Annotated[float | None, typer.Option(
        "--for", help="Stop watching after this many seconds (default: until Ctrl-C).",
        min=0)] = None,
    state_dir: StateDir = None,
    inventories: Inventories = Path("inventories"),
) -> None:
    """Keep a cluster at its goal: replace lost nodes, and end it when the budget, its time to
    live or its idle limit (plan.yaml lifecycle) says so."""
    from provision.cli.progress import ui
    from provision.watch import watch as do_watch

    with ui() as u:
        result = do_watch(_cluster_name(cluster), u, interval=interval, duration=for_,
                          state_root=state_dir, inventories=inventories)
    typer.echo(f"watch ended: {result.stopped_because or 'time is up'}; "
               f"{len(result.recoveries)} recovery(ies)", err=True)


@app.command()
def stop(
    cluster: Annotated[str, typer.Argument(help="Cluster name or the plan.yaml it came from.")],
    state_dir: StateDir = None,
) -> None:
    """Halt the cluster's nodes but keep their disks and the cluster's state (what
    lifecycle.on_idle / on_ttl `stop` does); `provision up` starts them again. Backends that
    cannot stop nodes (clouds, bare metal for now) say so: use `provision down`."""
    from provision.cli.progress import ui
    from provision.orchestrator import stop as do_stop

    name = _cluster_name(cluster)
    with ui() as u:
        do_stop(name, u, state_root=state_dir)
    typer.echo(f"cluster {name} stopped; `provision up` starts it again", err=True)


@app.command()
def diff(
    plan_file: Annotated[Path, typer.Argument(metavar="PLAN", help="The plan.yaml to compare.")],
    state_dir: StateDir = None,
    output: Annotated[Output, typer.Option("--output", "--format", "-o")] = Output.table,
    software: Annotated[bool, typer.Option(
        "--software/--no-software",
        help="Also run the playbooks in check mode to list software changes.")] = True,
) -> None:
    """What `provision up` would change on an existing cluster: nodes to create, remove or
    replace, a moved hardware choice, and per node the tasks that would change. Changes
    nothing. Exit 0 when there is nothing to change, 1 when there is (for CI gates)."""
    from provision.cli.console import out_console
    from provision.diff import diff as do_diff

    result = do_diff(plan_file, state_root=state_dir, software=software)
    con = out_console()
    if output == Output.json:
        con.print_json(json.dumps(result.to_json()))
    else:
        con.print(result.to_markdown(), markup=False, highlight=False, soft_wrap=True)
    if not result.empty:
        raise typer.Exit(1)
