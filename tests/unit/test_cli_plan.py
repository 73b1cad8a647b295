"""`provision plan|schema|catalog|models` through the installed console script."""

from __future__ import annotations

import json
import textwrap

import pytest

from tests.conftest import EXAMPLES

REQUIRED_JSON = {
    "need": ("memory_gb", "breakdown"),
    "choice": ("gpu", "gpus_per_node", "nodes", "provider", "instance_type", "region", "spot",
               "price_per_hour"),
    "estimate": ("hours", "cost_usd"),
}


# local plans and the lab's CPU-only virtual servers have no hardware choice to size against
@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.yaml")
                                           if "local" not in p.name
                                           and p.name != "baremetal-vm.yaml"))
def test_every_example_plans_with_the_documented_json(run_cli, example):
    proc = run_cli("plan", str(EXAMPLES / example), "--output", "json", check=True)
    out = json.loads(proc.stdout)
    for section, keys in REQUIRED_JSON.items():
        for key in keys:
            assert key in out[section], (section, key)
    assert isinstance(out["choice"]["spot"], bool)
    assert isinstance(out["alternatives"], list) and isinstance(out["warnings"], list)
    assert out["need"]["memory_gb"] == pytest.approx(sum(out["need"]["breakdown"].values()),
                                                     abs=0.05)
    for alt in out["alternatives"]:
        assert {"gpu", "provider", "price_per_hour", "rejected_because"} <= set(alt)


def test_qwen3_serving_needs_an_8_gpu_80gb_class_node(run_cli):
    out = json.loads(run_cli("plan", str(EXAMPLES / "qwen3-235b-serve.yaml"), "-o", "json",
                             check=True).stdout)
    assert 520 < out["need"]["memory_gb"] < 680  # the article's 620–670 GB range, computed
    c = out["choice"]
    assert c["gpus_per_node"] * c["nodes"] >= 8
    assert out["estimate"]["hours"] == 730 and out["estimate"]["cost_usd"] > 0
    reasons = [a["rejected_because"] for a in out["alternatives"] if a["rejected_because"]]
    assert any(r.startswith("does not fit") for r in reasons)


def test_table_output_explains_choice_and_alternatives(run_cli):
    proc = run_cli("plan", str(EXAMPLES / "qwen3-235b-serve.yaml"), check=True)
    for text in ("Need", "weights", "kv_cache", "Choice", "Estimate", "Next best",
                 "why it lost", "Rejected, though cheaper", "does not fit", "Warnings"):
        assert text in proc.stdout, text


def test_markdown_output(run_cli):
    proc = run_cli("plan", str(EXAMPLES / "pretrain-7b.yaml"), "-o", "markdown", check=True)
    assert proc.stdout.startswith("### provision plan: `pretrain-7b`")
    assert "| component | GB |" in proc.stdout and "**Choice:**" in proc.stdout


def test_training_estimate_has_hours_and_cost(run_cli):
    out = json.loads(run_cli("plan", str(EXAMPLES / "pretrain-7b.yaml"), "-o", "json",
                             check=True).stdout)
    est, c = out["estimate"], out["choice"]
    assert 0 < est["hours"] <= 720  # the default 30-day deadline
    assert est["cost_usd"] == pytest.approx(c["price_per_hour"] * est["hours"], rel=1e-3)


def test_spot_budget_example_honours_its_limits(run_cli):
    out = json.loads(run_cli("plan", str(EXAMPLES / "spot-budget.yaml"), "-o", "json",
                             check=True).stdout)
    assert out["choice"]["spot"] is True
    assert out["estimate"]["cost_usd"] <= 600 and out["choice"]["price_per_hour"] <= 40
    assert out["choice"]["provider"] in ("aws", "gcp")


def test_bad_plan_exits_2_with_file_line_and_field(run_cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: demo\nworkload:\n  kind: inference\n  model: llama-3-8b\n"
                   "  precison: bf16\n")
    proc = run_cli("plan", str(bad))
    assert proc.returncode == 2
    assert "bad.yaml:5:3: workload.precison: unknown key; did you mean 'precision'?" in (
        proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout


def test_malformed_yaml_exits_2(run_cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [demo\n")
    proc = run_cli("plan", str(bad))
    assert proc.returncode == 2 and "YAML syntax error" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_plan_file_exits_2(run_cli):
    proc = run_cli("plan", "/nonexistent.yaml")
    assert proc.returncode == 2 and "no such file" in proc.stderr


def test_unknown_cloud_is_an_input_error_with_a_suggestion(run_cli, tmp_path):
    plan = tmp_path / "p.yaml"
    plan.write_text("name: demo\nworkload:\n  kind: inference\n  model: llama-3-8b\n"
                    "constraints:\n  clouds: [aws, gpc]\n")
    proc = run_cli("plan", str(plan))
    assert proc.returncode == 2
    assert "p.yaml:6:" in proc.stderr and "unknown provider 'gpc'; did you mean 'gcp'?" in (
        proc.stderr)


def test_nothing_fits_exits_3_with_what_to_relax(run_cli, tmp_path):
    plan = tmp_path / "p.yaml"
    plan.write_text(textwrap.dedent("""
        name: too-big
        workload:
          kind: inference
          model: llama-3-405b
          context: 131072
          batch: 32
        constraints:
          clouds: [aws]
          max_nodes: 2
        """))
    proc = run_cli("plan", str(plan))
    assert proc.returncode == 3
    assert "Nothing fits" in proc.stdout and "raise constraints.max_nodes" in proc.stdout
    out = json.loads(run_cli("plan", str(plan), "-o", "json").stdout)
    assert out["choice"] is None and out["relax"]
    assert all(a["rejected_because"] for a in out["alternatives"])


def test_over_budget_suggests_the_budget_needed(run_cli, tmp_path):
    plan = tmp_path / "p.yaml"
    plan.write_text("name: demo\nworkload:\n  kind: training\n  model: llama-3-8b\n"
                    "  tokens_b: 100\nconstraints:\n  budget_usd: 10\n")
    proc = run_cli("plan", str(plan), "-o", "json")
    assert proc.returncode == 3
    assert any(t.startswith("raise constraints.budget_usd to ≥")
               for t in json.loads(proc.stdout)["relax"])


def test_explicit_resources_bypass_the_optimizer(run_cli, tmp_path):
    plan = tmp_path / "p.yaml"
    plan.write_text("name: demo\nworkload:\n  kind: inference\n  model: llama-3-70b\n"
                    "resources:\n  offering: aws:p4d.24xlarge\n  nodes: 1\n  region: us-east-1\n")
    out = json.loads(run_cli("plan", str(plan), "-o", "json", check=True).stdout)
    c = out["choice"]
    assert (c["provider"], c["instance_type"], c["nodes"], c["region"]) == (
        "aws", "p4d.24xlarge", 1, "us-east-1")


def test_unknown_instance_type_suggests(run_cli, tmp_path):
    plan = tmp_path / "p.yaml"
    plan.write_text("name: demo\nresources:\n  gpu: H100\n  provider: aws\n"
                    "  instance_type: p5.48xlarg\n")
    proc = run_cli("plan", str(plan))
    assert proc.returncode == 2 and "did you mean 'p5.48xlarge'?" in proc.stderr


def test_plan_with_a_user_catalog(run_cli, tmp_path):
    # 8 H100 for $0.01/h: $0.00125 per GPU-hour, 1/4,000 of the H100 median, so suspect
    cat = tmp_path / "lab.csv"
    cat.write_text("InstanceType,AcceleratorName,AcceleratorCount,Region,Price,SpotPrice\n"
                   "lab-box,H100,8,home,0.01,\n")
    plan = tmp_path / "p.yaml"
    plan.write_text("name: demo\nworkload:\n  kind: inference\n  model: llama-3-70b\n")
    args = ("plan", str(plan), "--catalog", str(cat), "-o", "json", "--all-providers")
    out = json.loads(run_cli(*args, check=True).stdout)
    assert out["choice"]["instance_type"] != "lab-box"
    assert any("lab lab-box home" in w and "set aside" in w for w in out["warnings"])
    out = json.loads(run_cli(*args, "--trust-catalog", check=True).stdout)
    assert (out["choice"]["provider"], out["choice"]["instance_type"]) == ("lab", "lab-box")
    assert out["choice"]["catalog_only"] is True  # `provision up` has no backend for "lab"
    assert any("kept because --trust-catalog" in w for w in out["warnings"])
    plan.write_text(plan.read_text() + "catalog: [lab.csv]\nconstraints:\n  clouds: [lab]\n")
    out = json.loads(run_cli("plan", str(plan), "-o", "json", "--trust-catalog",
                             check=True).stdout)
    assert out["choice"]["instance_type"] == "lab-box"


def test_schema_command_prints_json_schema(run_cli):
    schema = json.loads(run_cli("schema", check=True).stdout)
    assert schema["title"] == "provision plan.yaml"


def test_catalog_command_filters(run_cli):
    proc = run_cli("catalog", "--gpu", "H100", "--spot", "-o", "json", "--limit", "0",
                   check=True)
    out = json.loads(proc.stdout)
    rows = out["offerings"]
    assert rows and all(r["gpu"] == "H100" and r["spot_price"] for r in rows)
    prices = [r["spot_price"] for r in rows]
    assert prices == sorted(prices)
    # the 8 GCP H100 rows with spot above on-demand are not among them (catalog checks)
    assert all(r["spot_price"] <= r["price"] * 1.001 for r in rows if r["price"])
    assert out["ages"]["aws"]["age_days"] is None and "001367d2" in out["ages"]["aws"]["basis"]
    table = run_cli("catalog", "--gpu", "tpu-v5e", "--limit", "3", check=True).stdout
    assert "tpu-v5litepod" in table and "Prices: aws date unknown (old)" in table
    suspect = run_cli("catalog", "--suspect", "--provider", "runpod", "--gpu", "L40S",
                      "--limit", "1", check=True).stdout
    assert "spot price above on-demand" in suspect and "0.43" in suspect
    assert run_cli("catalog", "--gpu", "H1000").returncode == 2


def test_models_and_help(run_cli):
    assert "qwen3-235b-a22b" in run_cli("models", check=True).stdout
    helptext = run_cli("--help", check=True).stdout
    assert "Exit codes" in helptext and "plan" in helptext
    assert run_cli("plan", "--help", check=True).stdout.count("--output") >= 1
    assert run_cli("--version", check=True).stdout.startswith("provision ")
    assert run_cli("no-such-command").returncode == 2


def test_local_plan_shows_its_nodes_and_sizes_a_workload_on_simulated_gpus(run_cli, tmp_path):
    cpu = json.loads(run_cli("plan", str(EXAMPLES / "local.yaml"), "-o", "json",
                             check=True).stdout)
    assert cpu["target"] == "local" and [n["sku"] for n in cpu["nodes"]] == ["cpu"] * 3
    assert cpu["choice"] is None  # nothing is rented for a local cluster
    plan = tmp_path / "lg.yaml"
    plan.write_text("name: lg\ntarget: local\nlocal:\n  nodes: 2\n  sku: h100-sxm-80gb\n"
                    "workload:\n  kind: inference\n  model: llama-3-405b\n  context: 8192\n")
    out = json.loads(run_cli("plan", str(plan), "-o", "json", check=True).stdout)
    c = out["choice"]
    assert (c["provider"], c["gpu"], c["gpus_per_node"], c["nodes"], c["price_per_hour"]) == (
        "local", "H100", 8, 2, 0.0)  # 405B in bf16 needs both simulated 8×H100 nodes
