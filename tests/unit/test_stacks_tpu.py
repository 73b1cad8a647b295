"""TPU VM stack program under Pulumi's mock engine, and recreate-on-preemption decisions."""

from __future__ import annotations

from typing import Any

import pytest

from provision.backends.base import ClusterSpec, NodeSpec, SshAccess
from provision.backends.gcp import GcpBackend
from provision.backends.offline import run_offline
from provision.backends.pulumi_runner import StackProgram
from provision.backends.tpu_recovery import (
    MAX_RECREATES,
    Action,
    decide,
    recreate_preempted,
)
from provision.catalog.offerings import Offering
from provision.errors import InputError
from stacks.gcp_data import tpu_slice

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests provision-test"
TPU = "gcp:tpu/v2Vm:V2Vm"


def spec(slice_name: str, gpu: str, sku: str, hosts: int, *, spot: bool,
         slices: int = 1) -> ClusterSpec:
    o = Offering("gcp", slice_name, "us-east5", "us-east5-a", gpu, 8, None, None, 20.0, 6.0,
                 "ici", 100, False, hosts=hosts)
    count = slices * hosts
    return ClusterSpec(
        cluster="tp", nodes=tuple(NodeSpec(f"tp-{i}", sku, "head" if i == 1 else "worker")
                                  for i in range(1, count + 1)),
        ssh=SshAccess("ubuntu", KEY, "/nonexistent/key", "198.51.100.7/32"), spot=spot,
        offering=o)


def run(s: ClusterSpec):
    return run_offline(GcpBackend("/x", detect_cidr=None).component(s), fake_outputs=True)


@pytest.mark.parametrize(("name", "accel", "chips", "hosts", "runtime"), [
    ("tpu-v5litepod-8", "v5litepod-8", 8, 1, "v2-alpha-tpuv5-lite"),
    ("tpu-v5litepod-16", "v5litepod-16", 16, 4, "v2-alpha-tpuv5-lite"),
    ("tpu-v5p-16", "v5p-16", 8, 2, "v2-alpha-tpuv5"),
    ("v6e-8", "v6e-8", 8, 1, "v2-alpha-tpuv6e"),
    ("tpu-v4-32", "v4-32", 16, 4, "tpu-ubuntu2204-base"),
])
def test_slice_names_map_to_the_tpu_api(name, accel, chips, hosts, runtime):
    s = tpu_slice(name)
    assert (s.accelerator_type, s.chips, s.hosts, s.runtime_version) == (accel, chips, hosts,
                                                                       runtime)
    with pytest.raises(ValueError, match="not a TPU slice name"):
        tpu_slice("a3-highgpu-8g")


def test_v5e_single_host_on_demand():
    r = run(spec("tpu-v5litepod-8", "tpu-v5e", "tpu-v5e", 1, spot=False))
    vm = r.named("tp", TPU).inputs
    assert vm["acceleratorType"] == "v5litepod-8"  # SkyPilot's tpu- prefix removed
    assert vm["runtimeVersion"] == "v2-alpha-tpuv5-lite"
    assert "schedulingConfig" not in vm
    assert vm["networkConfig"]["enableExternalIps"] is True
    assert vm["metadata"]["ssh-keys"] == f"ubuntu:{KEY}"
    (node,) = r.outputs["nodes"]
    assert node["sku"] == "tpu-v5e" and node["instance_id"] == "tp/worker-0"
    assert node["spot"] is False and node["labels"]["accelerator_type"] == "v5litepod-8"


def test_v5p_multi_host_slice_on_spot_has_one_record_per_worker():
    r = run(spec("tpu-v5p-16", "tpu-v5p", "tpu-v5p", 2, spot=True))
    (vm,) = r.of_type(TPU)
    assert vm.inputs["acceleratorType"] == "v5p-16"
    assert vm.inputs["schedulingConfig"] == {"spot": True}
    assert vm.inputs["runtimeVersion"] == "v2-alpha-tpuv5"
    nodes = r.outputs["nodes"]
    assert [n["name"] for n in nodes] == ["tp-1", "tp-2"]
    assert [n["labels"]["tpu_worker"] for n in nodes] == ["0", "1"]
    assert [n["role"] for n in nodes] == ["head", "worker"]
    assert all(n["spot"] and n["address"].startswith("203.0.113.") for n in nodes)
    assert len({n["private_address"] for n in nodes}) == 2
    ssh = r.named("tp-net-ssh").inputs
    assert ssh["sourceRanges"] == ["198.51.100.7/32"]


def test_two_slices_and_node_count_checks():
    r = run(spec("tpu-v5p-16", "tpu-v5p", "tpu-v5p", 2, spot=True, slices=2))
    assert sorted(v.name for v in r.of_type(TPU)) == ["tp-s0", "tp-s1"]
    assert [n["labels"]["tpu"] for n in r.outputs["nodes"]] == ["tp-s0", "tp-s0", "tp-s1",
                                                                "tp-s1"]
    bad = spec("tpu-v5p-16", "tpu-v5p", "tpu-v5p", 2, spot=True)
    bad = ClusterSpec(bad.cluster, bad.nodes[:1] + bad.nodes + bad.nodes, bad.ssh, True,
                      bad.offering)
    with pytest.raises(InputError, match="whole number of slices"):
        GcpBackend("/x", detect_cidr=None).component(bad)


# -- recreate on preemption -------------------------------------------------------------------
@pytest.mark.parametrize(("state", "action"), [
    ("READY", Action.KEEP), ("CREATING", Action.WAIT), ("REPAIRING", Action.WAIT),
    ("PREEMPTED", Action.RECREATE), ("TERMINATED", Action.RECREATE), (None, Action.RECREATE),
    ("STOPPED", Action.REPORT), ("SOMETHING_NEW", Action.REPORT),
])
def test_decision_per_state(state, action):
    assert decide("tp", state).action is action


def test_decision_gives_up_after_repeated_recreates():
    d = decide("tp", "PREEMPTED", attempts=MAX_RECREATES)
    assert d.action is Action.REPORT and "giving up" in d.reason
    assert decide("tp", "PREEMPTED", attempts=MAX_RECREATES - 1).action is Action.RECREATE


class FakeRunner:
    """Records what recovery asks of the stack; answers from a scripted checkpoint."""

    def __init__(self, states: dict[str, str], expected: list[str]) -> None:
        self.states = states
        self.expected = expected
        self.calls: list[tuple[str, Any]] = []

    def outputs(self, target: StackProgram) -> dict[str, Any]:
        return {"tpus": [{"name": n} for n in self.expected]}

    def refresh(self, target: StackProgram, event) -> None:
        self.calls.append(("refresh", None))

    def resources(self, target: StackProgram) -> list[dict[str, Any]]:
        return [{"urn": f"urn:pulumi:tp::provision-gcp::{'$'.join(['x', 'gcp:tpu/v2Vm:V2Vm'])}"
                        f"::{name}", "type": "gcp:tpu/v2Vm:V2Vm", "custom": True,
                 "outputs": {"name": name, "state": state}}
                for name, state in self.states.items()]

    def up(self, target: StackProgram, event, replace=None) -> dict[str, Any]:
        self.calls.append(("up", replace))
        return {}


def test_recreate_preempted_replaces_only_the_preempted_slice():
    runner = FakeRunner({"tp-s0": "READY", "tp-s1": "PREEMPTED"}, ["tp-s0", "tp-s1"])
    events: list[str] = []
    attempts: dict[str, int] = {}
    program = StackProgram("provision-gcp", "tp", lambda: None)
    decisions = recreate_preempted(runner, program, events.append, attempts)
    assert [(d.slice, d.action) for d in decisions] == [("tp-s0", Action.KEEP),
                                                        ("tp-s1", Action.RECREATE)]
    assert runner.calls[0] == ("refresh", None)
    assert runner.calls[1][0] == "up"
    assert [u.rsplit("::", 1)[-1] for u in runner.calls[1][1]] == ["tp-s1"]
    assert attempts == {"tp-s1": 1}
    assert any("tp-s1: recreate" in e for e in events)


def test_recreate_nothing_when_healthy_and_missing_slices_come_back_with_a_plain_up():
    healthy = FakeRunner({"tp": "READY"}, ["tp"])
    recreate_preempted(healthy, StackProgram("provision-gcp", "tp"), lambda m: None)
    assert [c[0] for c in healthy.calls] == ["refresh"]
    gone = FakeRunner({}, ["tp"])  # deleted outside Pulumi: refresh dropped it from state
    decisions = recreate_preempted(gone, StackProgram("provision-gcp", "tp"), lambda m: None)
    assert decisions[0].action is Action.RECREATE
    assert gone.calls[-1] == ("up", [])
