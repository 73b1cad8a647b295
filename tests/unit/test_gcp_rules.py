"""GCP: the project provision resolves (pulumi-gcp does not read gcloud's configuration), the
GPU-ready boot image per accelerator, reservations, and what Compute Engine refuses.

The gcloud configuration used here is laid out as gcloud writes it (`active_config`,
`configurations/config_<name>` INI files with a `[core]` section; gcloud's "Managing gcloud CLI
configurations"); a service-account key is Google's JSON key format with `project_id`.
"""

from __future__ import annotations

import json

import pytest

from provision.backends.api_rules import refusal
from provision.backends.gcp import GcpBackend
from provision.backends.gcp_project import resolve_project
from provision.backends.offline import run_offline
from provision.errors import InputError
from provision.plan.cloud import GcpTarget
from tests.conftest import REPO
from tests.unit.test_stacks_gcp import INSTANCE, offering, spec

GCLOUD = REPO / "tests" / "fixtures" / "cloud" / "gcloud"


def test_project_resolution_order(tmp_path):
    key = tmp_path / "sa.json"
    key.write_text(json.dumps({"type": "service_account", "project_id": "key-project-1",
                               "client_email": "x@key-project-1.iam.gserviceaccount.com"}))
    env = {"HOME": str(tmp_path), "CLOUDSDK_CONFIG": str(GCLOUD),
           "GOOGLE_APPLICATION_CREDENTIALS": str(key)}
    assert resolve_project("plan-project", {**env, "GOOGLE_CLOUD_PROJECT": "e"}).id == \
        "plan-project"
    assert resolve_project(None, {**env, "GOOGLE_CLOUD_PROJECT": "env-project"}).source == \
        "$GOOGLE_CLOUD_PROJECT"
    assert resolve_project(None, {**env, "CLOUDSDK_CORE_PROJECT": "core-project"}).id == \
        "core-project"
    active = resolve_project(None, env)  # gcloud's active configuration, not config_default
    assert active.id == "sim-project-123" and "provision-test" in active.source
    named = resolve_project(None, {**env, "CLOUDSDK_ACTIVE_CONFIG_NAME": "default"})
    assert named.id == "not-the-active-one"
    env["CLOUDSDK_CONFIG"] = str(tmp_path / "no-gcloud")
    assert resolve_project(None, env).id == "key-project-1"
    del env["GOOGLE_APPLICATION_CREDENTIALS"]
    with pytest.raises(InputError) as err:
        resolve_project(None, env)
    assert err.value.exit_code == 2 and "gcp.project" in str(err.value)
    assert "GOOGLE_CLOUD_PROJECT" in str(err.value) and "gcloud config set" in str(err.value)


def run(s, monkeypatch):
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(GCLOUD))
    for var in ("GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT"):
        monkeypatch.delenv(var, raising=False)
    backend = GcpBackend("/nonexistent", detect_cidr=None)
    return backend, run_offline(backend.component(s), fake_outputs=True)


def test_the_project_reaches_the_stack_config_and_every_resource(monkeypatch):
    backend, r = run(spec(2, spot=True), monkeypatch)
    assert backend.config(spec(2, spot=True))["gcp:project"] == "sim-project-123"
    projects = {x.inputs.get("project") for x in r.resources if x.custom}
    assert projects == {"sim-project-123"}


@pytest.mark.parametrize("machine,gpu,count,image,driver", [
    ("a3-highgpu-8g", "H100", 8, "common-cu124-ubuntu-2204-nvidia-550", "550"),
    ("g2-standard-8", "L4", 1, "common-cu124-ubuntu-2204-nvidia-550", "550"),
    ("a4-highgpu-8g", "B200", 8, "common-cu128-ubuntu-2204-nvidia-570", "570"),
])
def test_gpu_vms_boot_a_gpu_ready_image(monkeypatch, machine, gpu, count, image, driver):
    _, r = run(spec(1, spot=False, o=offering(machine, gpu, count)), monkeypatch)
    (vm,) = r.of_type(INSTANCE)
    assert vm.inputs["bootDisk"]["initializeParams"]["image"] == (
        f"projects/deeplearning-platform-release/global/images/family/{image}")
    assert vm.inputs["metadata"]["install-nvidia-driver"] == "True"
    labels = r.outputs["nodes"][0]["labels"]
    assert labels["image_family"] == "dlvm" and labels["image_driver"] == driver


def test_without_a_gpu_ready_image_the_driver_role_installs_and_it_is_said(monkeypatch):
    _, r = run(spec(1, spot=False, o=offering("n1-standard-8", "V100", 1)), monkeypatch)
    (vm,) = r.of_type(INSTANCE)
    assert vm.inputs["bootDisk"]["initializeParams"]["image"].endswith("ubuntu-2204-lts")
    assert "install-nvidia-driver" not in vm.inputs["metadata"]
    labels = r.outputs["nodes"][0]["labels"]
    assert (labels["image_family"], labels["image_driver"]) == ("ubuntu", "none")
    _, r = run(spec(1, spot=False, settings=GcpTarget(image="projects/p/global/images/mine")),
               monkeypatch)
    assert r.outputs["nodes"][0]["labels"]["image_family"] == "custom"


def test_a_named_reservation_and_the_gpudirect_fabric(monkeypatch):
    _, r = run(spec(2, spot=False, settings=GcpTarget(reservation="a3-res")), monkeypatch)
    for vm in r.of_type(INSTANCE):
        assert vm.inputs["reservationAffinity"] == {
            "type": "SPECIFIC_RESERVATION", "specificReservation": {
                "key": "compute.googleapis.com/reservation-name", "values": ["a3-res"]}}
    assert {n["labels"]["network_fabric"] for n in r.outputs["nodes"]} == {"gcp-tcpx"}
    _, r = run(spec(2, spot=False, o=offering("a3-megagpu-8g")), monkeypatch)
    assert {n["labels"]["network_fabric"] for n in r.outputs["nodes"]} == {"gcp-tcpxo"}
    assert len(r.of_type(INSTANCE)[0].inputs["networkInterfaces"]) == 9  # 1 + 8 TCPXO NICs


def test_compute_engine_refusals():
    def nets(*names):
        return {f"sub-{n}": ("gcp:compute/subnetwork:Subnetwork", {"network": n})
                for n in names}

    lookup = nets("a", "b").get
    a3 = {"machineType": "a3-highgpu-8g", "scheduling": {"onHostMaintenance": "TERMINATE"},
          "networkInterfaces": [{"subnetwork": "sub-a", "nicType": "GVNIC"},
                                {"subnetwork": "sub-b", "nicType": "GVNIC"}]}
    assert refusal(INSTANCE, a3, lookup) is None
    assert refusal(INSTANCE, {**a3, "networkInterfaces": [
        {"subnetwork": "sub-a", "nicType": "GVNIC"},
        {"subnetwork": "sub-a", "nicType": "GVNIC"}]}, lookup).code == "INVALID_USAGE"
    assert refusal(INSTANCE, {**a3, "networkInterfaces": [{"subnetwork": "sub-a"}]},
                   lookup).code == "INVALID_FIELD_VALUE"  # A3 requires gVNIC
    assert "live migration" in refusal(INSTANCE, {**a3, "scheduling": {
        "onHostMaintenance": "MIGRATE"}}, lookup).message
    ultra = {**a3, "machineType": "a3-ultragpu-8g",
             "bootDisk": {"initializeParams": {"type": "pd-balanced"}}}
    assert "does not support disk type" in refusal(INSTANCE, ultra, lookup).message


def test_verify_expects_each_a3_flavours_cross_node_bandwidth():
    """The reference verify reads (provision/verify/data/reference.json): known-good busbw per
    GPUDirect flavour, each below its network's peak, which is the flavour's NIC count (the
    stack's gcp_data table) x 200 Gb/s."""
    from provision.verify.reference import load_reference
    from stacks.gcp_data import MACHINE_FAMILIES

    metric = load_reference().sku("h100-sxm-80gb").metric("nccl.all_reduce.multinode")
    fabrics = metric.extra["fabrics"]
    nics = {f.gpudirect: f.gpudirect_nics for f in MACHINE_FAMILIES.values() if f.gpudirect}
    assert set(fabrics) == set(nics) == {"gcp-tcpx", "gcp-tcpxo"}
    for fabric, figure in fabrics.items():
        assert figure["peak"] == nics[fabric] * 200 / 8  # GB/s per node
        assert 0.45 <= figure["reference"] / figure["peak"] <= 0.95
        assert "dstack" in figure["source"] and "Google Cloud" in figure["peak_source"]
