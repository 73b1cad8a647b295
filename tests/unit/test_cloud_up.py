"""`provision up`, `status`, `recover` and `down` end to end on clouds, through the installed CLI,
against a SIMULATED cloud (tests/fixtures/cloud/sim_engine.py): the real stack programs run
under Pulumi's mock engine, which refuses what AWS and GCP refuse (provision.backends.api_rules,
AWS's instance-type data) and answers launches in chosen zones with the providers' capacity and
quota errors. Converge runs a stand-in playbook on the controller that checks, through Ansible,
how each node would be reached (the simulated nodes' documentation-range addresses are never
contacted). AWS's spot-request API is moto's server on 127.0.0.1.

Rules exercised here and where they are stated:
- capacity failover, zone → region → next offering, with each failed attempt rolled back
  (SkyPilot's FailoverCloudErrorHandlerV2: capacity blocks a zone, a regional quota a region);
- EC2 refuses a public IP at launch with several network interfaces (EC2 API reference,
  AssociatePublicIpAddress; aws/karpenter-provider-aws#5666): the head gets an Elastic IP on its
  primary interface, workers are reached through it;
- a spot instance terminated since the last `up` is lost once the stack is refreshed (Pulumi:
  "Repairing state with pulumi refresh"); a preempted TPU never returns by itself (Cloud TPU
  docs, preemptible/spot TPUs) and is recreated;
- a persistent spot request outlives its instance (EC2 User Guide, "Cancel a Spot Instance
  request"): `down` cancels it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

FIXTURES = REPO / "tests" / "fixtures" / "cloud"
RUNNER = "tests.fixtures.cloud.sim_engine:SimulatedRunner"
INSTANCE = "aws:ec2/instance:Instance"
DLAMI_PARAM = ("/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/"
               "latest/ami-id")

AWS_PLAN = """\
name: {name}
target: aws
workload: {{kind: finetune, method: full, model: qwen2.5-7b, context: 4096, tokens_b: 2}}
resources: {{gpu: H100, nodes: 2, spot: true}}
constraints: {{spot: allowed}}
aws: {{image: dlami-base, spot_interruption: stop}}
access: {{operator_cidr: 203.0.113.4/32}}
verify: {{enabled: false}}
"""


@pytest.fixture(scope="module")
def moto_server():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


class Sim:
    """One simulated cloud, its provision state, and the CLI pointed at both."""

    def __init__(self, root: Path, run_cli, endpoint: str) -> None:
        self.root = root
        self.cloud = root / "cloud"
        self.cloud.mkdir()
        self.run_cli = run_cli
        self.env = {
            "PROVISION_PULUMI_RUNNER": RUNNER, "PROVISION_SIM_CLOUD": str(self.cloud),
            "PROVISION_PLAYBOOKS": str(FIXTURES / "playbooks"),
            "PROVISION_STATE_DIR": str(root / "state"),
            "PROVISION_INVENTORIES": str(root / "inventories"), "CI": "true",
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
            "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing", "CLOUDSDK_CONFIG": str(FIXTURES / "gcloud"),
        }
        self.scenario({})

    def scenario(self, data: dict) -> None:
        (self.cloud / "scenario.json").write_text(json.dumps(data))

    def plan(self, text: str) -> Path:
        path = self.root / "plan.yaml"
        path.write_text(text)
        return path

    def cli(self, *args: str, expect: int = 0, env: dict | None = None) -> dict:
        proc = self.run_cli(*args, env={**self.env, **(env or {})}, timeout=300)
        assert proc.returncode == expect, proc.stdout[-3000:] + proc.stderr[-5000:]
        return json.loads(proc.stdout) if "-o" in args else {"stderr": proc.stderr}

    def state(self) -> dict:
        return json.loads((self.cloud / "cloud.json").read_text())

    def log(self, kind: str = INSTANCE) -> list[tuple[str, str, str | None]]:
        return [(e["op"], e["name"], e["zone"]) for e in self.state()["log"]
                if e["type"] == kind]

    def resources(self, stack: str, kind: str | None = None) -> list[dict]:
        found = self.state()["stacks"].get(stack, {"resources": {}})["resources"].values()
        return [r for r in found if kind in (None, r["type"])]


@pytest.fixture
def sim(tmp_path, run_cli, moto_server) -> Sim:
    return Sim(tmp_path, run_cli, moto_server)


def test_aws_failover_refresh_recovery_pinned_image_and_down(sim):
    import boto3

    plan = sim.plan(AWS_PLAN.format(name="fo"))
    # az2: the first instance launches, the second finds no capacity (a partial cluster);
    # az3: no capacity at all. The optimizer's choice is ap-south-1 aps1-az2.
    sim.scenario({"capacity": [
        {"zone": "aps1-az2", "code": "InsufficientInstanceCapacity", "from_instance": 2},
        {"zone": "aps1-az3", "code": "InsufficientInstanceCapacity"}]})
    out = sim.cli("up", str(plan), "-o", "json")
    attempts = [(a["zone"], a["status"], a["cleaned_up"]) for a in out["attempts"]]
    assert attempts == [("aps1-az2", "capacity", True), ("aps1-az3", "capacity", True),
                        ("aps1-az1", "launched", None)]
    assert "InsufficientInstanceCapacity" in out["attempts"][0]["reason"]
    assert out["attempts"][1]["why"] == "another zone of the same region"
    # all-or-nothing: the instance that did launch in az2 (either node: they launch in
    # parallel) was removed before az1 was tried; nothing was launched in az3
    log = sim.log()
    assert [(op, zone) for op, _, zone in log] == [
        ("create", "aps1-az2"), ("delete", "aps1-az2"), ("create", "aps1-az1"),
        ("create", "aps1-az1")]
    assert log[0][1] == log[1][1] and {n for _, n, _ in log[2:]} == {"fo-1", "fo-2"}
    assert {r["zone"] for r in sim.resources("provision-aws/fo", INSTANCE)} == {"aps1-az1"}

    # p5.48xlarge has 32 network cards: no public IP at launch; the head's Elastic IP sits on
    # its primary interface; the worker is private and reached through the head
    (template,) = sim.resources("provision-aws/fo", "aws:ec2/launchTemplate:LaunchTemplate")
    nics = template["inputs"]["networkInterfaces"]
    assert len(nics) == 32 and not any("associatePublicIpAddress" in n for n in nics)
    eips = {e["name"]: e for e in sim.resources("provision-aws/fo", "aws:ec2/eip:Eip")}
    assert set(eips) == {"fo-1-eip", "fo-nat-eip"}  # the head's, and the NAT gateway's
    eip = eips["fo-1-eip"]
    head, worker = out["nodes"]
    assert eip["inputs"]["networkInterface"].startswith("eni-") and "instance" not in eip["inputs"]
    assert head["address"] == eip["outputs"]["publicIp"] and head["via"] is None
    assert worker["address"] == worker["private_address"] and worker["via"] == "fo-1"
    hosts = yaml.safe_load((sim.root / "inventories" / "fo" / "hosts.yml").read_text())
    proxy = hosts["all"]["hosts"]["fo-2"]["ansible_ssh_common_args"]
    assert f"ubuntu@{head['address']}" in proxy and "ProxyCommand=ssh" in proxy
    assert hosts["all"]["hosts"]["fo-1"]["provision_image_family"] == "dlami"
    assert out["converge"]["status"] == "successful"  # the stand-in play's checks passed
    nodes_stage = json.loads((sim.root / "state" / "fo" / "state.json").read_text())
    assert [a["status"] for a in nodes_stage["stages"]["nodes"]["attempts"]] == \
        ["capacity", "capacity", "launched"]

    # the worker's spot instance is terminated, and AWS publishes a new DLAMI release: status
    # and recover see the loss only after a refresh; the replacement keeps the pinned image,
    # so no other node is replaced for the new release
    sim.scenario({"events": [{"terminate": "fo-2"}],
                  "ssm": {DLAMI_PARAM: "ami-0fedcba9876543210"}})
    status = sim.cli("status", "fo", "-o", "json")
    assert {n["name"]: n["state"] for n in status["nodes"]} == {"fo-1": "running",
                                                                 "fo-2": "lost"}
    recovered = sim.cli("recover", "fo", "-o", "json")
    assert recovered["lost"] == ["fo-2"] and recovered["replaced"] == ["fo-2"]
    assert sim.log()[-2:] == [("terminated", "fo-2", "aps1-az1"), ("create", "fo-2", "aps1-az1")]
    (template,) = sim.resources("provision-aws/fo", "aws:ec2/launchTemplate:LaunchTemplate")
    assert template["inputs"]["imageId"] == "ami-0123456789abcdef0"
    assert ("delete", "fo-1", "aps1-az1") not in sim.log()
    # --refresh-image moves to the new release
    sim.cli("up", str(plan), "--refresh-image", "-o", "json")
    (template,) = sim.resources("provision-aws/fo", "aws:ec2/launchTemplate:LaunchTemplate")
    assert template["inputs"]["imageId"] == "ami-0fedcba9876543210"

    # spot_interruption: stop makes persistent requests; down cancels the cluster's
    ec2 = boto3.client("ec2", region_name="ap-south-1", endpoint_url=sim.env["AWS_ENDPOINT_URL"],
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    request = ec2.request_spot_instances(
        InstanceCount=1, Type="persistent",
        LaunchSpecification={"ImageId": "ami-12c6146b", "InstanceType": "p5.48xlarge"},
        TagSpecifications=[{"ResourceType": "spot-instances-request",
                            "Tags": [{"Key": "provision:cluster", "Value": "fo"}]}],
    )["SpotInstanceRequests"][0]["SpotInstanceRequestId"]
    gone = sim.cli("down", "fo", "--yes", "-o", "json")
    assert gone["leftovers"] == []
    live = [r for r in ec2.describe_spot_instance_requests(
        SpotInstanceRequestIds=[request])["SpotInstanceRequests"]
        if r["State"] in ("open", "active", "disabled")]
    assert live == []
    assert "provision-aws/fo" not in sim.state()["stacks"]


def test_capacity_everywhere_rolls_every_attempt_back(sim):
    plan = sim.plan(AWS_PLAN.format(name="none"))
    sim.scenario({"capacity": [{"zone": z, "code": "InsufficientInstanceCapacity",
                                "from_instance": 2}
                               for z in ("aps1-az1", "aps1-az2", "aps1-az3")]})
    out = sim.cli("up", str(plan), "-o", "json", expect=1,
                  env={"PROVISION_MAX_LAUNCH_ATTEMPTS": "3"})
    assert [(a["zone"], a["status"], a["cleaned_up"]) for a in out["attempts"]] == [
        ("aps1-az2", "capacity", True), ("aps1-az3", "capacity", True),
        ("aps1-az1", "capacity", True)]
    assert out["nodes"] == [] and out["converge"] is None
    creates = [e for e in sim.log() if e[0] == "create"]
    deletes = [e for e in sim.log() if e[0] == "delete"]
    assert len(creates) == 3 and sorted(creates) == sorted(("create", *e[1:]) for e in deletes)
    assert "provision-aws/none" not in sim.state()["stacks"]  # nothing left running or billed


def test_regional_quota_skips_the_region(sim):
    plan = sim.plan(AWS_PLAN.format(name="quota"))
    sim.scenario({"capacity": [{"zone": "aps1-az2", "code": "VcpuLimitExceeded"}]})
    out = sim.cli("up", str(plan), "-o", "json")
    statuses = [(a["region"], a["zone"], a["status"]) for a in out["attempts"]]
    assert statuses[0] == ("ap-south-1", "aps1-az2", "quota")
    # the other ap-south-1 zones share the regional vCPU limit: skipped, not tried
    assert {s for r, _, s in statuses[1:-1] if r == "ap-south-1"} == {"skipped"}
    assert statuses[-1][2] == "launched" and statuses[-1][0] != "ap-south-1"
    assert out["attempts"][-1]["why"] == "the same offering in another region"
    assert {e[2] for e in sim.log() if e[0] == "create"} - {"aps1-az2"} == {statuses[-1][1]}


def test_gcp_failover_with_the_gcloud_project_and_tpu_recovery(sim):
    plan = sim.plan((REPO / "examples" / "gcp-a3.yaml").read_text()
                    + "verify: {enabled: false}\n")
    sim.scenario({"capacity": [{"zone": "us-east4-a", "code": "ZONE_RESOURCE_POOL_EXHAUSTED",
                                "from_instance": 2}]})
    out = sim.cli("up", str(plan), "-o", "json")
    assert [(a["zone"], a["status"]) for a in out["attempts"]] == [
        ("us-east4-a", "capacity"), ("us-east4-b", "launched")]
    stack = sim.state()["stacks"]["provision-gcp/gcp-a3"]
    # pulumi-gcp would not have read gcloud's configuration: provision passed the project
    assert stack["config"]["gcp:project"] == "sim-project-123"
    vms = sim.resources("provision-gcp/gcp-a3", "gcp:compute/instance:Instance")
    assert {v["inputs"]["project"] for v in vms} == {"sim-project-123"}
    assert {v["zone"] for v in vms} == {"us-east4-b"}
    labels = out["nodes"][0]["labels"]
    assert labels["network_fabric"] == "gcp-tcpx" and labels["image_family"] == "dlvm"

    tpu = sim.plan((REPO / "examples" / "tpu-v5p.yaml").read_text()
                   + "verify: {enabled: false}\n")
    sim.cli("up", str(tpu), "-o", "json")
    sim.scenario({"events": [{"tpu_state": ["tpu-v5p", "PREEMPTED"]}]})
    status = sim.cli("status", "tpu-v5p", "-o", "json")
    assert {n["state"] for n in status["nodes"]} == {"lost"}  # both hosts of the slice
    recovered = sim.cli("recover", "tpu-v5p", "-o", "json")
    assert recovered["replaced"] == ["tpu-v5p-1", "tpu-v5p-2"]
    assert sim.log("gcp:tpu/v2Vm:V2Vm")[-2:] == [("delete", "tpu-v5p", "europe-west4-b"),
                                                  ("create", "tpu-v5p", "europe-west4-b")]
    (slice_,) = sim.resources("provision-gcp/tpu-v5p", "gcp:tpu/v2Vm:V2Vm")
    assert slice_["outputs"]["state"] == "READY"
