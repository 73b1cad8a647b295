"""`provision lab up N` / `provision lab down`: make and remove the virtual-server lab.

Everything the lab makes is recorded in ``<lab dir>/lab.json`` as it is made (domains, the
network, the storage pool, emulator pids), so ``lab down`` removes exactly that, even after a
failed ``lab up``, and names whatever it could not remove. The lab directory is
``/var/lib/provision/lab/<name>`` (``PROVISION_LAB_DIR`` sets the parent): libvirt's QEMU runs
as its own user and must be able to open the disks, which it cannot under root's home.

Ports are fixed from ``--port-base`` (BMC i at base+i, SSH of server i at base+100+i), so a
plan written once (``examples/baremetal-vm.yaml``) works with every lab made with the same
base.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from provision.backends.base import Event
from provision.lab import bmc
from provision.lab.daemons import LabError, ensure_libvirt, virsh
from provision.lab.domain import ROOT_SERIAL, ServerSpec, domain_xml, pool_xml
from provision.state import write_private

DEFAULT_PORT_BASE = 16000
ROOT_DISK_GIB = 8
NVME_DISK_GIB = 1
CLUSTER_NET = "10.77.0"  # /24 on the isolated network; server i is .10+i
PASSWORD_ENV = "PROVISION_LAB_BMC_PASSWORD"


def lab_root() -> Path:
    return Path(os.environ.get("PROVISION_LAB_DIR", "/var/lib/provision/lab"))


@dataclass
class Server:
    index: int
    node: str  # the node name the plan gives it
    domain: str
    uuid: str
    ssh_port: int
    bmc_port: int
    mgmt_mac: str
    cluster_mac: str
    private_address: str
    root_disk: str
    nvme_disks: list[str]
    bmc_pid: int | None = None


@dataclass
class Lab:
    name: str
    directory: Path
    port_base: int
    memory_mib: int
    vcpus: int
    nvme: int
    servers: list[Server] = field(default_factory=list)
    switch_pid: int | None = None
    pool: str | None = None

    @property
    def state_file(self) -> Path:
        return self.directory / "lab.json"

    @property
    def tls_dir(self) -> Path:
        return self.directory / "tls"

    @property
    def password_file(self) -> Path:
        return self.directory / "bmc-password"

    def save(self) -> None:
        data = {k: v for k, v in asdict(self).items() if k != "directory"}
        write_private(self.state_file, json.dumps(data, indent=2) + "\n")

    @classmethod
    def load(cls, name: str) -> Lab | None:
        directory = lab_root() / name
        path = directory / "lab.json"
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        servers = [Server(**s) for s in data.pop("servers")]
        return cls(directory=directory, servers=servers, **data)

    @property
    def switch(self) -> Path:
        return self.directory / "switch"

    def bmc_config(self, server: Server) -> Path:
        return self.directory / f"bmc-{server.index}.conf"

    def nvram(self, server: Server) -> Path:
        return self.directory / f"{server.domain}_VARS.fd"

    def console_log(self, server: Server) -> Path:
        return self.directory / f"{server.domain}-console.log"


def _mac(lab: str, index: int, nic: int) -> str:
    digest = uuid.uuid5(uuid.NAMESPACE_DNS, f"provision-lab/{lab}").bytes
    return f"52:54:{digest[0]:02x}:{digest[1]:02x}:{nic:02x}:{index:02x}"


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def up(name: str, count: int, *, nvme: int = 2, memory_mib: int = 2048, vcpus: int = 1,
       port_base: int = DEFAULT_PORT_BASE, event: Event = print) -> Lab:
    """Make (or complete) the lab; re-running with the same shape changes nothing."""
    if os.geteuid() != 0:
        raise LabError("the lab needs root (libvirt's qemu:///system, bridges, disks)")
    existing = Lab.load(name)
    if existing and existing.servers and (len(existing.servers) != count
                                          or existing.nvme != nvme):
        raise LabError(f"lab {name!r} exists with {len(existing.servers)} server(s) and "
                       f"{existing.nvme} NVMe drive(s) each; run `provision lab down` first")
    ensure_libvirt()
    lab = existing or Lab(name, lab_root() / name, port_base, memory_mib, vcpus, nvme)
    lab.directory.mkdir(parents=True, exist_ok=True)
    lab.directory.chmod(0o711)  # libvirt's QEMU user opens the disks inside
    tls = bmc.make_tls(lab.tls_dir)
    bmc.make_credentials(lab.directory)
    htpasswd = lab.directory / "htpasswd"
    password = lab.password_file.read_text().strip()
    _ensure_switch(lab, event)
    _ensure_pool(lab, event)
    for i in range(1, count + 1):
        server = next((s for s in lab.servers if s.index == i), None)
        if server is None:
            server = _new_server(lab, i)
            lab.servers.append(server)
            lab.save()
        _ensure_domain(lab, server, event)
        lab.save()
        if server.bmc_pid and bmc.alive(server.bmc_pid) and bmc.is_emulator(
                server.bmc_pid, lab.bmc_config(server)):
            continue
        if not _port_free(server.bmc_port):
            raise LabError(f"port 127.0.0.1:{server.bmc_port} (BMC of {server.node}) is in "
                           "use; choose another --port-base")
        config = lab.bmc_config(server)
        write_private(config, bmc.config_text(
            port=server.bmc_port, tls=tls, htpasswd=htpasswd, uuid=server.uuid,
            pool=lab.pool or "", state_dir=lab.directory / f"bmc-{server.index}-state"))
        server.bmc_pid = bmc.start(config, lab.directory / f"bmc-{server.index}.log",
                                   lab.directory / "tmp")
        lab.save()
        bmc.wait_ready(server.bmc_port, tls, password, server.bmc_pid)
        event(f"{server.node}: domain {server.domain} (powered off, blank disks), Redfish BMC "
              f"https://127.0.0.1:{server.bmc_port}")
    return lab


def _new_server(lab: Lab, i: int) -> Server:
    domain = f"provision-{lab.name}-{i}"
    ssh_port = lab.port_base + 100 + i
    bmc_port = lab.port_base + i
    for port in (ssh_port,):
        if not _port_free(port):
            raise LabError(f"port 127.0.0.1:{port} is in use; choose another --port-base")
    return Server(
        index=i, node=f"{lab.name}-{i}", domain=domain,
        uuid=str(uuid.uuid5(uuid.NAMESPACE_DNS, f"provision-lab/{lab.name}/{i}")),
        ssh_port=ssh_port, bmc_port=bmc_port, mgmt_mac=_mac(lab.name, i, 1),
        cluster_mac=_mac(lab.name, i, 2), private_address=f"{CLUSTER_NET}.{10 + i}",
        root_disk=str(lab.directory / f"{domain}-root.img"),
        nvme_disks=[str(lab.directory / f"{domain}-nvme{k}.img") for k in range(lab.nvme)])


def _exists(kind: str, name: str) -> bool:
    command = {"dom": "dominfo", "pool": "pool-info"}[kind]
    return virsh(command, name, check=False).returncode == 0


def _switch_running(lab: Lab) -> bool:
    return bool(lab.switch_pid) and bmc.alive(lab.switch_pid) and _cmdline_has(
        lab.switch_pid, str(lab.switch))


def _cmdline_has(pid: int, text: str) -> bool:
    try:
        return text.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _ensure_switch(lab: Lab, event: Event) -> None:
    """The cluster network: a VDE switch on a unix socket in the lab directory."""
    if _switch_running(lab):
        return
    if shutil.which("vde_switch") is None:
        raise LabError("vde_switch is not installed: ./install.sh installs vde2")
    pidfile = lab.directory / "switch.pid"
    pidfile.unlink(missing_ok=True)
    proc = subprocess.run(
        ["vde_switch", "--sock", str(lab.switch), "--mode", "0660", "--dirmode", "0770",
         "--group", "kvm", "--daemon", "--pidfile", str(pidfile)],
        capture_output=True, text=True, timeout=30)
    if proc.returncode != 0 or not pidfile.exists():
        raise LabError(f"vde_switch did not start: {proc.stderr.strip()[-300:]}")
    lab.switch_pid = int(pidfile.read_text().split()[0])
    lab.save()
    event(f"cluster network: VDE switch {lab.switch} (user space; no host address or "
          "firewall rule)")


def _ensure_pool(lab: Lab, event: Event) -> None:
    lab.pool = lab.pool or f"provision-{lab.name}-media"
    lab.save()
    media = lab.directory / "media"
    media.mkdir(exist_ok=True)
    if not _exists("pool", lab.pool):
        path = lab.directory / "pool.xml"
        path.write_text(pool_xml(lab.pool, media))
        virsh("pool-define", str(path))
    if "running" not in _field(virsh("pool-info", lab.pool).stdout, "State"):
        virsh("pool-start", lab.pool)


def _field(text: str, name: str) -> str:
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return ""


def _ensure_domain(lab: Lab, s: Server, event: Event) -> None:
    if _exists("dom", s.domain):
        return
    for path, gib in ((s.root_disk, ROOT_DISK_GIB), *((d, NVME_DISK_GIB) for d in s.nvme_disks)):
        if not Path(path).exists():
            with open(path, "wb") as f:
                f.truncate(gib << 30)  # sparse and blank: a server with empty disks
    for path in s.nvme_disks:  # passed on QEMU's command line: libvirt does not relabel them
        _give_to_qemu(Path(path))
    spec = ServerSpec(s.domain, s.uuid, lab.memory_mib, lab.vcpus, Path(s.root_disk),
                      tuple(Path(d) for d in s.nvme_disks), s.ssh_port, s.mgmt_mac,
                      s.cluster_mac, lab.switch, lab.nvram(s), lab.console_log(s))
    path = lab.directory / f"{s.domain}.xml"
    path.write_text(domain_xml(spec))
    virsh("define", str(path))


def _give_to_qemu(path: Path) -> None:
    """Let libvirt's unprivileged QEMU user open ``path`` (Debian: libvirt-qemu; Fedora: qemu)."""
    import grp
    import pwd

    for user in ("libvirt-qemu", "qemu"):
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            continue
        os.chown(path, entry.pw_uid, entry.pw_gid)
        path.chmod(0o660)
        return
    with contextlib.suppress(KeyError):
        os.chown(path, -1, grp.getgrnam("kvm").gr_gid)
        path.chmod(0o660)


@dataclass
class DownReport:
    removed: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)


def down(name: str, event: Event = print) -> DownReport:
    """Remove every domain, disk, network, pool and process of the lab; name what is left."""
    report = DownReport()
    lab = Lab.load(name)
    if lab is None:
        directory = lab_root() / name
        if directory.exists():
            shutil.rmtree(directory, ignore_errors=True)
            report.removed.append(f"directory {directory}")
        return report
    libvirt_ok = True
    try:
        ensure_libvirt()
    except LabError as exc:
        libvirt_ok = False
        report.leftovers.append(f"libvirt: {exc}")
    for s in lab.servers:
        if s.bmc_pid:
            if bmc.stop(s.bmc_pid, lab.bmc_config(s)):
                report.removed.append(f"BMC emulator of {s.node} (pid {s.bmc_pid})")
            else:
                report.leftovers.append(f"BMC emulator of {s.node} (pid {s.bmc_pid})")
        if libvirt_ok and _exists("dom", s.domain):
            _power_off(s.domain)
            for _ in range(5):  # libvirt may still be tearing the domain down
                proc = virsh("undefine", s.domain, "--nvram", check=False)
                if proc.returncode == 0:
                    break
                time.sleep(2)
            (report.removed if proc.returncode == 0 else report.leftovers).append(
                f"domain {s.domain}")
    if libvirt_ok and lab.pool and _exists("pool", lab.pool):
        for vol in virsh("vol-list", lab.pool, check=False).stdout.splitlines():
            if vol.split():
                virsh("vol-delete", vol.split()[0], "--pool", lab.pool, check=False)
        virsh("pool-destroy", lab.pool, check=False)
        proc = virsh("pool-undefine", lab.pool, check=False)
        (report.removed if proc.returncode == 0 else report.leftovers).append(
            f"storage pool {lab.pool}")
    if lab.switch_pid and _switch_running(lab):
        if bmc.stop(lab.switch_pid, lab.switch):
            report.removed.append(f"VDE switch (pid {lab.switch_pid})")
        else:
            report.leftovers.append(f"VDE switch (pid {lab.switch_pid})")
    report.leftovers += _still_there(lab, libvirt_ok)
    if not report.leftovers:
        shutil.rmtree(lab.directory, ignore_errors=True)
        report.removed.append(f"disks and files in {lab.directory}")
    for line in report.removed:
        event(f"removed {line}")
    return report


def _power_off(domain: str, timeout: float = 90.0) -> None:
    """virsh destroy until the domain is off: a busy QEMU under emulation can take longer to
    die than libvirt waits ("Failed to terminate process ... Device or resource busy")."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if virsh("domstate", domain, check=False).stdout.strip() in ("shut off", ""):
            return
        virsh("destroy", domain, check=False)
        time.sleep(2)


def _still_there(lab: Lab, libvirt_ok: bool) -> list[str]:
    """What a second look still finds: domains, QEMU processes, emulators."""
    left = []
    if libvirt_ok:
        names = virsh("list", "--all", "--name", check=False).stdout.split()
        left += [f"domain {n}" for n in names if n in {s.domain for s in lab.servers}]
    for s in lab.servers:
        proc = subprocess.run(["pgrep", "-f", f"guest={s.domain},"], capture_output=True,
                              text=True)
        left += [f"QEMU process {pid} of {s.domain}" for pid in proc.stdout.split()]
        if s.bmc_pid and bmc.alive(s.bmc_pid) and bmc.is_emulator(s.bmc_pid,
                                                                   lab.bmc_config(s)):
            left.append(f"BMC emulator pid {s.bmc_pid}")
    if _switch_running(lab):
        left.append(f"VDE switch pid {lab.switch_pid}")
    return left


def plan_block(lab: Lab, *, cluster: str | None = None) -> dict[str, Any]:
    """A bare-metal plan for the lab's servers: BMCs, credentials by reference, addresses."""
    hosts = []
    for s in lab.servers:
        hosts.append({
            "name": s.node, "address": "127.0.0.1", "ssh_port": s.ssh_port,
            "private_address": s.private_address, "private_mac": s.cluster_mac,
            "sku": "cpu",
            "bmc": {"endpoint": f"https://127.0.0.1:{s.bmc_port}", "username": bmc.USER,
                    "password_file": str(lab.password_file),
                    "ca_file": str(lab.tls_dir / "ca.crt")},
        })
    return {
        "name": cluster or lab.name,
        "target": "baremetal",
        "baremetal": {
            "power_on": True,
            "reinstall": {"method": "virtual-media", "image": "debian-12", "generation": 1,
                          "root_device": {"serial": ROOT_SERIAL},
                          "media_address": "127.0.0.1"},
            "power_off_on_destroy": True,
            "hosts": hosts,
        },
        "access": {"ssh_user": "debian", "operator_cidr": "10.0.2.2/32"},
    }


def plan_yaml(lab: Lab) -> str:
    header = (f"# provision lab {lab.name}: {len(lab.servers)} virtual server(s) behind Redfish "
              "BMCs on 127.0.0.1.\n# The BMC password is read from the file named here (or "
              f"use password_env: {PASSWORD_ENV}\n# after export {PASSWORD_ENV}=\"$(cat "
              f"{lab.password_file})\").\n# operator_cidr: the address the VMs see SSH coming "
              "from (QEMU user-mode networking's gateway).\n")
    return header + yaml.safe_dump(plan_block(lab), sort_keys=False)
