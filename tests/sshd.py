"""A small SSH server on 127.0.0.1 for tests (paramiko's server side): real SSH protocol, a
host key the test chooses, public-key login for one key, and ``exec`` requests answered by a
Python function. It counts connections and the most exec requests it served at once, so
tests can check connection reuse and bounded concurrency. TEST-ONLY; it runs no shell."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import paramiko


class _Server(paramiko.ServerInterface):
    def __init__(self, owner: TestSshd) -> None:
        self.owner = owner
        self.command: bytes | None = None
        self.ready = threading.Event()

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        ok = key.get_base64() == self.owner.authorized.get_base64()
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return (paramiko.OPEN_SUCCEEDED if kind == "session"
                else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED)

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        self.command = command
        self.ready.set()
        return True


class TestSshd:
    """``with TestSshd(host_key, authorized) as sshd: sshd.port`` — serves until closed."""

    __test__ = False  # not a pytest test class

    def __init__(self, host_key: paramiko.PKey, authorized: paramiko.PKey,
                 handler: Callable[[str], tuple[int, str]] = lambda cmd: (0, "ok\n"),
                 port: int = 0) -> None:
        self.host_key = host_key
        self.authorized = authorized
        self.handler = handler
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._transports: list[paramiko.Transport] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> TestSshd:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self.sock.close()
        for t in list(self._transports):
            with contextlib.suppress(Exception):
                t.close()
        self._thread.join(timeout=5)

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        transport = paramiko.Transport(conn)
        transport.sock.settimeout(1.0)  # fewer idle wake-ups with many connections
        self._transports.append(transport)
        transport.add_server_key(self.host_key)
        server = _Server(self)
        try:
            transport.start_server(server=server)
        except (paramiko.SSHException, EOFError, OSError):
            return
        while not self._stop.is_set() and transport.is_active():
            channel = transport.accept(timeout=0.5)
            if channel is None:
                continue
            if not server.ready.wait(timeout=120):  # a loaded machine is slow, not wrong
                channel.close()
                continue
            server.ready.clear()
            with self._lock:
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                status, out = self.handler((server.command or b"").decode())
                channel.sendall(out.encode())
                channel.send_exit_status(status)
            finally:
                with self._lock:
                    self.in_flight -= 1
                channel.close()


def write_key(key: paramiko.PKey, path: Path) -> Path:
    """Save a private key (0600) with its .pub beside it; returns the private key's path."""
    key.write_private_key_file(str(path))
    path.chmod(0o600)
    path.with_suffix(".pub").write_text(f"{key.get_name()} {key.get_base64()} test\n")
    return path


def _serve_forever() -> None:
    """``python -m tests.sshd HOST_KEY AUTHORIZED_PUB`` — serve in a process of its own (many
    connections then do not compete with the client's threads for one interpreter lock);
    prints the port, answers ``echo WORD`` with WORD, exits when stdin closes."""
    import sys
    import time

    host_key = paramiko.ECDSAKey.from_private_key_file(sys.argv[1])
    kind, blob = Path(sys.argv[2]).read_text().split()[:2]
    authorized = paramiko.PKey.from_type_string(kind, __import__("base64").b64decode(blob))

    def handler(command: str) -> tuple[int, str]:
        time.sleep(0.002)
        return 0, command.split()[-1] + "\n"

    with TestSshd(host_key, authorized, handler=handler) as sshd:
        print(sshd.port, flush=True)
        sys.stdin.read()
        print(f"max_in_flight={sshd.max_in_flight} connections={sshd.connections}",
              flush=True)


if __name__ == "__main__":
    _serve_forever()
