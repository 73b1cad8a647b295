"""Verify a live cluster: collect with the verify playbook, then judge with the analyzer.

Collection runs playbooks/verify.yml (the verify_collect role) over the cluster's inventory;
the raw outputs land in one directory per host (``runs/<id>-verify/hosts/<host>/``, apart from
ansible-runner's own ``artifacts/``, which must not be taken for a host) and the pure analyzer
(provision.verify.analyze) judges them. A node that could not be collected from still gets a
host directory holding only its ``sku``, so the report fails it by name instead of silently
leaving it out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from provision.converge import ConvergeResult, Progress, run_playbook
from provision.plan.verify_settings import VerifySettings
from provision.state import ClusterState, write_private
from provision.verify import Report, analyze


@dataclass
class VerifyRun:
    report: Report | None  # None when the cluster has no GPU or TPU node
    collect: ConvergeResult | None
    artifacts: Path | None

    @property
    def failed(self) -> bool:
        return self.report is not None and self.report.status == "fail"


def measured_nodes(state: ClusterState) -> list[str]:
    """Nodes with accelerators: the ones verify measures (CPU nodes have nothing to judge)."""
    return [n.name for n in state.nodes if n.sku != "cpu"]


def verify_cluster(state: ClusterState, hosts_file: Path, settings: VerifySettings, *,
                   level: str | None = None, expected_driver: str | None = None,
                   progress: Progress | None = None,
                   limit: list[str] | None = None) -> VerifyRun:
    """Collect and analyze (all accelerator nodes, or those in ``limit``); the report is also
    saved as verify-report.json in the run."""
    nodes = [n for n in measured_nodes(state) if limit is None or n in limit]
    if not nodes:
        return VerifyRun(None, None, None)
    level = level or settings.level
    run_dir = state.new_run_dir("verify")
    artifacts = run_dir / "hosts"
    artifacts.mkdir(mode=0o700)
    tpu_check = Path(__file__).resolve().parent / "verify" / "tpu_check.py"
    collect = run_playbook(
        "verify.yml", hosts_file, run_dir, nodes=len(nodes),
        fact_cache=state.directory / "facts", progress=progress, limit=limit,
        extravars={"verify_collect_level": level,
                   "verify_collect_artifacts_dir": str(artifacts),
                   "verify_collect_timeout": settings.timeout_seconds,
                   "verify_collect_tpu_check_script": str(tpu_check)},
    )
    skus = {n.name: n.sku for n in state.nodes}
    for name in nodes:  # collection failed there: the report must name the node
        host = artifacts / name
        if not host.is_dir():
            host.mkdir(mode=0o700)
            (host / "sku").write_text(skus[name] + "\n")
    report = analyze(artifacts, level=level, overrides=settings.overrides() or None,
                     expected_driver=expected_driver)
    write_private(run_dir / "verify-report.json", json.dumps(report.to_json(), indent=2) + "\n")
    state.record_stage("verify", status=report.status, level=level, report=str(run_dir),
                       failed=sorted(h for h, r in report.hosts.items() if r.status == "fail"))
    return VerifyRun(report, collect, artifacts)


def failure_text(run: VerifyRun) -> str:
    """'verify failed: node X: check Y (detail)' lines for the error message."""
    assert run.report is not None
    lines = ["verify failed:"]
    for where, check in run.report.problems():
        if check.status != "fail":
            continue
        lines.append(f"  {where}: {check.name}: {check.detail}")
    lines.append(f"  artifacts: {run.artifacts}")
    return "\n".join(lines)
