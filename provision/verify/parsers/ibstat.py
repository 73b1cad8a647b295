"""``ibstat``: InfiniBand adapters (CAs) and their ports.

``CA 'mlx5_0'`` blocks with ``CA type``, ``Firmware version`` and one ``Port N:`` section each
holding ``State: Active``, ``Physical state: LinkUp``, ``Rate: 400`` and ``Link layer:
InfiniBand`` (Ethernet for RoCE/management ports, which the IB checks leave out). ``ibstat``
stops with ``ibpanic: ... stat of IB device 'mlx5_8' failed`` when a device vanishes mid-listing
(after the CAs it did print): such lines are errors wherever they appear. A rate that is not a
number a port runs at goes to ``unusable``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from provision.verify.parsers.common import is_uint, lines, read_number

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
    line: int = 0

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
    unusable: list[str] = field(default_factory=list)


def parse_ibstat(text: str) -> IbstatResult:
    result = IbstatResult()
    ca: str | None = None
    ca_type: str | None = None
    port: IbPort | None = None
    for number, raw in lines(text):
        line = raw.strip()
        if not line:
            continue
        if line.lower().startswith("ibpanic") or line.lower().startswith("ibwarn"):
            result.errors.append(line[:300])
            continue
        if m := _CA.match(line):
            ca, ca_type, port = m[1], None, None
            continue
        if ca is None:
            if "error" in line.lower() or line.lower().startswith("no "):
                result.errors.append(line[:300])
            continue
        if (m := _PORT.match(line)) and is_uint(m[1]):
            port = IbPort(ca=ca, port=int(m[1]), ca_type=ca_type, line=number)
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
            where = f"line {number} {port.name} rate"
            port.rate = read_number(value.split()[0], where, result.unusable) if value else None
            if not value:
                result.unusable.append(f"{where}: empty")
        elif key == "link layer":
            port.link_layer = value
    return result
