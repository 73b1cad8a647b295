"""What EC2 refuses or leaves running, encoded from its documentation and its own data, and the
AWS stack and backend held to it.

Independent evidence: the refusals are quoted from the EC2 API reference (and the error text an
account returned, aws/karpenter-provider-aws#5666); instance-type facts (network cards, EFA
interfaces, hibernation) come from AWS's `describe-instance-types` output as moto ships it;
spot-request behaviour runs against moto's EC2.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from provision.backends.api_rules import ApiRefusal, launch_refusal
from provision.backends.aws import AwsBackend
from provision.backends.offline import run_offline
from provision.errors import InputError
from provision.plan.cloud import AwsTarget
from stacks.aws_data import EFA_INTERFACES, hibernation_refusal
from tests.unit.test_stacks_aws import TEMPLATE, offering, spec


def instance_types() -> dict:
    import moto

    path = Path(moto.__file__).parent / "ec2" / "resources" / "instance_types.json.gz"
    with gzip.open(path) as fh:
        return json.load(fh)


def run(s):
    return run_offline(AwsBackend("/nonexistent", detect_cidr=None).component(s),
                       fake_outputs=True)


# -- item 1: multi-interface launches and public addresses -----------------------------------
def test_the_rule_refuses_the_old_multi_nic_public_ip_launch():
    """The launch the flagship example used to make: 32 EFA interfaces and a public IP."""
    nics = [{"networkCardIndex": 0, "deviceIndex": 0, "interfaceType": "efa",
             "associatePublicIpAddress": "true"}]
    nics += [{"networkCardIndex": c, "deviceIndex": 1, "interfaceType": "efa-only"}
             for c in range(1, 32)]
    refused = launch_refusal({"networkInterfaces": nics})
    assert refused is not None and refused.code == "InvalidParameterCombination"
    assert "multiple network interfaces" in refused.message
    # "false" is refused too: the parameter may not be specified at all
    nics[0]["associatePublicIpAddress"] = "false"
    assert launch_refusal({"networkInterfaces": nics}) is not None
    del nics[0]["associatePublicIpAddress"]
    assert launch_refusal({"networkInterfaces": nics}) is None
    assert launch_refusal({"networkInterfaces": [{"associatePublicIpAddress": "true"}]}) is None


@pytest.mark.parametrize("itype,gpu", [("p5.48xlarge", "H100"), ("p4d.24xlarge", "A100"),
                                       ("g6e.48xlarge", "L40S")])
def test_multi_nic_types_get_an_eip_head_private_workers_and_a_nat(itype, gpu):
    r = run(spec(3, o=offering(itype, gpu, 8)))  # the mocks would raise on a refused launch
    nics = r.named("demo-lt", TEMPLATE).inputs["networkInterfaces"]
    assert len(nics) == EFA_INTERFACES[itype] > 1
    (eip,) = [e for e in r.of_type("aws:ec2/eip:Eip") if e.name == "demo-1-eip"]
    assert eip.inputs["networkInterface"].startswith("eni-") and "instance" not in eip.inputs
    head, *workers = r.outputs["nodes"]
    assert head["address"].startswith("198.51.100.") and head["labels"]["access"] == "eip"
    assert all(w["via"] == "demo-1" and w["address"] == w["private_address"] for w in workers)
    (nat,) = r.of_type("aws:ec2/natGateway:NatGateway")
    routes = r.named("demo-rt").inputs["routes"]
    # the operator's replies leave through the internet gateway, the rest through the NAT
    assert {"cidrBlock": "198.51.100.7/32", "gatewayId": "demo-igw-id"} in routes
    assert {"cidrBlock": "0.0.0.0/0", "natGatewayId": "demo-nat-id"} in routes
    assert nat.inputs["subnetId"] == "demo-nat-subnet-id"
    assert r.named("demo-subnet").inputs["cidrBlock"] == "10.42.0.0/17"


def test_single_interface_nodes_keep_their_launch_public_ip():
    r = run(spec(2, o=offering("g6e.xlarge", "L40S", 1)))
    (nic,) = r.named("demo-lt", TEMPLATE).inputs["networkInterfaces"]
    assert nic["associatePublicIpAddress"] == "true"
    assert not r.of_type("aws:ec2/eip:Eip") and not r.of_type("aws:ec2/natGateway:NatGateway")
    assert all(n["via"] is None and n["address"].startswith("203.0.113.")
               for n in r.outputs["nodes"])


def test_all_private_nodes_get_ssm_and_nothing_else():
    r = run(spec(2, settings=AwsTarget(public_ip="none")))
    assert all(n["via"] is None and n["address"] == n["private_address"]
               for n in r.outputs["nodes"])
    (attach,) = r.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    assert attach.inputs["policyArn"] == "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
    assert not r.of_type("aws:iam/rolePolicy:RolePolicy")
    assert "iamInstanceProfile" in r.named("demo-lt", TEMPLATE).inputs
    ingress = [i for i in r.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
               if i.inputs.get("fromPort") == 22]
    assert ingress  # SSH stays limited to the operator CIDR, reachable from inside the VPC


def test_checkpoint_bucket_read_only_and_no_role_when_not_needed():
    r = run(spec(2, settings=AwsTarget(checkpoint_bucket="team-ckpt")))
    (policy,) = r.of_type("aws:iam/rolePolicy:RolePolicy")
    statements = json.loads(policy.inputs["policy"])["Statement"]
    assert {(tuple(s["Action"]), s["Resource"]) for s in statements} == {
        (("s3:ListBucket",), "arn:aws:s3:::team-ckpt"),
        (("s3:GetObject",), "arn:aws:s3:::team-ckpt/*")}
    assert not r.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")  # no SSM needed
    plain = run(spec(2))
    assert not plain.of_type("aws:iam/role:Role")
    assert "iamInstanceProfile" not in plain.named("demo-lt", TEMPLATE).inputs


# -- AWS's own instance-type data -------------------------------------------------------------
def test_efa_table_matches_describe_instance_types():
    data = instance_types()
    for itype, count in EFA_INTERFACES.items():
        info = data[itype]["NetworkInfo"]
        assert (info.get("EfaInfo") or {}).get("MaximumEfaInterfaces") == count, itype
        assert count <= info["MaximumNetworkCards"] or count == 1, itype


def test_no_gpu_type_hibernates_and_the_backend_refuses_it():
    data = instance_types()
    gpu_types = {k: v for k, v in data.items() if (v.get("GpuInfo") or {}).get("Gpus")}
    assert len(gpu_types) > 50
    for itype, info in gpu_types.items():
        gpus = sum(g["Count"] for g in info["GpuInfo"]["Gpus"]) or 1  # fractional (g6f)
        assert hibernation_refusal(itype, gpus) is not None
        assert info.get("HibernationSupported") is False, itype  # the rule's evidence
    with pytest.raises(InputError, match=r"aws\.spot_interruption: hibernate"):
        run(spec(2, spot=True, settings=AwsTarget(spot_interruption="hibernate")))


def test_persistent_requests_need_stop_or_hibernate():
    """SpotMarketOptions: persistent requests only with interruption stop or hibernate."""
    bad = {"instanceMarketOptions": {"marketType": "spot", "spotOptions": {
        "spotInstanceType": "persistent", "instanceInterruptionBehavior": "terminate"}}}
    assert launch_refusal(bad).code == "InvalidParameterCombination"
    for behavior in ("stop", "terminate"):
        r = run(spec(2, spot=True, settings=AwsTarget(spot_interruption=behavior)))
        lt = r.named("demo-lt", TEMPLATE).inputs
        assert launch_refusal(lt) is None
        kinds = {t["resourceType"] for t in lt["tagSpecifications"]}
        assert "spot-instances-request" in kinds  # how `down` finds the requests


def test_capacity_reservations():
    r = run(spec(2, settings=AwsTarget(capacity_reservation_id="cr-0123456789abcdef0")))
    lt = r.named("demo-lt", TEMPLATE).inputs
    assert "instanceMarketOptions" not in lt  # an On-Demand Capacity Reservation
    assert lt["capacityReservationSpecification"]["capacityReservationTarget"] == {
        "capacityReservationId": "cr-0123456789abcdef0"}
    with pytest.raises(InputError, match="capacity reservation serves On-Demand"):
        run(spec(2, spot=True, settings=AwsTarget(capacity_reservation_id="cr-0a")))
    assert launch_refusal({"instanceMarketOptions": {"marketType": "capacity-block"}}).code \
        == "InvalidParameterValue"


def test_eip_bound_to_a_multi_nic_instance_is_refused():
    from provision.backends.api_rules import refusal

    registered = {
        "lt-1": ("aws:ec2/launchTemplate:LaunchTemplate", {"networkInterfaces": [{}, {}]}),
        "i-1": ("aws:ec2/instance:Instance", {"launchTemplate": {"id": "lt-1"}}),
    }
    found = refusal("aws:ec2/eip:Eip", {"instance": "i-1"}, registered.get)
    assert isinstance(found, ApiRefusal) and "multiple interfaces" in found.message
    assert refusal("aws:ec2/eip:Eip", {"networkInterface": "eni-1"}, registered.get) is None


# -- item 5: spot requests that outlive down --------------------------------------------------
def test_down_cancels_the_clusters_persistent_spot_requests_only():
    import boto3
    from moto import mock_aws

    from provision.backends.aws_api import cancel_cluster_requests, leftover_requests

    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-east-1")

        def request(cluster: str) -> str:
            return ec2.request_spot_instances(
                InstanceCount=1, Type="persistent",
                LaunchSpecification={"ImageId": "ami-12c6146b", "InstanceType": "p5.48xlarge"},
                TagSpecifications=[{"ResourceType": "spot-instances-request", "Tags": [
                    {"Key": "provision:cluster", "Value": cluster}]}],
            )["SpotInstanceRequests"][0]["SpotInstanceRequestId"]

        mine, other = request("demo"), request("someone-else")
        before = leftover_requests(ec2, "demo")
        assert len(before) == 1 and mine in before[0]  # `down` would report it as left
        assert cancel_cluster_requests(ec2, "demo") == [mine]
        assert leftover_requests(ec2, "demo") == []
        states = {r["SpotInstanceRequestId"]: r["State"]
                  for r in ec2.describe_spot_instance_requests()["SpotInstanceRequests"]}
        assert states.get(other) == "active"  # another cluster's request is left alone
