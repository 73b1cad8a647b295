"""Is a node's sshd answering? Shared by every backend that waits for nodes to come up."""

from __future__ import annotations

import socket


def ssh_answers(address: str, port: int = 22, timeout: float = 2.0) -> bool:
    """True when an SSH server sends its banner (an open port alone can precede sshd)."""
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(64).startswith(b"SSH-")
    except OSError:
        return False
