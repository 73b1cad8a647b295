"""Command definitions. Each command parses, calls one pipeline function, renders."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from provision import __version__

app = typer.Typer(
    name="provision",
    help=(
        "Plan, create, converge and verify GPU/TPU clusters from one plan.yaml.\n\n"
        "Start with `provision plan examples/qwen3-235b-serve.yaml` to see what a workload "
        "needs and what it costs; `provision schema` prints the plan.yaml JSON Schema.\n\n"
        "Exit codes: 0 ok, 1 run failed, 2 bad input, 3 nothing fits, 4 cluster locked."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)


class Output(StrEnum):
    table = "table"
    json = "json"
    markdown = "markdown"


CatalogOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--catalog",
        help="Extra catalog file or directory (SkyPilot CSV format). Repeatable. A file "
        "replaces the built-in rows of the providers it lists.",
    ),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"provision {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print version.")
    ] = False,
) -> None:
    """Plan, create, converge and verify GPU/TPU clusters."""


@app.command()
def plan(
    plan_file: Annotated[Path, typer.Argument(metavar="PLAN", help="The plan.yaml to size.")],
    output: Annotated[
        Output, typer.Option("--output", "--format", "-o",
                             help="table for people, json for machines, "
                             "markdown for pull-request comments.")
    ] = Output.table,
    catalog: CatalogOpt = None,
    alternatives: Annotated[
        int, typer.Option(help="How many runner-up and rejected options to show.", min=0,
                          max=1000)
    ] = 5,
    all_providers: Annotated[bool, typer.Option(
        "--all-providers", help="Also consider catalog-only providers (ones `provision up` "
        "cannot create nodes on), marked 'catalog only'. Listing them in constraints.clouds "
        "does the same for those providers.")] = False,
    trust_catalog: Annotated[bool, typer.Option(
        "--trust-catalog", help="Keep suspect rows (spot above on-demand, placeholder or "
        "outlier prices, unparseable regions) of the files given with --catalog or the plan's "
        "catalog: entries; they are still listed.")] = False,
) -> None:
    """Size the workload and pick the cheapest (or fastest) hardware that fits. Preview only:
    nothing is created.

    Shows the memory breakdown, the choice with its price, time and cost, the next best
    alternatives and why they lost, and warnings. Exits 3 when nothing fits, listing the
    near-misses and what to relax.
    """
    from provision.cli.render_plan import render_outcome
    from provision.errors import NothingFits
    from provision.plan import load_plan
    from provision.planner import make_plan

    loaded = load_plan(plan_file)
    if loaded.plan.target in ("local", "baremetal"):  # fixed SKUs: their software must work
        from provision.profile import plan_profiles

        plan_profiles(loaded)  # exit 2 naming the software field; clouds: in make_plan
    if loaded.plan.target == "baremetal":  # fixed hosts: show them, size the workload on them
        from provision.cli.preview_cmd import render_host_plan

        render_host_plan(loaded, output.value)
        return
    if loaded.plan.target == "local":  # podman nodes on this machine: nothing to rent
        from provision.cli.render_local import render_local_plan

        render_local_plan(loaded, output.value, alternatives)
        return
    try:
        outcome = make_plan(loaded, extra_catalogs=catalog or (), all_providers=all_providers,
                            trust_catalog=trust_catalog)
    except NothingFits as exc:
        render_outcome(exc.result, output.value, alternatives)  # type: ignore[arg-type]
        raise typer.Exit(exc.exit_code) from None
    render_outcome(outcome, output.value, alternatives)


@app.command()
def schema(
    out: Annotated[
        Path | None, typer.Option("--out", help="Write to this file instead of stdout.")
    ] = None,
) -> None:
    """Print the plan.yaml JSON Schema (for editor validation, e.g. yaml-language-server)."""
    from provision.plan.schema import json_schema

    text = json.dumps(json_schema(), indent=2) + "\n"
    if out:
        out.write_text(text)
        typer.echo(f"wrote {out}", err=True)
    else:
        typer.echo(text, nl=False)


@app.command()
def models() -> None:
    """List the built-in model table (names usable as `workload.model`)."""
    from rich.table import Table

    from provision.cli.console import out_console
    from provision.plan.models import known_models

    table = Table("model", "params (B)", "active (B)", "layers", "kv heads × dim", "max context",
                  title="Known models", title_justify="left")
    seen = set()
    for m in sorted(known_models().values(), key=lambda m: m.name):
        if m.name in seen:
            continue
        seen.add(m.name)
        table.add_row(m.name, f"{m.params_b:g}", f"{m.active_params_b or '':}", str(m.layers),
                      f"{m.kv_heads} × {m.head_dim}", f"{m.max_context:,}")
    out_console().print(table)


# Commands that live in their own modules register on `app` when imported here. Keep these
# modules light at import time: heavy libraries are imported inside the command functions.
from provision.cli import (  # noqa: E402
    catalog_cmd,  # noqa: F401  (catalog, catalog refresh)
    cluster_cmds,  # noqa: F401  (up, down, status, image)
    day2_cmds,  # noqa: F401  (recover, watch, diff)
    known_hosts_cmd,  # noqa: F401  (known-hosts show|forget)
    lab_cmd,  # noqa: F401  (lab up, lab down, lab plan, lab image)
    preview_cmd,  # noqa: F401
    verify_cmd,  # noqa: F401
)
