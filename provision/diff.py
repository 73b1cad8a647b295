"""`provision diff PLAN`: what `provision up` would change on an existing cluster.

Infrastructure: the plan's nodes against the cluster's recorded and live nodes — nodes to
create (new or lost), to remove, to replace (their SKU or injected faults changed), and for
cloud targets whether the optimizer's choice moved (instance type, region, market).
Software: the site playbook in Ansible's check mode on the nodes that exist, listing every
task that would change something, per node. Nothing is modified.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provision.converge import run_playbook
from provision.plan.load import load_plan
from provision.state import ClusterState


@dataclass
class Diff:
    cluster: str
    exists: bool
    create: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    replace: list[str] = field(default_factory=list)
    keep: list[str] = field(default_factory=list)
    choice_change: dict[str, Any] | None = None  # {"from": {...}, "to": {...}} on clouds
    software: dict[str, list[str]] = field(default_factory=dict)  # node → tasks that change
    software_error: str | None = None

    @property
    def empty(self) -> bool:
        return (self.exists and not (self.create or self.remove or self.replace
                                     or self.choice_change or self.software)
                and self.software_error is None)

    def to_json(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster, "exists": self.exists, "changes": not self.empty,
            "infrastructure": {"create": self.create, "remove": self.remove,
                               "replace": self.replace, "keep": self.keep,
                               "choice": self.choice_change},
            "software": self.software, "software_error": self.software_error,
        }

    def to_markdown(self) -> str:
        lines = [f"### provision diff: `{self.cluster}`", ""]
        if not self.exists:
            lines.append(f"The cluster does not exist: `provision up` creates "
                         f"{len(self.create)} node(s): {', '.join(self.create)}.")
            return "\n".join(lines) + "\n"
        if self.empty:
            return "\n".join([*lines, "No changes."]) + "\n"
        for label, names in (("create", self.create), ("remove", self.remove),
                             ("replace", self.replace)):
            if names:
                lines.append(f"- **{label}**: {', '.join(names)}")
        if self.choice_change:
            lines.append(f"- **hardware**: {self.choice_change['from']} → "
                         f"{self.choice_change['to']}")
        for node, tasks in sorted(self.software.items()):
            lines.append(f"- **{node}** software: {len(tasks)} task(s) would change: "
                         + "; ".join(tasks[:10]) + (" …" if len(tasks) > 10 else ""))
        if self.software_error:
            lines.append(f"- software diff unavailable: {self.software_error}")
        return "\n".join(lines) + "\n"


def choice_key(choice: Any) -> dict[str, Any]:
    o = choice.offering
    return {"provider": o.provider, "instance_type": o.instance_type, "region": o.region,
            "spot": choice.spot, "nodes": choice.nodes}


def diff(plan_path: str | Path, *, state_root: Path | None = None,
         software: bool = True) -> Diff:
    loaded = load_plan(plan_path)
    name = loaded.plan.name
    state = ClusterState.load(name, state_root)
    outcome = None
    if loaded.plan.target in ("auto", "aws", "gcp"):
        from provision.planner import make_plan

        outcome = make_plan(loaded)
    from provision.backends.local import plan_node_specs
    from provision.orchestrator import backend_for

    if loaded.plan.target == "local":
        wanted = {n.name: n for n in plan_node_specs(loaded.plan)}
    else:
        from provision.backends.specs import cluster_spec, preview_ssh

        ssh = preview_ssh(loaded, loaded.plan.access.ssh_user or "ubuntu")  # no key is made
        wanted = {n.name: n for n in cluster_spec(loaded, ssh, outcome).nodes}
    if state is None:
        return Diff(name, exists=False, create=sorted(wanted))
    result = Diff(name, exists=True)
    live = {n.name: n for n in backend_for(state.target, state).nodes(name)}
    recorded = {n.name: n for n in state.nodes}
    for node_name, spec in sorted(wanted.items()):
        have = live.get(node_name)
        if have is None:
            result.create.append(node_name)
        elif have.sku != spec.sku or have.labels.get("faults", "") != ",".join(spec.faults):
            result.replace.append(node_name)
        else:
            result.keep.append(node_name)
    result.remove = sorted(set(recorded) - set(wanted))
    if outcome is not None and outcome.choice is not None:
        before = state.extra.get("choice")
        after = choice_key(outcome.choice)
        if before and before != after:
            result.choice_change = {"from": before, "to": after}
    hosts = Path(state.stages.get("inventory", {}).get("path", ""))
    if software and result.keep and hosts.is_file():
        with ClusterState.locked(name, "diff", state_root) as locked:  # writes runs/, facts/
            check = run_playbook("site.yml", hosts, locked.new_run_dir("diff"),
                                 nodes=len(result.keep), fact_cache=locked.directory / "facts",
                                 limit=result.keep, cmdline="--check --diff")
        for host, task in check.changed_tasks:
            result.software.setdefault(host, []).append(task)
        if check.failures:
            f = check.failures[0]
            result.software_error = f"{f.host}: {f.task}: {f.message}"
    return result
