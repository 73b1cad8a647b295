"""libvirt's daemons and the ``virsh`` calls the lab makes.

On machines without systemd (containers, CI) nothing starts libvirtd; the lab starts
``virtlogd -d`` and ``libvirtd -d`` itself when ``qemu:///system`` does not answer.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from provision.errors import ProvisionError

URI = "qemu:///system"


class LabError(ProvisionError):
    """The lab could not be made or removed; the message says what and why."""

    exit_code = 1


def virsh(*args: str, check: bool = True, timeout: int = 300,
          input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    if shutil.which("virsh") is None:
        raise LabError("virsh is not installed: ./install.sh installs libvirt and QEMU "
                       "(apt-get install libvirt-daemon-system qemu-system-x86 ovmf)")
    proc = subprocess.run(["virsh", "-q", "-c", URI, *args], capture_output=True, text=True,
                          timeout=timeout, input=input_text)
    if check and proc.returncode != 0:
        raise LabError(f"virsh {' '.join(args[:2])} failed: {proc.stderr.strip()[-300:]}")
    return proc


def answers() -> bool:
    try:
        return virsh("version", check=False, timeout=20).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def kvm_node_for_libvirt() -> None:
    """Give /dev/kvm Debian's default owner and mode (root:kvm 0660) when it is root-only.

    Seen here: with /dev/kvm root:root 0600, libvirt 9 finds KVM "present" in its QEMU
    capability probe (run as libvirt-qemu) but "not usable" by that user, judges its
    capability cache stale on every call and probes QEMU again, twice, each time: every
    define then takes minutes and the BMC emulator's requests time out. The lab's domains stay
    type 'qemu' (software emulation) either way; this only makes the cache stick."""
    import grp

    kvm = Path("/dev/kvm")
    try:
        st = kvm.stat()
        gid = grp.getgrnam("kvm").gr_gid
    except (OSError, KeyError):
        return
    if st.st_gid != gid or (st.st_mode & 0o060) != 0o060:
        os.chown(kvm, -1, gid)
        kvm.chmod(0o660)


def ensure_libvirt(timeout: float = 120.0) -> None:
    """libvirtd answering on qemu:///system, starting the daemons when needed (root)."""
    kvm_node_for_libvirt()
    if answers():
        return
    for daemon in ("virtlogd", "libvirtd"):
        if shutil.which(daemon) is None:
            raise LabError(f"{daemon} is not installed: ./install.sh installs libvirt")
        if subprocess.run(["pgrep", "-x", daemon], capture_output=True).returncode != 0:
            subprocess.run([daemon, "-d"], check=False, capture_output=True, timeout=30)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answers():
            return
        time.sleep(0.5)
    raise LabError(f"libvirtd does not answer on {URI} (started virtlogd -d and libvirtd -d; "
                   "the lab needs root)")
