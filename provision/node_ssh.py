"""Run one read-only command on a node over SSH with the cluster's key, bounded in time.

The watch loop's probes (GPU utilisation, interruption markers) use this instead of a whole
playbook run: one short SSH call per node per check.
"""

from __future__ import annotations

import subprocess

from provision.backends.base import NodeRecord
from provision.state import ClusterState


def run_on(state: ClusterState, node: NodeRecord, command: str,
           timeout: float = 15.0) -> str | None:
    """The command's stdout, or None when the node did not answer or the command failed."""
    key = state.ssh_dir / "id_ed25519"
    cmd = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
           "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
           "-o", f"ConnectTimeout={int(timeout)}", "-p", str(node.ssh_port),
           *(["-i", str(key)] if key.exists() else []), f"{node.ssh_user}@{node.address}",
           command]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 5)
    except subprocess.TimeoutExpired:
        return None
    return proc.stdout if proc.returncode == 0 else None
