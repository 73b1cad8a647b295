"""The storage role's drive discovery (a filter plugin, run here as plain Python)."""

from __future__ import annotations

import importlib.util

from tests.conftest import REPO

_spec = importlib.util.spec_from_file_location(
    "storage_devices", REPO / "playbooks/roles/storage/filter_plugins/storage_devices.py")
assert _spec and _spec.loader
storage_devices = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(storage_devices)
data_devices = storage_devices.data_devices

# ansible_devices of an 8-GPU node: an OS drive with partitions, four data NVMe drives, one
# of them already in someone's md array, and one an earlier run of the role mounted.
DEVICES = {
    "nvme0n1": {"partitions": {"nvme0n1p1": {"holders": []}, "nvme0n1p2": {"holders": []}},
                "holders": []},
    "nvme1n1": {"partitions": {}, "holders": []},
    "nvme2n1": {"partitions": {}, "holders": []},
    "nvme3n1": {"partitions": {}, "holders": ["md127"]},
    "nvme4n1": {"partitions": {}, "holders": []},
    "sda": {"partitions": {}, "holders": []},
    "loop0": {"partitions": {}, "holders": []},
}
MOUNTS = [
    {"device": "/dev/nvme0n1p2", "mount": "/"},
    {"device": "/dev/nvme0n1p1", "mount": "/boot/efi"},
    {"device": "/dev/nvme4n1", "mount": "/scratch/disk1"},
]
NODES = [f"/dev/{n}" for n in DEVICES] + ["/dev/nvme0n1p1", "/dev/nvme0n1p2"]


def test_blank_and_own_drives_are_data_drives():
    assert data_devices(DEVICES, MOUNTS, NODES) == ["/dev/nvme1n1", "/dev/nvme2n1",
                                                    "/dev/nvme4n1"]


def test_the_os_drive_and_held_drives_are_never_chosen():
    found = data_devices(DEVICES, MOUNTS, NODES)
    assert "/dev/nvme0n1" not in found and "/dev/nvme3n1" not in found


def test_drives_without_a_device_node_here_are_skipped():
    # inside a container /sys shows the host's drives; only passed-in nodes count
    assert data_devices(DEVICES, MOUNTS, ["/dev/loop0"], pattern="^loop") == ["/dev/loop0"]
    assert data_devices(DEVICES, MOUNTS, [], pattern="^loop") == []


def test_a_drive_mounted_elsewhere_is_someone_elses():
    mounts = [*MOUNTS, {"device": "/dev/nvme1n1", "mount": "/data"}]
    assert "/dev/nvme1n1" not in data_devices(DEVICES, mounts, NODES)
