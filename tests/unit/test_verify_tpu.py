"""The TPU check script on CPU devices (XLA's host platform forced to 8 devices).

jax is an optional dependency of the test tools (the lead adds it to the dev extras); without it
this test fails with the install command instead of skipping, so CI cannot pass silently.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from provision.verify import analyze, tpu_check

CPU_DEVICES = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}


def _require_jax() -> None:
    try:
        import jax  # noqa: F401
    except ImportError:
        pytest.fail("jax is not installed: pip install 'jax[cpu]' (dev dependency of the TPU "
                    "check test)")


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **CPU_DEVICES}, timeout=300)


def test_tpu_check_sees_every_device_and_sums_correctly(tmp_path):
    _require_jax()
    out = tmp_path / "tpu-check.json"
    proc = _run(["-m", "provision.verify.tpu_check", "--out", str(out), "--size-mb", "1",
                 "--iters", "2", "--warmup", "1", "--expect-chips", "8"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert doc["format"] == "provision-tpu-check" and doc["platform"] == "cpu"
    assert doc["local_chips"] == 8 and doc["psum"]["correct"] is True
    assert doc["psum"]["bytes_per_chip"] == 2**20 and doc["psum"]["busbw_gbps"] > 0
    assert doc["psum"]["busbw_gbps"] == pytest.approx(doc["psum"]["algbw_gbps"] * 2 * 7 / 8)


def test_tpu_check_runs_as_a_standalone_file_and_flags_a_chip_shortfall(tmp_path):
    _require_jax()
    script = tmp_path / "tpu_check.py"
    shutil.copy(tpu_check.__file__, script)
    proc = _run([str(script), "--size-mb", "1", "--iters", "1", "--expect-chips", "16"], tmp_path)
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert doc["errors"] == ["8 chips visible, 16 expected"] and doc["ok"] is False


def test_judge_fails_a_cpu_run_as_not_a_tpu_host(tmp_path):
    _require_jax()
    host = tmp_path / "run" / "t1v-w-0"
    host.mkdir(parents=True)
    (host / "sku").write_text("tpu-v5e\n")
    proc = _run(["-m", "provision.verify.tpu_check", "--out", str(host / "tpu-check.json"),
                 "--size-mb", "1", "--iters", "1"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = analyze(tmp_path / "run")
    chips = {c.name: c for c in report.hosts["t1v-w-0"].checks}
    assert chips["tpu.chips"].status == "fail" and chips["tpu.chips"].measured == 8
    assert "ran on cpu devices, not TPU chips" in chips["tpu.chips"].detail
    assert chips["tpu.ici_bandwidth"].ratio_to_peak is not None


def test_tpu_check_without_jax_says_how_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "jax", None)  # import jax now raises ImportError
    assert tpu_check.main(["--size-mb", "1"]) == 2
    assert "pip install" in capsys.readouterr().err
