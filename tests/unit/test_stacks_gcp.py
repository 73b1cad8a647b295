"""The GCP GPU VM stack program under Pulumi's mock engine."""

from __future__ import annotations

import pytest

from provision.backends.base import ClusterSpec, NodeSpec, SshAccess
from provision.backends.gcp import GcpBackend
from provision.backends.offline import run_offline
from provision.catalog.offerings import Offering
from provision.errors import InputError
from provision.plan.cloud import GcpTarget

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests provision-test"
INSTANCE = "gcp:compute/instance:Instance"
FIREWALL = "gcp:compute/firewall:Firewall"


def offering(machine: str = "a3-highgpu-8g", gpu: str = "H100", count: int = 8) -> Offering:
    return Offering("gcp", machine, "us-central1", "us-central1-a", gpu, count, 208, 1872,
                    88.0, 30.0, "nvswitch", 1000, True)


def spec(nodes: int, *, spot: bool, settings: GcpTarget | None = None,
         o: Offering | None = None, cidr: str = "198.51.100.7/32") -> ClusterSpec:
    return ClusterSpec(
        cluster="a3", nodes=tuple(NodeSpec(f"a3-{i}", "h100-sxm-80gb",
                                           "head" if i == 1 else "worker")
                                  for i in range(1, nodes + 1)),
        ssh=SshAccess("ubuntu", KEY, "/nonexistent/key", cidr), spot=spot,
        offering=o or offering(), settings=settings)


def run(s: ClusterSpec):
    return run_offline(GcpBackend("/nonexistent", detect_cidr=None).component(s),
                       fake_outputs=True)


def test_a3_spot_multi_node():
    r = run(spec(2, spot=True))
    vms = r.of_type(INSTANCE)
    assert [v.name for v in vms] == ["a3-1", "a3-2"]
    for vm in vms:
        i = vm.inputs
        assert i["machineType"] == "a3-highgpu-8g" and i["zone"] == "us-central1-a"
        assert i["scheduling"] == {"provisioningModel": "SPOT", "preemptible": True,
                                   "automaticRestart": False, "onHostMaintenance": "TERMINATE",
                                   "instanceTerminationAction": "DELETE"}
        assert i["metadata"] == {"ssh-keys": f"ubuntu:{KEY}", "enable-oslogin": "FALSE",
                                 "install-nvidia-driver": "True"}  # a Deep Learning VM image
        assert i["resourcePolicies"].endswith("/provision-a3-compact")
        nics = i["networkInterfaces"]
        assert len(nics) == 5 and {n["nicType"] for n in nics} == {"GVNIC"}  # 1 + 4 TCPX NICs
        assert nics[0]["accessConfigs"] == [{}] and "accessConfigs" not in nics[1]
        assert "guestAccelerators" not in i  # A3 bundles its GPUs
        assert i["tags"] == ["provision-a3"]
    (policy,) = r.of_type("gcp:compute/resourcePolicy:ResourcePolicy")
    assert policy.inputs["groupPlacementPolicy"] == {"collocation": "COLLOCATED"}
    assert policy.inputs["region"] == "us-central1"
    gpu_nets = [n for n in r.of_type("gcp:compute/network:Network") if "gpunet" in n.name]
    assert len(gpu_nets) == 4 and {n.inputs["mtu"] for n in gpu_nets} == {8244}
    nodes = r.outputs["nodes"]
    assert [n["spot"] for n in nodes] == [True, True]
    assert nodes[0]["address"].startswith("203.0.113.") and nodes[0]["private_address"]
    assert nodes[0]["labels"]["gpudirect_nics"] == "4"


def test_firewall_ssh_from_operator_and_internal_traffic():
    r = run(spec(2, spot=True))
    ssh = r.named("a3-net-ssh", FIREWALL).inputs
    assert ssh["sourceRanges"] == ["198.51.100.7/32"]
    assert ssh["allows"] == [{"protocol": "tcp", "ports": ["22"]}]
    assert ssh["targetTags"] == ["provision-a3"] and ssh["direction"] == "INGRESS"
    internal = r.named("a3-net-internal", FIREWALL).inputs
    assert internal["sourceTags"] == internal["targetTags"] == ["provision-a3"]
    assert {a["protocol"] for a in internal["allows"]} == {"tcp", "udp", "icmp"}
    assert not any("0.0.0.0/0" in f.inputs.get("sourceRanges", []) for f in r.of_type(FIREWALL))
    with pytest.raises(ValueError, match="refusing to open SSH"):
        from stacks.common import SshPolicy

        SshPolicy(KEY, "ubuntu", ("0.0.0.0/0",)).checked_cidrs()


def test_single_node_standard_has_no_placement_or_gpudirect():
    r = run(spec(1, spot=False, o=offering("g2-standard-8", "L4", 1)))
    (vm,) = r.of_type(INSTANCE)
    assert vm.inputs["scheduling"] == {"provisioningModel": "STANDARD",
                                       "onHostMaintenance": "TERMINATE",
                                       "automaticRestart": True}
    assert "resourcePolicies" not in vm.inputs
    assert len(vm.inputs["networkInterfaces"]) == 1
    assert not r.of_type("gcp:compute/resourcePolicy:ResourcePolicy")
    assert r.outputs["nodes"][0]["spot"] is False


def test_settings_existing_network_preemptible_and_disk():
    settings = GcpTarget(network="shared-vpc", subnetwork="shared-sub", provisioning="preemptible",
                         boot_disk_gb=1000, image="projects/p/global/images/family/f",
                         gpudirect=False, labels={"team": "ml"})
    r = run(spec(2, spot=False, settings=settings))
    assert not r.of_type("gcp:compute/network:Network")
    vm = r.named("a3-1", INSTANCE).inputs
    assert vm["scheduling"] == {"preemptible": True, "automaticRestart": False,
                                "onHostMaintenance": "TERMINATE"}
    assert vm["networkInterfaces"][0]["subnetwork"] == "shared-sub"
    assert vm["bootDisk"]["initializeParams"] == {"image": "projects/p/global/images/family/f",
                                                  "size": 1000, "type": "pd-balanced"}
    assert vm["labels"] == {"provision-cluster": "a3", "team": "ml", "provision-role": "head"}
    assert r.named("a3-net-ssh", FIREWALL).inputs["network"] == "shared-vpc"


def test_a3_ultra_defaults_to_hyperdisk():
    r = run(spec(1, spot=False, o=offering("a3-ultragpu-8g", "H200", 8)))
    (vm,) = r.of_type(INSTANCE)
    assert vm.inputs["bootDisk"]["initializeParams"]["type"] == "hyperdisk-balanced"


def test_backend_config_and_refusals():
    backend = GcpBackend("/x", detect_cidr=None)
    settings = GcpTarget(project="my-project-123")
    assert backend.config(spec(1, spot=False, settings=settings)) == {
        "gcp:zone": "us-central1-a", "gcp:region": "us-central1", "gcp:project": "my-project-123"}
    with pytest.raises(InputError, match="GCP offering"):
        backend.component(spec(1, spot=False, o=offering()._replace(provider="aws")))
    with pytest.raises(InputError, match="no zone"):
        backend.component(spec(1, spot=False, o=offering()._replace(zone="")))
