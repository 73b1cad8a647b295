"""The verify collector role on real podman nodes carrying the simulated GPU tools, then the
real analyzer on what it fetched (level full): a healthy node passes, each node with an
injected fault fails by name on exactly that fault's checks, and a hung tool is killed at its
timeout and reported as hung instead of stalling the run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from provision.backends import podman
from provision.converge import playbooks_dir
from provision.simulate import BIN_DIR, TOOL_NAMES
from provision.verify import analyze
from tests.unit.test_verify_roundtrip import FAULTS

HEALTHY = "verify-healthy"
NODES = {HEALTHY: [], **{f"verify-{f.replace(':', '-')}": [f] for f in FAULTS}}
NETWORK = "provision-verify-test"


def _simulator_tree(root: Path) -> Path:
    """The .deb layout of the simulated tools (what the stand-in packages install)."""
    tree = root / "provision-sim"
    (tree / "bin").mkdir(parents=True)
    shutil.copy(BIN_DIR.parent / "simgpu.py", tree / "simgpu.py")
    shutil.copy(Path(__file__).parents[2] / "provision/verify/data/reference.json",
                tree / "reference.json")
    for tool in TOOL_NAMES:
        shutil.copy(BIN_DIR / tool, tree / "bin" / tool)
    return tree


def _install_simulator(node: str, faults: list[str], tree: Path) -> None:
    env = podman.env()
    subprocess.run(["podman", "cp", str(tree), f"{node}:/usr/lib/"], check=True, env=env)
    config = json.dumps({"sku": "h100-sxm-80gb", "faults": faults, "hostname": node})
    links = " && ".join(f"ln -sf /usr/lib/provision-sim/bin/{t} /usr/bin/{t}"
                        for t in TOOL_NAMES)
    subprocess.run(["podman", "exec", node, "sh", "-c",
                    f"mkdir -p /etc/provision-sim && echo '{config}' > "
                    f"/etc/provision-sim/node.json && {links}"], check=True, env=env)


@pytest.fixture
def nodes(node_image: str, tmp_path_factory: pytest.TempPathFactory):
    env = podman.env()
    tree = _simulator_tree(tmp_path_factory.mktemp("sim"))
    subprocess.run(["podman", "network", "create", NETWORK], capture_output=True, env=env)
    for node, faults in NODES.items():
        subprocess.run(["podman", "rm", "-f", "-t", "0", node], capture_output=True, env=env)
        subprocess.run(["podman", "run", "-d", "--name", node, "--hostname", node, "--network",
                        NETWORK, node_image], check=True, capture_output=True, env=env)
        _install_simulator(node, faults, tree)
    yield list(NODES)
    for node in NODES:
        subprocess.run(["podman", "rm", "-f", "-t", "0", node], capture_output=True, env=env)
    subprocess.run(["podman", "network", "rm", "-f", NETWORK], capture_output=True, env=env)


def test_collect_then_analyze(nodes: list[str], tmp_path: Path) -> None:
    hosts = tmp_path / "hosts.yml"
    hosts.write_text(yaml.safe_dump({"all": {
        "children": {"gpu_nodes": {"hosts": {n: {"provision_sku": "h100-sxm-80gb"}
                                             for n in nodes}}},
        "vars": {"ansible_connection": "podman",
                 "ansible_python_interpreter": "/usr/bin/python3"}}}))
    artifacts = tmp_path / "artifacts"
    env = {**os.environ, "CONTAINERS_CONF": podman.containers_conf(), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_ROLES_PATH": str(playbooks_dir() / "roles"), "ANSIBLE_FORKS": "12"}
    proc = subprocess.run(
        ["ansible-playbook", "-i", str(hosts), str(playbooks_dir() / "verify.yml"),
         "-e", json.dumps({"verify_collect_level": "full", "verify_collect_timeout": 5,
                           "verify_collect_artifacts_dir": str(artifacts)})],
        capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:]
    for node in nodes:
        assert (artifacts / node / "sku").read_text().strip() == "h100-sxm-80gb"
    hung = artifacts / "verify-hang-nvbandwidth" / "nvbandwidth.txt.timeout"
    assert hung.read_text().strip() == "5"

    report = analyze(artifacts, level="full")
    assert report.hosts[HEALTHY].status == "pass", report.hosts[HEALTHY].to_json()
    # the role runs nccl-tests on the GPUs nvidia-smi lists: a missing GPU is missing from
    # every per-GPU listing, the seven-rank all-reduce included, and each of them fails
    for fault, checks in FAULTS.items():
        host = report.hosts[f"verify-{fault.replace(':', '-')}"]
        failed = {c.name for c in host.checks if c.status == "fail"}
        assert failed == checks, (fault, failed)
    hung_checks = [c for c in report.hosts["verify-hang-nvbandwidth"].checks
                   if c.name.startswith("nvbandwidth")]
    assert all("hung" in c.detail for c in hung_checks)
