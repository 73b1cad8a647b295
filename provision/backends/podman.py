"""A thin, typed wrapper over the podman CLI (the local target's only dependency).

Every call runs with ``CONTAINERS_CONF`` pointing at the engine settings kept in this package
(data/containers.conf), unless ``PROVISION_CONTAINERS_CONF`` names another file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from importlib import resources
from typing import Any

from provision.errors import ProvisionError

DEFAULT_TIMEOUT = 300


class PodmanError(ProvisionError):
    """A podman command failed; the message carries its stderr."""


def containers_conf() -> str:
    override = os.environ.get("PROVISION_CONTAINERS_CONF")
    if override:
        return override
    return str(resources.files("provision.backends") / "data" / "containers.conf")


def env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": containers_conf()}


def require() -> str:
    path = shutil.which("podman")
    if path is None:
        raise ProvisionError(
            "podman is not installed; the local target needs it. Run ./install.sh, or "
            "apt-get install podman runc debootstrap"
        )
    return path


def run(*args: str, input: bytes | None = None, timeout: float = DEFAULT_TIMEOUT,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``podman ARGS``; raise PodmanError with podman's own message on failure."""
    cmd = [require(), *args]
    try:
        proc = subprocess.run(cmd, input=input.decode() if input else None,
                              capture_output=True, text=True, env=env(), timeout=timeout)
    except subprocess.TimeoutExpired:
        raise PodmanError(
            f"podman {' '.join(args[:3])} did not finish in {timeout:.0f} s") from None
    if check and proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().splitlines()
        last = msg[-1] if msg else proc.returncode
        raise PodmanError(f"podman {' '.join(args[:3])} failed: {last}")
    return proc


def run_json(*args: str) -> Any:
    out = run(*args).stdout.strip()
    return json.loads(out) if out else []


def exists(kind: str, name: str) -> bool:
    """Whether a podman object (image, network, container, volume) exists."""
    sub = {"image": ("image", "exists"), "network": ("network", "exists"),
           "container": ("container", "exists"), "volume": ("volume", "exists")}[kind]
    return run(*sub, name, check=False).returncode == 0


def containers(label: str) -> list[dict[str, Any]]:
    """All containers (running or not) carrying ``label`` (key=value)."""
    return run_json("ps", "-a", "--filter", f"label={label}", "--format", "json")


def inspect(name: str) -> dict[str, Any]:
    data = run_json("inspect", "--type", "container", name)
    return data[0] if data else {}


def address_on(info: dict[str, Any], network: str) -> str | None:
    nets = (info.get("NetworkSettings") or {}).get("Networks") or {}
    ip = (nets.get(network) or {}).get("IPAddress")
    return ip or None
