"""Power and OS reinstall of bare-metal hosts through their BMC (Redfish or IPMI).

The reinstall flow is the same whatever the protocol:

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


@dataclass(frozen=True)
class HostOutcome:
    name: str
    power_state: str | None  # as the BMC last reported it; None without a BMC
    reinstalled: bool
    ssh_ready: bool


def prepare_host(job: HostJob, event: Event,
                 connector: Callable[[BmcRef], BmcClient] = connect) -> HostOutcome:
    """Power on and/or reinstall one host, then wait for SSH. Raises BmcError on failure."""
    client = connector(job.bmc) if job.bmc and (job.power_on or job.reinstall) else None
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
