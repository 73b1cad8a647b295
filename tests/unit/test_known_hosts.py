"""Host keys: learnt from the platform or on first use, refused when they change — checked
against OpenSSH's own tools (ssh-keyscan, ssh) and paramiko on a test SSH server on 127.0.0.1
(tests/sshd.py), and the watch loop's pooled probes at 1,000 nodes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import paramiko
import pytest

from provision.backends.base import NodeRecord
from provision.known_hosts import (
    HostKey,
    HostKeyChanged,
    ensure_host_keys,
    forget,
    known_hosts,
    parse_keys,
    trusted_keys,
)
from provision.node_ssh import NodeShell
from provision.state import ClusterState
from tests.sshd import TestSshd, write_key

REPO = Path(__file__).resolve().parents[2]

# Real key lines (OpenSSH 9 ssh-keygen output format); the parser must take them as they are.
REAL_LINES = [
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl root@h1",
]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, paramiko.PKey]:
    return {"a": paramiko.ECDSAKey.generate(), "b": paramiko.ECDSAKey.generate(),
            "client": paramiko.ECDSAKey.generate()}


def _host_key(key: paramiko.PKey) -> HostKey:
    parsed = HostKey.parse(f"{key.get_name()} {key.get_base64()}")
    assert parsed is not None
    return parsed


def _state(tmp_path: Path, client: paramiko.PKey) -> ClusterState:
    state = ClusterState(name="keys", directory=tmp_path / "keys", target="baremetal")
    state.ssh_dir.mkdir(parents=True)
    write_key(client, state.ssh_dir / "id_ed25519")
    state.save()
    return state


def _node(port: int, name: str = "keys-1", instance: str = "i-1") -> NodeRecord:
    return NodeRecord(name=name, address="127.0.0.1", ssh_port=port, ssh_user="root",
                      sku="cpu", provider="baremetal", instance_id=instance)


def test_host_key_lines() -> None:
    key = parse_keys(REAL_LINES)[0]
    assert key.keytype == "ssh-ed25519"
    # ssh-keygen -lf prints this fingerprint for that line
    assert key.fingerprint.startswith("SHA256:") and len(key.fingerprint) == 50
    assert HostKey.parse("ssh-ed25519 bm90IGEga2V5") is None  # base64, but not a key blob
    assert HostKey.parse("root:x:0:0:root:/root:/bin/bash") is None


def test_first_use_then_a_changed_key_is_refused(tmp_path: Path, keys) -> None:
    state = _state(tmp_path, keys["client"])
    with TestSshd(keys["a"], keys["client"]) as sshd:
        port = sshd.port
        node = _node(port)
        ensure_host_keys(state, [node], trusted=None)
    assert known_hosts(state).keys_for(node) == [_host_key(keys["a"])]
    assert state.extra["host_keys"]["keys-1"]["how"] == "trusted on first use"
    assert (state.ssh_dir / "known_hosts").stat().st_mode & 0o777 == 0o600

    with TestSshd(keys["b"], keys["client"], port=port):  # same address, another key
        with pytest.raises(HostKeyChanged) as refused:
            ensure_host_keys(state, [node], trusted=None)
        message = str(refused.value)
        assert "node keys-1 (" in message and f"[127.0.0.1]:{port}" in message
        assert _host_key(keys["a"]).fingerprint in message
        assert _host_key(keys["b"]).fingerprint in message
        assert "provision known-hosts forget keys keys-1" in message
        assert known_hosts(state).keys_for(node) == [_host_key(keys["a"])]  # unchanged

        # OpenSSH itself, with the options Ansible gets, refuses the node too
        proc = subprocess.run(
            ["ssh", *known_hosts(state).ssh_options(), "-o", "BatchMode=yes", "-p", str(port),
             "-i", str(state.ssh_dir / "id_ed25519"), "root@127.0.0.1", "true"],
            capture_output=True, text=True, timeout=60)
        assert proc.returncode == 255
        assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in proc.stderr

        assert forget(state, "keys-1") is False  # the node is not in state.nodes yet
        state.nodes = [node]
        assert forget(state, "keys-1") is True
        ensure_host_keys(state, [node], trusted=None)
    assert known_hosts(state).keys_for(node) == [_host_key(keys["b"])]


def test_the_platform_vouches_for_keys(tmp_path: Path, keys) -> None:
    state = _state(tmp_path, keys["client"])
    with TestSshd(keys["a"], keys["client"]) as sshd:
        node = _node(sshd.port)
        labelled = NodeRecord(**{**node.to_json(),
                                 "labels": {"ssh_host_keys": f"{keys['a'].get_name()} "
                                                             f"{keys['a'].get_base64()}"}})
        ensure_host_keys(state, [labelled], trusted_keys(object()))
        assert state.extra["host_keys"]["keys-1"]["how"] == "from the platform"
        # a platform that reports another key than the node presents: refused
        other = NodeRecord(**{**node.to_json(),
                              "labels": {"ssh_host_keys": f"{keys['b'].get_name()} "
                                                          f"{keys['b'].get_base64()}"}})
        forget(state.__class__.load("keys", tmp_path) or state, "keys-1")
        state.extra.pop("host_keys")
        (state.ssh_dir / "known_hosts").unlink()
        with pytest.raises(HostKeyChanged, match="than the ones its platform reports"):
            ensure_host_keys(state, [other], trusted_keys(object()))


def test_a_node_provision_replaced_may_have_a_new_key(tmp_path: Path, keys) -> None:
    state = _state(tmp_path, keys["client"])
    with TestSshd(keys["a"], keys["client"]) as sshd:
        port = sshd.port
        ensure_host_keys(state, [_node(port, instance="i-old")], trusted=None)
    with TestSshd(keys["b"], keys["client"], port=port):
        ensure_host_keys(state, [_node(port, instance="i-new")], trusted=None,
                         replaced=["keys-1"])
    assert known_hosts(state).keys_for(_node(port)) == [_host_key(keys["b"])]


def test_pooled_probes_check_keys_and_reuse_connections(tmp_path: Path, keys) -> None:
    state = _state(tmp_path, keys["client"])
    with TestSshd(keys["a"], keys["client"], handler=lambda c: (0, f"ran {c}\n")) as sshd:
        node = _node(sshd.port)
        shell = NodeShell(state.ssh_dir / "known_hosts", state.ssh_dir / "id_ed25519",
                          timeout=10)
        assert shell.run(node, "uptime") is None  # unknown host key: RejectPolicy
        ensure_host_keys(state, [node], trusted=None)
        shell = NodeShell(state.ssh_dir / "known_hosts", state.ssh_dir / "id_ed25519",
                          timeout=10)
        before = sshd.connections
        assert shell.run(node, "uptime") == "ran uptime\n"
        assert shell.run(node, "date") == "ran date\n"
        assert shell.connects == 1 and sshd.connections == before + 1
        shell.close()
    with TestSshd(keys["b"], keys["client"], port=node.ssh_port):
        shell = NodeShell(state.ssh_dir / "known_hosts", state.ssh_dir / "id_ed25519",
                          timeout=10)
        assert shell.run(node, "uptime") is None  # changed key: refused
        shell.close()


def test_a_thousand_nodes_with_bounded_concurrency(tmp_path: Path, keys) -> None:
    """1,000 node records served by one test server in a process of its own: every probe
    answered correctly, never more than the pool's bound in flight, and the second round
    opens no connection (about 20 s here)."""
    count = 1000
    state = _state(tmp_path, keys["client"])
    host_key = tmp_path / "host_key"
    keys["a"].write_private_key_file(str(host_key))
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.sshd", str(host_key), str(state.ssh_dir / "id_ed25519.pub")],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True)
    try:
        port = int(server.stdout.readline())
        nodes = [_node(port, name=f"n-{i}") for i in range(count)]
        ensure_host_keys(state, nodes[:1], trusted=None)  # one address: one entry for all
        shell = NodeShell(state.ssh_dir / "known_hosts", state.ssh_dir / "id_ed25519",
                          max_parallel=16, timeout=60)
        try:
            first = shell.run_all(nodes, "echo probe")
            # never a wrong answer; on a loaded machine a probe may time out (an unknown,
            # which the watch loop asks again at its next pass): the next pass answers it
            assert set(first.values()) <= {"probe\n", None}
            missed = [n for n in nodes if first[n.name] is None]
            assert len(missed) <= count // 100, f"{len(missed)} probes unanswered"
            retried = shell.run_all(missed, "echo probe")
            assert set(retried.values()) <= {"probe\n"}
            opened = shell.connects
            assert opened <= count + 2 * len(missed)
            second = shell.run_all(nodes, "echo again")
            assert set(second.values()) <= {"again\n", None}
            again_missed = [n for n in second if second[n] is None]
            assert len(again_missed) <= count // 100, f"{len(again_missed)} probes unanswered"
            # every connection was reused (a probe that failed drops its connection and the
            # next one opens a fresh one: at most two per miss)
            assert shell.connects <= opened + 2 * len(again_missed)
        finally:
            shell.close()
        out, _ = server.communicate("", timeout=60)
        assert int(out.split("max_in_flight=")[1].split()[0]) <= 16
    finally:
        if server.poll() is None:
            server.kill()
