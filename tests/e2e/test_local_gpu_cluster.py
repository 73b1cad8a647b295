"""End to end on simulated GPU nodes: `provision up` on two simulated HGX H100 nodes runs the
full site playbook (base → storage → driver → fabric manager → CUDA → NCCL → MPI → container
toolkit → Apptainer → RDMA → tuning) from provision's stand-in repository. The nodes then hold
NVIDIA's package names at the plan's versions, their services run, a container sees the GPUs,
and MPI-enabled nccl-tests runs across both nodes. A lost node is replaced and verified by
`recover`, the watch loop stops the idle cluster (lifecycle.idle_minutes), and `down` leaves
nothing behind.

Real podman nodes, real SSH, real ansible-runner, the real playbooks and roles; the CLI through
its installed entry point. Takes several minutes.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from provision.backends import podman
from provision.state import ClusterState
from tests.conftest import EXAMPLES, provision_cmd
from tests.e2e.conftest import node_exec, remove_cluster_objects

CLUSTER = "e2e-gpu"
# Secrets an operator's shell typically holds. Every command of this test runs with them set;
# none may end up in a file provision (or Ansible under it) writes.
CANARIES = {
    "AWS_SECRET_ACCESS_KEY": "canary-aws-secret-3d9f1c",
    "AWS_SESSION_TOKEN": "canary-aws-session-77b2e0",
    "BMC_PASSWORD": "canary-bmc-password-a41f55",
    "PULUMI_CONFIG_PASSPHRASE": "canary-pulumi-passphrase-0c8e12",
}


def canary_hits(*roots: Path) -> list[str]:
    """Files under ``roots`` that contain a canary value (path: variable)."""
    hits = []
    for root in roots:
        for path in [root] if root.is_file() else root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                hits += [f"{path}: {name}" for name, value in CANARIES.items()
                         if value.encode() in data]
    return hits


def node_exec_login(node: str, command: str) -> subprocess.CompletedProcess[str]:
    return node_exec(node, command, login=True)



@pytest.fixture
def gpu_cluster(tmp_path: Path, node_image: str):
    remove_cluster_objects(CLUSTER)
    plan = tmp_path / "local-gpu.yaml"
    doc = yaml.safe_load((EXAMPLES / "local-gpu.yaml").read_text())
    doc["name"] = CLUSTER
    # verify's own end-to-end tests measure every level; here the quick level gates `up` and
    # the recovery of a lost node
    doc["verify"] = {"enabled": True, "level": "quick"}
    # day 2 on GPU nodes: the watch loop stops a cluster whose GPUs sat idle for a minute
    doc["lifecycle"] = {"idle_minutes": 1, "idle_gpu_util_percent": 5, "on_idle": "stop"}
    plan.write_text(yaml.safe_dump(doc))
    home = tmp_path / "home"  # the run's own ~/.ansible, searched for the canaries at the end
    home.mkdir()
    env = {**os.environ, "PROVISION_STATE_DIR": str(tmp_path / "state"),
           "PROVISION_INVENTORIES": str(tmp_path / "inventories"), "CI": "true",
           "NO_COLOR": "1", "HOME": str(home),
           "PYENV_ROOT": os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv")),
           **CANARIES}
    yield plan, env, tmp_path
    remove_cluster_objects(CLUSTER)


def run(env: dict[str, str], *args: str, timeout: float = 1500
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*provision_cmd(), *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def test_up_on_simulated_h100_nodes_runs_the_full_site_playbook(gpu_cluster):
    plan, env, tmp = gpu_cluster
    up = run(env, "up", str(plan), "-o", "json")
    assert up.returncode == 0, (up.stdout[-2000:] + up.stderr[-4000:])
    result = json.loads(up.stdout)
    names = [n["name"] for n in result["nodes"]]
    assert names == [f"{CLUSTER}-1", f"{CLUSTER}-2"]
    assert result["converge"]["status"] == "successful"
    assert all(h["failed"] == 0 and h["unreachable"] == 0
               for h in result["converge"]["hosts"].values())

    # the inventory hands the resolved profile to the roles: per-SKU group variables
    group_vars = tmp / "inventories" / CLUSTER / "group_vars" / "sku_h100_sxm_80gb.yml"
    profile = yaml.safe_load(group_vars.read_text())
    assert (profile["nvidia_driver_branch"], profile["cuda_version"], profile["nccl_version"],
            profile["nccl_cuda_build"], profile["nvidia_fabricmanager_enabled"]) == (
        "550", "12.4", "2.21.5", "12.4", True)
    assert profile["cuda_repository_base_url"].startswith("file:///opt/provision-sim-repo/")

    for node in names:
        # NVIDIA's package names at the plan's versions, from the stand-in repository
        pkgs = node_exec_login(node, "dpkg-query -W cuda-drivers-550 nvidia-fabricmanager-550 "
                               "cuda-toolkit-12-4 libnccl2 nvidia-container-toolkit apptainer "
                               "doca-ofed").stdout
        assert "cuda-drivers-550\t550.127.05-1" in pkgs
        assert "libnccl2\t2.21.5-1+cuda12.4" in pkgs
        desc = node_exec_login(node, "dpkg-query -W -f='${Description}' libnccl2").stdout
        assert desc.startswith("SIMULATED stand-in")
        # the services run and the GPUs joined the fabric
        assert node_exec_login(node, "service nvidia-fabricmanager status").returncode == 0
        q = node_exec_login(node, "nvidia-smi -q").stdout
        assert q.count("Completed") == 8 and "SIMULATED" in q
        # CUDA on PATH for login shells; a container sees the GPUs through CDI
        assert node_exec_login(node, "nvcc --version").stdout.count("release 12.4") == 1
        seen = node_exec_login(node, "podman run --rm --device nvidia.com/gpu=all "
                               "localhost/provision-sim-busybox:1.35 nvidia-smi -L").stdout
        assert len([ln for ln in seen.splitlines() if ln.startswith("GPU ")]) == 8

    # MPI-enabled nccl-tests across both nodes, launched from the head as a user would
    head = names[0]
    mpi = node_exec_login(head, "mpirun --allow-run-as-root --hostfile /etc/provision/hostfile "
                          "-np 16 -N 8 all_reduce_perf -b 8G -e 8G -f 2 -g 1")
    assert mpi.returncode == 0, mpi.stdout[-2000:] + mpi.stderr[-2000:]
    assert len([ln for ln in mpi.stdout.splitlines() if ln.startswith("#  Rank")]) == 16
    assert "Avg bus bandwidth" in mpi.stdout

    # A node is lost: `recover` replaces exactly that one, converges the whole site playbook
    # on it, and verifies it before the cluster counts as whole again
    subprocess.run(["podman", "rm", "-f", "-t", "0", names[1]], env=podman.env(), check=True,
                   capture_output=True)
    rec = run(env, "recover", CLUSTER, "-o", "json")
    assert rec.returncode == 0, rec.stderr[-4000:]
    recovered = json.loads(rec.stdout)
    assert (recovered["lost"], recovered["replaced"]) == ([names[1]], [names[1]])
    assert recovered["verify"] == "pass"
    print(f"loss to verified replacement (simulated H100 node): {recovered['seconds']} s")
    assert node_exec_login(names[1], "dpkg-query -W libnccl2").stdout.split() == [
        "libnccl2", "2.21.5-1+cuda12.4"]

    # `provision verify CLUSTER` on the live cluster fails, naming the node and the check, once
    # a fault appears on a node (the simulated hardware's description changes under it)
    inject = ("python3 -c \"import json; p='/etc/provision-sim/node.json'; c=json.load(open(p)); "
              "c['faults']=['nvlink-down']; json.dump(c, open(p, 'w'))\"")
    assert node_exec_login(names[1], inject).returncode == 0
    checked = run(env, "verify", CLUSTER, "--level", "quick", "-o", "json")
    assert checked.returncode == 1, checked.stderr[-3000:]
    report = json.loads(checked.stdout)
    assert report["status"] == "fail" and report["hosts"][names[0]]["status"] == "pass"
    failed = {c["name"] for c in report["hosts"][names[1]]["checks"] if c["status"] == "fail"}
    assert any(name.startswith("nvlink") for name in failed), failed

    # Idle guard: the watch loop reads every GPU's utilisation over SSH (the simulated
    # nvidia-smi says 0 %). The cluster has been idle for two minutes by its state (a
    # restarted watch carries on counting), past lifecycle.idle_minutes: 1, so it stops.
    state = ClusterState.load(CLUSTER, tmp / "state")
    state.extra["idle_since"] = (datetime.now(UTC) - timedelta(minutes=2)).isoformat()
    state.save()
    watched = run(env, "watch", CLUSTER, "--interval", "1", "--for", "120", timeout=300)
    assert watched.returncode == 0, watched.stderr[-3000:]
    assert "lifecycle.idle_minutes reached: every GPU below 5 %" in watched.stderr
    assert "(stop)" in watched.stderr
    states = [c["State"] for c in podman.containers(f"provision.cluster={CLUSTER}")]
    assert states == ["exited", "exited"]
    status = json.loads(run(env, "status", CLUSTER, "-o", "json").stdout)
    assert status["stopped"] and {n["state"] for n in status["nodes"]} == {"stopped"}
    assert status["price_per_hour"] == 0
    # a stopped cluster is not "recovered" behind the operator's back
    again = run(env, "recover", CLUSTER)
    assert again.returncode == 2 and "is stopped; `provision up` starts" in again.stderr

    # up → verify → recover → watch ran with the canaries set: no file of the state, the
    # inventories or ~/.ansible holds one (ansible-runner used to copy the whole environment
    # into runs/*/artifacts/*/command)
    searched = [tmp / "state", tmp / "inventories", tmp / "home" / ".ansible"]
    assert (tmp / "home" / ".ansible").is_dir() and any((tmp / "state").rglob("command"))
    assert canary_hits(*searched) == []

    gone = run(env, "down", CLUSTER, "--yes", timeout=300)
    assert gone.returncode == 0, gone.stderr
    assert canary_hits(*[p for p in searched if p.exists()]) == []
    left = subprocess.run(["podman", "ps", "-a", "--filter", f"label=provision.cluster={CLUSTER}",
                           "--format", "{{.Names}}"], capture_output=True, text=True,
                          env=podman.env()).stdout.split()
    assert left == []
