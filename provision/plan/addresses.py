"""Host addresses written in plan.yaml: an IP address or a DNS name, nothing else.

Addresses travel into inventories and SSH command lines. A value such as
``"10.0.0.5\n      ansible_ssh_common_args: -o ProxyCommand=..."`` must be refused where it
is written (exit 2, naming the field), not merely quoted later.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import AfterValidator

_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def check_host_address(value: str) -> str:
    """``value`` if it is an IPv4/IPv6 address or an RFC 1123 host name (labels of letters,
    digits and inner dashes, at most 253 characters); ValueError otherwise."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    name = value[:-1] if value.endswith(".") else value
    if 0 < len(name) <= 253 and all(_LABEL.fullmatch(label) for label in name.split(".")):
        return value
    shown = value if len(value) <= 60 and value.isprintable() else f"{value[:60]!r}..."
    raise ValueError(f"{shown!r} is not an IP address or DNS host name")


HostAddress = Annotated[str, AfterValidator(check_host_address)]
