"""What every stack program shares: the node-record shape it exports and the SSH policy.

Each component exports ``nodes``: a list of dicts with the keys of
``provision.backends.base.NodeRecord`` (name, address, private_address, ssh_user, ssh_port,
sku, provider, role, instance_id, zone, spot, labels, via), so the backend turns stack outputs
into records with ``NodeRecord.from_json`` and nothing provider-specific leaks past the stack.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

import pulumi

WORLD = ("0.0.0.0/0", "::/0")


@dataclass(frozen=True)
class NodeArgs:
    """One node the stack must create (from the plan's NodeSpec)."""

    name: str  # DNS-safe, unique in the cluster; becomes the resource and host name
    sku: str  # node SKU id (gpus.yaml `sku`), exported unchanged for the inventory
    role: str = "worker"  # head | worker
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SshPolicy:
    """Who may reach port 22. ``allow_world`` must be set for 0.0.0.0/0 to be accepted, and
    the backend sets it only when the plan wrote 0.0.0.0/0 itself (access.operator_cidr)."""

    public_key: str  # OpenSSH public key line installed for ``user``
    user: str
    cidrs: tuple[str, ...]  # operator CIDRs allowed to SSH in
    allow_world: bool = False

    def checked_cidrs(self) -> list[str]:
        """The CIDRs, refusing an open SSH port unless it was asked for explicitly."""
        if not self.cidrs:
            raise ValueError("no operator CIDR for SSH: give access.operator_cidr "
                             "(e.g. 203.0.113.4/32)")
        out = []
        for cidr in self.cidrs:
            if _is_world(cidr) and not self.allow_world:
                raise ValueError(f"refusing to open SSH to {cidr}: write operator_cidr: "
                                 f"{cidr} in the plan's access section if that is meant")
            out.append(cidr)
        return out


def _is_world(cidr: str) -> bool:
    try:
        return ipaddress.ip_network(cidr, strict=False).prefixlen == 0
    except ValueError:
        return cidr in WORLD


def node_record(
    node: NodeArgs,
    *,
    provider: str,
    address: Any,
    private_address: Any,
    ssh_user: str,
    instance_id: Any,
    zone: Any,
    spot: bool,
    labels: dict[str, str] | None = None,
    ssh_port: int = 22,
    via: str | None = None,
) -> pulumi.Output[dict[str, Any]]:
    """A NodeRecord-shaped output; inputs may be Outputs (addresses known after create)."""
    return pulumi.Output.all(
        address=address, private_address=private_address, instance_id=instance_id, zone=zone
    ).apply(lambda v: {
        "name": node.name,
        "address": v["address"] or v["private_address"] or "",
        "private_address": v["private_address"],
        "ssh_user": ssh_user,
        "ssh_port": ssh_port,
        "sku": node.sku,
        "provider": provider,
        "role": node.role,
        "instance_id": v["instance_id"],
        "zone": v["zone"],
        "spot": spot,
        "labels": {**node.labels, **(labels or {})},
        "via": via,
    })


def field_of(obj: Any, key: str) -> Any:
    """A field of a provider output object, or of a plain dict (as mocks return them)."""
    if obj is None:
        return None
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def child(parent: pulumi.Resource, **kwargs: Any) -> pulumi.ResourceOptions:
    """Options for a component's child resource: parented, so it shows (and is deleted)
    under the component."""
    return pulumi.ResourceOptions(parent=parent, **kwargs)
