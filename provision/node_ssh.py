"""Short read-only commands on a cluster's nodes over SSH, for the watch loop's probes.

The watch loop asks every node the same question every interval (GPU utilisation, an
interruption marker). Starting one ``ssh`` process per node per check does not scale to a
thousand nodes, so the probes go through :class:`NodeShell`: one paramiko connection per
node, opened on first use and kept for the next check, at most ``max_parallel`` commands in
flight, every step bounded in time. Host keys are checked against the cluster's known_hosts
(provision.known_hosts) with paramiko's RejectPolicy: an unknown or changed key is a failed
probe, never a silent accept.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from provision.backends.base import NodeRecord
from provision.state import ClusterState

MAX_PARALLEL = 32
TIMEOUT = 15.0
MAX_OUTPUT = 1024 * 1024
IDLE_WAKEUP = 1.0  # a probe's answer is a few lines; more is not read


class NodeShell:
    """Pooled SSH connections to one cluster's nodes. Use :func:`shell_for` to share one."""

    def __init__(self, known_hosts: Path, private_key: Path | None, *,
                 max_parallel: int = MAX_PARALLEL, timeout: float = TIMEOUT) -> None:
        self.known_hosts = known_hosts
        self.private_key = private_key
        self.max_parallel = max(1, max_parallel)
        self.timeout = timeout
        self._clients: dict[str, object] = {}
        self._lock = threading.Lock()
        self.connects = 0  # connections opened so far (reuse is visible in tests and bench)

    def _client(self, node: NodeRecord):
        import paramiko

        with self._lock:
            client = self._clients.get(node.name)
        if client is not None and client.get_transport() and client.get_transport().is_active():
            return client
        client = paramiko.SSHClient()
        if self.known_hosts.is_file():
            client.load_host_keys(str(self.known_hosts))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(node.address, port=node.ssh_port, username=node.ssh_user,
                       key_filename=str(self.private_key) if self.private_key else None,
                       timeout=self.timeout, banner_timeout=self.timeout,
                       auth_timeout=self.timeout, channel_timeout=self.timeout,
                       allow_agent=False, look_for_keys=False)
        # paramiko's transport thread wakes every 0.1 s to check whether it should stop; with a
        # thousand idle connections that is 10,000 wake-ups a second. Once a second will do.
        transport = client.get_transport()
        if transport is not None:
            transport.sock.settimeout(IDLE_WAKEUP)
        with self._lock:
            self.connects += 1
            old = self._clients.get(node.name)
            self._clients[node.name] = client
        if old is not None and old is not client:
            old.close()
        return client

    def run(self, node: NodeRecord, command: str) -> str | None:
        """The command's stdout, or None when the node did not answer, its host key is not
        the recorded one, or the command failed. Never raises for a node's sake."""
        try:
            try:
                client = self._client(node)
            except (OSError, EOFError, paramiko_errors()) as exc:
                # one more try on a fresh connection: at a thousand nodes a refused or reset
                # connect is ordinary (a full accept queue), a second one is an answer
                logging.getLogger(__name__).debug("connect to %s: %s; retrying", node.name, exc)
                self._drop(node.name)
                client = self._client(node)
            _, stdout, _ = client.exec_command(command, timeout=self.timeout)
            data = stdout.read(MAX_OUTPUT)
            status = stdout.channel.recv_exit_status()
        except Exception as exc:  # any failure of a probe is "no answer"
            logging.getLogger(__name__).debug("probe of %s failed: %s", node.name, exc)
            self._drop(node.name)
            return None
        return data.decode(errors="replace") if status == 0 else None

    def run_all(self, nodes: Sequence[NodeRecord], command: str) -> dict[str, str | None]:
        """``run`` on every node, at most ``max_parallel`` at a time; by node name."""
        if not nodes:
            return {}
        workers = min(self.max_parallel, len(nodes))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="probe") as pool:
            answers = list(pool.map(lambda n: self.run(n, command), nodes))
        return {n.name: a for n, a in zip(nodes, answers, strict=True)}

    def _drop(self, name: str) -> None:
        with self._lock:
            client = self._clients.pop(name, None)
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            with contextlib.suppress(Exception):
                client.close()


def paramiko_errors() -> type[Exception]:
    import paramiko

    return paramiko.SSHException


_SHELLS: dict[Path, NodeShell] = {}


def private_key_of(state: ClusterState) -> Path | None:
    """The key provision connects with: the plan's (recorded at `up`) or the cluster's own."""
    recorded = state.extra.get("ssh_private_key")
    if recorded and Path(recorded).is_file():
        return Path(recorded)
    own = state.ssh_dir / "id_ed25519"
    return own if own.is_file() else None


def shell_for(state: ClusterState) -> NodeShell:
    """The cluster's shared NodeShell (connections live until :func:`close_shells`)."""
    shell = _SHELLS.get(state.directory)
    if shell is None:
        shell = NodeShell(state.ssh_dir / "known_hosts", private_key_of(state))
        _SHELLS[state.directory] = shell
    return shell


def close_shells() -> None:
    for shell in _SHELLS.values():
        shell.close()
    _SHELLS.clear()


def run_on(state: ClusterState, node: NodeRecord, command: str) -> str | None:
    """One probe on one node through the cluster's shared connections."""
    return shell_for(state).run(node, command)


def run_on_all(state: ClusterState, nodes: Sequence[NodeRecord], command: str
               ) -> dict[str, str | None]:
    """One probe on many nodes, in parallel within the pool's bound."""
    return shell_for(state).run_all(nodes, command)


