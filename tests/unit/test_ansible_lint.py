"""Playbooks, roles and Molecule scenarios pass ansible-lint's `production` profile."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.conftest import REPO


def test_ansible_lint_production_profile():
    lint = shutil.which("ansible-lint")
    if lint is None:
        pytest.fail("ansible-lint is not installed: run ./install.sh (dev extras)")
    proc = subprocess.run([lint, "--nocolor", "--profile", "production"],
                          cwd=REPO / "playbooks", capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NO_COLOR": "1"})
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
