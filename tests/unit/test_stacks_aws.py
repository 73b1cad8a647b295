"""The AWS stack program under Pulumi's mock engine: what it would create, and how."""

from __future__ import annotations

import pytest

from provision.backends.aws import AwsBackend
from provision.backends.base import ClusterSpec, NodeSpec, SshAccess
from provision.backends.offline import run_offline
from provision.catalog.offerings import Offering
from provision.errors import InputError
from provision.plan.cloud import AwsTarget

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests provision-test"
INSTANCE = "aws:ec2/instance:Instance"
TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"


def offering(instance_type: str = "p5.48xlarge", gpu: str = "H100", count: int = 8) -> Offering:
    return Offering("aws", instance_type, "us-east-1", "use1-az2", gpu, count, 192, 2048, 98.3,
                    30.0, "nvswitch", 3200, True)


def spec(nodes: int = 1, *, spot: bool = False, cidr: str | None = "198.51.100.7/32",
         settings: AwsTarget | None = None, o: Offering | None = None) -> ClusterSpec:
    return ClusterSpec(
        cluster="demo",
        nodes=tuple(NodeSpec(f"demo-{i}", "h100-sxm-80gb", "head" if i == 1 else "worker")
                    for i in range(1, nodes + 1)),
        ssh=SshAccess("ubuntu", KEY, "/nonexistent/id_ed25519", cidr),
        spot=spot, offering=o or offering(), settings=settings)


def run(s: ClusterSpec, **backend_kw):
    backend = AwsBackend("/nonexistent-state", detect_cidr=backend_kw.pop("detect", None))
    return run_offline(backend.component(s), fake_outputs=True)


def test_single_node_on_demand_is_plain():
    r = run(spec(1, o=offering("g6e.xlarge", "L40S", 1)))
    lt = r.named("demo-lt", TEMPLATE).inputs
    assert "instanceMarketOptions" not in lt  # on demand: no market options at all
    assert "placement" not in lt and not r.of_type("aws:ec2/placementGroup:PlacementGroup")
    (nic,) = lt["networkInterfaces"]
    assert "interfaceType" not in nic and nic["associatePublicIpAddress"] == "true"
    assert lt["instanceType"] == "g6e.xlarge"
    assert lt["metadataOptions"]["httpTokens"] == "required"  # IMDSv2 only
    assert lt["blockDeviceMappings"][0]["ebs"] == {
        "volumeSize": 200, "volumeType": "gp3", "encrypted": "true",
        "deleteOnTermination": "true"}
    assert r.named("demo-subnet").inputs["availabilityZoneId"] == "use1-az2"
    (node,) = r.outputs["nodes"]
    assert node["name"] == "demo-1" and node["role"] == "head" and node["spot"] is False
    assert node["address"].startswith("203.0.113.") and node["private_address"]
    assert node["ssh_user"] == "ubuntu" and node["instance_id"] == "demo-1-id"
    assert node["sku"] == "h100-sxm-80gb" and node["provider"] == "aws"


def test_multi_node_on_demand_gets_efa_and_a_cluster_placement_group():
    r = run(spec(2))
    (pg,) = r.of_type("aws:ec2/placementGroup:PlacementGroup")
    assert pg.inputs["strategy"] == "cluster"
    lt = r.named("demo-lt", TEMPLATE).inputs
    assert lt["placement"]["groupName"] == "provision-demo"
    nics = lt["networkInterfaces"]
    assert len(nics) == 32  # p5.48xlarge: one EFA per network card
    assert (nics[0]["networkCardIndex"], nics[0]["deviceIndex"], nics[0]["interfaceType"]) \
        == (0, 0, "efa")
    assert {(n["networkCardIndex"], n["deviceIndex"], n["interfaceType"]) for n in nics[1:]} \
        == {(card, 1, "efa-only") for card in range(1, 32)}
    assert "instanceMarketOptions" not in lt
    names = [n["name"] for n in r.outputs["nodes"]]
    assert names == ["demo-1", "demo-2"]
    assert [n["role"] for n in r.outputs["nodes"]] == ["head", "worker"]
    assert all(i.inputs["launchTemplate"]["id"] == "demo-lt-id"
               for i in r.of_type(INSTANCE))


def test_p4d_and_g6e_efa_counts_come_from_the_table():
    for itype, gpu, expected in (("p4d.24xlarge", "A100", 4), ("g6e.48xlarge", "L40S", 4)):
        r = run(spec(2, o=offering(itype, gpu, 8)))
        assert len(r.named("demo-lt", TEMPLATE).inputs["networkInterfaces"]) == expected


def test_single_node_spot():
    r = run(spec(1, spot=True))
    market = r.named("demo-lt", TEMPLATE).inputs["instanceMarketOptions"]
    assert market == {"marketType": "spot", "spotOptions": {
        "instanceInterruptionBehavior": "terminate", "spotInstanceType": "one-time"}}
    assert r.outputs["nodes"][0]["spot"] is True
    assert r.outputs["nodes"][0]["labels"]["market"] == "spot"


def test_multi_node_spot_that_stops_is_persistent_with_a_max_price():
    settings = AwsTarget(spot_interruption="stop", spot_max_price=25.5)
    r = run(spec(3, spot=True, settings=settings))
    market = r.named("demo-lt", TEMPLATE).inputs["instanceMarketOptions"]
    assert market["spotOptions"] == {"instanceInterruptionBehavior": "stop",
                                     "spotInstanceType": "persistent", "maxPrice": "25.5000"}
    assert len(r.of_type(INSTANCE)) == 3
    assert all(n["spot"] for n in r.outputs["nodes"])


def test_capacity_block_targets_the_reservation():
    settings = AwsTarget(market="capacity-block", capacity_reservation_id="cr-0123456789abcdef0")
    lt = run(spec(2, settings=settings)).named("demo-lt", TEMPLATE).inputs
    assert lt["instanceMarketOptions"] == {"marketType": "capacity-block"}
    assert lt["capacityReservationSpecification"] == {
        "capacityReservationTarget": {"capacityReservationId": "cr-0123456789abcdef0"}}


def test_ssh_only_from_the_operator_and_everything_inside_the_cluster():
    r = run(spec(2))
    ingress = r.of_type(INGRESS)
    ssh = [i.inputs for i in ingress if i.inputs.get("fromPort") == 22]
    assert ssh == [{"securityGroupId": "demo-sg-id", "ipProtocol": "tcp", "fromPort": 22,
                    "toPort": 22, "cidrIpv4": "198.51.100.7/32",
                    "description": "SSH from the operator",
                    "tags": {"provision:cluster": "demo"}}]
    intra = [i.inputs for i in ingress if i.inputs.get("referencedSecurityGroupId")]
    assert intra and intra[0]["ipProtocol"] == "-1"
    assert intra[0]["referencedSecurityGroupId"] == intra[0]["securityGroupId"]
    # nothing else opens an inbound port: no rule from anywhere
    assert not any(i.inputs.get("cidrIpv4") == "0.0.0.0/0" for i in ingress)
    out = [e.inputs for e in r.of_type(EGRESS)]
    assert any(e.get("referencedSecurityGroupId") == "demo-sg-id" for e in out)


def test_world_ssh_only_when_the_plan_writes_it():
    with pytest.raises(ValueError, match="refusing to open SSH"):
        from stacks.aws_cluster import AwsClusterArgs
        from stacks.common import NodeArgs, SshPolicy

        args = AwsClusterArgs("demo", "p5.48xlarge", "use1-az2", (NodeArgs("demo-1", "x"),),
                              SshPolicy(KEY, "ubuntu", ("0.0.0.0/0",)))
        args.ssh.checked_cidrs()
    r = run(spec(1, cidr="0.0.0.0/0"))  # written in access.operator_cidr: explicit
    ssh = [i.inputs for i in r.of_type(INGRESS) if i.inputs.get("fromPort") == 22]
    assert [s["cidrIpv4"] for s in ssh] == ["0.0.0.0/0"]


def test_operator_cidr_is_detected_when_not_given():
    r = run(spec(1, cidr=None), detect=lambda: "192.0.2.44")
    ssh = [i.inputs for i in r.of_type(INGRESS) if i.inputs.get("fromPort") == 22]
    assert [s["cidrIpv4"] for s in ssh] == ["192.0.2.44/32"]


def test_existing_network_and_elastic_ips():
    settings = AwsTarget(vpc_id="vpc-0abc", subnet_id="subnet-0def", public_ip="elastic")
    r = run(spec(2, settings=settings))
    assert not r.of_type("aws:ec2/vpc:Vpc") and not r.of_type("aws:ec2/subnet:Subnet")
    assert not r.of_type("aws:ec2/natGateway:NatGateway")  # the user's network, the user's NAT
    assert r.named("demo-sg").inputs["vpcId"] == "vpc-0abc"
    nics = r.named("demo-lt", TEMPLATE).inputs["networkInterfaces"]
    assert {n["subnetId"] for n in nics} == {"subnet-0def"}
    # 32 interfaces: EC2 refuses associatePublicIpAddress in any form (api_rules)
    assert not any("associatePublicIpAddress" in n for n in nics)
    eips = r.of_type("aws:ec2/eip:Eip")
    # one per instance, bound to its primary interface, never to the instance (AssociateAddress
    # refuses an instance with several interfaces); completion order varies, compare as a set
    assert len({e.inputs["networkInterface"] for e in eips}) == 2
    assert all(e.inputs["networkInterface"].startswith("eni-") for e in eips)
    assert not any("instance" in e.inputs for e in eips)
    assert all(n["address"].startswith("198.51.100.") and n["via"] is None
               for n in r.outputs["nodes"])


def test_image_is_the_dlami_release_the_ssm_parameter_names_unless_given():
    r = run(spec(1))
    tokens = [t for t, _ in r.invokes]
    assert tokens == ["aws:ssm/getParameter:getParameter", "aws:ec2/getAmi:getAmi"]
    assert r.invokes[0][1]["name"] == (
        "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/"
        "ami-id")
    assert r.invokes[1][1]["filters"] == [{"name": "image-id",
                                           "values": ["ami-0123456789abcdef0"]}]
    assert r.outputs["nodes"][0]["labels"]["image_family"] == "dlami"
    r = run(spec(1, settings=AwsTarget(ami="ami-0fedcba9876543210")))
    ((_, args),) = r.invokes
    assert args["filters"] == [{"name": "image-id", "values": ["ami-0fedcba9876543210"]}]
    r = run(spec(1, settings=AwsTarget(image="ubuntu-22.04")))
    ((token, args),) = r.invokes
    assert token == "aws:ec2/getAmi:getAmi"  # Canonical publishes no SSM parameter used here
    assert args["owners"] == ["099720109477"] and args["mostRecent"] is True
    assert r.outputs["nodes"][0]["labels"]["image_driver"] == "none"


def test_backend_refuses_what_does_not_match():
    gcp = offering()._replace(provider="gcp")
    with pytest.raises(InputError, match="AWS offering"):
        AwsBackend("/x", detect_cidr=None).component(spec(1, o=gcp))
    with pytest.raises(InputError, match="EFA table"):
        AwsBackend("/x", detect_cidr=None).component(
            spec(2, o=offering("g4dn.xlarge", "T4", 1), settings=AwsTarget(efa=True)))
    backend = AwsBackend("/x", detect_cidr=None)
    assert backend.config(spec(1)) == {"aws:region": "us-east-1"}
    assert [p.name for p in backend.plugins()] == ["aws"]
