"""TPU queued resources: the requests provision sends, held to the Cloud TPU API's rules by a
stand-in server (tests/fixtures/cloud/fake_tpu_api.py, which refuses what the API reference
says the API refuses), the waiting in the queue, the failure that sends `up` to another zone,
and the stack that registers one queued slice per TPU slice."""

from __future__ import annotations

import dataclasses

import pytest

from provision.backends.failover import classify
from provision.backends.gcp import GcpBackend
from provision.backends.offline import run_offline
from provision.plan.cloud import GcpTarget
from stacks.tpu_queued import QueuedTpuProvider, TpuApi, TpuApiError, queued_body
from tests.fixtures.cloud.fake_tpu_api import FakeTpuApi, World, refusal
from tests.unit.test_stacks_tpu import spec as tpu_spec

PROPS = {"name": "tq", "project": "sim-project-123", "zone": "us-east5-a",
         "accelerator_type": "v5p-16", "runtime_version": "v2-alpha-tpuv5",
         "network": "projects/sim-project-123/global/networks/provision-tq",
         "subnetwork": "projects/sim-project-123/regions/us-east5/subnetworks/provision-tq",
         "metadata": {"ssh-keys": "ubuntu:ssh-ed25519 AAAA test"}, "tags": ["provision-tq"],
         "labels": {"provision-cluster": "tq"}, "service_account": None, "spot": True,
         "reserved": False, "valid_hours": 6}


def provider(api: FakeTpuApi, sleeps: list[float]) -> QueuedTpuProvider:
    return QueuedTpuProvider(api=lambda: TpuApi(api.url), poll_seconds=5,
                             sleep=sleeps.append)


def test_the_request_is_one_the_api_accepts():
    body = queued_body(PROPS)
    parent = "projects/sim-project-123/locations/us-east5-a"
    assert refusal(body, parent, "tq") is None
    assert body["spot"] == {} and "guaranteed" not in body
    assert body["queueingPolicy"] == {"validUntilDuration": "21600s"}
    node = body["tpu"]["nodeSpec"][0]["node"]
    assert node["metadata"]["ssh-keys"].startswith("ubuntu:")  # what V2QueuedResource lacks
    assert refusal({**body, "guaranteed": {"reserved": True}}, parent, "tq") == \
        "only one of spot, guaranteed, bestEffort may be set"
    assert "Duration" in refusal({**body, "queueingPolicy": {"validUntilDuration": "6h"}},
                                 parent, "tq")
    reserved = queued_body({**PROPS, "spot": False, "reserved": True, "valid_hours": None})
    assert reserved["guaranteed"] == {"reserved": True} and "queueingPolicy" not in reserved


def test_create_waits_in_the_queue_then_reads_the_workers():
    sleeps: list[float] = []
    with FakeTpuApi(World(polls_to_active=3)) as api:
        result = provider(api, sleeps).create(PROPS)
        assert sleeps == [5, 5]  # two waiting reads, then ACTIVE
        assert result.outs["state"] == "READY" and result.outs["queued_state"] == "ACTIVE"
        assert [e["ip_address"] for e in result.outs["network_endpoints"]] == [
            "10.44.0.10", "10.44.0.11"]
        assert result.outs["network_endpoints"][0]["access_configs"] == [
            {"external_ip": "203.0.113.40"}]
        # delete must force the node away; without force the API refuses (FAILED_PRECONDITION)
        with pytest.raises(TpuApiError, match="FAILED_PRECONDITION"):
            TpuApi(api.url)._call("DELETE", "projects/sim-project-123/locations/us-east5-a/"
                                  "queuedResources/tq")
        provider(api, sleeps).delete(result.id, PROPS)
        assert api.world.queued == {} and api.world.nodes == {}
        assert provider(api, sleeps).read(result.id, PROPS).id is None  # gone on refresh


def test_no_capacity_fails_over_and_leaves_nothing():
    with FakeTpuApi(World(no_capacity={"us-east5-a"})) as api:
        with pytest.raises(TpuApiError) as err:
            provider(api, []).create(PROPS)
        failure = classify(str(err.value))
        assert failure is not None and (failure.kind, failure.scope) == ("capacity", "zone")
        assert api.world.queued == {}  # the failed request is deleted


def test_the_stack_registers_one_queued_slice_per_slice():
    base = tpu_spec("tpu-v5p-16", "tpu-v5p", "tpu-v5p", 2, spot=True, slices=2)
    s = dataclasses.replace(base, settings=GcpTarget(tpu_queued=True, tpu_queue_hours=6))
    run = run_offline(GcpBackend("/nonexistent", detect_cidr=None).component(s),
                      fake_outputs=True)
    queued = run.of_type("pulumi-python:dynamic:Resource")
    assert not run.of_type("gcp:tpu/v2Vm:V2Vm") and len(queued) == 2
    assert {q.inputs["spot"] for q in queued} == {True}
    assert {q.inputs["valid_hours"] for q in queued} == {6}
    assert {q.inputs["project"] for q in queued} == {"sim-project-123"}
    assert len(run.outputs["nodes"]) == 4  # two workers per v5p-16 slice
