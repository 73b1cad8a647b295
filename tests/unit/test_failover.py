"""Failover's pieces: which errors move a launch elsewhere (and how far), where it goes next,
what counts as a live node after a refresh, and how SSH reaches a node behind the head.

The error texts are the providers' own (EC2 and Compute Engine error codes, the Cloud TPU
message SkyPilot quotes in sky/backends/cloud_vm_ray_backend.py, whose failover blocks a zone
on capacity, a region on a regional quota and the whole cloud on GPUS_ALL_REGIONS).
"""

from __future__ import annotations

import shlex
import shutil
import subprocess

import pytest

from provision.backends.base import NodeRecord
from provision.backends.failover import classify, placements
from provision.backends.pulumi_backend import alive
from provision.inventory import host_vars
from provision.plan import load_plan
from provision.planner import make_plan
from tests.conftest import EXAMPLES


@pytest.mark.parametrize("text,kind,scope", [
    ("api error InsufficientInstanceCapacity: We currently do not have sufficient "
     "p5.48xlarge capacity in the Availability Zone you requested (us-east-1a).",
     "capacity", "zone"),
    ("Code: ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS, Message: The zone 'projects/p/zones/"
     "us-central1-a' does not have enough resources available", "capacity", "zone"),
    ("{'code': 8, 'message': 'There is no more capacity in the zone \"europe-west4-a\"; you "
     "can try in another zone where Cloud TPU Nodes are offered'}", "capacity", "zone"),
    ("VcpuLimitExceeded: You have requested more vCPU capacity than your current vCPU limit "
     "of 0 allows", "quota", "region"),
    ("Quota 'NVIDIA_H100_GPUS' exceeded.  Limit: 0.0 in region us-central1.", "quota",
     "region"),
    ("QUOTA_EXCEEDED: Quota 'GPUS_ALL_REGIONS' exceeded.  Limit: 1.0 globally.", "quota",
     "provider"),
])
def test_capacity_and_quota_errors_and_their_scope(text, kind, scope):
    found = classify(text)
    assert found is not None and (found.kind, found.scope) == (kind, scope)


def test_other_errors_do_not_fail_over():
    for text in ("error: no resource plugin 'pulumi-resource-aws' found",
                 "InvalidParameterCombination: The associatePublicIPAddress parameter cannot "
                 "be specified when launching with multiple network interfaces.",
                 "NoCredentialProviders: no valid providers in chain"):
        assert classify(text) is None


def test_placements_zone_then_region_then_within_the_price_limit(tmp_path):
    loaded = load_plan(EXAMPLES / "aws-spot.yaml")
    tries = placements(loaded, make_plan(loaded), "aws", limit=8)
    first, *rest = tries
    assert (first.offering.zone, first.why) == ("aps1-az2", "the optimizer's choice")
    same_region = [p for p in rest if p.offering.region == "ap-south-1"]
    assert {p.offering.zone for p in same_region} == {"aps1-az1", "aps1-az3"}
    assert rest[:len(same_region)] == same_region  # the region's other zones come first
    others = [p.candidate.price_per_hour for p in rest[len(same_region):]]
    assert others == sorted(others) and len(tries) == 8
    assert all(p.offering.instance_type == "p5.48xlarge" and p.candidate.nodes == 2
               for p in tries)
    # a price limit is a constraint: a zone above it is no fallback
    plan = tmp_path / "plan.yaml"
    plan.write_text((EXAMPLES / "aws-spot.yaml").read_text().replace(
        "  spot: allowed", "  spot: allowed\n  max_price_per_hour: 27"))
    limited = load_plan(plan)
    capped = placements(limited, make_plan(limited), "aws")
    assert capped and all(p.candidate.price_per_hour <= 27 for p in capped)
    assert len(capped) < len(placements(loaded, make_plan(loaded), "aws"))


def record(**kw) -> NodeRecord:
    base = dict(name="c-2", address="10.0.0.2", ssh_user="ubuntu", sku="h100-sxm-80gb",
                provider="aws", instance_id="i-2")
    return NodeRecord(**{**base, **kw})


def test_a_node_is_alive_only_when_its_refreshed_resource_runs():
    aws = "aws:ec2/instance:Instance"
    running = [{"type": aws, "outputs": {"id": "i-2", "instanceState": "running"}}]
    assert alive(record(), running)
    assert not alive(record(), [{"type": aws, "outputs": {"id": "i-2",
                                                          "instanceState": "stopped"}}])
    assert not alive(record(), [])  # terminated: gone from the refreshed stack
    gcp = record(provider="gcp", name="vm-1")
    assert not alive(gcp, [{"type": "gcp:compute/instance:Instance",
                            "outputs": {"name": "vm-1", "currentStatus": "TERMINATED"}}])
    tpu = record(provider="gcp", name="t-1", labels={"tpu": "slice"})
    assert not alive(tpu, [{"type": "gcp:tpu/v2Vm:V2Vm",
                            "outputs": {"name": "slice", "state": "PREEMPTED"}}])
    assert alive(tpu, [{"type": "gcp:tpu/v2Vm:V2Vm",
                        "outputs": {"name": "slice", "state": "READY"}}])
    assert alive(record(provider="baremetal"), [])  # hosts that exist regardless


@pytest.mark.skipif(shutil.which("ssh") is None, reason="needs the OpenSSH client")
def test_the_jump_through_the_head_is_what_ssh_understands():
    head = record(name="c-1", address="198.51.100.9", ssh_port=2222, role="head")
    worker = record(via="c-1")
    cluster_vars = {"ansible_ssh_private_key_file": "/state/c/ssh/id_ed25519",
                    "ansible_ssh_common_args": "-o UserKnownHostsFile=/state/c/known_hosts"}
    args = host_vars([head, worker], cluster_vars)["c-2"]["ansible_ssh_common_args"]
    # ssh -G prints the configuration ssh would use, without connecting anywhere
    out = subprocess.run(["ssh", "-G", *shlex.split(args), "ubuntu@10.0.0.2"],
                         capture_output=True, text=True, check=True).stdout
    config = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    hop = shlex.split(config["proxycommand"])
    assert hop[0] == "ssh" and hop[-2:] == ["-W", "%h:%p"]
    assert "ubuntu@198.51.100.9" in hop and hop[hop.index("-p") + 1] == "2222"
    assert hop[hop.index("-i") + 1] == "/state/c/ssh/id_ed25519"  # the hop gets the key
    assert "UserKnownHostsFile=/state/c/known_hosts" in hop  # and the known-hosts setting
    assert config["userknownhostsfile"] == "/state/c/known_hosts"
    assert "ansible_ssh_common_args" not in host_vars([head, worker], cluster_vars)["c-1"]
