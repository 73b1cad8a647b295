"""libvirt XML for the lab: a storage pool for virtual media and one domain per server.

Choices, and why:

* ``type='qemu'`` (TCG): KVM is not usable on the machines this runs on;
* machine ``pc`` with OVMF (UEFI): the BMC emulator attaches virtual media as an IDE CD on
  ``pc`` machines, and real GPU servers boot UEFI;
* the root disk is virtio with a serial number (the install's root-device hint), the NVMe
  drives are QEMU ``nvme`` devices with serials (libvirt 9 has no NVMe disk bus, so they are
  passed on QEMU's command line);
* the management NIC is QEMU user-mode networking with ``restrict=on``: the guest cannot reach
  the host or anything beyond it; the only path is the SSH port forwarded from 127.0.0.1;
* the cluster NIC is plugged into a VDE switch of the lab's own (``vde_switch`` on a unix
  socket in the lab directory): an Ethernet segment entirely in user space, with no bridge,
  address or firewall rule on this machine, so traffic on it stays between the VMs. (A libvirt
  network, even an isolated one, makes libvirtd add its chains to the host's firewall.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"
ROOT_SERIAL = "provision-root"
QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"


@dataclass(frozen=True)
class ServerSpec:
    """One virtual server of the lab."""

    name: str  # libvirt domain name
    uuid: str
    memory_mib: int
    vcpus: int
    root_disk: Path
    nvme_disks: tuple[Path, ...]
    ssh_port: int  # 127.0.0.1:ssh_port → guest :22
    mgmt_mac: str
    cluster_mac: str
    switch: Path  # VDE switch socket directory (cluster NIC)
    nvram: Path
    console_log: Path


def pool_xml(name: str, path: Path) -> str:
    return (f"<pool type='dir'>\n  <name>{escape(name)}</name>\n  <target>\n"
            f"    <path>{escape(str(path))}</path>\n  </target>\n</pool>\n")


def _qemu_args(s: ServerSpec) -> list[str]:
    args = ["-netdev", f"user,id=mgmt,restrict=on,hostfwd=tcp:127.0.0.1:{s.ssh_port}-:22",
            "-device", f"virtio-net-pci,netdev=mgmt,mac={s.mgmt_mac},addr=0x10",
            "-netdev", f"vde,id=cluster,sock={s.switch}",
            "-device", f"virtio-net-pci,netdev=cluster,mac={s.cluster_mac},addr=0x0f"]
    for i, disk in enumerate(s.nvme_disks):
        args += ["-drive", f"file={disk},if=none,id=nvme{i},format=raw,cache=unsafe",
                 "-device", f"nvme,drive=nvme{i},serial=provision-nvme{i},addr={0x11 + i:#x}"]
    return args


def domain_xml(s: ServerSpec) -> str:
    qemu = "\n".join(f"    <qemu:arg value='{escape(a)}'/>" for a in _qemu_args(s))
    return f"""<domain type='qemu' xmlns:qemu='{QEMU_NS}'>
  <name>{escape(s.name)}</name>
  <uuid>{s.uuid}</uuid>
  <description>provision lab server (provision lab down removes it)</description>
  <memory unit='MiB'>{s.memory_mib}</memory>
  <vcpu>{s.vcpus}</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <loader readonly='yes' type='pflash'>{OVMF_CODE}</loader>
    <nvram template='{OVMF_VARS}'>{escape(str(s.nvram))}</nvram>
  </os>
  <features><acpi/><apic/></features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw' cache='unsafe'/>
      <source file='{escape(str(s.root_disk))}'/>
      <target dev='vda' bus='virtio'/>
      <serial>{ROOT_SERIAL}</serial>
      <boot order='1'/>
    </disk>
    <controller type='ide' index='0'/>
    <serial type='file'>
      <source path='{escape(str(s.console_log))}' append='on'/>
      <target port='0'/>
    </serial>
    <console type='file'>
      <source path='{escape(str(s.console_log))}' append='on'/>
      <target type='serial' port='0'/>
    </console>
    <video><model type='none'/></video>
    <memballoon model='none'/>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
  </devices>
  <qemu:commandline>
{qemu}
  </qemu:commandline>
</domain>
"""
