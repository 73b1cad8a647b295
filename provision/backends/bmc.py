"""Power and OS reinstall of bare-metal hosts through their BMC (Redfish or IPMI).

Image install (``reinstall.image``; provision does the install, as Ironic does)::

    build the node's medium (deploy ramdisk + OS image + seed with a fresh host key) and serve
    it → eject, insert the medium → boot override CD (UEFI where the BMC offers it)
    → restart or power on → the deploy ramdisk writes the disk and powers off (wait for off)
    → eject, boot from disk → power on → read the install marker over SSH with the cluster
    key, checking the host key made for this install

A host that comes back with anything else (its old OS, the installer, a wrong host key) is
installed again, up to ``attempts`` times, then reported by name.

Operator's installer (``reinstall.image_url`` or PXE)::

    [virtual media: insert the installer ISO]  → one-time boot override (PXE or CD)
    → restart (or power on) → wait until the old OS is gone → wait for power on
    → wait for SSH (bounded) → [eject the ISO] → boot from disk again

Every wait is a bounded loop that ends by itself with an error naming the host and what did not
happen. BMC passwords are read from the environment variable or file the plan names, at the
moment of connecting, and never appear in events, exceptions or state.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from provision.backends.base import Event
from provision.backends.reachability import ssh_answers
from provision.errors import ProvisionError
from provision.state import wait_for

# protocol → "module:class" of its client (imported only when a host uses it)
CLIENTS: dict[str, str] = {
    "redfish": "provision.backends.redfish:RedfishClient",
    "ipmi": "provision.backends.ipmi:IpmiClient",
}
POWER_WAIT_SECONDS = 300  # BMCs apply power changes within seconds to a couple of minutes
SETTLE_SECONDS = 120  # how long the old OS may keep answering after a forced restart
POLL_SECONDS = 1.0


class BmcError(ProvisionError):
    """A BMC refused, failed or timed out; the message names the host, never a secret."""

    exit_code = 1


@dataclass(frozen=True)
class BmcRef:
    """How to reach a BMC. Credentials are references: a variable name or an absolute path."""

    protocol: str  # redfish | ipmi
    endpoint: str  # https://bmc.example (Redfish) or host[:port] (IPMI)
    username: str
    password_env: str | None = None
    password_file: str | None = None
    system_id: str | None = None  # Redfish ComputerSystem id (default: the only one)
    verify_tls: bool = True
    ca_file: str | None = None  # absolute path of the CA bundle to verify TLS against

    def password(self) -> str:
        """The password, read now from where the plan points; errors name the reference."""
        if self.password_env:
            value = os.environ.get(self.password_env)
            if not value:
                raise BmcError(f"BMC {self.endpoint}: environment variable {self.password_env} "
                               "is not set (it should hold the BMC password)")
            return value
        if not self.password_file:
            raise BmcError(f"BMC {self.endpoint}: no password_env or password_file")
        try:
            lines = Path(self.password_file).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise BmcError(f"BMC {self.endpoint}: cannot read password file "
                           f"{self.password_file}: {exc.strerror}") from None
        if not lines or not lines[0].strip():
            raise BmcError(f"BMC {self.endpoint}: password file {self.password_file} is empty")
        return lines[0].strip()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BmcRef:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


class BmcClient(Protocol):
    """What the flow needs from a BMC, in protocol-neutral words."""

    def power_state(self) -> str:
        """on | off | powering-on | powering-off | unknown"""
        ...

    def set_power(self, action: str) -> None:
        """on | off | restart (a hard reset; from off it powers on)"""
        ...

    def boot_once(self, device: str) -> None:
        """Boot ``device`` (pxe | cd) on the next start only."""
        ...

    def boot_disk(self) -> None:
        """Undo a boot override: boot from disk again (some BMCs ignore 'once')."""
        ...

    def insert_media(self, url: str) -> None: ...

    def eject_media(self) -> None: ...

    def close(self) -> None: ...


def connect(ref: BmcRef) -> BmcClient:
    """A client for ``ref``'s protocol, logged in."""
    target = CLIENTS.get(ref.protocol)
    if target is None:
        raise BmcError(f"BMC {ref.endpoint}: unknown protocol {ref.protocol!r}; "
                       f"known: {', '.join(CLIENTS)}")
    module, _, cls = target.partition(":")
    try:
        client_cls = getattr(importlib.import_module(module), cls)
    except ImportError as exc:
        raise BmcError(f"the {ref.protocol} client needs the 'baremetal' extra: pip install "
                       f"'provision[baremetal]' ({exc.name} is missing)") from None
    return client_cls(ref, ref.password())


@dataclass(frozen=True)
class ReinstallStep:
    method: str  # pxe | virtual-media
    image_url: str | None = None
    generation: int = 1
    image: str | None = None  # debian-12: provision's image install
    root_serial: str | None = None
    root_path: str | None = None
    media_address: str = "127.0.0.1"
    boot_timeout_seconds: int = 1800
    attempts: int = 2


BOOT_DEVICE = {"pxe": "pxe", "virtual-media": "cd"}


@dataclass(frozen=True)
class HostJob:
    """What to do with one host before it joins the cluster."""

    name: str
    address: str
    ssh_port: int = 22
    bmc: BmcRef | None = None
    power_on: bool = False
    reinstall: ReinstallStep | None = None  # None: keep the installed OS
    ssh_wait_seconds: int = 900
    power_wait_seconds: int = POWER_WAIT_SECONDS
    settle_seconds: int = SETTLE_SECONDS
    login: Login | None = None  # image installs: who the node becomes and how to check it


@dataclass(frozen=True)
class Login:
    """What an image install puts on the node, and how the controller logs in to check it."""

    cluster: str
    user: str
    public_key: str  # the cluster's SSH public key line
    private_key_path: str  # its private key (a path; never read here)
    private_address: str | None = None  # "10.0.0.5/24" on the interface with private_mac
    private_mac: str | None = None


@dataclass(frozen=True)
class HostOutcome:
    name: str
    power_state: str | None  # as the BMC last reported it; None without a BMC
    reinstalled: bool
    ssh_ready: bool
    host_keys: tuple[str, ...] = ()  # "<type> <base64>" made for an image install
    install_id: str | None = None


def prepare_host(job: HostJob, event: Event,
                 connector: Callable[[BmcRef], BmcClient] = connect) -> HostOutcome:
    """Power on and/or reinstall one host, then wait for SSH. Raises BmcError on failure."""
    client = connector(job.bmc) if job.bmc and (job.power_on or job.reinstall) else None
    if client is not None and job.reinstall is not None and job.reinstall.image:
        try:
            return image_install(job, client, job.reinstall, event)
        finally:
            client.close()
    try:
        if client is not None and job.reinstall is not None:
            _reinstall(job, client, job.reinstall, event)
        elif client is not None and job.power_on:
            _power_on(job, client, event)
        ready = False
        if job.ssh_wait_seconds:
            event(f"{job.name}: waiting for SSH on {job.address}:{job.ssh_port} "
                  f"(up to {job.ssh_wait_seconds} s)")
            ready = wait_for(lambda: ssh_answers(job.address, job.ssh_port),
                             job.ssh_wait_seconds, POLL_SECONDS)
            if not ready:
                raise BmcError(f"{job.name}: SSH on {job.address}:{job.ssh_port} did not "
                               f"answer within {job.ssh_wait_seconds} s")
        if client is not None and job.reinstall is not None:
            if job.reinstall.method == "virtual-media":
                client.eject_media()
            client.boot_disk()
            event(f"{job.name}: installed; boot override cleared (disk first)")
        return HostOutcome(job.name, client.power_state() if client else None,
                           job.reinstall is not None and client is not None, ready)
    finally:
        if client is not None:
            client.close()


def _power_on(job: HostJob, client: BmcClient, event: Event) -> None:
    if client.power_state() == "on":
        return
    event(f"{job.name}: powering on")
    client.set_power("on")
    _wait_power_on(job, client)


def _reinstall(job: HostJob, client: BmcClient, step: ReinstallStep, event: Event) -> None:
    device = BOOT_DEVICE[step.method]
    if step.method == "virtual-media":
        assert step.image_url, "virtual-media needs image_url"  # schema-checked
        client.eject_media()
        event(f"{job.name}: inserting installer media")
        client.insert_media(step.image_url)
    event(f"{job.name}: one-time boot from {device}, reinstall generation {step.generation}")
    client.boot_once(device)
    was_on = client.power_state() in ("on", "powering-on")
    client.set_power("restart" if was_on else "on")
    if was_on and not wait_for(
            lambda: client.power_state() != "on"
            or not ssh_answers(job.address, job.ssh_port, timeout=1.0),
            job.settle_seconds, POLL_SECONDS):
        raise BmcError(f"{job.name}: still running its old OS {job.settle_seconds} s after a "
                       "forced restart; the BMC did not reset the host")
    _wait_power_on(job, client)
    event(f"{job.name}: powered on, installer running")


def _wait_power_on(job: HostJob, client: BmcClient) -> None:
    if not wait_for(lambda: client.power_state() == "on", job.power_wait_seconds, POLL_SECONDS):
        raise BmcError(f"{job.name}: BMC did not report power on within "
                       f"{job.power_wait_seconds} s (last state: {client.power_state()})")


def image_install(job: HostJob, client: BmcClient, step: ReinstallStep,
                  event: Event) -> HostOutcome:
    """Install provision's OS image on one host (see the module docstring); bounded retries."""
    import uuid

    from provision.backends.baremetal_image import ensure_images
    from provision.backends.baremetal_media import (
        NodeIdentity,
        RootDevice,
        new_host_key,
        served_medium,
    )

    if job.login is None:
        raise BmcError(f"{job.name}: an image install needs the cluster's login (user, key)")
    images = ensure_images(event)
    root = RootDevice(step.root_serial, step.root_path or (None if step.root_serial
                                                              else "/dev/sda"))
    problems: list[str] = []
    for attempt in range(1, step.attempts + 1):
        install_id = uuid.uuid4().hex[:16]
        host_key = new_host_key()
        identity = NodeIdentity(job.login.cluster, job.name, job.login.user,
                                job.login.public_key, step.generation, install_id,
                                job.login.private_address, job.login.private_mac)
        try:
            with served_medium(images, identity, host_key, root, step.media_address) as url:
                _boot_medium(job, client, url, event)
            _wait_deployed(job, client, step, event)
            client.eject_media()
            client.boot_disk()
            event(f"{job.name}: booting the installed OS from disk")
            client.set_power("on")
            _wait_power_on(job, client)
            _wait_marker(job, identity, host_key.public, step, event)
        except BmcError as exc:
            problems.append(f"attempt {attempt}: {exc}")
            event(f"{job.name}: install attempt {attempt} of {step.attempts} failed: {exc}")
            continue
        event(f"{job.name}: installed (generation {step.generation}, install {install_id}); "
              "marker read over SSH with the cluster key and the pinned host key")
        return HostOutcome(job.name, client.power_state(), True, True, (host_key.public,),
                           install_id)
    raise BmcError(f"{job.name}: not installed after {step.attempts} attempt(s): "
                   + "; ".join(problems))


def _boot_medium(job: HostJob, client: BmcClient, url: str, event: Event) -> None:
    client.eject_media()
    event(f"{job.name}: inserting the install medium (virtual media)")
    client.insert_media(url)
    client.boot_once("cd")
    was_on = client.power_state() in ("on", "powering-on")
    event(f"{job.name}: {'restarting' if was_on else 'powering on'} into the deploy ramdisk")
    client.set_power("restart" if was_on else "on")
    _wait_power_on(job, client)


def _wait_deployed(job: HostJob, client: BmcClient, step: ReinstallStep, event: Event) -> None:
    """The deploy ramdisk powers the host off when the disk is written."""
    event(f"{job.name}: deploy ramdisk writing the OS image (up to "
          f"{step.boot_timeout_seconds} s)")
    if not wait_for(lambda: client.power_state() == "off", step.boot_timeout_seconds,
                    POLL_SECONDS * 2):
        client.set_power("off")
        raise BmcError(f"the deploy ramdisk did not finish within {step.boot_timeout_seconds} "
                       "s (the host did not power off)")


def _wait_marker(job: HostJob, identity: Any, host_key: str, step: ReinstallStep,
                 event: Event) -> None:
    from provision.backends.baremetal_media import marker_text

    assert job.login is not None
    want = marker_text(identity)
    event(f"{job.name}: waiting for the install marker over SSH on {job.address}:"
          f"{job.ssh_port} (up to {step.boot_timeout_seconds} s)")
    seen: list[str] = []

    def check() -> bool:
        text = read_marker(job.address, job.ssh_port, job.login.user,  # type: ignore[union-attr]
                           job.login.private_key_path, host_key)  # type: ignore[union-attr]
        if text is not None:
            seen[:] = [text]
        return text == want

    if not wait_for(check, step.boot_timeout_seconds, POLL_SECONDS * 3):
        what = (f"it shows {seen[0]!r}" if seen else
                "SSH with the cluster key and the install's host key never succeeded (an old "
                "OS or an installer answers with other keys)")
        raise BmcError(f"no install marker for generation {step.generation} within "
                       f"{step.boot_timeout_seconds} s: {what}")


def read_marker(address: str, port: int, user: str, key_path: str,
                host_key: str, timeout: float = 10.0) -> str | None:
    """The install marker's text, read with the cluster key from a host whose host key must
    be ``host_key``; None when that is not (yet) possible."""
    import subprocess
    import tempfile

    from provision.backends.baremetal_media import MARKER

    host = address if port == 22 else f"[{address}]:{port}"
    with tempfile.NamedTemporaryFile("w", prefix="provision-known-", suffix=".hosts") as known:
        known.write(f"{host} {host_key}\n")
        known.flush()
        cmd = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
               "-o", f"UserKnownHostsFile={known.name}", "-o", "GlobalKnownHostsFile=/dev/null",
               "-o", "LogLevel=ERROR", "-o", f"ConnectTimeout={int(timeout)}",
               "-o", "IdentitiesOnly=yes", "-i", key_path, "-p", str(port),
               f"{user}@{address}", "cat", MARKER]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 10)
        except subprocess.TimeoutExpired:
            return None
    return proc.stdout.strip() if proc.returncode == 0 else None
