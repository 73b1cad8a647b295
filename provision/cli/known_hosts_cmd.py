"""`provision known-hosts CLUSTER` and `provision known-hosts forget CLUSTER NODE`."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from provision.cli.app import Output, app
from provision.cli.cluster_cmds import StateDir, _cluster_name

known_hosts_app = typer.Typer(
    help="The SSH host keys provision trusts for a cluster's nodes (its own known_hosts: "
    "learnt from the platform, or on first use). A node that presents another key is "
    "refused until you forget its old one.",
    no_args_is_help=True)
app.add_typer(known_hosts_app, name="known-hosts")


@known_hosts_app.command("show")
def show(
    cluster: Annotated[str, typer.Argument(help="Cluster name or the plan.yaml it came from.")],
    state_dir: StateDir = None,
    output: Annotated[Output, typer.Option("--output", "--format", "-o")] = Output.table,
) -> None:
    """Each node's recorded host key fingerprints, how and when they were learnt."""
    from rich.table import Table

    from provision.cli.console import out_console
    from provision.errors import InputError
    from provision.state import ClusterState

    name = _cluster_name(cluster)
    state = ClusterState.load(name, state_dir)
    if state is None:
        raise InputError(f"no cluster named {name!r} (see `provision status`)")
    keys = state.extra.get("host_keys", {})
    if output == Output.json:
        out_console().print_json(json.dumps({"cluster": name, "known_hosts":
                                             str(state.ssh_dir / "known_hosts"),
                                             "nodes": keys}))
        return
    table = Table("node", "address", "how", "learnt", "fingerprints", title_justify="left",
                  title=f"{name}: {state.ssh_dir / 'known_hosts'}")
    for node, info in sorted(keys.items()):
        table.add_row(node, info.get("address", ""), info.get("how", ""), info.get("at", ""),
                      "\n".join(info.get("fingerprints", [])))
    out_console().print(table)


@known_hosts_app.command("forget")
def forget_node(
    cluster: Annotated[str, typer.Argument(help="Cluster name or the plan.yaml it came from.")],
    node: Annotated[str, typer.Argument(help="The node whose recorded key goes.")],
    state_dir: StateDir = None,
) -> None:
    """Drop one node's recorded host key, after you reinstalled or replaced it yourself and
    checked its new fingerprint on its console; the next run learns the key again."""
    from provision.errors import InputError
    from provision.known_hosts import forget
    from provision.state import ClusterState

    with ClusterState.locked(_cluster_name(cluster), "known-hosts forget", state_dir) as state:
        if node not in {n.name for n in state.nodes}:
            raise InputError(f"cluster {state.name!r} has no node {node!r} (nodes: "
                             f"{', '.join(n.name for n in state.nodes) or 'none'})")
        had = forget(state, node)
    typer.echo(f"{node}: {'recorded key removed' if had else 'no key was recorded'}; the "
               "next `provision up` learns it again", err=True)



