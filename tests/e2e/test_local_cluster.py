"""End to end on the local target: up → rerun (no changes) → diff → node loss mid-run → up →
recover a lost node → stop → up (starts them again) → down.

Real podman nodes, real SSH, real ansible-runner, the real playbooks; the CLI through its
installed entry point. Takes a few minutes.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from provision.backends import podman
from tests.conftest import provision_cmd
from tests.e2e.conftest import node_exec, remove_cluster_objects

CLUSTER = "e2e-local"


def sh(*args: str) -> str:
    return subprocess.run(args, capture_output=True, text=True, env=podman.env(),
                          check=True).stdout



@pytest.fixture
def cluster_env(tmp_path: Path, node_image: str):
    remove_cluster_objects(CLUSTER)
    plan = tmp_path / "local.yaml"
    plan.write_text(f"name: {CLUSTER}\ntarget: local\nlocal:\n  nodes: 3\n"
                    "job:\n  command: while true; do hostname >> /shared/job.out; sleep 1; done\n")
    env = {**os.environ, "PROVISION_STATE_DIR": str(tmp_path / "state"),
           "PROVISION_INVENTORIES": str(tmp_path / "inventories"), "CI": "true",
           "NO_COLOR": "1"}
    yield plan, env, tmp_path
    remove_cluster_objects(CLUSTER)


def orphans(inventory: Path) -> list[int]:
    """ansible-playbook processes of this cluster's inventory that lost their parent."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes()
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == 1 and b"ansible-playbook" in cmd and str(inventory).encode() in cmd:
            found.append(int(proc.name))
    return found


def run(env, *args, timeout=600):
    return subprocess.run([*provision_cmd(), *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def test_up_rerun_loss_up_down(cluster_env):
    plan, env, tmp = cluster_env
    state_dir = tmp / "state" / CLUSTER

    # 1. up: three converged nodes
    first = run(env, "up", str(plan), "-o", "json")
    assert first.returncode == 0, first.stderr[-3000:]
    result = json.loads(first.stdout)
    names = [n["name"] for n in result["nodes"]]
    assert names == [f"{CLUSTER}-1", f"{CLUSTER}-2", f"{CLUSTER}-3"]
    assert result["converge"]["status"] == "successful"
    assert all(h["failed"] == 0 and h["unreachable"] == 0
               for h in result["converge"]["hosts"].values())

    # the nodes are really converged
    head, worker = names[0], names[2]
    sshd = node_exec(worker, "sshd -T")
    assert "passwordauthentication no" in sshd.stdout
    assert node_exec(worker, "nft list table inet provision_filter").returncode == 0
    assert node_exec(head, "echo shared-ok > /shared/probe").returncode == 0
    assert node_exec(worker, "cat /shared/probe").stdout.strip() == "shared-ok"
    mpi = node_exec(head, "mpirun --allow-run-as-root --hostfile /etc/provision/hostfile "
                          "--map-by node -np 3 hostname")
    assert sorted(mpi.stdout.split()) == names

    # the inventory works with plain Ansible
    hosts = tmp / "inventories" / CLUSTER / "hosts.yml"
    graph = subprocess.run(["ansible-inventory", "-i", str(hosts), "--graph"],
                           capture_output=True, text=True, check=True).stdout
    for group in ("@head", "@workers", "@sku_cpu", "@provider_local"):
        assert group in graph

    # state is private and holds no key material
    for f in (state_dir / "state.json", state_dir / "events.log", hosts):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    for f in state_dir.rglob("*"):
        if f.is_file() and "ssh" not in f.parts:
            assert "PRIVATE KEY-----" not in f.read_text(errors="replace"), f

    # `status` shows every node running with its last converge result
    status = json.loads(run(env, "status", CLUSTER, "-o", "json").stdout)
    assert [(n["name"], n["state"], n["converge"]) for n in status["nodes"]] == [
        (n, "running", "changed") for n in names]

    # 2. rerun: nothing changes
    second = run(env, "up", str(plan), "-o", "json")
    assert second.returncode == 0, second.stderr[-3000:]
    rerun = json.loads(second.stdout)
    assert rerun["converge"]["changed"] == 0, [
        t for t in rerun["converge"]["hosts"].items() if t[1]["changed"]]
    assert [n["instance_id"] for n in rerun["nodes"]] == [
        n["instance_id"] for n in result["nodes"]]  # no twins, same containers

    # `diff` against the converged cluster: nothing to create, and check mode changes nothing
    same = run(env, "diff", str(plan), "-o", "json")
    assert same.returncode == 0, same.stdout + same.stderr[-2000:]
    assert json.loads(same.stdout)["changes"] is False
    bigger = tmp / "bigger.yaml"
    bigger.write_text(plan.read_text().replace("nodes: 3", "nodes: 4"))
    grow = run(env, "diff", str(bigger), "-o", "json", "--no-software")
    assert grow.returncode == 1
    assert json.loads(grow.stdout)["infrastructure"]["create"] == [f"{CLUSTER}-4"]

    # the plan's job runs on the head node and writes into the shared directory
    assert node_exec(head, "test -s /shared/job.out").returncode == 0

    # 3. a node dies in the middle of a run; a second run is refused while this one holds
    #    the lock; the others finish; the failure names the node
    proc = subprocess.Popen([*provision_cmd(), "up", str(plan)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    lost = names[1]
    deadline = time.monotonic() + 300
    assert proc.stderr is not None
    for line in proc.stderr:
        if "PLAY Hardening" in line or time.monotonic() > deadline:
            break
    concurrent = run(env, "up", str(plan), timeout=60)
    assert concurrent.returncode == 4 and "locked by" in concurrent.stderr
    subprocess.run(["podman", "rm", "-f", "-t", "0", lost], capture_output=True,
                   env=podman.env(), check=True)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 1, err[-3000:]
    assert f"converge failed on 1 node(s): {lost}" in err
    summary = {line.split("│")[1].strip(): line for line in out.splitlines()
               if line.startswith("│")}
    assert "unreachable" in summary[lost] or "failed" in summary[lost]
    for other in (names[0], names[2]):
        assert "failed" not in summary[other] and "unreachable" not in summary[other]
    assert json.loads(run(env, "status", CLUSTER, "-o", "json").stdout)["nodes"][1]["state"] \
        == "lost"

    # Ctrl-C in the middle of a run: exit 130, and the state stays readable
    proc = subprocess.Popen([*provision_cmd(), "up", str(plan)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stderr is not None
    for line in proc.stderr:
        if "PLAY Base" in line or time.monotonic() > deadline + 300:
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted; state is saved" in err
    json.loads((state_dir / "state.json").read_text())
    assert orphans(hosts) == [], "an interrupted run left ansible processes behind"

    # 4. up again: the lost node is recreated and the cluster converges
    again = run(env, "up", str(plan), "-o", "json")
    assert again.returncode == 0, again.stderr[-3000:]
    healed = json.loads(run(env, "status", CLUSTER, "-o", "json").stdout)["nodes"]
    assert [(n["state"], n["converge"]) for n in healed if n["name"] == lost] == [
        ("running", "changed")]  # recreated (by the interrupted run) and converged now
    assert node_exec(lost, "cat /shared/probe").stdout.strip() == "shared-ok"

    # 5. a node is lost between runs: `recover` replaces only it and restarts the job
    before_ids = {n["name"]: n["instance_id"] for n in json.loads(again.stdout)["nodes"]}
    subprocess.run(["podman", "rm", "-f", "-t", "0", names[2]], capture_output=True,
                   env=podman.env(), check=True)
    rec = run(env, "recover", CLUSTER, "-o", "json")
    assert rec.returncode == 0, rec.stderr[-3000:]
    recovered = json.loads(rec.stdout)
    assert recovered["lost"] == [names[2]] and recovered["replaced"] == [names[2]]
    assert recovered["seconds"] > 0
    status_after = json.loads(run(env, "status", CLUSTER, "-o", "json").stdout)
    assert all(n["state"] == "running" for n in status_after["nodes"])
    after = json.loads((state_dir / "state.json").read_text())["nodes"]
    for n in after:
        if n["name"] != names[2]:
            assert n["instance_id"] == before_ids[n["name"]]  # the others were left alone
    assert node_exec(names[2], "cat /shared/probe").stdout.strip() == "shared-ok"
    starts = node_exec(head, "grep -c 'provision job start' /shared/provision-job.log")
    assert int(starts.stdout.strip()) >= 2  # started by up, restarted by recover

    # 6. stop keeps the nodes (and their disks) but halts them; up starts the same containers
    stopped = run(env, "stop", CLUSTER)
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    assert {c["State"] for c in podman.containers(f"provision.cluster={CLUSTER}")} == {"exited"}
    assert {n["state"] for n in json.loads(run(env, "status", CLUSTER, "-o", "json").stdout)
            ["nodes"]} == {"stopped"}
    restarted = run(env, "up", str(plan), "-o", "json")
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    assert "starting stopped node" in restarted.stderr
    assert {n["name"]: n["instance_id"] for n in json.loads(restarted.stdout)["nodes"]} == {
        n["name"]: n["instance_id"] for n in after}  # the same containers, not new ones
    assert node_exec(names[2], "cat /shared/probe").stdout.strip() == "shared-ok"

    # 7. down: nothing of the cluster is left
    before = sh("podman", "ps", "-a", "--filter", f"label=provision.cluster={CLUSTER}",
                "--format", "{{.Names}}").split()
    assert sorted(before) == names
    gone = run(env, "down", CLUSTER, "--yes", "-o", "json")
    assert gone.returncode == 0, gone.stderr
    report = json.loads(gone.stdout)
    assert report["leftovers"] == []
    assert {f"container {n}" for n in names} <= set(report["removed"])
    assert sh("podman", "ps", "-a", "--filter", f"label=provision.cluster={CLUSTER}",
              "--format", "{{.Names}}").split() == []
    assert f"provision-{CLUSTER}" not in sh("podman", "network", "ls", "--format",
                                             "{{.Name}}").split()
    assert not (tmp / "inventories" / CLUSTER).exists()
    # only the lock file stays: a process waiting on it must contend with any later run
    assert [p.name for p in state_dir.iterdir()] == ["lock"]
    assert run(env, "status", CLUSTER).returncode == 2
