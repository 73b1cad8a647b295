"""Shared fixtures: a private cache directory so tests never touch the user's ~/.cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))


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
