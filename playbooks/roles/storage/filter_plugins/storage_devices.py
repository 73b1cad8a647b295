"""Filters for the storage role: which drives hold data, not the operating system."""

from __future__ import annotations

import re
from typing import Any


def _walk(node: dict[str, Any]):
    yield node
    for child in node.get("children") or []:
        yield from _walk(child)


def _mountpoints(node: dict[str, Any]) -> list[str]:
    points = node.get("mountpoints")
    if points is None:
        points = [node.get("mountpoint")]
    return [p for p in points if p]


def data_devices(lsblk: dict[str, Any] | str, pattern: str = "^nvme") -> list[str]:
    """Whole disks matching ``pattern`` that are free for scratch use.

    ``lsblk`` is the parsed output of ``lsblk --json --output NAME,TYPE,MOUNTPOINTS,FSTYPE``
    (or that output as a string). A disk qualifies when neither it nor anything below it
    (partitions, RAID members, LVM volumes) is mounted or used as swap, and when none of it
    belongs to an md array or LVM that already exists (those are someone's data): what is
    left are blank drives, plus drives an earlier run of this role turned into its own array.
    """
    if isinstance(lsblk, str):
        import json

        lsblk = json.loads(lsblk)
    rx = re.compile(pattern)
    found = []
    for dev in lsblk.get("blockdevices", []):
        if dev.get("type") != "disk" or not rx.search(dev.get("name", "")):
            continue
        nodes = list(_walk(dev))
        if any(_mountpoints(n) and not _ours(n) for n in nodes):
            continue
        if any(n.get("fstype") in ("swap", "LVM2_member") for n in nodes):
            continue
        found.append(f"/dev/{dev['name']}")
    return sorted(found)


def _ours(node: dict[str, Any]) -> bool:
    """Mounts this role makes (scratch) do not disqualify a drive on the next run."""
    return all(p.startswith("/scratch") for p in _mountpoints(node))


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"storage_data_devices": data_devices}
