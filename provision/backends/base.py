"""The typed boundary between the pipeline and whatever makes nodes exist.

Every backend (local podman, AWS, GCP GPU VMs, GCP TPU VMs, bare metal) implements
:class:`Backend`; what a backend cannot do is stated in its ``capabilities`` (data, checked
before any call), in the manner of SkyPilot's per-cloud feature tables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

Event = Callable[[str], None]  # progress messages ("creating node local-demo-1", ...)


@dataclass(frozen=True)
class NodeRecord:
    """One node of a cluster as every later stage (inventory, converge, verify) sees it."""

    name: str  # unique in the cluster, DNS-safe: <cluster>-<index>, or a TPU worker name
    address: str  # where SSH reaches the node from the operator's machine
    ssh_user: str
    sku: str  # node SKU id: "cpu", a GPU SKU (h100-sxm-80gb), a TPU generation (tpu-v5e)
    provider: str  # local, aws, gcp, baremetal, ...
    private_address: str | None = None  # cluster-internal address (MPI, NCCL, NFS)
    ssh_port: int = 22
    role: str = "worker"  # head (NFS server, MPI launcher) | worker
    instance_id: str | None = None  # container id, EC2 instance id, VM/TPU name, BMC system
    zone: str | None = None
    spot: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    # SSH reaches this node through that node (its name; the cluster's head), e.g. private AWS
    # workers behind the head's Elastic IP. The inventory renders it as a per-host ProxyCommand.
    via: str | None = None

    @property
    def internal_address(self) -> str:
        return self.private_address or self.address

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NodeRecord:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass(frozen=True)
class NodeSpec:
    """One node the plan wants."""

    name: str
    sku: str
    role: str = "worker"
    labels: dict[str, str] = field(default_factory=dict)
    faults: tuple[str, ...] = ()  # simulated faults (local target's simulated GPU nodes only)


@dataclass(frozen=True)
class SshAccess:
    """How the operator reaches the nodes. The private key is a path, never its contents."""

    user: str
    public_key: str  # the OpenSSH public key line
    private_key_path: str
    operator_cidr: str | None = None  # who may SSH in (cloud firewalls)


@dataclass(frozen=True)
class ClusterSpec:
    """What a backend is asked to make exist."""

    cluster: str
    nodes: tuple[NodeSpec, ...]
    ssh: SshAccess
    spot: bool = False
    offering: Any = None  # provision.catalog.Offering for cloud targets, None for local
    settings: Any = None  # the target's settings model from plan.yaml (local:, aws:, ...)
    refresh_image: bool = False  # `up --refresh-image`: resolve the boot image again


@dataclass
class DestroyReport:
    """What `down` removed, and what it could not (by name), so nothing is silently left."""

    removed: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.leftovers


class Backend(Protocol):
    """Create, list and delete a cluster's nodes. Implementations are idempotent: ``apply``
    on an existing cluster keeps healthy nodes, recreates lost ones, removes extras."""

    name: str
    capabilities: dict[str, bool]  # e.g. {"spot": True, "stop": False, "recreate": True}

    def apply(self, spec: ClusterSpec, event: Event) -> list[NodeRecord]:
        """Make the cluster's nodes match ``spec``; return every node's record."""
        ...

    def nodes(self, cluster: str) -> list[NodeRecord]:
        """The cluster's nodes that exist right now (for status and recovery)."""
        ...

    def refresh(self, cluster: str, event: Event) -> None:
        """Re-read what really exists (a spot-terminated instance, a reclaimed VM, a preempted
        TPU) so that :meth:`nodes` does not report stale records. A no-op where the backend's
        listing is already live (podman labels)."""
        ...

    def destroy(self, cluster: str, event: Event) -> DestroyReport:
        """Remove everything the backend created for ``cluster``."""
        ...


def live_nodes(backend: Backend, cluster: str, event: Event | None = None) -> list[NodeRecord]:
    """The nodes that exist right now, after the backend re-read the real world.

    `status`, `recover`, `watch` and `up` decide what is lost from this, never from records a
    stack stored when it last ran (a spot instance terminated since then would still count).
    Backends without ``refresh`` list live state already."""
    refresh = getattr(backend, "refresh", None)
    if refresh is not None:
        refresh(cluster, event or (lambda m: None))
    return backend.nodes(cluster)
