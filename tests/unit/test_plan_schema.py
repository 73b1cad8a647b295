"""Every schema error path: the message names the file, the line and the field, and says what
was expected. (The CLI's exit code 2 for these is tested in test_cli.py.)"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from provision.errors import InputError
from provision.plan import load_plan


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "plan.yaml"
    p.write_text(textwrap.dedent(text).lstrip())
    return p


def errors_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(InputError) as info:
        load_plan(write(tmp_path, text))
    return str(info.value)


GOOD = """
name: demo
workload:
  kind: inference
  model: llama-3-8b
"""


def test_a_good_plan_loads_and_fills_the_known_model(tmp_path):
    loaded = load_plan(write(tmp_path, GOOD))
    m = loaded.plan.workload.model
    assert (m.params_b, m.layers, m.kv_heads, m.head_dim) == (8.03, 32, 8, 128)
    assert loaded.plan.constraints.min_headroom == 0.10
    assert loaded.plan.constraints.spot == "never"


def test_model_name_lookup_ignores_org_prefix_and_case(tmp_path):
    loaded = load_plan(write(tmp_path, GOOD.replace("llama-3-8b", "meta-llama/Llama-3.1-8B")))
    assert loaded.plan.workload.model.params_b == 8.03


def test_malformed_yaml_names_the_line(tmp_path):
    msg = errors_of(tmp_path, """
        name: demo
        workload:
          kind: [inference
          model: x
        """)
    assert "plan.yaml:4" in msg and "YAML syntax error" in msg


def test_tab_indentation_is_a_syntax_error(tmp_path):
    p = tmp_path / "plan.yaml"
    p.write_text("name: demo\nworkload:\n\tkind: inference\n")
    with pytest.raises(InputError, match=r"plan.yaml:3:1: YAML syntax error"):
        load_plan(p)


def test_duplicate_keys_are_errors(tmp_path):
    msg = errors_of(tmp_path, """
        name: demo
        name: other
        """)
    assert "plan.yaml:2" in msg and "duplicate" in msg.lower()


def test_empty_file_and_wrong_top_level(tmp_path):
    assert "the file is empty" in errors_of(tmp_path, "")
    assert "a plan is a mapping" in errors_of(tmp_path, "- a\n- b\n")


def test_missing_file():
    with pytest.raises(InputError, match="no such file"):
        load_plan("/nonexistent/plan.yaml")


def test_unknown_keys_suggest_the_right_one(tmp_path):
    msg = errors_of(tmp_path, """
        name: demo
        workload:
          kind: inference
          model: llama-3-8b
          precison: bf16
        constrains: {}
        """)
    assert "plan.yaml:5:3: workload.precison: unknown key; did you mean 'precision'?" in msg
    assert "plan.yaml:6:1: constrains: unknown key; did you mean 'constraints'?" in msg


def test_wrong_types(tmp_path):
    msg = errors_of(tmp_path, """
        name: demo
        workload:
          kind: inference
          model: llama-3-8b
          batch: three
          context: 4096.5
          activation_checkpointing: maybe
        constraints:
          clouds: aws
        """)
    assert "plan.yaml:5:3: workload.batch: expected a whole number; got 'three'" in msg
    assert "plan.yaml:6:3: workload.context: expected a whole number" in msg
    assert "plan.yaml:7:3: workload.activation_checkpointing: expected true or false" in msg
    assert "plan.yaml:9:3: constraints.clouds: expected a list" in msg


def test_negative_and_out_of_range_numbers(tmp_path):
    msg = errors_of(tmp_path, """
        name: demo
        workload:
          kind: training
          model: {params_b: -7}
          tokens_b: 0
          mfu: 1.5
        constraints:
          min_headroom: 0.95
          max_price_per_hour: -3
        """)
    assert "workload.model.params_b: must be greater than 0; got -7" in msg
    assert "workload.tokens_b: must be greater than 0; got 0" in msg
    assert "workload.mfu: must be at most 1" in msg
    assert "constraints.min_headroom: must be less than 0.9" in msg
    assert "constraints.max_price_per_hour: must be greater than 0" in msg


def test_enum_values_suggest(tmp_path):
    msg = errors_of(tmp_path, """
        name: demo
        workload:
          kind: inferense
          model: llama-3-8b
          precision: bf61
        """)
    assert ("workload.kind: expected one of inference, training, finetune; got 'inferense'; "
            "did you mean 'inference'?") in msg
    assert "workload.precision: expected one of fp32, bf16" in msg


def test_unknown_model_suggests(tmp_path):
    msg = errors_of(tmp_path, GOOD.replace("llama-3-8b", "llama-3-7b"))
    assert "plan.yaml:4:3: workload.model" in msg
    assert "unknown model 'llama-3-7b'; did you mean" in msg


def test_model_needs_a_name_or_size(tmp_path):
    msg = errors_of(tmp_path, GOOD.replace("model: llama-3-8b", "model: {layers: 32}"))
    assert "give a known model `name` or `params_b`" in msg


def test_missing_required_fields(tmp_path):
    msg = errors_of(tmp_path, """
        workload:
          model: llama-3-8b
        """)
    assert "name: required field is missing" in msg
    assert "workload.kind: required field is missing" in msg


def test_invalid_cluster_name(tmp_path):
    msg = errors_of(tmp_path, GOOD.replace("name: demo", "name: My_Cluster"))
    assert "plan.yaml:1:1: name: 'My_Cluster' is not a valid name" in msg


def test_nothing_to_plan(tmp_path):
    assert "give a workload" in errors_of(tmp_path, "name: demo\n")


@pytest.mark.parametrize(("snippet", "expected"), [
    ("workload:\n  kind: training\n  model: llama-3-8b\n  precision: int4\n",
     "plan.yaml:5:3: workload.precision: int4 is an inference weight format"),
    ("workload:\n  kind: inference\n  model: llama-3-8b\n  method: lora\n",
     "plan.yaml:5:3: workload.method: applies to kind: finetune"),
    ("workload:\n  kind: inference\n  model: llama-3-8b\n  tokens_b: 10\n",
     "plan.yaml:5:3: workload.tokens_b: is the length of a training run"),
    ("workload:\n  kind: finetune\n  method: full\n  model: llama-3-8b\n  precision: int8\n",
     "workload.precision: full fine-tuning cannot train int8"),
    ("resources:\n  gpu: H100\n  nodes: 40\n",
     "plan.yaml:4:3: resources.nodes: 40 exceeds constraints.max_nodes (16)"),
    ("resources:\n  gpu: H100\n  spot: true\n",
     "resources.spot: is true but constraints.spot is never"),
    ("resources:\n  gpu: H100\n  spot: false\nconstraints:\n  spot: required\n",
     "resources.spot: is false but constraints.spot is required"),
    ("resources:\n  gpu: H100\n  provider: aws\nconstraints:\n  clouds: [gcp]\n",
     "resources.provider: 'aws' is not in constraints.clouds"),
    ("workload:\n  kind: inference\n  model: llama-3-8b\nconstraints:\n  budget_usd: 100\n",
     "constraints.budget_usd: needs a workload with a length"),
    ("resources:\n  offering: p5.48xlarge\n",
     "offering must be 'provider:instance_type'"),
    ("workload:\n  kind: inference\n  model: llama-3-8b\nconstraints:\n  clouds: []\n",
     "constraints.clouds: must not be empty"),
])
def test_impossible_combinations(tmp_path, snippet, expected):
    assert expected in errors_of(tmp_path, "name: demo\n" + snippet)


def test_errors_are_listed_in_file_order(tmp_path):
    msg = errors_of(tmp_path, """
        name: demo
        workload:
          kind: inference
          model: llama-3-8b
          batch: -1
          context: -1
        """)
    assert msg.index("workload.batch") < msg.index("workload.context")


def test_json_schema_describes_the_plan():
    from provision.plan.schema import json_schema

    schema = json_schema()
    assert schema["title"] == "provision plan.yaml"
    assert schema["additionalProperties"] is False
    assert {"name", "workload", "resources", "constraints"} <= set(schema["properties"])
    workload = schema["$defs"]["Workload"]
    assert set(workload["properties"]["kind"]["enum"]) == {"inference", "training", "finetune"}


def test_local_skus_and_faults_are_checked_before_any_node_exists(tmp_path):
    msg = errors_of(tmp_path, """
        name: demo
        target: local
        local:
          sku: h100-sxm-8gb
          nodes:
            - {}
            - {sku: l40s-48gb, faults: [nvlink-dwn]}
        """)
    assert "plan.yaml:4:3: local.sku: unknown SKU 'h100-sxm-8gb'; local nodes are cpu or a " \
           "simulated SKU: a100-sxm-40gb" in msg
    # a list of nodes is reported as a list: not also as "expected a whole number"
    assert "local.nodes[1].faults: unknown fault(s) 'nvlink-dwn'; known: dcgm-fail" in msg
    assert "whole number" not in msg and "constrained-int" not in msg


def test_a_union_field_reports_the_shape_it_was_given(tmp_path):
    msg = errors_of(tmp_path, "name: demo\ntarget: local\nlocal:\n  nodes: 40\n")
    assert msg.strip().endswith("plan.yaml:4:3: local.nodes: must be at most 32; got 40")
