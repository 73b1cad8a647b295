"""Filters for the storage role: which drives hold data, not the operating system."""

from __future__ import annotations

import re
from typing import Any


def data_devices(
    devices: dict[str, dict[str, Any]],
    mounts: list[dict[str, Any]],
    device_nodes: list[str],
    pattern: str = "^nvme",
    own_prefix: str = "/scratch",
) -> list[str]:
    """Whole drives matching ``pattern`` that are free for scratch use, as /dev paths.

    ``devices`` is Ansible's ``ansible_devices`` fact (from /sys/block), ``mounts`` its
    ``ansible_mounts``, ``device_nodes`` the block device nodes present in /dev. A drive
    qualifies when it has a device node here (inside a container /sys lists the host's
    drives too), neither it nor any of its partitions is mounted (except by this role, under
    ``own_prefix``) or used as swap, and nothing holds it or its partitions (an md array,
    LVM, dm-crypt: someone's data). What is left are blank drives, plus drives an earlier run
    of this role formatted and mounted under ``own_prefix``.
    """
    rx = re.compile(pattern)
    nodes = set(device_nodes)
    used: dict[str, str] = {}  # device path → mount point
    for m in mounts:
        dev = str(m.get("device", ""))
        if dev.startswith("/dev/"):
            used[dev] = str(m.get("mount", ""))
    found = []
    for name, info in devices.items():
        path = f"/dev/{name}"
        if not rx.search(name) or path not in nodes:
            continue
        parts = list((info.get("partitions") or {}).items())
        members = [path] + [f"/dev/{p}" for p, _ in parts]
        if any(dev in used and not used[dev].startswith(own_prefix) for dev in members):
            continue
        if info.get("holders") or any(p.get("holders") for _, p in parts):
            continue
        found.append(path)
    return sorted(found)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"storage_data_devices": data_devices}
