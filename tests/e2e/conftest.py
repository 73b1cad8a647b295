"""Helpers for tests that run real podman clusters."""

from __future__ import annotations

import subprocess

from provision.backends import podman


def remove_cluster_objects(cluster: str) -> None:
    """Leftovers of an earlier, interrupted run of the same test."""
    env = podman.env()
    ids = subprocess.run(["podman", "ps", "-aq", "--filter", f"label=provision.cluster={cluster}"],
                         capture_output=True, text=True, env=env).stdout.split()
    if ids:
        subprocess.run(["podman", "rm", "-f", "-t", "0", *ids], capture_output=True, env=env)
    subprocess.run(["podman", "network", "rm", "-f", f"provision-{cluster}"],
                   capture_output=True, env=env)


def node_exec(node: str, command: str, *, login: bool = False
              ) -> subprocess.CompletedProcess[str]:
    """Run a shell command on a node container; ``login`` reads /etc/profile.d (CUDA's PATH)."""
    shell = ["bash", "-lc"] if login else ["sh", "-c"]
    return subprocess.run(["podman", "exec", node, *shell, command], capture_output=True,
                          text=True, env=podman.env())
