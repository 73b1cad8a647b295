"""Who may SSH into cloud nodes: the plan's access.operator_cidr, or this machine's public IP.

The firewall never opens SSH to the world by default: 0.0.0.0/0 is accepted only when the plan
writes it in access.operator_cidr. Detection asks AWS's checkip service (plain text, no
account needed); when it fails the error says which plan field to set instead.
"""

from __future__ import annotations

import ipaddress
import urllib.request
from collections.abc import Callable

from provision.backends.base import SshAccess
from provision.errors import InputError
from stacks.common import SshPolicy

CHECKIP_URL = "https://checkip.amazonaws.com"
OFFLINE_PLACEHOLDER = "(this machine's public IP/32, detected by provision up)"

Detector = Callable[[], str]


def detect_public_ip(timeout: float = 5.0) -> str:
    """This machine's public IPv4 address as the internet sees it."""
    try:
        with urllib.request.urlopen(CHECKIP_URL, timeout=timeout) as resp:
            text = resp.read(64).decode("ascii", "replace").strip()
        return str(ipaddress.ip_address(text))
    except (OSError, ValueError) as exc:
        raise InputError(
            f"could not detect this machine's public IP ({CHECKIP_URL}: {exc}); set "
            "access.operator_cidr in the plan (e.g. 203.0.113.4/32)") from None


def ssh_policy(ssh: SshAccess, detect: Detector | None = detect_public_ip) -> SshPolicy:
    """The SSH policy for a cloud stack. ``detect=None`` (offline preview) leaves a
    placeholder instead of calling out."""
    if ssh.operator_cidr:
        try:
            net = ipaddress.ip_network(ssh.operator_cidr, strict=False)
        except ValueError:
            raise InputError(f"access.operator_cidr: {ssh.operator_cidr!r} is not a CIDR "
                             "block such as 203.0.113.4/32") from None
        # The plan wrote this CIDR itself; only then may it be the whole internet.
        return SshPolicy(ssh.public_key, ssh.user, (str(net),), allow_world=net.prefixlen == 0)
    if detect is None:
        return SshPolicy(ssh.public_key, ssh.user, (OFFLINE_PLACEHOLDER,))
    ip = ipaddress.ip_address(detect())
    return SshPolicy(ssh.public_key, ssh.user, (f"{ip}/{ip.max_prefixlen}",))
