"""Round trip: the simulated tools (run as executables, as on a node) produce a run's artifacts
the way the collector does, and the real parsers and judge read them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from provision.simulate import BIN_DIR, TOOL_NAMES
from provision.simulate.collect import collect_cluster, collect_host, host_commands
from provision.verify import COMMANDS, analyze
from provision.verify.reference import load_reference, reference_path

GPU_SKUS = sorted(s for s, r in load_reference().skus.items() if r.kind == "gpu")
HANG_TIMEOUT = 3.0  # seconds the collector waits on a hung simulated tool
# What each fault must fail on the faulty node, and nothing else may fail there.
FAULTS: dict[str, set[str]] = {
    # A missing GPU is missing from every per-GPU listing, and each listing says so.
    "gpu-missing": {"gpu.count", "gpu.row_remap", "nvlink.topology", "nvlink.status",
                    "dcgm.diag", "nvbandwidth.h2d", "nvbandwidth.d2h", "nvbandwidth.d2d",
                    "nccl.all_reduce"},
    "nvlink-down": {"nvlink.topology", "nvlink.status"},
    "hbm-degraded": {"dcgm.diag"},
    "pcie-degraded": {"gpu.pcie", "nvbandwidth.h2d", "nvbandwidth.d2h"},
    "nccl-degraded": {"nccl.all_reduce"},
    "ib-down": {"ib.ports", "ib.write_bw"},
    "xid-79": {"xid"},
    "ecc-row-remap-failure": {"gpu.ecc", "gpu.row_remap"},
    "dcgm-fail": {"dcgm.diag"},
    "hang:nvbandwidth": {"nvbandwidth.h2d", "nvbandwidth.d2h", "nvbandwidth.d2d"},
    "hang:all_reduce_perf": {"nccl.all_reduce"},
}


def write_config(path: Path, sku: str, host: str, faults: list[str] | None = None,
                 **extra: object) -> Path:
    path.write_text(json.dumps({"sku": sku, "hostname": host, "faults": faults or [], **extra}))
    return path


def sim(tool: str, *args: str, config: Path, env: dict | None = None,
        timeout: float = 30) -> subprocess.CompletedProcess:
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    return subprocess.run([str(BIN_DIR / tool), *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PATH": path,
                                                "PROVISION_SIM_CONFIG": str(config), **(env or {})})


def failing(report, host: str) -> set[str]:
    return {c.name for c in report.hosts[host].checks if c.status == "fail"}


@pytest.fixture(scope="module")
def healthy_runs(tmp_path_factory) -> dict[str, Path]:
    """One single-host run per GPU SKU, collected side by side."""
    root = tmp_path_factory.mktemp("healthy")

    def collect(sku: str) -> Path:
        cfg = write_config(root / f"{sku}.json", sku, "sim-0")
        collect_host(root / sku / "sim-0", cfg, level="full")
        return root / sku

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(GPU_SKUS, pool.map(collect, GPU_SKUS), strict=True))


@pytest.mark.parametrize("sku", GPU_SKUS)
def test_healthy_simulated_node_passes_at_full_level(healthy_runs, sku):
    report = analyze(healthy_runs[sku], level="full")
    problems = [(c.name, c.status, c.detail) for _, c in report.problems()]
    assert problems == [] and report.status == "pass"
    judged = [c for c in report.hosts["sim-0"].checks if c.ratio is not None]
    assert judged and all(c.ratio >= 0.95 for c in judged)


def test_healthy_two_node_h100_cluster_with_multinode_nccl(tmp_path):
    run = tmp_path / "run"
    hosts = ["gpu-node-0", "gpu-node-1"]
    for h in hosts:
        collect_host(run / h, write_config(tmp_path / f"{h}.json", "h100-sxm-80gb", h),
                     level="full")
    collect_cluster(run, tmp_path / "gpu-node-0.json", hosts, gpus_per_node=8)
    report = analyze(run, level="full")
    assert report.status == "pass", report.problems()
    (c,) = report.cluster.checks
    assert c.status == "pass" and "16 ranks on 2 nodes" in c.detail and c.expected == 368
    write_config(tmp_path / "slow.json", "h100-sxm-80gb", "gpu-node-0", ["nccl-degraded"])
    collect_cluster(run, tmp_path / "slow.json", hosts, gpus_per_node=8)
    (c,) = analyze(run, level="full").cluster.checks
    assert c.status == "fail" and c.ratio < 0.9


@pytest.fixture(scope="module")
def faulty_run(tmp_path_factory) -> tuple[Path, object]:
    """One run: a healthy node, then one node per fault, collected at level full."""
    root = tmp_path_factory.mktemp("faults")
    run = root / "run"
    hosts = ["healthy-0"] + [f"node-{f.replace(':', '-')}" for f in FAULTS]

    def collect(host: str, fault: str | None) -> None:
        cfg = write_config(root / f"{host}.json", "h100-sxm-80gb", host,
                           [fault] if fault else [])
        hung = fault is not None and fault.startswith("hang:")
        collect_host(run / host, cfg, level="full", timeout=HANG_TIMEOUT if hung else 120)

    # Nodes are collected side by side, as the collector role does across hosts.
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(collect, hosts, [None, *FAULTS]))
    collect_cluster(run, root / "healthy-0.json", hosts, gpus_per_node=8)
    return run, analyze(run, level="full")


def test_healthy_node_next_to_faulty_ones_passes(faulty_run):
    _, report = faulty_run
    assert report.hosts["healthy-0"].status == "pass"
    assert report.status == "fail"


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_each_fault_fails_and_the_report_names_node_and_check(faulty_run, fault):
    _, report = faulty_run
    host = f"node-{fault.replace(':', '-')}"
    assert report.hosts[host].status == "fail"
    assert failing(report, host) == FAULTS[fault]
    named = {(where, c.name) for where, c in report.problems() if c.status == "fail"}
    assert {(host, name) for name in FAULTS[fault]} <= named


def test_hang_fault_makes_the_tool_sleep_until_killed(tmp_path):
    cfg = write_config(tmp_path / "n.json", "h100-sxm-80gb", "n", ["hang:nvidia-smi"])
    with pytest.raises(subprocess.TimeoutExpired):
        sim("nvidia-smi", "-L", config=cfg, timeout=HANG_TIMEOUT)
    assert sim("dcgmi", "diag", "-r", "1", "-j", config=cfg).returncode == 0  # others answer


def test_hung_tool_leaves_a_timeout_marker_the_judge_reports(faulty_run):
    run, report = faulty_run
    marker = run / "node-hang-nvbandwidth" / "nvbandwidth.txt.timeout"
    assert marker.read_text().strip() == f"{HANG_TIMEOUT:g}"
    detail = {c.name: c.detail for c in report.hosts["node-hang-nvbandwidth"].checks}
    assert "hung and was killed" in detail["nvbandwidth.h2d"]


def test_fault_details_carry_the_evidence(faulty_run):
    _, report = faulty_run

    def detail(host: str, check: str) -> str:
        return next(c.detail for c in report.hosts[host].checks if c.name == check)

    assert "GPU 0 link 17 inactive" in detail("node-nvlink-down", "nvlink.status")
    assert "Xid 79" in detail("node-xid-79", "xid")
    assert "SIMULATED" in detail("node-xid-79", "xid")
    assert "GPU 0 x8" in detail("node-pcie-degraded", "gpu.pcie")
    assert "memory_bandwidth GPU 0" in detail("node-hbm-degraded", "dcgm.diag")
    assert "GPU 7 missing" in detail("node-gpu-missing", "gpu.count")
    assert "mlx5_0/1 Down/Polling" in detail("node-ib-down", "ib.ports")


# ---- the simulated tools themselves -----------------------------------------------------------
def test_every_tool_has_an_executable(tmp_path):
    cfg = write_config(tmp_path / "n.json", "a100-sxm-80gb", "n")
    for tool in TOOL_NAMES:
        path = BIN_DIR / tool
        assert path.is_file() and os.access(path, os.X_OK), tool
    assert sim("nvidia-smi", "-L", config=cfg).stdout.count("NVIDIA A100-SXM4-80GB") == 8


def test_banner_on_stdout_for_people_and_on_stderr_for_parsed_formats(tmp_path):
    """Everything simulated says so; outputs verify parses line by line keep the real layout
    (tests/unit/test_verify_sim_formats.py compares them with real recordings) and carry the
    label on stderr, which the collector saves as <file>.stderr."""
    cfg = write_config(tmp_path / "n.json", "h200-sxm-141gb", "n")
    summary = sim("nvidia-smi", config=cfg)
    assert summary.stdout.startswith("SIMULATED") and "NVIDIA H200" in summary.stdout
    for args in (host_commands("quick", 8)["nvidia-smi-query.csv"][1:],
                 host_commands("quick", 8)["remap.csv"][1:], ("topo", "-m"),
                 ("nvlink", "--status")):
        out = sim("nvidia-smi", *args, config=cfg)
        assert "SIMULATED" not in out.stdout and "SIMULATED" in out.stderr, args
    out = sim("ibstat", config=cfg)
    assert "SIMULATED" not in out.stdout and "SIMULATED" in out.stderr
    dcgm = sim("dcgmi", "diag", "-r", "1", "-j", config=cfg)
    assert json.loads(dcgm.stdout)["metadata"]["version"] and "SIMULATED" in dcgm.stderr
    for tool, args in (("nvidia-smi", ("-q",)), ("nvbandwidth", ("-t", "host_to_device_memcpy_ce")),
                       ("all_reduce_perf", ("-b", "1G", "-e", "1G", "-g", "8")),
                       ("ib_write_bw", ("--report_gbits",)), ("dcgmi", ("diag", "-r", "1"))):
        assert "SIMULATED" in sim(tool, *args, config=cfg).stdout, (tool, args)


def test_nvidia_smi_q_shows_fabric_state_on_nvswitch_skus(tmp_path):
    out = sim("nvidia-smi", "-q", config=write_config(tmp_path / "a.json", "h100-sxm-80gb",
                                                        "a")).stdout
    assert out.count("State                             : Completed") == 8
    out = sim("nvidia-smi", "-q", config=write_config(tmp_path / "b.json", "l40s-48gb",
                                                        "b")).stdout
    assert "Completed" not in out and "Remapped Rows" in out


def test_simulator_reads_figures_from_the_reference_file_only(tmp_path):
    doc = json.loads(reference_path().read_text())
    doc["skus"]["h100-sxm-80gb"]["metrics"]["nvbandwidth.h2d"]["reference"] = 40
    alt = tmp_path / "reference.json"
    alt.write_text(json.dumps(doc))
    cfg = write_config(tmp_path / "n.json", "h100-sxm-80gb", "n")
    out = sim("nvbandwidth", "-t", "host_to_device_memcpy_ce", config=cfg,
              env={"PROVISION_SIM_REFERENCE": str(alt)}).stdout
    row = out.splitlines()[out.splitlines().index("Running host_to_device_memcpy_ce.") + 3]
    values = [float(v) for v in row.split()[1:]]
    assert len(values) == 8 and all(39 < v < 41 for v in values)


def test_multinode_form_prints_from_rank_zero_only(tmp_path):
    cfg = write_config(tmp_path / "n.json", "a100-sxm-80gb", "a100-0")
    env = {"OMPI_COMM_WORLD_SIZE": "16", "PROVISION_SIM_HOSTS": "a100-0,a100-1"}
    rank0 = sim("all_reduce_perf", "-b", "8G", "-e", "8G", "-g", "1", config=cfg,
                env={**env, "OMPI_COMM_WORLD_RANK": "0"})
    assert rank0.returncode == 0 and "on     a100-1 device  7" in rank0.stdout
    rank5 = sim("all_reduce_perf", "-b", "8G", "-e", "8G", "-g", "1", config=cfg,
                env={**env, "OMPI_COMM_WORLD_RANK": "5"})
    assert rank5.returncode == 0 and rank5.stdout == ""


def test_broken_simulator_setups_exit_3_with_a_message(tmp_path):
    cfg = write_config(tmp_path / "n.json", "h100-sxm-80gb", "n", ["nvlink-dwn"])
    out = sim("nvidia-smi", config=cfg)
    assert out.returncode == 3 and "unknown fault" in out.stderr and "nvlink-down" in out.stderr
    out = sim("nvidia-smi", config=write_config(tmp_path / "m.json", "h100-pcie", "n"))
    assert out.returncode == 3 and "unknown sku" in out.stderr
    out = sim("nvidia-smi", config=tmp_path / "absent.json")
    assert out.returncode == 3 and "no node config" in out.stderr
    ok = write_config(tmp_path / "ok.json", "h100-sxm-80gb", "n")
    bad = sim("nvidia-smi", "--query-gpu=index,bogus", "--format=csv", config=ok)
    assert bad.returncode == 2 and 'Field "bogus" is not a valid field' in bad.stderr


def test_collector_commands_match_the_documented_contract():
    documented = {c.file: c.command for c in COMMANDS}
    for name, argv in host_commands("full", 8).items():
        if name in ("xid.txt", "ib_write_bw.txt", "dcgmi-diag.json"):
            continue
        command = " ".join(argv)
        if name == "nccl-all_reduce.txt":
            command = command.rsplit(" -g ", 1)[0]
        assert documented[name].startswith(command), name
    assert host_commands("full", 8)["dcgmi-diag.json"] == ["dcgmi", "diag", "-r", "3", "-j"]
    assert set(host_commands("quick", 8)) == {c.file for c in COMMANDS
                                              if c.level == "quick" and c.kind == "gpu"}


def test_simulated_figures_are_deterministic_per_host(tmp_path):
    a = write_config(tmp_path / "a.json", "h100-sxm-80gb", "node-a")
    b = write_config(tmp_path / "b.json", "h100-sxm-80gb", "node-b")
    args = ("-t", "device_to_device_bidirectional_memcpy_read_sm")
    first, again = sim("nvbandwidth", *args, config=a).stdout, sim("nvbandwidth", *args,
                                                                     config=a).stdout
    assert first == again and first != sim("nvbandwidth", *args, config=b).stdout


def test_tools_run_from_a_deb_style_layout_through_symlinks(tmp_path):
    """/usr/lib/provision-sim/{simgpu.py,reference.json,bin/*} with /usr/bin symlinks."""
    lib = tmp_path / "usr" / "lib" / "provision-sim"
    shutil.copytree(BIN_DIR, lib / "bin")
    shutil.copy(BIN_DIR.parent / "simgpu.py", lib / "simgpu.py")
    shutil.copy(reference_path(), lib / "reference.json")
    usr_bin = tmp_path / "usr" / "bin"
    usr_bin.mkdir()
    (usr_bin / "nvidia-smi").symlink_to(lib / "bin" / "nvidia-smi")
    cfg = write_config(tmp_path / "n.json", "l4-24gb", "n")
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    proc = subprocess.run([str(usr_bin / "nvidia-smi"), "-L"], capture_output=True, text=True,
                          timeout=30, cwd=tmp_path,
                          env={"PATH": path, "PROVISION_SIM_CONFIG": str(cfg)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("GPU 0: NVIDIA L4 (UUID: GPU-")
