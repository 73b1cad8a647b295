"""The software profile: the compatibility matrix's data, its rules (defaults per GPU
generation that adapt to explicit choices; incompatible choices are input errors naming the
field), `provision plan` rejecting bad combinations with exit 2 and file:line, and the
inventory handing the resolved profile to the roles as group variables."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from provision.catalog.software import SoftwareError, resolve, software_matrix, vtuple
from provision.catalog.specs import gpu_table
from provision.inventory import render_inventory
from provision.plan.software import Software
from provision.profile import inventory_group_vars, sku_hardware


def profile(sku: str, target: str = "local", **fields: object):
    return resolve(Software(**fields), [sku_hardware(sku)], target)[sku]


def error(sku: str, target: str = "local", provider: str = "local", **fields: object
          ) -> SoftwareError:
    with pytest.raises(SoftwareError) as exc:
        resolve(Software(**fields), [sku_hardware(sku, provider)], target)
    return exc.value


# ---- the data ------------------------------------------------------------------------------
def test_every_nvidia_generation_in_the_gpu_table_has_defaults_that_resolve():
    m = software_matrix()
    arches = {s.arch for s in gpu_table().specs.values() if not s.is_tpu}
    assert arches <= set(m.arches), arches - set(m.arches)
    for spec in gpu_table().specs.values():
        if spec.is_tpu:
            continue
        p = resolve(None, [sku_hardware(spec.sku, "baremetal")], "baremetal")[spec.sku]
        d = m.arches[spec.arch]["defaults"]
        assert (p["driver_branch"], p["cuda"], p["nccl"]) == (
            d["driver_branch"], d["cuda"], d["nccl"]), spec.name


def test_matrix_entries_are_consistent():
    m = software_matrix()
    for branch, b in m.branches.items():
        assert b["version"].startswith(branch + "."), branch
        assert set(b["open"]) | set(b["proprietary"]) <= set(m.arches)
    for cuda, c in m.cuda.items():
        owner = c["min_driver"].split(".")[0]
        assert vtuple(m.branches[owner]["cuda"]) >= vtuple(cuda), (cuda, owner)
        assert c["package"].startswith(cuda + "."), cuda
    for nccl, n in m.nccl.items():
        assert all(b in m.cuda for b in n["builds"]), nccl
    for jax, j in m.jax.items():
        assert vtuple(j["libtpu"]) > (0,), jax


def test_the_issue_examples_are_in_the_table():
    m = software_matrix()
    assert min(int(b) for b in m.branches_for("hopper")) <= 535  # Hopper: 525 and later
    assert min(int(b) for b in m.branches_for("blackwell")) == 570  # Blackwell: 570 and later
    assert m.branches_for("blackwell", "proprietary") == []  # ... with open modules only
    assert m.raw["fabric_manager"]["interconnects"] == ["nvswitch"]


# ---- the rules -----------------------------------------------------------------------------
def test_hopper_defaults_and_role_variables():
    p = profile("h100-sxm-80gb")
    v = p.role_vars()
    assert (v["nvidia_driver_branch"], v["nvidia_driver_kernel_modules"], v["cuda_version"],
            v["nccl_version"], v["nccl_cuda_build"]) == ("550", "open", "12.4", "2.21.5", "12.4")
    assert v["nvidia_fabricmanager_enabled"] is True and v["nvidia_driver_expected_gpus"] == 8
    assert v["nvidia_driver_expected_models"] == ["NVIDIA H100 80GB HBM3"]
    assert (v["rdma_fabric"], v["rdma_stack"], v["rdma_expected_ports"]) == (
        "infiniband", "doca", 8)
    assert v["container_toolkit_runtime"] == "podman"  # nested on simulated nodes
    assert v["nccl_tests_check_min_busbw"] == 475


def test_defaults_adapt_to_an_explicit_older_branch():
    p = profile("h100-sxm-80gb", driver_branch="535")
    assert (p["cuda"], p["nccl"], p["nccl_build"]) == ("12.2", "2.18.5", "12.2")


def test_nccl_build_is_the_newest_not_newer_than_the_toolkit():
    p = profile("h100-sxm-80gb", driver_branch="560", cuda="12.6", nccl="2.21.5")
    assert p["nccl_build"] == "12.4"


def test_l40s_has_no_fabric_manager_and_no_infiniband():
    v = profile("l40s-48gb").role_vars()
    assert v["nvidia_fabricmanager_enabled"] is False
    assert v["rdma_fabric"] == "none" and v["rdma_expected_ports"] == 0


@pytest.mark.parametrize(("sku", "fields", "loc", "words"), [
    ("b200-sxm-180gb", {"kernel_modules": "proprietary"}, "kernel_modules",
     "only by the open kernel modules: set software.kernel_modules: open"),
    ("b200-sxm-180gb", {"driver_branch": "550"}, "driver_branch",
     "driver branch 550 does not support Blackwell (B200): use 570 or newer"),
    ("h100-sxm-80gb", {"driver_branch": "550", "cuda": "12.8"}, "cuda",
     "CUDA 12.8 needs driver >= 570.26"),
    ("h100-sxm-80gb", {"nccl": "2.27.7"}, "nccl", "with CUDA 12.4 use NCCL 2.21.5"),
    ("b200-sxm-180gb", {"nccl": "2.21.5", "cuda": "12.8"}, "nccl",
     "Blackwell (B200) needs NCCL 2.25.1 or newer"),
    ("h100-sxm-80gb", {"driver_branch": "535", "cuda": "12.2", "nccl": "2.21.5"}, "nccl",
     "NCCL 2.21.5 is published for +cuda12.4 only"),
    ("l40s-48gb", {"fabric_manager": "on"}, "fabric_manager",
     "fabric manager is only for NVSwitch systems"),
    ("h100-sxm-80gb", {"fabric_manager": "off"}, "fabric_manager", "is an NVSwitch system"),
    ("h100-sxm-80gb", {"fabric": "efa"}, "fabric", "EFA exists only on AWS"),
    ("l40s-48gb", {"fabric": "infiniband"}, "fabric", "no InfiniBand ports"),
    ("l40s-48gb", {"ofed": "doca"}, "ofed", "applies to InfiniBand/RoCE"),
    ("h100-sxm-80gb", {"container_runtime": "docker"}, "container_runtime", "nested podman"),
    ("h100-sxm-80gb", {"driver_branch": "999"}, "driver_branch", "unknown driver branch"),
    ("h100-sxm-80gb", {"cuda": "11.8"}, "cuda", "unknown CUDA version"),
    ("b200-sxm-180gb", {"driver_branch": "570", "cuda": "12.4"}, "cuda",
     "needs CUDA 12.8 or newer"),
])
def test_incompatible_choices_name_the_field_and_the_fix(sku, fields, loc, words):
    exc = error(sku, **fields)
    assert exc.loc == ("software", loc)
    assert words in exc.message, exc.message


def test_pre_turing_generations_need_proprietary_modules_and_cuda_12():
    volta = Software(kernel_modules="open")
    hw = [sku_hardware("v100-sxm2-32gb", "baremetal")]
    with pytest.raises(SoftwareError, match="no open kernel module support"):
        resolve(volta, hw, "baremetal")
    with pytest.raises(SoftwareError, match=r"CUDA 13\.0 dropped Volta"):
        resolve(Software(driver_branch="580", cuda="13.0"), hw, "baremetal")
    assert resolve(None, hw, "baremetal")["v100-sxm2-32gb"]["kernel_modules"] == "proprietary"


def test_aws_multi_node_defaults_to_efa_and_docker():
    p = resolve(None, [sku_hardware("h100-sxm-80gb", "aws")], "aws")["h100-sxm-80gb"]
    assert (p["fabric"], p["container_runtime"], p["ofed"]) == ("efa", "docker", "inbox")


def test_tpu_profiles_pin_jax_with_its_libtpu():
    p = resolve(Software(jax="0.4.38"), [sku_hardware("tpu-v5e")], "local")["tpu-v5e"]
    assert p.role_vars() == {"tpu_runtime_jax_version": "0.4.38",
                             "tpu_runtime_libtpu_version": "0.0.7",
                             "tpu_runtime_expected_chips": 8}
    with pytest.raises(SoftwareError, match="applies to NVIDIA GPU nodes"):
        resolve(Software(cuda="12.4"), [sku_hardware("tpu-v5e")], "local")
    with pytest.raises(SoftwareError, match="applies to TPU VMs"):
        resolve(Software(jax="0.6.2"), [sku_hardware("h100-sxm-80gb")], "local")


def test_a_cpu_only_cluster_gets_no_software_variables():
    assert inventory_group_vars({}) == ({}, {})


# ---- provision plan ------------------------------------------------------------------------
def test_plan_rejects_an_incompatible_local_profile_with_file_and_line(run_cli, tmp_path):
    plan = tmp_path / "bad.yaml"
    plan.write_text(textwrap.dedent("""\
        name: bad-gpu
        target: local
        local:
          nodes: 2
          sku: h100-sxm-80gb
        software:
          driver_branch: "535"
          cuda: "12.4"
    """))
    proc = run_cli("plan", str(plan))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"{plan}:8:3: software.cuda: CUDA 12.4 needs driver >= 550.54.14" in proc.stderr
    assert 'set software.driver_branch: "550" or newer' in proc.stderr


def test_plan_rejects_proprietary_modules_on_a_chosen_blackwell(run_cli, tmp_path):
    plan = tmp_path / "b200.yaml"
    plan.write_text("name: b200\nresources: {gpu: B200, gpus_per_node: 8, nodes: 1}\n"
                    "software:\n  kernel_modules: proprietary\n")
    proc = run_cli("plan", str(plan))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "software.kernel_modules: Blackwell (B200) is supported only by the open" \
        in proc.stderr


def test_unknown_software_keys_are_schema_errors(run_cli, tmp_path):
    plan = tmp_path / "typo.yaml"
    plan.write_text("name: typo\ntarget: local\nsoftware:\n  cuda_version: '12.4'\n")
    proc = run_cli("plan", str(plan))
    assert proc.returncode == 2
    assert "software.cuda_version: unknown key" in proc.stderr


def test_the_example_gpu_plan_is_accepted(run_cli):
    from tests.conftest import EXAMPLES

    proc = run_cli("plan", str(EXAMPLES / "local-gpu.yaml"), "-o", "json")
    assert proc.returncode == 0, proc.stderr


# ---- inventory -----------------------------------------------------------------------------
def test_inventory_writes_per_sku_group_vars_and_drops_stale_ones(tmp_path: Path):
    from provision.backends.base import NodeRecord

    nodes = [NodeRecord(name="g-1", address="10.0.0.2", ssh_user="root", sku="h100-sxm-80gb",
                        provider="local", role="head")]
    cluster, groups = inventory_group_vars(
        resolve(None, [sku_hardware("h100-sxm-80gb")], "local"))
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "sku_old.yml").write_text("x: 1\n")
    render_inventory(tmp_path, "g", "local", nodes, cluster, {"h100-sxm-80gb": "H100"},
                     group_vars=groups)
    files = sorted(p.name for p in (tmp_path / "group_vars").iterdir())
    assert files == ["all.yml", "sku_h100_sxm_80gb.yml"]
    values = yaml.safe_load((tmp_path / "group_vars" / "sku_h100_sxm_80gb.yml").read_text())
    assert values["cuda_version"] == "12.4"
    assert yaml.safe_load((tmp_path / "group_vars" / "all.yml").read_text())[
        "mpi_flavour"] == "openmpi"
    assert (tmp_path / "hosts.yml").stat().st_mode & 0o777 == 0o600
