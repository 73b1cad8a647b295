"""`provision verify` through the installed console script: output forms and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.test_verify_judge import FIXTURES
from tests.unit.test_verify_judge import H100_HEALTHY as HEALTHY


def host(run: Path, name: str, sku: str | None = "h100-sxm-80gb", **replace: str) -> Path:
    d = run / name
    d.mkdir(parents=True)
    for target, source in {**HEALTHY, **replace}.items():
        text = (FIXTURES / f"recorded-format-{source}").read_text() if source else ""
        (d / target).write_text(text)
    if sku:
        (d / "sku").write_text(sku + "\n")
    return d


@pytest.fixture
def healthy(tmp_path: Path) -> Path:
    host(tmp_path, "gpu-node-0")
    host(tmp_path, "gpu-node-1")
    return tmp_path


def test_healthy_run_exits_0_with_the_documented_json(run_cli, healthy):
    proc = run_cli("verify", "--offline", str(healthy), "-o", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert set(doc) == {"status", "hosts", "cluster"} and doc["status"] == "pass"
    assert sorted(doc["hosts"]) == ["gpu-node-0", "gpu-node-1"]
    names = [c["name"] for c in doc["hosts"]["gpu-node-0"]["checks"]]
    assert "nccl.all_reduce" in names and "nvlink.topology" in names


def test_failure_exits_1_and_names_node_and_check(run_cli, healthy):
    host(healthy, "gpu-node-2", **{"nvidia-smi-nvlink.txt": "nvlink-h100-inactive.txt"})
    proc = run_cli("verify", "--offline", str(healthy), "-o", "json")
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert doc["status"] == "fail" and doc["hosts"]["gpu-node-2"]["status"] == "fail"
    failed = [c for c in doc["hosts"]["gpu-node-2"]["checks"] if c["status"] == "fail"]
    assert [c["name"] for c in failed] == ["nvlink.status"]


def test_warning_exits_0_and_1_with_strict(run_cli, healthy):
    (healthy / "gpu-node-1" / "dcgmi-diag.json").write_text(
        (FIXTURES / "recorded-format-dcgm-diag-r2-dcgm3.json").read_text())
    proc = run_cli("verify", "--offline", str(healthy), "-o", "json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["status"] == "warn"
    assert run_cli("verify", "--offline", str(healthy), "--strict").returncode == 1


def test_sku_option_applies_to_hosts_without_a_sku_file(run_cli, tmp_path):
    host(tmp_path, "n", sku=None)
    proc = run_cli("verify", "--offline", str(tmp_path))
    assert proc.returncode == 2 and "no sku file" in proc.stderr
    proc = run_cli("verify", "--offline", str(tmp_path), "--sku", "h100-sxm-80gb")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--offline", "{tmp}/absent"], "no such directory"),
    (["--offline", "{tmp}"], "has no host directories"),
    (["--offline", "{tmp}", "--sku", "h100"], "unknown SKU 'h100'"),
    ([], "give a CLUSTER to collect from and verify, or --offline DIR"),
    (["prod-cluster"], "no cluster named 'prod-cluster'"),
])
def test_unusable_input_exits_2_with_a_clear_message(run_cli, tmp_path, args, message):
    proc = run_cli("verify", *[a.format(tmp=tmp_path) for a in args])
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_sku_in_a_sku_file_exits_2(run_cli, tmp_path):
    host(tmp_path, "n", sku="h100-sxm5")
    proc = run_cli("verify", "--offline", str(tmp_path))
    assert proc.returncode == 2 and "unknown SKU 'h100-sxm5' for host n" in proc.stderr
    assert "h100-sxm-80gb" in proc.stderr  # the known SKUs are listed


def test_table_and_markdown_outputs(run_cli, healthy):
    host(healthy, "gpu-node-2", **{"nvidia-smi-topo.txt": "topo-h100-nv17.txt"})
    table = run_cli("verify", "--offline", str(healthy), "--level", "quick")
    assert table.returncode == 1
    for text in ("provision verify", "gpu-node-2", "nvlink.topology", "FAIL", "GPU0-GPU3 NV17"):
        assert text in table.stdout, text
    md = run_cli("verify", "--offline", str(healthy), "-o", "markdown", "--level", "quick")
    assert md.stdout.startswith("### provision verify: FAIL (level quick)")
    assert "| gpu-node-2 | `nvlink.topology` | FAIL |" in md.stdout


def test_driver_option(run_cli, healthy):
    assert run_cli("verify", "--offline", str(healthy), "--driver", "550").returncode == 0
    proc = run_cli("verify", "--offline", str(healthy), "--driver", "560", "-o", "json")
    assert proc.returncode == 1
    checks = json.loads(proc.stdout)["hosts"]["gpu-node-0"]["checks"]
    assert next(c for c in checks if c["name"] == "gpu.driver")["status"] == "fail"
