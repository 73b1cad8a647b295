"""Shared fixtures: private cache and config directories (tests never touch the user's),
the CLI's real entry point, and the local target's node image."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    os.environ["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("xdg-config"))
    os.environ["PROVISION_STATE_DIR"] = str(tmp_path_factory.mktemp("provision-state"))
    os.environ["PROVISION_INVENTORIES"] = str(tmp_path_factory.mktemp("inventories"))
    # The cloud SDKs look for credentials on an instance metadata service (169.254.169.254)
    # when none are configured: never from a test.
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    os.environ["NO_GCE_CHECK"] = "True"
    # GCP plans resolve their project from gcloud's configuration: a fixed one, never the
    # user's (project sim-project-123; see provision/backends/gcp_project.py)
    os.environ["CLOUDSDK_CONFIG"] = str(REPO / "tests" / "fixtures" / "cloud" / "gcloud")
    for var in ("GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT", "CLOUDSDK_ACTIVE_CONFIG_NAME",
                "GOOGLE_APPLICATION_CREDENTIALS"):
        os.environ.pop(var, None)


def provision_cmd() -> list[str]:
    """The installed console script (the real entry point), next to this interpreter."""
    import sys

    script = Path(sys.executable).parent / "provision"
    return [str(script)] if script.exists() else [sys.executable, "-m", "provision"]


@pytest.fixture
def run_cli():
    """Run `provision ARGS...` as a user would; returns the CompletedProcess."""
    import subprocess

    def run(*args: str, check: bool = False, env: dict | None = None, cwd: Path | None = None,
            timeout: float = 120):
        full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
        proc = subprocess.run([*provision_cmd(), *args], capture_output=True, text=True,
                              env=full_env, cwd=cwd or REPO, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    return run


def podman_ok() -> str | None:
    """Why podman nodes cannot run here, or None when they can."""
    if shutil.which("podman") is None:
        return "podman is not installed (run ./install.sh)"
    if os.geteuid() != 0:
        return "the local target's tests need root (debootstrap, container capabilities)"
    return None


@pytest.fixture(scope="session")
def node_image() -> str:
    """The node image, built once when missing (about two minutes on a fresh machine)."""
    reason = podman_ok()
    if reason:
        pytest.fail(reason)
    from provision.backends import podman
    from provision.backends.node_image import ensure_image

    tag = ensure_image(lambda m: print(f"[node image] {m}", flush=True))
    os.environ["PROVISION_NODE_IMAGE"] = tag
    os.environ["CONTAINERS_CONF"] = podman.containers_conf()
    return tag
