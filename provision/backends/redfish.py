"""Redfish BMC client (DMTF Redfish through OpenStack's sushy library).

Vendor differences are data: the reset type and boot target to use are the first of a
preference list that the BMC advertises in its ``@Redfish.AllowableValues``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import sushy
from sushy import exceptions as sushy_exc

from provision.backends.bmc import BmcError, BmcRef

# Our action → Redfish reset types in order of preference.
RESET_TYPES: dict[str, tuple[Any, ...]] = {
    "on": (sushy.RESET_ON, sushy.RESET_FORCE_ON),
    "off": (sushy.RESET_FORCE_OFF, sushy.RESET_GRACEFUL_SHUTDOWN),
    "restart": (sushy.RESET_FORCE_RESTART, sushy.RESET_TYPE_POWER_CYCLE,
                sushy.RESET_GRACEFUL_RESTART),
}
BOOT_TARGETS: dict[str, Any] = {"pxe": sushy.BOOT_SOURCE_TARGET_PXE,
                                "cd": sushy.BOOT_SOURCE_TARGET_CD}
POWER_STATES: dict[Any, str] = {
    sushy.POWER_STATE_ON: "on",
    sushy.POWER_STATE_OFF: "off",
    sushy.POWER_STATE_POWERING_ON: "powering-on",
    sushy.POWER_STATE_POWERING_OFF: "powering-off",
}
CD_MEDIA = (sushy.VIRTUAL_MEDIA_CD, sushy.VIRTUAL_MEDIA_DVD)


class RedfishClient:
    """One ComputerSystem behind a Redfish service."""

    def __init__(self, ref: BmcRef, password: str, *, timeout: int = 300) -> None:
        self.ref = ref
        base = ref.endpoint.rstrip("/").removesuffix("/redfish/v1")
        try:
            self._conn = sushy.Sushy(
                base, username=ref.username, password=password,
                verify=(ref.ca_file or True) if ref.verify_tls else False,
                server_side_retries=2, server_side_retries_delay=1,
                read_timeout=timeout, connect_timeout=10)
            self._system = self._find_system()
        except sushy_exc.SushyError as exc:
            raise BmcError(f"Redfish {ref.endpoint}: {_brief(exc)}") from None

    def _find_system(self) -> Any:
        if self.ref.system_id:
            return self._conn.get_system(f"/redfish/v1/Systems/{self.ref.system_id}")
        members = self._conn.get_system_collection().members_identities
        if len(members) != 1:
            ids = ", ".join(m.rstrip("/").rsplit("/", 1)[-1] for m in members)
            raise BmcError(f"Redfish {self.ref.endpoint} manages {len(members)} systems "
                           f"({ids}); set bmc.system_id")
        return self._conn.get_system(members[0])

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except sushy_exc.SushyError as exc:
            raise BmcError(f"Redfish {self.ref.endpoint}: {what} failed: {_brief(exc)}") from None

    # -- BmcClient ----------------------------------------------------------------------------
    def power_state(self) -> str:
        self._call("reading the power state", self._system.refresh, force=True)
        return POWER_STATES.get(self._system.power_state, "unknown")

    def set_power(self, action: str) -> None:
        allowed = self._call("reading reset types", self._system.get_allowed_reset_system_values)
        choice = next((t for t in RESET_TYPES[action] if t in allowed), None)
        if choice is None:
            raise BmcError(f"Redfish {self.ref.endpoint}: no reset type for {action!r} among "
                           f"{sorted(str(a) for a in allowed)}")
        self._call(f"power {action}", self._system.reset_system, choice)

    def boot_once(self, device: str) -> None:
        """One-time boot from ``device``, in UEFI mode where the system boots UEFI (a Legacy
        override would make a UEFI machine look for a BIOS boot sector)."""
        mode = None
        with contextlib.suppress(sushy_exc.SushyError, AttributeError):
            if self._system.boot.mode == sushy.BOOT_SOURCE_MODE_UEFI:
                mode = sushy.BOOT_SOURCE_MODE_UEFI
        self._call(f"one-time boot from {device}", self._system.set_system_boot_options,
                   target=BOOT_TARGETS[device], enabled=sushy.BOOT_SOURCE_ENABLED_ONCE,
                   mode=mode)

    def boot_disk(self) -> None:
        allowed = self._call("reading boot targets",
                             self._system.get_allowed_system_boot_source_values)
        if sushy.BOOT_SOURCE_TARGET_NONE in allowed:
            self._call("clearing the boot override", self._system.set_system_boot_options,
                       target=sushy.BOOT_SOURCE_TARGET_NONE,
                       enabled=sushy.BOOT_SOURCE_ENABLED_DISABLED)
        else:  # BMCs that cannot clear the override (and emulators that ignore 'Once')
            self._call("booting from disk", self._system.set_system_boot_options,
                       target=sushy.BOOT_SOURCE_TARGET_HDD,
                       enabled=sushy.BOOT_SOURCE_ENABLED_ONCE)

    def _cd(self) -> Any:
        """The CD/DVD virtual media device, on the system or (older BMCs) on its manager."""
        for collection in self._media_collections():
            for media in self._call("listing virtual media", collection.get_members):
                if any(t in CD_MEDIA for t in (media.media_types or ())):
                    return media
        raise BmcError(f"Redfish {self.ref.endpoint}: no CD/DVD virtual media device")

    def _media_collections(self) -> Iterator[Any]:
        with contextlib.suppress(sushy_exc.MissingAttributeError):
            yield self._system.virtual_media
        try:
            managers = self._system.managers
        except sushy_exc.SushyError:
            managers = []
        for manager in managers:
            with contextlib.suppress(sushy_exc.MissingAttributeError):
                yield manager.virtual_media

    def insert_media(self, url: str) -> None:
        media = self._cd()
        self._call("inserting virtual media", media.insert_media, url, inserted=True,
                   write_protected=True)

    def eject_media(self) -> None:
        media = self._cd()
        if media.inserted or media.image:
            self._call("ejecting virtual media", media.eject_media)

    def close(self) -> None:
        """Log out (sushy ends its Redfish session when the root object is released)."""
        self._system = None
        del self._conn


def _brief(exc: Exception) -> str:
    """The first line of a sushy error (its HTTP details, never request credentials)."""
    return str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
