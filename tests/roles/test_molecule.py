"""Every role's Molecule scenario: create podman nodes, converge, converge again with no
changes (idempotence), verify real state, destroy. Runs molecule as a user would, from the
role's directory, against provision's locally built node image."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from provision.backends import podman
from provision.converge import mitogen_strategy_dir
from tests.conftest import REPO

ROLES = REPO / "playbooks" / "roles"
SCENARIOS = sorted(f"{p.parents[2].name}/{p.parent.name}"
                   for p in ROLES.glob("*/molecule/*/molecule.yml"))
# A scenario with a NIGHTLY file (its text says why) runs only with PROVISION_SLOW_TESTS=1: a
# grouped scenario covers its role in the default run, which must stay within CI's time budget.
SLOW = os.environ.get("PROVISION_SLOW_TESTS", "") not in ("", "0")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_molecule_scenario(scenario: str, node_image: str, tmp_path: Path) -> None:
    role, name = scenario.split("/")
    nightly = ROLES / role / "molecule" / name / "NIGHTLY"
    if nightly.exists() and not SLOW:
        pytest.skip(nightly.read_text().strip().replace("\n", " "))
    env = {
        **os.environ,
        "CONTAINERS_CONF": podman.containers_conf(),
        "PROVISION_NODE_IMAGE": node_image,
        "MOLECULE_EPHEMERAL_DIRECTORY": str(tmp_path / "molecule"),
        "ANSIBLE_NOCOLOR": "1",
        "NO_COLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
    }
    strategy = mitogen_strategy_dir()  # the same speed-up `provision up` uses
    if strategy:
        env.update(ANSIBLE_STRATEGY_PLUGINS=strategy, ANSIBLE_STRATEGY="mitogen_linear")
    proc = subprocess.run(["molecule", "test", "--scenario-name", name], cwd=ROLES / role,
                          env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    for step in ("converge", "idempotence", "verify"):
        assert f"{step}: Executed: Successful" in proc.stdout + proc.stderr, step
