"""plan.yaml sections that say where the nodes come from and how they are reached."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from provision.plan.schema_base import StrictModel

SKU_PATTERN = r"^[a-z0-9][a-z0-9.-]*$"


def _local_sku(sku: str | None) -> str | None:
    """A local node is a plain CPU node or plays a SKU the simulator knows (the verify
    reference table): anything else would start a node nothing can judge."""
    if sku is None or sku == "cpu":
        return sku
    from provision.verify.reference import load_reference

    known = load_reference().skus
    if sku not in known:
        raise ValueError(f"unknown SKU {sku!r}; local nodes are cpu or a simulated SKU: "
                         f"{', '.join(sorted(known))}")
    return sku


def _local_faults(faults: list[str]) -> list[str]:
    from provision.simulate.simgpu import FAULTS, TOOLS

    bad = [f for f in faults if f not in FAULTS and not (f.startswith("hang:") and f[5:] in TOOLS)]
    if bad:
        raise ValueError(f"unknown fault(s) {', '.join(map(repr, bad))}; known: "
                         f"{', '.join(sorted(FAULTS))}, hang:<{'|'.join(TOOLS)}>")
    return faults


class LocalNode(StrictModel):
    """One local node when nodes differ (a per-node SKU or injected faults)."""

    sku: str | None = Field(None, pattern=SKU_PATTERN, description="Node SKU (default: local.sku).")
    faults: list[str] = Field(
        default_factory=list,
        description="Faults a simulated GPU node injects (e.g. nvlink-down, xid-79).",
    )

    @field_validator("sku")
    @classmethod
    def _known_sku(cls, v: str | None) -> str | None:
        return _local_sku(v)

    @field_validator("faults")
    @classmethod
    def _known_faults(cls, v: list[str]) -> list[str]:
        return _local_faults(v)


class LocalTarget(StrictModel):
    """`target: local`: nodes are podman containers on this machine, on a network of their own.
    Needs no cloud account; the README's run command uses it."""

    nodes: Annotated[int, Field(gt=0, le=32)] | list[LocalNode] = Field(
        3, description="How many nodes, or one entry per node (sku, faults)."
    )
    sku: str = Field(
        "cpu",
        pattern=SKU_PATTERN,
        description="Node SKU: cpu, or a simulated GPU SKU such as h100-sxm-80gb.",
    )
    image: str | None = Field(
        None, description="Node image (default: provision's own, built on first use)."
    )
    cpus: float | None = Field(None, gt=0, description="CPU limit per node container.")
    memory: str | None = Field(
        None, pattern=r"^[0-9]+[kmgKMG]?$", description="Memory limit per node, e.g. 2g."
    )

    @field_validator("sku")
    @classmethod
    def _known_sku(cls, v: str) -> str:
        return _local_sku(v) or "cpu"

    @field_validator("nodes")
    @classmethod
    def _some_nodes(cls, v: int | list[LocalNode]) -> int | list[LocalNode]:
        if isinstance(v, list) and not 1 <= len(v) <= 32:
            raise ValueError("give between 1 and 32 nodes")
        return v

    def node_list(self) -> list[LocalNode]:
        if isinstance(self.nodes, int):
            return [LocalNode(sku=self.sku) for _ in range(self.nodes)]
        return [LocalNode(sku=n.sku or self.sku, faults=list(n.faults)) for n in self.nodes]


class Access(StrictModel):
    """How the operator reaches the nodes. Keys are paths; private keys never enter state or
    logs. Without ssh_public_key, provision creates a key pair for the cluster in its state
    directory (mode 0600)."""

    ssh_user: str | None = Field(
        None, pattern=r"^[a-z_][a-z0-9_-]*$",
        description="Login user (default: root on local nodes, the image's user on clouds).",
    )
    ssh_public_key: str | None = Field(
        None, description="Path to an OpenSSH public key to install on the nodes."
    )
    ssh_private_key: str | None = Field(
        None, description="Path to the matching private key (default: the .pub path minus .pub)."
    )
    operator_cidr: str | None = Field(
        None,
        description="Who may reach SSH (cloud firewalls, hardening): a CIDR such as "
        "203.0.113.4/32. Default: detected; never 0.0.0.0/0 unless written here.",
    )
