"""Render an Ansible inventory from node records: ``inventories/<cluster>/``.

``hosts.yml`` lists every node with its address and SKU and groups them by role (``head``,
``workers``), by SKU (``sku_h100_sxm_80gb``), by GPU model (``gpu_h100``), by provider
(``provider_local``) and spot market (``spot``); ``group_vars/all.yml`` carries cluster-wide
settings the roles read (node list, cluster network, operator CIDR, SSH options, storage mode).
The files are plain YAML, usable by ``ansible-playbook -i`` without provision.
Roles take every input from these variables, never from provision's internals.

Both files are produced by a YAML serializer from data, never by pasting values into a text
template: a node address or name carrying a newline could otherwise add variables such as
``ansible_ssh_common_args`` (which Ansible would execute) to the inventory.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from provision.backends.base import NodeRecord
from provision.state import now, write_private

_GROUP_SAFE = re.compile(r"[^a-z0-9_]")


def group_name(prefix: str, value: str) -> str:
    return f"{prefix}_{_GROUP_SAFE.sub('_', value.lower())}"


def groups_for(nodes: Sequence[NodeRecord], sku_to_gpu: dict[str, str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {"head": [], "workers": []}
    for n in nodes:
        groups["head" if n.role == "head" else "workers"].append(n.name)
        groups.setdefault(group_name("sku", n.sku), []).append(n.name)
        gpu = sku_to_gpu.get(n.sku)
        if gpu:
            groups.setdefault(group_name("gpu", gpu), []).append(n.name)
            kind = "tpu_nodes" if gpu.startswith("tpu") else "gpu_nodes"
            groups.setdefault(kind, []).append(n.name)
        groups.setdefault(group_name("provider", n.provider), []).append(n.name)
        if n.spot:
            groups.setdefault("spot", []).append(n.name)
    return {g: members for g, members in groups.items() if members}


def cluster_cidr(nodes: Sequence[NodeRecord]) -> str | None:
    """The smallest /24-or-wider network holding every node's internal address."""
    addrs = []
    for n in nodes:
        try:
            addrs.append(ipaddress.ip_address(n.internal_address))
        except ValueError:
            return None
    if not addrs:
        return None
    prefix = 24
    while prefix > 8:
        nets = {ipaddress.ip_network(f"{a}/{prefix}", strict=False) for a in addrs}
        if len(nets) == 1:
            return str(nets.pop())
        prefix -= 1
    return None


# Node labels the roles read, as host variables: which image family a node runs and what it
# ships (the driver role keeps a preinstalled driver), which GPUDirect software its NICs need.
LABEL_VARS = {"image_family": "provision_image_family",
              "image_driver": "provision_image_driver",
              "network_fabric": "provision_network_fabric"}


def proxy_args(jump: NodeRecord, cluster_vars: dict[str, Any]) -> str:
    """SSH options that reach a node through ``jump`` (its head). A ProxyCommand rather than
    ProxyJump: options given on the command line (the key, known-hosts settings) do not apply
    to a ProxyJump hop (ssh(1)), so the hop's own ssh gets them explicitly."""
    common = str(cluster_vars.get("ansible_ssh_common_args") or "")
    key = cluster_vars.get("ansible_ssh_private_key_file")
    hop = ["ssh", *shlex.split(common), *(["-i", str(key)] if key else []),
           "-p", str(jump.ssh_port), f"{jump.ssh_user}@{jump.address}"]
    # ssh expands %-tokens in ProxyCommand: keep %h:%p, escape any other %
    command = " ".join(shlex.quote(a).replace("%", "%%") for a in hop) + " -W %h:%p"
    return " ".join(filter(None, [common, "-o", shlex.quote(f"ProxyCommand={command}")]))


def host_vars(nodes: Sequence[NodeRecord], cluster_vars: dict[str, Any]) -> dict[str, dict]:
    """Per-host variables beyond the address: the jump through the head, label variables."""
    by_name = {n.name: n for n in nodes}
    out: dict[str, dict[str, Any]] = {}
    for n in nodes:
        hv = {var: n.labels[label] for label, var in LABEL_VARS.items() if label in n.labels}
        if n.via and n.via in by_name:
            hv["provision_via"] = n.via
            hv["ansible_ssh_common_args"] = proxy_args(by_name[n.via], cluster_vars)
        out[n.name] = hv
    return out


def node_vars(node: NodeRecord) -> dict[str, Any]:
    """The per-host variables of one node (connection first, then what roles read)."""
    out: dict[str, Any] = {
        "ansible_host": node.address,
        "ansible_port": node.ssh_port,
        "ansible_user": node.ssh_user,
        "provision_private_address": node.internal_address,
        "provision_sku": node.sku,
        "provision_role": node.role,
        "provision_provider": node.provider,
        "provision_spot": node.spot,
    }
    if node.zone:
        out["provision_zone"] = node.zone
    if node.instance_id:
        out["provision_instance_id"] = node.instance_id
    return out


def hosts_document(nodes: Sequence[NodeRecord], sku_to_gpu: dict[str, str],
                   cluster_vars: dict[str, Any]) -> dict[str, Any]:
    """hosts.yml as data: every node with its variables, and the groups."""
    extra = host_vars(nodes, cluster_vars)
    return {"all": {
        "hosts": {n.name: {**node_vars(n), **extra[n.name]} for n in nodes},
        "children": {group: {"hosts": {name: {} for name in members}}
                     for group, members in sorted(groups_for(nodes, sku_to_gpu).items())},
    }}


@dataclass(frozen=True)
class Inventory:
    directory: Path

    @property
    def hosts_file(self) -> Path:
        return self.directory / "hosts.yml"


def render_inventory(
    directory: Path,
    cluster: str,
    target: str,
    nodes: Sequence[NodeRecord],
    cluster_vars: dict[str, Any],
    sku_to_gpu: dict[str, str],
    group_vars: dict[str, dict[str, Any]] | None = None,
) -> Inventory:
    """Write hosts.yml and group_vars/all.yml (atomically, 0600) and return the inventory.

    ``group_vars`` adds one file per group (e.g. ``sku_h100_sxm_80gb``: the SKU's software
    profile as role variables); files of groups no longer given are removed."""
    header = (f"# Inventory of cluster {cluster} ({target} target), rendered by `provision up` "
              f"from its node records on {now()}.\n# Re-rendered on every run: edit plan.yaml, "
              "not this file. Usable as is: ansible-playbook -i hosts.yml site.yml\n")
    hosts = header + yaml.safe_dump(hosts_document(nodes, sku_to_gpu, cluster_vars),
                                    sort_keys=False,
                                    default_flow_style=False, width=1000)
    head = next((n for n in nodes if n.role == "head"), nodes[0] if nodes else None)
    all_vars = {
        "provision_cluster": cluster,
        "provision_target": target,
        "provision_head": head.name if head else None,
        "provision_head_address": head.internal_address if head else None,
        "provision_nodes": [{"name": n.name, "address": n.internal_address, "sku": n.sku}
                            for n in nodes],
        "provision_cluster_cidr": cluster_cidr(nodes),
        **cluster_vars,
    }
    header = (f"# Cluster-wide variables for {cluster}, rendered by `provision up`; "
              "edit plan.yaml instead.\n")
    write_private(directory / "hosts.yml", hosts)
    write_private(directory / "group_vars" / "all.yml",
                  header + yaml.safe_dump(all_vars, sort_keys=True, default_flow_style=False))
    wanted = {f"{g}.yml" for g in group_vars or {}}
    for old in (directory / "group_vars").glob("*.yml"):
        if old.name != "all.yml" and old.name not in wanted:
            old.unlink()
    for group, values in (group_vars or {}).items():
        write_private(directory / "group_vars" / f"{group}.yml",
                      f"# Variables of group {group} in {cluster}, rendered by `provision up` "
                      "from plan.yaml's software profile.\n"
                      + yaml.safe_dump(values, sort_keys=True, default_flow_style=False))
    return Inventory(directory)
