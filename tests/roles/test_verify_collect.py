"""The verify collector role on real podman nodes carrying the simulated GPU tools, then the
real analyzer on what it fetched: a healthy node passes, a faulty one fails by name, and a
hung tool is killed at its timeout and reported as hung instead of stalling the run."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from provision.backends import podman
from provision.converge import playbooks_dir
from provision.simulate import BIN_DIR, TOOL_NAMES
from provision.verify import analyze

NODES = {"verify-node-1": [], "verify-node-2": ["nvlink-down", "hang:nvbandwidth"]}
NETWORK = "provision-verify-test"


def _install_simulator(node: str, faults: list[str]) -> None:
    """The .deb layout of the simulated tools, copied in (what the stand-in packages hold)."""
    env = podman.env()
    sim = BIN_DIR.parent
    subprocess.run(["podman", "exec", node, "mkdir", "-p", "/usr/lib/provision-sim/bin",
                    "/etc/provision-sim"], check=True, env=env)
    for src, dest in ((sim / "simgpu.py", "/usr/lib/provision-sim/simgpu.py"),
                      (Path(__file__).parents[2] / "provision/verify/data/reference.json",
                       "/usr/lib/provision-sim/reference.json")):
        subprocess.run(["podman", "cp", str(src), f"{node}:{dest}"], check=True, env=env)
    for tool in TOOL_NAMES:
        subprocess.run(["podman", "cp", str(BIN_DIR / tool),
                        f"{node}:/usr/lib/provision-sim/bin/{tool}"], check=True, env=env)
        subprocess.run(["podman", "exec", node, "ln", "-sf",
                        f"/usr/lib/provision-sim/bin/{tool}", f"/usr/bin/{tool}"],
                       check=True, env=env)
    config = json.dumps({"sku": "h100-sxm-80gb", "faults": faults, "hostname": node})
    subprocess.run(["podman", "exec", node, "sh", "-c",
                    f"echo '{config}' > /etc/provision-sim/node.json"], check=True, env=env)


@pytest.fixture
def nodes(node_image: str):
    env = podman.env()
    subprocess.run(["podman", "network", "create", NETWORK], capture_output=True, env=env)
    for node, faults in NODES.items():
        subprocess.run(["podman", "rm", "-f", "-t", "0", node], capture_output=True, env=env)
        subprocess.run(["podman", "run", "-d", "--name", node, "--hostname", node, "--network",
                        NETWORK, node_image], check=True, capture_output=True, env=env)
        _install_simulator(node, faults)
    yield list(NODES)
    for node in NODES:
        subprocess.run(["podman", "rm", "-f", "-t", "0", node], capture_output=True, env=env)
    subprocess.run(["podman", "network", "rm", "-f", NETWORK], capture_output=True, env=env)


def test_collect_then_analyze(nodes: list[str], tmp_path: Path) -> None:
    hosts = tmp_path / "hosts.yml"
    hosts.write_text(textwrap.dedent("""
        all:
          children:
            gpu_nodes:
              hosts:
                verify-node-1: {provision_sku: h100-sxm-80gb}
                verify-node-2: {provision_sku: h100-sxm-80gb}
          vars:
            ansible_connection: podman
            ansible_python_interpreter: /usr/bin/python3
    """))
    artifacts = tmp_path / "artifacts"
    env = {**os.environ, "CONTAINERS_CONF": podman.containers_conf(), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_ROLES_PATH": str(playbooks_dir() / "roles")}
    proc = subprocess.run(
        ["ansible-playbook", "-i", str(hosts), str(playbooks_dir() / "verify.yml"),
         "-e", json.dumps({"verify_collect_level": "standard", "verify_collect_timeout": 5,
                           "verify_collect_artifacts_dir": str(artifacts)})],
        capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]
    for node in nodes:
        assert (artifacts / node / "nvidia-smi-query.csv").stat().st_size > 0
        assert (artifacts / node / "sku").read_text().strip() == "h100-sxm-80gb"
    assert (artifacts / "verify-node-2" / "nvbandwidth.txt.timeout").read_text().strip() == "5"

    report = analyze(artifacts, level="standard")
    assert report.hosts["verify-node-1"].status == "pass", report.to_json()
    bad = report.hosts["verify-node-2"]
    assert bad.status == "fail"
    failed = {c.name: c for c in bad.checks if c.status == "fail"}
    assert {"nvlink.topology", "nvlink.status"} <= set(failed)
    assert any(name.startswith("nvbandwidth") and "hung" in c.detail
               for name, c in failed.items())
