"""`provision up`, `down` and `status`: the pipeline front to back, with state at every step.

    plan.yaml → target and node specs → backend.apply → NodeRecords → inventory → converge

Each stage is idempotent and recorded in the cluster's state as it completes, so a failure or
Ctrl-C in the middle loses nothing: the next `up` finds what exists (backends discover their
nodes, e.g. by podman label) and carries on from there instead of creating twins.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provision.backends.base import ClusterSpec, DestroyReport, NodeRecord
from provision.catalog.specs import gpu_table
from provision.converge import ConvergeResult, Progress, run_playbook
from provision.errors import InputError, ProvisionError
from provision.inventory import render_inventory
from provision.plan.load import LoadedPlan, load_plan
from provision.state import ClusterState, write_private

Step = Callable[[str], None]


class RunFailed(ProvisionError):
    """The run finished but some node failed; the message names nodes and tasks (exit 1).
    ``result`` carries what did happen, for the CLI's summary."""

    exit_code = 1

    def __init__(self, message: str, result: Any = None) -> None:
        super().__init__(message)
        self.result = result


@dataclass
class Ui:
    """Where the orchestrator reports: stage messages and Ansible progress events."""

    step: Step
    progress: Progress | None = None


@dataclass
class UpResult:
    cluster: str
    target: str
    nodes: list[NodeRecord]
    inventory: Path
    converge: ConvergeResult | None
    seconds: float
    created: list[str] = field(default_factory=list)
    verify: Any = None  # provision.verify_live.VerifyRun, when the cluster has accelerators
    attempts: list[dict[str, Any]] = field(default_factory=list)  # launch placements tried

    def to_json(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "target": self.target,
            "nodes": [n.to_json() for n in self.nodes],
            "attempts": self.attempts,
            "inventory": str(self.inventory),
            "converge": self.converge.to_json() if self.converge else None,
            "verify": (self.verify.report.to_json()
                       if self.verify is not None and self.verify.report else None),
            "seconds": round(self.seconds, 1),
        }


def backend_for(name: str, state: ClusterState):
    """The backend ``name`` (local, aws, gcp, baremetal) for a cluster's state."""
    from provision.backends.registry import get_backend

    return get_backend(name) if name == "local" else get_backend(name, state_dir=state.directory)


def _sku_to_gpu() -> dict[str, str]:
    return {spec.sku: name for name, spec in gpu_table().specs.items()}


def _local_cluster_vars(cluster: str) -> dict[str, Any]:
    """Settings that make the roles safe and self-contained on podman nodes."""
    from provision.backends import podman
    from provision.backends.local import network_name

    gateway = None
    nets = podman.run_json("network", "inspect", network_name(cluster))
    for subnet in (nets[0].get("subnets") or []) if nets else []:
        gateway = subnet.get("gateway") or gateway
    return {
        # the operator reaches the nodes through the network's gateway (this machine)
        "provision_operator_cidr": f"{gateway}/32" if gateway else None,
        # no kernel NFS in containers here: share the head's directory over SSHFS instead
        "storage_shared_backend": "sshfs",
        "storage_scratch_mode": "directory",
        # time comes from the head node; no traffic leaves the cluster network
        "base_ntp_servers": [],
        "base_time_source": "head",
    }


@dataclass
class Prepared:
    """Nodes exist and the inventory is rendered: what every converge (and verify) starts from."""

    loaded: LoadedPlan
    state: ClusterState
    target: str
    records: list[NodeRecord]
    inventory_dir: Path
    created: list[str]
    attempts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def hosts_file(self) -> Path:
        return self.inventory_dir / "hosts.yml"


def prepare(loaded: LoadedPlan, state: ClusterState, ui: Ui, *, inventories: Path,
            outcome=None, refresh_image: bool = False) -> Prepared:
    """Make the plan's nodes exist and render their inventory (call with the lock held)."""
    from dataclasses import replace

    from provision.access import ssh_access
    from provision.backends.failover import launch

    name = loaded.plan.target if loaded.plan.target == "local" else _target_of(loaded, outcome)
    state.target = name
    write_private(state.plan_file, loaded.path.read_text())
    access = ssh_access(loaded, state, name)
    state.extra["ssh_private_key"] = access.private_key_path  # a path; the watch's probes
    spec = cluster_spec_for(loaded, access, outcome)
    # the software profile must work on this hardware: exit 2 before any node exists
    from provision.profile import software_inventory

    software_vars, group_vars = software_inventory(loaded, outcome, name,
                                                   lambda m: (ui.step(m), state.log(m)))
    before = {n.name: n.instance_id for n in state.nodes}
    ui.step(f"nodes: making {len(spec.nodes)} {name} node(s) exist")
    # a new cluster fails over to other zones/regions/offerings on capacity or quota errors
    launched = launch(loaded, replace(spec, refresh_image=refresh_image), outcome, name,
                      fresh=not state.nodes, backends=lambda n: backend_for(n, state),
                      event=lambda m: (ui.step(m), state.log(m)), ssh=access,
                      placed=state.stages.get("nodes", {}).get("attempts"))
    records = launched.records
    if launched.backend != name or launched.outcome is not outcome:
        name = state.target = launched.backend
        outcome = launched.outcome
        software_vars, group_vars = software_inventory(loaded, outcome, name)
    state.nodes = records
    from provision.known_hosts import ensure_host_keys, known_hosts, trusted_keys

    ensure_host_keys(state, records, trusted_keys(backend_for(name, state)),
                     replaced=[r.name for r in records if before.get(r.name) != r.instance_id],
                     log=lambda m: (ui.step(m), state.log(m)))
    from provision.billing import node_price, track

    track(state, records, node_price(outcome, len(records)))
    if outcome is not None and outcome.choice is not None:
        from provision.diff import choice_key

        state.extra["choice"] = choice_key(outcome.choice)
    state.record_stage("nodes", count=len(records), attempts=launched.attempts_json())

    inv_dir = (inventories / loaded.plan.name).resolve()
    cluster_vars = {"ansible_ssh_private_key_file": access.private_key_path,
                    # every connection checks the cluster's own known_hosts (known_hosts.py)
                    "ansible_ssh_common_args": known_hosts(state).ansible_args()}
    if name == "local":
        cluster_vars.update(_local_cluster_vars(loaded.plan.name))
    else:
        cluster_vars["provision_operator_cidr"] = _operator_cidr(access)
    cluster_vars.update(software_vars)
    if loaded.plan.lifecycle is not None:  # spot watcher and monitoring read these
        cluster_vars.update(loaded.plan.lifecycle.role_vars())
    inventory = render_inventory(inv_dir, loaded.plan.name, name, records, cluster_vars,
                                 _sku_to_gpu(), group_vars=group_vars)
    state.record_stage("inventory", path=str(inventory.hosts_file))
    ui.step(f"inventory: {inventory.hosts_file}")
    return Prepared(loaded, state, name, records, inv_dir,
                    [r.name for r in records if r.name not in before],
                    launched.attempts_json())


def converge(prepared: Prepared, ui: Ui, *, playbook: str = "site.yml",
             settings: dict[str, str] | None = None,
             limit: list[str] | None = None) -> ConvergeResult:
    """Run a playbook over the prepared cluster (or the ``limit`` nodes) and record it."""
    state = prepared.state
    ui.step(f"converge: {playbook}" + (f" on {', '.join(limit)}" if limit else ""))
    result = run_playbook(playbook, prepared.hosts_file, state.new_run_dir("converge"),
                          nodes=len(limit or prepared.records),
                          fact_cache=state.directory / "facts", progress=ui.progress,
                          settings=settings, limit=limit)
    if playbook == "site.yml":
        _merge_converge_record(state, result, limit)
    state.log(f"converge {result.status} rc={result.rc} in {result.seconds:.0f} s")
    return result


def _merge_converge_record(state: ClusterState, result: ConvergeResult,
                           limit: list[str] | None) -> None:
    """A limited run updates its hosts' results and keeps the others' last ones."""
    record = result.to_json()
    if limit:
        previous = state.stages.get("converge", {}).get("hosts", {})
        record["hosts"] = {**{h: v for h, v in previous.items() if h not in limit},
                           **record["hosts"]}
    state.record_stage("converge", **record)


def up(plan_path: str | Path, ui: Ui, *, state_root: Path | None = None,
       inventories: Path = Path("inventories"), refresh_image: bool = False) -> UpResult:
    """Create or converge the cluster a plan describes; raise RunFailed naming failed nodes."""
    started = time.monotonic()
    loaded = load_plan(plan_path)
    outcome = None
    if loaded.plan.target in ("auto", "aws", "gcp"):
        from provision.planner import make_plan

        outcome = make_plan(loaded)  # NothingFits (exit 3) before anything is created
    with ClusterState.locked(loaded.plan.name, "up", state_root, create=True) as state:
        state.log(f"up {plan_path}")
        from provision.backends.failover import LaunchFailed

        try:
            prepared = prepare(loaded, state, ui, inventories=inventories, outcome=outcome,
                               refresh_image=refresh_image)
        except LaunchFailed as exc:
            state.record_stage("nodes", count=len(state.nodes), attempts=exc.attempts_json())
            raise RunFailed(str(exc), UpResult(
                loaded.plan.name, state.target, state.nodes, inventories / loaded.plan.name,
                None, time.monotonic() - started, attempts=exc.attempts_json())) from None
        result = converge(prepared, ui)
        done = UpResult(loaded.plan.name, prepared.target, prepared.records,
                        prepared.inventory_dir, result, time.monotonic() - started,
                        prepared.created, attempts=prepared.attempts)
        if not result.ok:
            raise RunFailed(converge_failure_text(result), done)
        settings = loaded.plan.verify
        if settings.enabled:
            from provision.verify_live import failure_text, verify_cluster

            ui.step(f"verify: level {settings.level}")
            done.verify = verify_cluster(state, prepared.hosts_file, settings,
                                         progress=ui.progress)
            state.log(f"verify {done.verify.report.status if done.verify.report else 'skipped'}")
            done.seconds = time.monotonic() - started
            bad = done.verify.failed or (settings.strict and done.verify.report is not None
                                         and done.verify.report.status == "warn")
            if bad:
                raise RunFailed(failure_text(done.verify), done)
        if loaded.plan.job is not None:
            run_job(prepared, ui)
    return done


def run_job(prepared: Prepared, ui: Ui, *, restart: bool = False) -> None:
    """Start the plan's job on the head node unless it runs (or restart it)."""
    job = prepared.loaded.plan.job
    if job is None:
        return
    ui.step("job: restarting" if restart else "job: making sure it runs")
    state = prepared.state
    result = run_playbook("job.yml", prepared.hosts_file, state.new_run_dir("job"),
                          nodes=len(prepared.records), fact_cache=state.directory / "facts",
                          progress=ui.progress,
                          extravars={"job_command": job.command, "job_workdir": job.workdir,
                                     "job_log": job.log, "job_restart": restart})
    state.record_stage("job", status=result.status, restart=restart)
    if not result.ok:
        raise RunFailed(converge_failure_text(result))


def _target_of(loaded: LoadedPlan, outcome) -> str:
    from provision.backends.specs import target_of

    return target_of(loaded, outcome)


def cluster_spec_for(loaded: LoadedPlan, access, outcome) -> ClusterSpec:
    if loaded.plan.target == "local":
        from provision.backends.local import plan_node_specs

        return ClusterSpec(cluster=loaded.plan.name, nodes=plan_node_specs(loaded.plan),
                           ssh=access, settings=loaded.plan.local)
    from provision.backends.specs import cluster_spec

    return cluster_spec(loaded, access, outcome)


def _operator_cidr(access) -> str:
    """Who may SSH in past the nodes' own firewall: the plan's CIDR or this machine's IP."""
    if access.operator_cidr:
        return access.operator_cidr
    from provision.backends.operator import detect_public_ip

    return f"{detect_public_ip()}/32"


def converge_failure_text(result: ConvergeResult) -> str:
    if not result.failures:
        return (f"{result.playbook} ended {result.status} (rc {result.rc}) without a failed "
                f"task; see the run's artifacts: {result.artifacts}")
    lines = [f"converge failed on {len(result.failed_hosts)} node(s): "
             f"{', '.join(result.failed_hosts)} (the other nodes finished; run `provision up` "
             "again to retry — lost nodes are recreated)"]
    for f in result.failures[:20]:
        what = "unreachable" if f.unreachable else "failed"
        lines.append(f"  {f.host}: {what} at '{f.task}': {f.message}")
    if result.artifacts:
        lines.append(f"  artifacts: {result.artifacts}")
    return "\n".join(lines)


def down(cluster: str, ui: Ui, *, state_root: Path | None = None,
         inventories: Path = Path("inventories")) -> DestroyReport:
    """Remove everything the cluster's backend created, then its inventory and state."""
    with ClusterState.locked(cluster, "down", state_root) as state:
        return down_locked(state, ui, inventories=inventories)


def down_locked(state: ClusterState, ui: Ui, *, inventories: Path) -> DestroyReport:
    """`down` for a caller that already holds the cluster's lock (watch's guards). The state
    files go while the lock is still held; the lock file itself stays (see
    ClusterState.remove_files)."""
    cluster = state.name
    backend = backend_for(state.target, state)
    state.log("down")
    report = backend.destroy(cluster, lambda m: (ui.step(m), state.log(m)))
    if report.leftovers:
        state.record_stage("down", leftovers=report.leftovers)
        return report
    inv_dir = inventories / cluster
    if inv_dir.is_dir() and (inv_dir / "hosts.yml").exists():
        shutil.rmtree(inv_dir)
        report.removed.append(f"inventory {inv_dir}")
    state.remove_files()
    report.removed.append(f"state {state.directory}")
    return report


def stop(cluster: str, ui: Ui, *, state_root: Path | None = None) -> None:
    """Halt the cluster's nodes, keeping disks and state; `provision up` starts them again."""
    with ClusterState.locked(cluster, "stop", state_root) as state:
        stop_locked(state, ui)


def stop_locked(state: ClusterState, ui: Ui) -> None:
    """`stop` for a caller that already holds the cluster's lock."""
    backend = backend_for(state.target, state)
    if not backend.capabilities.get("stop"):
        raise InputError(f"the {state.target} backend cannot stop nodes; use `provision down`")
    backend.stop(state.name, lambda m: (ui.step(m), state.log(m)))
    from provision.billing import track

    track(state, [], 0.0)  # stopped nodes cost nothing per hour (disks aside)
    state.record_stage("stopped")


def status(cluster: str, *, state_root: Path | None = None) -> dict[str, Any]:
    """Nodes (recorded and live), addresses, and the last converge result per host."""
    state = ClusterState.load(cluster, state_root)
    if state is None:
        raise InputError(f"no cluster named {cluster!r}")
    from provision.backends.base import live_nodes

    live = {n.name: n for n in live_nodes(backend_for(state.target, state), cluster)}
    converge = state.stages.get("converge", {})
    hosts = converge.get("hosts", {})
    nodes = []
    for n in state.nodes:
        nodes.append({
            "name": n.name, "address": n.address, "sku": n.sku, "role": n.role,
            "state": (live[n.name].labels.get("state", "running") if n.name in live
                      else "stopped" if state.stopped else "lost"),
            "converge": hosts.get(n.name, {}).get("status", "never"),
        })
    from provision.billing import price_per_hour, spent_usd

    return {
        "cluster": cluster,
        "target": state.target,
        "updated": state.updated,
        "price_per_hour": round(price_per_hour(state), 4),
        "spent_usd": round(spent_usd(state), 2),
        "stopped": state.stopped,
        "nodes": nodes,
        "last_converge": {"at": converge.get("at"), "status": converge.get("status"),
                          "rc": converge.get("rc")} if converge else None,
    }
