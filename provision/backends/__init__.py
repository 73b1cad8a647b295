"""Backends create, list and delete a cluster's nodes behind one neutral interface.

``local`` runs nodes as podman containers; the cloud and bare-metal backends drive the Pulumi
programs in stacks/. Each returns :class:`NodeRecord` values that the inventory renders.
Backends never import the CLI; the planner never imports a backend.
"""

from provision.backends.base import (
    Backend,
    ClusterSpec,
    DestroyReport,
    NodeRecord,
    NodeSpec,
    SshAccess,
)

__all__ = ["Backend", "ClusterSpec", "DestroyReport", "NodeRecord", "NodeSpec", "SshAccess"]
