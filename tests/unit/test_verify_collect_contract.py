"""The collector role and the analyzer agree on files and levels (they live apart: the role
must not import provision, so this test keeps the two tables in step)."""

from __future__ import annotations

import yaml

from provision.verify.artifacts import COMMANDS
from tests.conftest import REPO

DEFAULTS = REPO / "playbooks/roles/verify_collect/defaults/main.yml"


def test_role_runs_every_per_host_gpu_file_at_its_level():
    role = {c["file"]: c["level"] for c in yaml.safe_load(DEFAULTS.read_text())
            ["verify_collect_commands"]}
    # ib_write_bw needs a peer and runs from the collector script itself; TPU and cluster
    # files come from their own steps
    expected = {c.file: c.level for c in COMMANDS
                if c.kind == "gpu" and c.file != "ib_write_bw.txt"}
    assert role == expected


def test_role_commands_are_the_documented_ones():
    role = {c["file"]: " ".join(c["command"].split()) for c in yaml.safe_load(
        DEFAULTS.read_text())["verify_collect_commands"]}
    for c in COMMANDS:
        if c.file in ("nvidia-smi-query.csv", "nvidia-smi-topo.txt", "nvidia-smi-nvlink.txt",
                      "remap.csv", "nvbandwidth.txt", "ibstat.txt"):
            assert role[c.file] == " ".join(c.command.split()), c.file
