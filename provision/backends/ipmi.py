"""IPMI-over-LAN BMC client (pyghmi). IPMI has no virtual media: reinstall uses PXE."""

from __future__ import annotations

from typing import Any

from pyghmi import exceptions as ipmi_exc
from pyghmi.ipmi import command

from provision.backends.bmc import BmcError, BmcRef

POWER_ACTIONS: dict[str, str] = {"on": "on", "off": "off", "restart": "reset"}
BOOT_DEVICES: dict[str, str] = {"pxe": "network", "cd": "optical"}


class IpmiClient:
    """One BMC over IPMI 2.0 (RMCP+), UDP port 623 unless the endpoint says host:port."""

    def __init__(self, ref: BmcRef, password: str) -> None:
        self.ref = ref
        host, _, port = ref.endpoint.partition(":")
        try:
            self._ipmi = command.Command(bmc=host, userid=ref.username, password=password,
                                         port=int(port or 623), keepalive=False)
        except (ipmi_exc.IpmiException, OSError) as exc:
            raise BmcError(f"IPMI {ref.endpoint}: cannot log in: {exc}") from None

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ipmi_exc.IpmiException, OSError) as exc:
            raise BmcError(f"IPMI {self.ref.endpoint}: {what} failed: {exc}") from None

    def power_state(self) -> str:
        reply = self._call("reading the power state", self._ipmi.get_power)
        return reply.get("powerstate", "unknown")

    def set_power(self, action: str) -> None:
        self._call(f"power {action}", self._ipmi.set_power, POWER_ACTIONS[action], wait=False)

    def boot_once(self, device: str) -> None:
        self._call(f"one-time boot from {device}", self._ipmi.set_bootdev,
                   BOOT_DEVICES[device], persist=False)

    def boot_disk(self) -> None:
        self._call("booting from disk", self._ipmi.set_bootdev, "default", persist=False)

    def insert_media(self, url: str) -> None:
        raise BmcError(f"IPMI {self.ref.endpoint}: IPMI has no virtual media; use reinstall "
                       "method: pxe or a Redfish BMC")

    def eject_media(self) -> None:
        """Nothing to eject: IPMI never inserted media."""

    def close(self) -> None:
        self._call("logging out", self._ipmi.ipmi_session.logout)
