"""The local target: each node is a podman container on a network the cluster owns.

It implements the same Backend interface as the cloud stacks, so everything after node
creation (inventory, converge, verify) runs unchanged against it. Podman labels are the source
of truth for what exists: a rerun after a crash or Ctrl-C finds its containers by label and
converges them instead of creating twins.

Containers get their own network namespace (never the host's, so firewall tasks can only touch
the node), NET_ADMIN for those firewall tasks, and /dev/fuse with SYS_ADMIN so the storage role
can mount the cluster's shared directory over SSHFS (this machine's kernel has no NFS).
Nodes of a simulated GPU/TPU SKU (h100-sxm-80gb, ...) also see the stand-in package repository
read-only and get their simulated hardware description (provision/simulate/node.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from provision.backends import node_image, podman
from provision.backends.base import ClusterSpec, DestroyReport, Event, NodeRecord, NodeSpec
from provision.backends.reachability import ssh_answers
from provision.errors import ProvisionError
from provision.state import wait_for

LABEL = "provision.cluster"
SSH_WAIT_SECONDS = 60


def network_name(cluster: str) -> str:
    return f"provision-{cluster}"


def node_names(cluster: str, count: int) -> list[str]:
    return [f"{cluster}-{i}" for i in range(1, count + 1)]


class LocalBackend:
    """Nodes as podman containers (see the module docstring)."""

    name = "local"
    capabilities: ClassVar[dict[str, bool]] = {"spot": False, "stop": True, "recreate": True,
                                               "multi_node": True}

    def __init__(self, image: str | None = None) -> None:
        self.image = image

    # -- Backend interface -----------------------------------------------------------------
    def apply(self, spec: ClusterSpec, event: Event) -> list[NodeRecord]:
        image = self.image or (spec.settings.image if spec.settings and spec.settings.image
                               else None) or node_image.ensure_image(event)
        net = network_name(spec.cluster)
        if not podman.exists("network", net):
            event(f"creating network {net}")
            podman.run("network", "create", "--label", f"{LABEL}={spec.cluster}", net)
        wanted = {n.name: n for n in spec.nodes}
        current = {c["Names"][0]: c for c in podman.containers(f"{LABEL}={spec.cluster}")}
        for name, info in current.items():
            if name not in wanted:
                event(f"removing extra node {name}")
                podman.run("rm", "-f", "-t", "2", name)
            elif self._stale(info, wanted[name], image):
                event(f"replacing node {name} (its SKU, faults or image changed)")
                podman.run("rm", "-f", "-t", "2", name)
            elif info.get("State") != "running":
                event(f"starting stopped node {name}")
                podman.run("start", name)
        present = {c["Names"][0] for c in podman.containers(f"{LABEL}={spec.cluster}")}
        for node in spec.nodes:
            if node.name not in present:
                event(f"creating node {node.name} ({node.sku})")
                self._create(spec, node, image, net)
        records = self._records(spec.cluster, spec.ssh.user)
        missing = [n.name for n in spec.nodes if n.name not in {r.name for r in records}]
        if missing:
            raise ProvisionError(f"nodes did not start: {', '.join(missing)}")
        for r in records:
            if not wait_for(lambda r=r: ssh_answers(r.address, r.ssh_port), SSH_WAIT_SECONDS, 0.3):
                raise ProvisionError(f"node {r.name} ({r.address}) did not answer on SSH within "
                                     f"{SSH_WAIT_SECONDS} s; see `podman logs {r.name}`")
        return records

    def nodes(self, cluster: str) -> list[NodeRecord]:
        """Running nodes only: a stopped or vanished container is a lost node."""
        return [r for r in self._records(cluster, "root") if r.labels.get("state") == "running"]

    def host_keys(self, node: NodeRecord) -> list[str] | None:
        """The node's SSH host public keys, read inside its container: a channel that does
        not go through the network the keys are meant to authenticate."""
        proc = podman.run("exec", node.name, "sh", "-c", "cat /etc/ssh/ssh_host_*_key.pub",
                          check=False)
        return proc.stdout.splitlines() if proc.returncode == 0 and proc.stdout else None

    def stop(self, cluster: str, event: Event) -> None:
        """Stop every node's container (kept, with its filesystem); `apply` starts them."""
        for c in podman.containers(f"{LABEL}={cluster}"):
            if c.get("State") == "running":
                event(f"stopping node {c['Names'][0]}")
                podman.run("stop", "-t", "5", c["Names"][0])

    def destroy(self, cluster: str, event: Event) -> DestroyReport:
        report = DestroyReport()
        for c in podman.containers(f"{LABEL}={cluster}"):
            name = c["Names"][0]
            event(f"removing node {name}")
            podman.run("rm", "-f", "-t", "2", name, check=False)
            report.removed.append(f"container {name}")
        net = network_name(cluster)
        if podman.exists("network", net):
            event(f"removing network {net}")
            podman.run("network", "rm", "-f", net, check=False)
            report.removed.append(f"network {net}")
        for vol in podman.run_json("volume", "ls", "--filter", f"label={LABEL}={cluster}",
                                   "--format", "json"):
            podman.run("volume", "rm", "-f", vol["Name"], check=False)
            report.removed.append(f"volume {vol['Name']}")
        report.leftovers = self.leftovers(cluster)
        return report

    # -- helpers -----------------------------------------------------------------------------
    def leftovers(self, cluster: str) -> list[str]:
        """Every podman object of the cluster that still exists, by kind and name."""
        left = [f"container {c['Names'][0]}" for c in podman.containers(f"{LABEL}={cluster}")]
        if podman.exists("network", network_name(cluster)):
            left.append(f"network {network_name(cluster)}")
        left += [f"volume {v['Name']}" for v in podman.run_json(
            "volume", "ls", "--filter", f"label={LABEL}={cluster}", "--format", "json")]
        return left

    @staticmethod
    def _stale(info: dict[str, Any], node: NodeSpec, image: str) -> bool:
        labels = info.get("Labels") or {}
        return (labels.get("provision.sku") != node.sku
                or labels.get("provision.faults", "") != ",".join(node.faults)
                or labels.get("provision.image") != image)

    def _create(self, spec: ClusterSpec, node: NodeSpec, image: str, net: str) -> None:
        s = spec.settings
        args = [
            "run", "-d", "--name", node.name, "--hostname", node.name, "--network", net,
            "--label", f"{LABEL}={spec.cluster}",
            "--label", f"provision.node={node.name}",
            "--label", f"provision.sku={node.sku}",
            "--label", f"provision.role={node.role}",
            "--label", f"provision.faults={','.join(node.faults)}",
            "--label", f"provision.image={image}",
            "--cap-add", "NET_ADMIN", "--cap-add", "SYS_ADMIN", "--device", "/dev/fuse",
            "--env", f"PROVISION_AUTHORIZED_KEY={spec.ssh.public_key}",
        ]
        if s is not None and s.cpus:
            args += ["--cpus", str(s.cpus)]
        if s is not None and s.memory:
            args += ["--memory", s.memory]
        from provision.simulate import node as simulated

        sim = simulated.is_simulated(node.sku)
        if sim:  # the stand-in package repository, read-only (provision/simulate/packages.py)
            from provision.simulate.packages import repo_root

            repo_root().mkdir(parents=True, exist_ok=True)
            args += simulated.mount_args(str(repo_root()))
        podman.run(*args, image)
        if sim:  # the simulated hardware: /etc/provision-sim/node.json from SKU and faults
            simulated.setup(node.name, node.sku, node.faults)

    def _records(self, cluster: str, user: str) -> list[NodeRecord]:
        net = network_name(cluster)
        records = []
        for c in sorted(podman.containers(f"{LABEL}={cluster}"), key=lambda c: _order(c)):
            name = c["Names"][0]
            info = podman.inspect(name)
            labels = info.get("Config", {}).get("Labels") or c.get("Labels") or {}
            addr = podman.address_on(info, net)
            state = (info.get("State") or {}).get("Status", c.get("State", "unknown"))
            if addr is None and state == "running":
                continue
            records.append(NodeRecord(
                name=name,
                address=addr or "",
                private_address=addr,
                ssh_user=user,
                sku=labels.get("provision.sku", "cpu"),
                provider="local",
                role=labels.get("provision.role", "worker"),
                instance_id=info.get("Id", c.get("Id", ""))[:12],
                labels={"state": state,
                        "faults": labels.get("provision.faults", "")},
            ))
        return records


def _order(container: dict[str, Any]) -> tuple[int, str]:
    name = container["Names"][0]
    tail = name.rsplit("-", 1)[-1]
    return (int(tail) if tail.isdigit() else 10**6, name)


def plan_node_specs(plan: Any) -> tuple[NodeSpec, ...]:
    """NodeSpecs of a plan's ``local:`` section (a validated Plan with target local)."""
    local = plan.local
    assert local is not None
    return cluster_spec_nodes(plan.name, [(n.sku, tuple(n.faults)) for n in local.node_list()])


def cluster_spec_nodes(cluster: str, nodes: Sequence[tuple[str, tuple[str, ...]]]
                       ) -> tuple[NodeSpec, ...]:
    """NodeSpecs for (sku, faults) pairs: the first node is the head."""
    names = node_names(cluster, len(nodes))
    return tuple(NodeSpec(name=name, sku=sku, role="head" if i == 0 else "worker",
                          faults=faults)
                 for i, (name, (sku, faults)) in enumerate(zip(names, nodes, strict=True)))

