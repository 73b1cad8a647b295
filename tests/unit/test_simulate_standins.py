"""The simulated nodes' stand-in software, without containers: simgpu's installed-driver mode,
the nvcc stand-in compiling the cuda role's real device-query source, the container toolkit's
runtime configuration and CDI spec, the daemons' preflight checks, the jax/libtpu wheels, and
the .debs equivs builds under NVIDIA's names (every one labelled SIMULATED)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from provision.simulate import packages, simctk, simdaemon, simgpu
from tests.conftest import REPO

DEVICEQUERY = REPO / "playbooks" / "roles" / "cuda" / "files" / "devicequery.cu"


@pytest.fixture
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A simulated H100 node on this machine: node.json, an installed driver, a state dir."""
    def make(sku: str = "h100-sxm-80gb", faults: tuple[str, ...] = (), driver: str = "550.127.05",
             kernel: dict | None = None, installed: bool = True) -> Path:
        (tmp_path / "node.json").write_text(json.dumps({"sku": sku, "faults": list(faults),
                                                        "hostname": "n1"}))
        lib = tmp_path / "lib"
        lib.mkdir(exist_ok=True)
        if installed:
            (lib / "driver.json").write_text(json.dumps({"driver": driver, "cuda": "12.4"}))
            module = kernel if kernel is not None else {"flavour": "open", "version": driver}
            if module:
                (lib / "kernel-module.json").write_text(json.dumps(module))
        monkeypatch.setenv("PROVISION_SIM_CONFIG", str(tmp_path / "node.json"))
        monkeypatch.setenv("PROVISION_SIM_DRIVER", str(lib / "driver.json"))
        monkeypatch.setenv("PROVISION_SIM_STATE", str(tmp_path / "state"))
        monkeypatch.setenv("PROVISION_SIM_LIB", str(Path(simgpu.__file__).parent))
        return tmp_path
    return make


def smi(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    rc = simgpu.main("nvidia-smi", list(args))
    return rc, capsys.readouterr().out


# ---- simgpu: installed-driver mode --------------------------------------------------------
def test_the_installed_driver_sets_the_versions_nvidia_smi_reports(node, capsys):
    node(driver="535.216.03")
    rc, out = smi(capsys, "--query-gpu=driver_version", "--format=csv,noheader")
    assert rc == 0 and set(out.split()) == {"535.216.03"}


@pytest.mark.parametrize(("kwargs", "rc", "words"), [
    ({"kernel": {}}, 9, "couldn't communicate with the NVIDIA driver"),
    ({"kernel": {"flavour": "open", "version": "550.54.14"}}, 18,
     "Driver/library version mismatch"),
    ({"sku": "b200-sxm-180gb", "kernel": {"flavour": "proprietary", "version": "550.127.05"}},
     6, "No devices were found"),
])
def test_nvidia_smi_fails_like_a_broken_driver_install(node, capsys, kwargs, rc, words):
    node(**kwargs)
    got, out = smi(capsys)
    assert got == rc and words in out


def test_without_a_driver_package_the_tools_behave_as_before(node, capsys):
    node(installed=False)
    rc, out = smi(capsys, "--query-gpu=persistence_mode", "--format=csv,noheader")
    assert rc == 0 and set(out.split()) == {"Enabled"}
    rc, out = smi(capsys, "-q")
    assert out.count("Completed") == 8


def test_persistence_mode_and_application_clocks_persist(node, capsys):
    node()
    assert smi(capsys, "--query-gpu=persistence_mode", "--format=csv,noheader")[1].split() \
        == ["Disabled"] * 8
    rc, out = smi(capsys, "-pm", "1")
    assert rc == 0 and "Enabled persistence mode for GPU 00000000:18:00.0." in out
    assert smi(capsys, "--query-gpu=persistence_mode", "--format=csv,noheader")[1].split() \
        == ["Enabled"] * 8
    assert smi(capsys, "-i", "0", "-ac", "2619,1980")[0] == 0
    out = smi(capsys, "--query-gpu=clocks.applications.graphics", "--format=csv,noheader,nounits")
    assert out[1].split()[:2] == ["1980", "1755"]
    assert smi(capsys, "-i", "0", "-ac", "1000,1980")[0] == 3  # not a supported combination
    assert smi(capsys, "-rac")[0] == 0
    out = smi(capsys, "--query-gpu=clocks.applications.graphics", "--format=csv,noheader,nounits")
    assert set(out[1].split()) == {"1755"}


def test_fabric_completes_only_while_the_matching_fabric_manager_runs(node, capsys):
    home = node()
    assert smi(capsys, "-q")[1].count("In Progress") == 8
    state = home / "state"
    state.mkdir()
    (state / "nvidia-fabricmanager.json").write_text(
        json.dumps({"pid": os.getpid(), "version": "550.54.15"}))
    assert smi(capsys, "-q")[1].count("In Progress") == 8  # wrong version: not registered
    (state / "nvidia-fabricmanager.json").write_text(
        json.dumps({"pid": os.getpid(), "version": "550.127.05"}))
    assert smi(capsys, "-q")[1].count("Completed") == 8


def test_the_fabric_manager_refuses_a_version_other_than_the_drivers(node, tmp_path,
                                                                     monkeypatch):
    node()
    state, why = simdaemon.preflight("nvidia-persistenced")
    assert state == {"driver": "550.127.05"} and why is None
    fm = tmp_path / "fabricmanager.json"  # what the nvidia-fabricmanager-550 stand-in ships
    monkeypatch.setenv("PROVISION_SIM_FABRICMANAGER", str(fm))
    fm.write_text(json.dumps({"version": "550.127.05"}))
    node(sku="l40s-48gb")
    state, why = simdaemon.preflight("nv-fabricmanager")
    assert state is None and "fabric manager is for NVSwitch systems only" in (why or "")
    node()
    fm.write_text(json.dumps({"version": "550.54.15"}))
    state, why = simdaemon.preflight("nv-fabricmanager")
    assert state is None and "don't match with driver version 550.127.05" in (why or "")
    fm.write_text(json.dumps({"version": "550.127.05"}))
    assert simdaemon.preflight("nv-fabricmanager")[0] == {"driver": "550.127.05",
                                                          "version": "550.127.05"}


# ---- nvcc ----------------------------------------------------------------------------------
@pytest.fixture
def cuda_home(tmp_path: Path) -> Path:
    home = tmp_path / "cuda-12.4"
    (home / "include").mkdir(parents=True)
    (home / "lib64").mkdir()
    (home / "version.json").write_text(json.dumps({"cuda": {"version": "12.4.1"}}))
    (home / "include" / "cuda_runtime.h").write_text("#define CUDART_VERSION 12040\n")
    (home / "lib64" / "libcudart.so.12").write_text("stand-in\n")
    return home


def nvcc(home: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PROVISION_SIM_CUDA_HOME": str(home)}
    return subprocess.run([sys.executable, "-S", str(Path(simgpu.__file__).parent /
                                                    "simcuda.py"), *args],
                          capture_output=True, text=True, cwd=cwd, env=env)


def test_nvcc_compiles_the_roles_device_query_and_the_binary_runs(node, cuda_home, tmp_path):
    node(sku="l40s-48gb", faults=("gpu-missing",))  # PCIe: no fabric to wait for
    assert "release 12.4, V12.4.131" in nvcc(cuda_home, "--version", cwd=tmp_path).stdout
    out = nvcc(cuda_home, "-arch=sm_89", "-o", "dq", str(DEVICEQUERY), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    run = subprocess.run([str(tmp_path / "dq")], capture_output=True, text=True,
                         env={**os.environ, "PATH": f"{Path(sys.executable).parent}:"
                                                    f"{os.environ['PATH']}"})
    assert "Detected 7 CUDA Capable device(s)" in run.stdout  # the injected fault
    assert "CUDA Capability Major/Minor version number:    8.9" in run.stdout
    assert "Result = PASS" in run.stdout


def test_nvcc_fails_as_the_real_one_does(node, cuda_home, tmp_path):
    node()
    bad_arch = nvcc(cuda_home, "-arch=sm_100", "-o", "dq", str(DEVICEQUERY), cwd=tmp_path)
    assert bad_arch.returncode == 1
    assert "Unsupported gpu architecture 'compute_100'" in bad_arch.stderr
    src = tmp_path / "t.cu"
    src.write_text('#include "nccl.h"\n// provision-sim-program: devicequery\n')
    missing = nvcc(cuda_home, "-c", "-o", "t.o", str(src), cwd=tmp_path)
    assert missing.returncode == 1 and "nccl.h: No such file or directory" in missing.stderr
    plain = tmp_path / "plain.cu"
    plain.write_text("int main() { return 0; }\n")
    refused = nvcc(cuda_home, "-o", "p", str(plain), cwd=tmp_path)
    assert refused.returncode == 1 and "simulates only programs" in refused.stderr
    nolib = nvcc(cuda_home, "-o", "dq", str(DEVICEQUERY), "-lnccl", "-L", str(tmp_path),
                 cwd=tmp_path)
    assert nolib.returncode == 1 and "cannot find -lnccl" in nolib.stderr


def test_a_cuda_program_needs_a_driver_new_enough_and_the_fabric(node, cuda_home, tmp_path,
                                                                capsys):
    from provision.simulate import simcuda

    node()
    meta = {"program": "devicequery", "cuda": "12.8"}
    assert simcuda.run_program(meta, []) == 1
    assert "CUDA driver version is insufficient" in capsys.readouterr().out
    meta["cuda"] = "12.4"
    assert simcuda.run_program(meta, []) == 1  # H100 is NVSwitch: no fabric manager yet
    assert "returned 802" in capsys.readouterr().out


# ---- container toolkit ---------------------------------------------------------------------
def test_nvidia_ctk_configures_docker_and_containerd(tmp_path, capsys):
    daemon = tmp_path / "daemon.json"
    daemon.write_text('{"log-driver": "json-file"}')
    assert simctk.ctk(["runtime", "configure", "--runtime=docker", f"--config={daemon}"]) == 0
    config = json.loads(daemon.read_text())
    assert config["runtimes"]["nvidia"]["path"] == "nvidia-container-runtime"
    assert config["log-driver"] == "json-file"
    toml = tmp_path / "config.toml"
    for _ in range(2):  # the second run changes nothing
        assert simctk.ctk(["runtime", "configure", "--runtime=containerd",
                           f"--config={toml}"]) == 0
    assert toml.read_text().count("runtimes.nvidia]") == 1
    assert simctk.ctk(["runtime", "configure", "--runtime=podman"]) == 1


def test_cdi_generate_needs_the_driver_and_names_the_device(node, tmp_path, capsys):
    node(installed=False)
    os.environ["PROVISION_SIM_LIB"] = str(tmp_path / "nowhere")
    assert simctk.ctk(["cdi", "generate", f"--output={tmp_path}/x.yaml"]) == 1
    assert "ERROR_LIBRARY_NOT_FOUND" in capsys.readouterr().err
    spec = simctk.cdi_spec()
    assert spec["kind"] == "nvidia.com/gpu" and [d["name"] for d in spec["devices"]] == ["all"]
    assert spec["cdiVersion"] == "0.5.0" and "annotations" not in spec


# ---- packages ------------------------------------------------------------------------------
def h100_needs() -> packages.Needs:
    from provision.catalog.software import resolve
    from provision.profile import sku_hardware

    return packages.Needs.from_profiles(
        resolve(None, [sku_hardware("h100-sxm-80gb")], "local").values())


def test_the_standins_carry_nvidia_names_versions_and_the_simulated_label():
    pkgs = {p.name: p for p in packages.standins(h100_needs(), b"key")}
    for name, version in (("cuda-drivers-550", "550.127.05-1"),
                          ("nvidia-fabricmanager-550", "550.127.05-1"),
                          ("nvidia-kernel-open-dkms", "550.127.05-1"),
                          ("cuda-toolkit-12-4", "12.4.1-1"),
                          ("libnccl2", "2.21.5-1+cuda12.4"), ("libnccl-dev", "2.21.5-1+cuda12.4"),
                          ("cuda-keyring", "1.1-1"), ("nvidia-container-toolkit", "1.17.3-1"),
                          ("datacenter-gpu-manager-4-cuda12", "1:4.1.1-1"),
                          ("apptainer", "1.3.6"), ("doca-ofed", "2.9.1-1")):
        assert pkgs[name].version == version, name
    for p in pkgs.values():
        assert p.control({}, {}).split("Description: ", 1)[1].startswith("SIMULATED stand-in")
    doca = pkgs["doca-ofed"]
    assert "dpkg-divert --package doca-ofed --rename" in dict(doca.scripts)["preinst"]
    assert {"rdma-core", "infiniband-diags", "perftest"} <= set(doca.depends)


def test_artifacts_are_deterministic_and_well_formed(tmp_path):
    assert packages.nccl_tests_tarball() == packages.nccl_tests_tarball()
    tar = tmp_path / "t.tar.gz"
    tar.write_bytes(packages.nccl_tests_tarball())
    with tarfile.open(tar) as t:
        names = t.getnames()
    assert "nccl-tests-2.13.11/src/Makefile" in names
    image = tmp_path / "img.tar"
    image.write_bytes(packages.busybox_image(b"\x7fELF-stand-in"))
    with tarfile.open(image) as t:
        manifest = json.load(t.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest[0]["RepoTags"] == [packages.BUSYBOX_IMAGE]
    wheels = packages.wheels(["0.6.2"])
    assert sorted(wheels) == ["jax-0.6.2-py3-none-any.whl", "jaxlib-0.6.2-py3-none-any.whl",
                              "libtpu-0.0.17-py3-none-any.whl"]
    whl = tmp_path / "jax.whl"
    whl.write_bytes(wheels["jax-0.6.2-py3-none-any.whl"])
    meta = zipfile.ZipFile(whl).read("jax-0.6.2.dist-info/METADATA").decode()
    assert 'Requires-Dist: libtpu==0.0.17; extra == "tpu"' in meta


def test_the_jax_standin_sees_the_simulated_chips(tmp_path, monkeypatch):
    site = tmp_path / "site"
    for data in packages.wheels(["0.6.2"]).values():
        zipfile.ZipFile(io.BytesIO(data)).extractall(site)
    (tmp_path / "node.json").write_text(json.dumps({"sku": "tpu-v5e", "chips": 8,
                                                    "faults": ["chip-missing"]}))
    code = ("import jax; d = jax.devices(); "
            "print(jax.default_backend(), len(d), d[0].device_kind)")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": str(site),
                              "PROVISION_SIM_CONFIG": str(tmp_path / "node.json")})
    assert out.stdout.split() == ["tpu", "7", "TPU", "v5", "lite"], out.stderr


def test_role_vars_point_every_url_at_the_mounted_repository():
    urls = {k: v for k, v in packages.role_vars().items()
            if isinstance(v, str) and "://" in v}
    assert urls and all(v.startswith(f"file://{packages.MOUNT}/current/") for v in urls.values())
    assert packages.role_vars()["nccl_tests_source_checksum"] == packages.nccl_tests_checksum()


@pytest.mark.skipif(os.geteuid() != 0 or not Path("/usr/bin/equivs-build").exists(),
                    reason="building .debs needs equivs (./install.sh) and root")
def test_equivs_builds_a_relocated_cuda_toolkit(tmp_path):
    pkg = packages.cuda_toolkit("12.4", "12.4.1-1")
    deb = packages.build_deb(pkg, tmp_path)
    assert deb.name == "cuda-toolkit-12-4_12.4.1-1_amd64.deb"
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True,
                             check=True).stdout
    assert "./usr/local/cuda-12.4/bin/nvcc" in listing and "provision-sim-relocate" not in listing
    info = subprocess.run(["dpkg-deb", "-f", str(deb), "Description"], capture_output=True,
                          text=True, check=True).stdout
    assert info.startswith("SIMULATED stand-in for the CUDA Toolkit 12.4.1")
    assert packages.build_deb(pkg, tmp_path) == deb  # cached by content
