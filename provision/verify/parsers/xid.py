"""Kernel log lines carrying NVIDIA XID events (``NVRM: Xid``).

``[ 1234.567890] NVRM: Xid (PCI:0000:18:00): 79, pid='<unknown>', name=<unknown>, GPU has
fallen off the bus.`` as dmesg prints it, or with a journalctl/syslog prefix. Older drivers
leave out pid/name. Lines without an XID number are ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from provision.verify.parsers.common import lines

_XID = re.compile(r"NVRM: Xid \((?:PCI:)?([0-9A-Fa-f:.]+)\):\s*(\d+)(?:,\s*(.*))?$")
_PID_NAME = re.compile(r"^pid=[^,]*,\s*name=[^,]*,\s*")


@dataclass(frozen=True, slots=True)
class XidEvent:
    pci: str
    code: int
    message: str
    line: str


@dataclass(slots=True)
class XidLog:
    events: list[XidEvent] = field(default_factory=list)


def parse_xid(text: str) -> XidLog:
    log = XidLog()
    for _, raw in lines(text):
        if m := _XID.search(raw.strip()):
            message = _PID_NAME.sub("", (m[3] or "").strip())
            log.events.append(XidEvent(pci=m[1].lower(), code=int(m[2]), message=message,
                                       line=raw.strip()))
    return log
