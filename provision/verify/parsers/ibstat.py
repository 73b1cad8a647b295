"""``ibstat``: InfiniBand adapters (CAs) and their ports.

``CA 'mlx5_0'`` blocks with ``CA type``, ``Firmware version`` and one ``Port N:`` section each
holding ``State: Active``, ``Physical state: LinkUp``, ``Rate: 400`` and ``Link layer:
InfiniBand`` (Ethernet for RoCE/management ports, which the IB checks leave out).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from provision.verify.parsers.common import strip_ansi, to_float

_CA = re.compile(r"^CA '([^']+)'")
_PORT = re.compile(r"^Port (\d+):\s*$")
_KV = re.compile(r"^([A-Za-z ]+):\s*(.*)$")


@dataclass(slots=True)
class IbPort:
    ca: str
    port: int
    ca_type: str | None = None
    state: str | None = None
    physical_state: str | None = None
    rate: float | None = None  # Gb/s
    link_layer: str | None = None

    @property
    def name(self) -> str:
        return f"{self.ca}/{self.port}"

    @property
    def is_infiniband(self) -> bool:
        return (self.link_layer or "InfiniBand").lower() == "infiniband"

    @property
    def up(self) -> bool:
        return (self.state or "").lower() == "active" and \
            (self.physical_state or "").lower() == "linkup"


@dataclass(slots=True)
class IbstatResult:
    ports: list[IbPort] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def parse_ibstat(text: str) -> IbstatResult:
    result = IbstatResult()
    ca: str | None = None
    ca_type: str | None = None
    port: IbPort | None = None
    for raw in strip_ansi(text).splitlines():
        line = raw.strip()
        if not line:
            continue
        if m := _CA.match(line):
            ca, ca_type, port = m[1], None, None
            continue
        if ca is None:
            if "ibpanic" in line.lower() or "error" in line.lower() or "no " in line.lower():
                result.errors.append(line)
            continue
        if m := _PORT.match(line):
            port = IbPort(ca=ca, port=int(m[1]), ca_type=ca_type)
            result.ports.append(port)
            continue
        if not (m := _KV.match(line)):
            continue
        key, value = m[1].strip().lower(), m[2].strip()
        if port is None:
            if key == "ca type":
                ca_type = value
            continue
        if key == "state":
            port.state = value
        elif key == "physical state":
            port.physical_state = value
        elif key == "rate":
            port.rate = to_float(value.split()[0]) if value else None
        elif key == "link layer":
            port.link_layer = value
    return result
