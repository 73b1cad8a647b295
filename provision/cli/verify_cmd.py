"""`provision verify`: judge a cluster's collected tool output against per-SKU references.

Today the offline form reads a directory the collector wrote (`--offline DIR`); the live form
(`provision verify CLUSTER`: collect over Ansible, then analyze) plugs into the same command
once cluster state exists, so CLUSTER is already the optional first argument.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from provision.cli.app import Output, app
from provision.errors import InputError


class Level(StrEnum):
    quick = "quick"
    standard = "standard"
    full = "full"


@app.command()
def verify(
    cluster: Annotated[str | None, typer.Argument(
        metavar="CLUSTER", help="Cluster to collect from and verify (needs `provision up` "
        "state). With --offline it only names the report.")] = None,
    offline: Annotated[Path | None, typer.Option(
        "--offline", metavar="DIR", help="Analyze a collected artifacts directory (one "
        "directory per host, plus _cluster/) instead of collecting.")] = None,
    sku: Annotated[str | None, typer.Option(
        help="SKU for hosts without a `sku` file, e.g. h100-sxm-80gb.")] = None,
    level: Annotated[Level | None, typer.Option(
        help="quick: inventory, topology, NVLink, XID/ECC, DCGM r1. standard: + nvbandwidth, "
        "single-node NCCL, DCGM r2. full: + multi-node NCCL, InfiniBand, DCGM r3. "
        "Default: the plan's verify.level (standard).")] = None,
    output: Annotated[Output, typer.Option(
        "--output", "--format", "-o", help="table for people, json for machines, markdown for "
        "pull-request comments and CI summaries.")] = Output.table,
    strict: Annotated[bool, typer.Option(
        "--strict", help="Exit 1 on warnings too, not only on failures.")] = False,
    driver: Annotated[str | None, typer.Option(
        help="Expected NVIDIA driver version or prefix (550 matches 550.127.05).")] = None,
    state_dir: Annotated[Path | None, typer.Option(
        "--state-dir", envvar="PROVISION_STATE_DIR",
        help="Where cluster state lives (default ~/.local/state/provision).")] = None,
) -> None:
    """Check GPUs, NVLink, PCIe, memory health, NCCL and InfiniBand bandwidth against
    known-good figures for the node's SKU.

    Exit codes: 0 pass (or warn without --strict), 1 something failed (or warned with
    --strict), 2 unusable input (no such directory, no host directories, unknown SKU).
    """
    from provision.cli.console import out_console
    from provision.verify import analyze
    from provision.verify.report import render

    if offline is None:
        if cluster is None:
            raise InputError("give a CLUSTER to collect from and verify, or --offline DIR to "
                             "analyze collected artifacts")
        report = _live(cluster, level.value if level else None, driver, state_dir)
    else:
        report = analyze(offline, default_sku=sku, level=(level or Level.standard).value,
                         expected_driver=driver)
    render(report, output.value, out_console())
    if report.status == "fail" or (strict and report.status == "warn"):
        raise typer.Exit(1)


def _live(cluster: str, level: str | None, driver: str | None, state_dir: Path | None):
    """Collect from a cluster `provision up` made, then analyze (holds the cluster's lock)."""
    from provision.cli.progress import ui
    from provision.plan import load_plan
    from provision.state import ClusterState
    from provision.verify_live import measured_nodes, verify_cluster

    with ClusterState.locked(cluster, "verify", state_dir) as state:
        hosts = Path(state.stages.get("inventory", {}).get("path", ""))
        if not hosts.is_file():
            raise InputError(f"cluster {cluster!r} has no inventory yet: run `provision up` "
                             "first")
        if not measured_nodes(state):
            raise InputError(f"cluster {cluster!r} has no GPU or TPU nodes to verify")
        settings = load_plan(state.plan_file).plan.verify
        with ui() as u:
            run = verify_cluster(state, hosts, settings, level=level, expected_driver=driver,
                                 progress=u.progress)
    assert run.report is not None
    return run.report
