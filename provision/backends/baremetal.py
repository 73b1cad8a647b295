"""Bare-metal backend: the plan's fixed host list → stacks/baremetal.py through Pulumi.

Hosts are not created or deleted; `up` makes each one ready (optionally powering it on or
reinstalling it through its BMC, then waiting for SSH) and records it in the stack, `down`
releases them (and powers them off only when the plan says so). See stacks/baremetal.py for why
this runs through Pulumi state, and provision/backends/bmc.py for the Redfish/IPMI flow.
"""

from __future__ import annotations

from typing import Any, ClassVar

from provision.backends.base import ClusterSpec, NodeSpec
from provision.backends.bmc import BmcRef, ReinstallStep
from provision.backends.pulumi_backend import Builder, PulumiBackend
from provision.errors import InputError
from provision.plan.cloud import BaremetalHost, BaremetalTarget
from stacks.common import NodeArgs


def host_names(cluster: str, hosts: list[BaremetalHost]) -> list[str]:
    """Each host's node name: its own, or <cluster>-<n> (1-based, like the local target)."""
    return [h.name or f"{cluster}-{i}" for i, h in enumerate(hosts, start=1)]


def host_nodes(cluster: str, target: BaremetalTarget) -> tuple[NodeSpec, ...]:
    """NodeSpecs for the host list; the first host is the head unless roles are given."""
    names = host_names(cluster, target.hosts)
    any_head = any(h.role == "head" for h in target.hosts)
    return tuple(
        NodeSpec(name, h.sku, h.role or ("head" if i == 0 and not any_head else "worker"))
        for i, (name, h) in enumerate(zip(names, target.hosts, strict=True)))


def bmc_ref(host: BaremetalHost) -> BmcRef | None:
    """The host's BMC as a reference (password_file already absolute: see
    provision.backends.specs.resolved_baremetal; the provider process runs elsewhere)."""
    b = host.bmc
    if b is None:
        return None
    return BmcRef(b.protocol, b.endpoint, b.username, b.password_env, b.password_file,
                  b.system_id, b.verify_tls, b.ca_file)


def reinstall_step(target: BaremetalTarget) -> ReinstallStep | None:
    r = target.reinstall
    if r is None:
        return None
    root = r.root_device
    return ReinstallStep(r.method, r.image_url, r.generation, r.image,
                         root.serial if root else None, root.path if root else None,
                         r.media_address, r.boot_timeout_seconds, r.attempts)


class BaremetalBackend(PulumiBackend):
    name = "baremetal"
    project = "provision-baremetal"
    plugin_packages: ClassVar[dict[str, str]] = {}  # dynamic providers need no plugin download
    capabilities: ClassVar[dict[str, bool]] = {
        "spot": False, "multi_node": True, "stop": False, "recreate": False,
        "power": True, "reinstall": True}
    capability_errors: ClassVar[dict[str, str]] = {
        "spot": "bare-metal hosts have no spot market; remove resources.spot"}

    def settings(self, spec: ClusterSpec) -> BaremetalTarget:
        if not isinstance(spec.settings, BaremetalTarget):
            raise InputError("target baremetal needs the plan's baremetal: section (hosts)")
        return spec.settings

    def args(self, spec: ClusterSpec) -> Any:
        from stacks.baremetal import BaremetalClusterArgs, BaremetalHostArgs

        s = self.settings(spec)
        if len(spec.nodes) != len(s.hosts):
            raise InputError(f"{len(spec.nodes)} node specs for {len(s.hosts)} hosts")
        hosts = tuple(
            BaremetalHostArgs(
                node=NodeArgs(n.name, n.sku, n.role, dict(n.labels)),
                address=h.address, private_address=h.private_address, ssh_port=h.ssh_port,
                ssh_user=h.ssh_user, bmc=bmc_ref(h), private_mac=h.private_mac,
                private_prefix=h.private_prefix)
            for n, h in zip(spec.nodes, s.hosts, strict=True))
        return BaremetalClusterArgs(
            cluster=spec.cluster, hosts=hosts, ssh_user=spec.ssh.user, power_on=s.power_on,
            reinstall=reinstall_step(s), ssh_wait_seconds=s.ssh_wait_seconds,
            power_off_on_destroy=s.power_off_on_destroy, public_key=spec.ssh.public_key,
            private_key_path=spec.ssh.private_key_path)

    def component(self, spec: ClusterSpec, *, offline: bool = False) -> Builder:
        from stacks.baremetal import BaremetalCluster

        args = self.args(spec)
        return lambda: BaremetalCluster(spec.cluster, args)
