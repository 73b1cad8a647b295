"""The code stays ruff-clean: part of the test suite so CI enforces it."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO


def test_ruff_clean():
    ruff = shutil.which("ruff") or shutil.which("ruff", path=str(REPO / ".venv" / "bin"))
    if ruff is None:
        try:
            import ruff as _  # noqa: F401
        except ImportError:
            pytest.fail("ruff is not installed: run ./install.sh (it installs the dev extras)")
        cmd = [sys.executable, "-m", "ruff"]
    else:
        cmd = [ruff]
    paths = [p for p in ("provision", "tests", "bench", "stacks") if (REPO / p).exists()]
    proc = subprocess.run([*cmd, "check", *paths], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
