"""The firewall is fail-safe: a ruleset that would lock the operator out rolls itself back.

A podman node gets a ruleset that admits SSH only from an address that is not ours. The role's
probe (a fresh SSH connection from the controller) fails, the play fails, and within the
rollback window the node answers SSH again with the previous ruleset restored.
"""

from __future__ import annotations

import os
import subprocess
import textwrap
import time
from pathlib import Path

from provision.backends import podman
from provision.backends.reachability import ssh_answers
from provision.converge import playbooks_dir

NODE = "provision-rollback-test"
NETWORK = "provision-rollback-test"


def test_a_lockout_ruleset_rolls_back(node_image: str, tmp_path: Path) -> None:
    env = podman.env()
    subprocess.run(["podman", "rm", "-f", "-t", "0", NODE], capture_output=True, env=env)
    subprocess.run(["podman", "network", "create", NETWORK], capture_output=True, env=env)
    try:
        subprocess.run(["podman", "run", "-d", "--name", NODE, "--network", NETWORK,
                        "--cap-add", "NET_ADMIN", node_image], check=True, capture_output=True,
                       env=env)
        address = podman.address_on(podman.inspect(NODE), NETWORK)
        assert address
        deadline = time.monotonic() + 30
        while not ssh_answers(address) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert ssh_answers(address)

        (tmp_path / "hosts.yml").write_text(textwrap.dedent(f"""
            all:
              hosts:
                {NODE}:
                  ansible_connection: podman
                  ansible_python_interpreter: /usr/bin/python3
        """))
        (tmp_path / "lockout.yml").write_text(textwrap.dedent(f"""
            - name: Apply a ruleset that shuts the operator out
              hosts: all
              gather_facts: true
              roles:
                - role: hardening
                  vars:
                    hardening_probe_address: {address}
                    hardening_operator_cidrs: [192.0.2.99/32]
                    hardening_cluster_cidrs: [192.0.2.0/28]
                    hardening_firewall_rollback_seconds: 12
        """))
        run_env = {**os.environ, "CONTAINERS_CONF": podman.containers_conf(),
                   "ANSIBLE_ROLES_PATH": str(playbooks_dir() / "roles"), "ANSIBLE_NOCOLOR": "1"}
        proc = subprocess.run(["ansible-playbook", "-i", str(tmp_path / "hosts.yml"),
                               str(tmp_path / "lockout.yml")], capture_output=True, text=True,
                              env=run_env, timeout=300)
        assert proc.returncode != 0, proc.stdout[-2000:]
        assert "Prove a new SSH connection from the operator gets through" in proc.stdout
        assert not ssh_answers(address)  # locked out right now ...

        deadline = time.monotonic() + 30
        while not ssh_answers(address) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert ssh_answers(address), "the ruleset did not roll back"  # ... and back by itself
        rules = subprocess.run(["podman", "exec", NODE, "nft", "list", "ruleset"],
                               capture_output=True, text=True, env=env).stdout
        assert "provision_filter" not in rules
    finally:
        subprocess.run(["podman", "rm", "-f", "-t", "0", NODE], capture_output=True, env=env)
        subprocess.run(["podman", "network", "rm", "-f", NETWORK], capture_output=True, env=env)
