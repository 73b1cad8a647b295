"""The command line without optional parts, and under hostile numbers: what a user sees when
the cloud extra is missing, and that an absurd plan number is an input error, not a hang."""

from __future__ import annotations

import json
import os
import textwrap

from tests.conftest import EXAMPLES

BLOCKER = textwrap.dedent("""
    # Test stand-in for an install without the cloud extra: pulumi cannot be imported.
    import sys

    class _NoPulumi:
        def find_spec(self, name, path=None, target=None):
            if name == "pulumi" or name.startswith(("pulumi.", "pulumi_")):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, _NoPulumi())
    """)


def test_preview_without_the_cloud_extra_says_what_to_install(run_cli, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)
    env = {"PYTHONPATH": path}
    probe = run_cli("preview", str(EXAMPLES / "aws-spot.yaml"), "--offline", env=env)
    assert probe.returncode == 2, probe.stdout + probe.stderr
    assert "pip install 'provision[cloud]'" in probe.stderr
    assert "internal error" not in probe.stderr and "Traceback" not in probe.stderr
    # the plan itself needs no cloud extra
    assert run_cli("plan", str(EXAMPLES / "aws-spot.yaml"), env=env).returncode == 0


def test_absurd_numbers_exit_2_naming_the_field_and_json_stays_strict(run_cli, tmp_path):
    plan = tmp_path / "p.yaml"
    plan.write_text("name: demo\nworkload:\n  kind: inference\n  model: llama-3-8b\n"
                    "  context: 1e30\n  batch: .inf\n")
    proc = run_cli("plan", str(plan), "-o", "json", timeout=60)
    assert proc.returncode == 2
    assert "p.yaml:5:3: workload.context: number too large" in proc.stderr
    assert "workload.batch" in proc.stderr and "Traceback" not in proc.stderr
    plan.write_text("name: demo\nworkload:\n  kind: inference\n  model: llama-3-8b\n"
                    "  context: 134217728\n  batch: 1048576\n")  # the largest allowed
    proc = run_cli("plan", str(plan), "-o", "json", timeout=60)
    assert proc.returncode == 3  # nothing holds 10^15 tokens of KV cache; said in bounded time
    out = json.loads(proc.stdout)  # strict JSON: no NaN or Infinity
    assert out["choice"] is None and out["relax"]
