"""``analyze()``: a run's artifacts directory in, a Report out. Pure: reads files, nothing else."""

from __future__ import annotations

from pathlib import Path

from provision.errors import InputError
from provision.verify.artifacts import (
    host_directories,
    level_index,
    parse_sku_file,
    read_sku_file,
)
from provision.verify.checks.base import HostContext, Overrides
from provision.verify.judge import judge_cluster, judge_host, validate_overrides
from provision.verify.model import ClusterReport, HostReport, Report
from provision.verify.reference import ReferenceTable, load_reference


def analyze(directory: str | Path, *, default_sku: str | None = None, level: str = "standard",
            overrides: Overrides | None = None, expected_driver: str | None = None,
            reference: ReferenceTable | None = None) -> Report:
    """Judge every host directory under ``directory`` and the cluster-wide results.

    ``default_sku`` applies to hosts without a ``sku`` file; ``level`` is quick | standard |
    full; ``overrides`` adjusts bands per check (see judge.py); ``expected_driver`` is a driver
    version or prefix ("550" matches "550.127.05"). Raises InputError (exit 2) when the input
    cannot be judged at all: no such directory, no host directories, an unknown SKU, a host
    without any SKU, a bad level or bad overrides. Everything else (missing files, tools that
    hung, unparsable output) becomes a failed or skipped check in the report.
    """
    root = Path(directory)
    if not root.is_dir():
        raise InputError(f"verify: no such directory: {root}")
    level_index(level)
    table = reference or load_reference()
    clean = validate_overrides(overrides)
    if default_sku is not None and table.sku(default_sku) is None:
        raise InputError(f"unknown SKU {default_sku!r} (--sku)", [_known(table)])
    hosts = host_directories(root)
    if not hosts:
        raise InputError(f"verify: {root} has no host directories",
                         ["expected one directory per host (plus _cluster/) as the collector "
                          "writes them"])
    contexts = [_context(h, table, default_sku, level, clean, expected_driver) for h in hosts]
    report = Report(hosts={}, cluster=ClusterReport(), level=level, directory=str(root))
    for ctx in contexts:
        report.hosts[ctx.host] = HostReport(name=ctx.host, sku=ctx.ref.sku,
                                            checks=judge_host(ctx))
    report.cluster.checks = judge_cluster(root, contexts, level)
    return report


def _known(table: ReferenceTable) -> str:
    return "known SKUs: " + ", ".join(sorted(table.skus))


def _context(host: Path, table: ReferenceTable, default_sku: str | None, level: str,
             overrides: Overrides, expected_driver: str | None) -> HostContext:
    sku_path = host / "sku"
    sku_file = read_sku_file(sku_path)
    if sku_file is None and default_sku is not None:
        sku_file = parse_sku_file(default_sku, "--sku")
    elif sku_file is None:
        raise InputError(f"host {host.name} has no sku file and no --sku was given",
                         [f"write the SKU id to {sku_path} or pass --sku", _known(table)])
    ref = table.sku(sku_file.sku)
    if ref is None:
        raise InputError(f"unknown SKU {sku_file.sku!r} for host {host.name} ({sku_path})",
                         [_known(table)])
    ib_default = ref.ib.ports if ref.ib else 0
    return HostContext(
        host=host.name, directory=host, ref=ref, table=table,
        expect_count=sku_file.gpus if sku_file.gpus is not None else ref.count,
        expect_ib_ports=sku_file.ib_ports if sku_file.ib_ports is not None else ib_default,
        level=level, overrides=overrides, expected_driver=expected_driver,
    )
