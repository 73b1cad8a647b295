"""`provision preview` (offline and real) and the cloud/bare-metal plan sections, through the
installed console script."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from provision.backends.offline import SECRET, clean, run_offline
from tests.conftest import EXAMPLES, REPO

EXPECTED = {
    # p5.48xlarge × 2: an Elastic IP for the head's primary interface, private worker, NAT
    "aws-spot": {"aws:ec2/instance:Instance": 2, "aws:ec2/launchTemplate:LaunchTemplate": 1,
                 "aws:ec2/placementGroup:PlacementGroup": 1, "aws:ec2/eip:Eip": 2,
                 "aws:ec2/natGateway:NatGateway": 1,
                 "aws:ec2/securityGroup:SecurityGroup": 1, "aws:ec2/keyPair:KeyPair": 1},
    "gcp-a3": {"gcp:compute/instance:Instance": 2,
               "gcp:compute/resourcePolicy:ResourcePolicy": 1},
    "tpu-v5p": {"gcp:tpu/v2Vm:V2Vm": 1, "gcp:compute/firewall:Firewall": 2},
    "baremetal": {"pulumi-python:dynamic:Resource": 2},
}


@pytest.mark.parametrize("example", sorted(EXPECTED))
def test_examples_preview_offline_as_json(run_cli, example):
    proc = run_cli("preview", str(EXAMPLES / f"{example}.yaml"), "--offline", "-o", "json",
                   check=True)
    resources = json.loads(proc.stdout)
    assert all(set(r) == {"type", "name", "inputs"} for r in resources)
    counts: dict[str, int] = {}
    for r in resources:
        counts[r["type"]] = counts.get(r["type"], 0) + 1
    for kind, n in EXPECTED[example].items():
        assert counts.get(kind) == n, (kind, counts)
    assert "__provider" not in proc.stdout  # a dynamic provider's pickled code is not shown


def test_examples_plan(run_cli):
    for example in ("aws-spot", "gcp-a3", "tpu-v5p"):
        out = json.loads(run_cli("plan", str(EXAMPLES / f"{example}.yaml"), "-o", "json",
                                 check=True).stdout)
        expected = "gcp" if example != "aws-spot" else "aws"
        assert out["choice"]["provider"] == expected and out["choice"]["spot"] is True
    tpu = json.loads(run_cli("plan", str(EXAMPLES / "tpu-v5p.yaml"), "-o", "json").stdout)
    assert tpu["choice"]["instance_type"] == "tpu-v5p-16" and tpu["choice"]["hosts_per_node"] == 2
    bm = json.loads(run_cli("plan", str(EXAMPLES / "baremetal.yaml"), "-o", "json",
                            check=True).stdout)
    assert [h["name"] for h in bm["hosts"]] == ["gpu-a", "gpu-b"]
    assert bm["fits"] is True and bm["actions"] == ["power on"]
    assert bm["choice"]["provider"] == "baremetal" and bm["choice"]["nodes"] == 1
    assert bm["choice"]["price_per_hour"] == 0.0 and bm["choice"]["interconnect"] == "nvswitch"
    assert "needs 1 of the 2 hosts" in bm["warnings"][0]


def test_table_preview_names_the_choice(run_cli):
    out = run_cli("preview", str(EXAMPLES / "aws-spot.yaml"), "--offline", check=True).stdout
    assert "p5.48xlarge" in out and "spot" in out and "aws:ec2/instance:Instance" in out
    assert "resources (offline preview" in out


def test_gcp_preview_shows_the_project_or_exits_2_naming_gcp_project(run_cli, tmp_path):
    """Issue 15 item 3: pulumi-gcp reads no gcloud configuration; provision resolves it (the
    suite's gcloud configuration, tests/fixtures/cloud/gcloud, has project sim-project-123)."""
    table = run_cli("preview", str(EXAMPLES / "gcp-a3.yaml"), "--offline", check=True).stdout
    assert "project sim-project-123" in table and "gcloud configuration" in table
    resources = json.loads(run_cli("preview", str(EXAMPLES / "gcp-a3.yaml"), "--offline",
                                   "-o", "json", check=True).stdout)
    assert {r["inputs"].get("project") for r in resources} == {"sim-project-123"}
    proc = run_cli("preview", str(EXAMPLES / "tpu-v5p.yaml"), "--offline",
                   env={"CLOUDSDK_CONFIG": str(tmp_path / "no-gcloud"),
                        "HOME": str(tmp_path)})
    assert proc.returncode == 2 and "gcp.project" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_offline_preview_refuses_a_launch_the_cloud_refuses():
    """The mocks hold a launch template to EC2's launch rules (provision.backends.api_rules)."""
    import pulumi
    import pulumi_aws as aws

    from provision.backends.api_rules import ApiRefusal

    class Bad(pulumi.ComponentResource):
        def __init__(self) -> None:
            super().__init__("test:Bad", "bad")
            self.nodes = pulumi.Output.from_input([])
            aws.ec2.LaunchTemplate("bad-lt", network_interfaces=[
                {"device_index": 0, "network_card_index": 0, "interface_type": "efa",
                 "associate_public_ip_address": "true"},
                {"device_index": 1, "network_card_index": 1, "interface_type": "efa-only"}],
                opts=pulumi.ResourceOptions(parent=self))

    with pytest.raises(ApiRefusal, match="InvalidParameterCombination"):
        run_offline(Bad)


BAREMETAL = """\
name: lab
target: baremetal
workload: {kind: inference, model: llama-3.1-70b, precision: bf16, context: 32768, batch: 8}
baremetal:
  reinstall: {method: pxe}
  hosts:
    - address: 10.0.0.11
      sku: l4-24gb
      gpus: 1
      bmc: {endpoint: "https://10.0.1.11", username: admin, password_env: LAB_BMC_PW}
    - address: 10.0.0.12
      sku: l4-24gb
      gpus: 1
      bmc: {endpoint: "https://10.0.1.12", username: admin, password_file: bmc.pw}
"""


def test_secrets_never_reach_the_output(run_cli, tmp_path):
    plan = tmp_path / "lab.yaml"
    plan.write_text(BAREMETAL)
    (tmp_path / "bmc.pw").write_text("file-secret-8c1a2b\n")
    env = {"LAB_BMC_PW": "env-secret-5f9e3d"}
    outputs = []
    for args in (("preview", str(plan), "--offline", "-o", "json"),
                 ("preview", str(plan), "--offline"), ("plan", str(plan), "-o", "json")):
        proc = run_cli(*args, env=env)
        outputs.append(proc.stdout + proc.stderr)
    text = "\n".join(outputs)
    assert "env-secret-5f9e3d" not in text and "file-secret-8c1a2b" not in text
    assert "LAB_BMC_PW" in text  # the reference is shown, the value is not
    assert str((tmp_path / "bmc.pw").resolve()) in outputs[0]


def test_bare_metal_plan_that_does_not_fit_exits_3(run_cli, tmp_path):
    plan = tmp_path / "lab.yaml"
    plan.write_text(BAREMETAL)
    proc = run_cli("plan", str(plan))
    assert proc.returncode == 3 and "does not fit" in proc.stdout
    assert "such hosts in baremetal.hosts (the plan has 2)" in proc.stdout
    assert "max_nodes" not in proc.stdout


def test_secret_inputs_are_masked():
    import pulumi
    import pulumi_aws as aws

    run = run_offline(lambda: _secret_component(pulumi, aws))
    (template,) = run.of_type("aws:ec2/launchTemplate:LaunchTemplate")
    assert template.inputs["userData"] == SECRET
    assert "c2VjcmV0LXVzZXItZGF0YQ" not in json.dumps([r.to_json() for r in run.resources])
    assert clean({"a": 1.0, "b": [2.5], "__provider": "blob"}) == {"a": 1, "b": [2.5]}


def _secret_component(pulumi, aws):
    class Holder(pulumi.ComponentResource):
        def __init__(self) -> None:
            super().__init__("test:x:Holder", "h")
            aws.ec2.LaunchTemplate("lt", user_data=pulumi.Output.secret(
                "c2VjcmV0LXVzZXItZGF0YQ=="), opts=pulumi.ResourceOptions(parent=self))
            self.register_outputs({})

    return Holder()


def test_real_preview_without_the_cli_says_what_to_install(run_cli, tmp_path):
    bindir = Path(sys.executable).parent
    proc = run_cli("preview", str(EXAMPLES / "aws-spot.yaml"), "--state-dir",
                   str(tmp_path / "state"),
                   env={"PATH": str(bindir), "HOME": str(tmp_path / "home")})
    assert proc.returncode == 1
    assert "curl -fsSL https://get.pulumi.com | sh" in proc.stderr
    assert "pulumi plugin install resource aws" in proc.stderr


def test_preview_of_a_local_plan_is_an_input_error(run_cli, tmp_path):
    plan = tmp_path / "local.yaml"
    plan.write_text("name: here\ntarget: local\n")
    proc = run_cli("preview", str(plan), "--offline")
    assert proc.returncode == 2 and "podman" in proc.stderr


@pytest.mark.parametrize(("text", "where", "message"), [
    ("name: x\ntarget: gcp\nresources: {gpu: H100}\naws: {root_volume_gb: 100}\n", ":4:1",
     "aws: applies to target: aws or auto, not target: gcp"),
    ("name: x\ntarget: aws\nresources: {gpu: H100}\nconstraints: {clouds: [gcp]}\n", ":4:",
     "does not include the target 'aws'"),
    ("name: x\ntarget: aws\nresources: {gpu: H100}\naws: {market: capacity-block}\n", ":4:",
     "needs capacity_reservation_id"),
    ("name: x\ntarget: aws\nresources: {gpu: H100}\naws: {vpc_id: vpc-0abc}\n", ":4:",
     "give vpc_id and subnet_id together"),
    ("name: x\ntarget: gcp\nresources: {gpu: H100}\ngcp: {subnet_cidr: nonsense}\n", ":4:",
     "is not a CIDR block"),
    ("name: x\ntarget: aws\nresources: {gpu: H100}\naws: {imge: ubuntu-22.04}\n", ":4:",
     "did you mean 'image'"),
])
def test_cloud_sections_are_checked_with_file_and_line(run_cli, tmp_path, text, where, message):
    plan = tmp_path / "plan.yaml"
    plan.write_text(text)
    proc = run_cli("plan", str(plan))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"plan.yaml{where}" in proc.stderr and message in proc.stderr


def test_target_aws_limits_the_optimizer_to_aws(run_cli, tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text(textwrap.dedent("""\
        name: x
        target: aws
        workload: {kind: inference, model: llama-3.1-8b}
        """))
    out = json.loads(run_cli("plan", str(plan), "-o", "json", check=True).stdout)
    assert out["choice"]["provider"] == "aws"
    assert {a["provider"] for a in out["alternatives"]} <= {"aws"}


def test_plan_command_does_not_load_cloud_libraries():
    code = textwrap.dedent(f"""
        import sys
        sys.argv = ["provision", "plan", {str(EXAMPLES / "aws-spot.yaml")!r}]
        from provision.cli import main
        try:
            main()
        except SystemExit:
            pass
        heavy = sorted({{m.split(".")[0] for m in sys.modules}} &
                       {{"pulumi", "pulumi_aws", "pulumi_gcp", "boto3", "sushy", "pyghmi"}})
        print("HEAVY", heavy, file=sys.stderr)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert "HEAVY []" in proc.stderr, proc.stderr[-2000:]


def test_catalog_group_keeps_listing_and_has_refresh(run_cli):
    helptext = run_cli("catalog", "--help", check=True).stdout
    assert "refresh" in helptext and "--gpu" in helptext
    assert "--provider" in run_cli("catalog", "refresh", "--help", check=True).stdout
