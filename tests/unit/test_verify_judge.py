"""The judge and analyze() on host directories assembled from recorded-format samples."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from provision.errors import InputError
from provision.verify import analyze
from provision.verify.checks.base import HostContext, judge_metric
from provision.verify.reference import load_reference
from provision.verify.report import render_table, to_json, to_markdown

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "verify"
H100_HEALTHY = {
    "nvidia-smi-query.csv": "query-gpu-h100.csv",
    "nvidia-smi-topo.txt": "topo-h100-tty.txt",
    "nvidia-smi-nvlink.txt": "nvlink-h100.txt",
    "remap.csv": "remap-h100.csv",
    "xid.txt": None,
    "dcgmi-diag.json": "dcgm-diag-r2-dcgm4-pass.json",
    "nvbandwidth.txt": "nvbandwidth-h100.txt",
    "nccl-all_reduce.txt": "nccl-all_reduce-h100.txt",
}
A100_HEALTHY = {
    **H100_HEALTHY,
    "nvidia-smi-query.csv": "query-gpu-a100.csv",
    "nvidia-smi-topo.txt": "topo-a100.txt",
    "nvidia-smi-nvlink.txt": "nvlink-a100.txt",
    "nvbandwidth.txt": "nvbandwidth-a100-old-diagonal.txt",
    "nccl-all_reduce.txt": "nccl-all_reduce-old-layout.txt",
}
L40S_HEALTHY = {
    "nvidia-smi-query.csv": "query-gpu-l40s-na.csv",
    "nvidia-smi-topo.txt": "topo-l40s-empty-affinity.txt",
    "nvidia-smi-nvlink.txt": "nvlink-l40s.txt",
    "remap.csv": "remap-l40s-na.csv",
    "xid.txt": None,
    "dcgmi-diag.json": "dcgm-diag-r2-dcgm4-pass-4gpu.json",
    "nvbandwidth.txt": "nvbandwidth-l40s-waived.txt",
}


def fixture(name: str) -> str:
    return (FIXTURES / f"recorded-format-{name}").read_text(encoding="utf-8")


def make_host(run: Path, host: str, files: dict[str, str | None], sku: str | None) -> Path:
    d = run / host
    d.mkdir(parents=True, exist_ok=True)
    for target, source in files.items():
        (d / target).write_text(fixture(source) if source else "", encoding="utf-8")
    if sku is not None:
        (d / "sku").write_text(sku + "\n")
    return d


def checks(report, host: str) -> dict:
    return {c.name: c for c in report.hosts[host].checks}


def bad(report) -> list[tuple[str, str, str]]:
    return [(where, c.name, c.status) for where, c in report.problems()]


# ---- healthy nodes: no false alarms -----------------------------------------------------------
def test_healthy_h100_passes_every_check(tmp_path):
    make_host(tmp_path, "gpu-node-0", H100_HEALTHY, "h100-sxm-80gb")
    report = analyze(tmp_path, level="standard")
    assert bad(report) == [] and report.status == "pass"
    got = checks(report, "gpu-node-0")
    assert set(got) == {"gpu.count", "gpu.model", "gpu.memory", "gpu.driver", "gpu.pcie",
                        "gpu.ecc", "gpu.row_remap", "nvlink.topology", "nvlink.status", "xid",
                        "dcgm.diag", "nvbandwidth.h2d", "nvbandwidth.d2h", "nvbandwidth.d2d",
                        "nccl.all_reduce"}
    nccl = got["nccl.all_reduce"]
    assert nccl.measured == pytest.approx(477.52) and nccl.expected == 475
    assert nccl.ratio == pytest.approx(477.52 / 475) and nccl.ratio_to_peak == pytest.approx(
        477.52 / 450)
    assert got["nvlink.topology"].measured == 18


def test_healthy_a100_passes_with_nv12_25gbps_links_and_old_layouts(tmp_path):
    make_host(tmp_path, "a100-node-7", A100_HEALTHY, "a100-sxm-80gb")
    report = analyze(tmp_path, level="standard")
    assert bad(report) == []
    got = checks(report, "a100-node-7")
    assert got["nvlink.topology"].expected == 12 and got["nvlink.status"].measured == 96
    assert got["nccl.all_reduce"].expected == 230


def test_healthy_l40s_pcie_only_raises_no_nvlink_alarm(tmp_path):
    make_host(tmp_path, "l40s-0", L40S_HEALTHY, "l40s-48gb gpus=4")
    report = analyze(tmp_path, level="quick")
    assert bad(report) == []
    got = checks(report, "l40s-0")
    assert got["nvlink.topology"].status == "pass" and "no NVLink expected" in \
        got["nvlink.topology"].detail
    assert got["nvlink.status"].status == "pass"
    assert got["gpu.row_remap"].status == "skip"  # GDDR6: no row remapping
    # nvbandwidth is outside quick but was collected, so it is judged; D2D was waived.
    assert got["nvbandwidth.h2d"].status == "pass" and got["nvbandwidth.d2d"].status == "skip"
    assert "nccl.all_reduce" not in got  # outside the level and not collected: not an error


# ---- bands ------------------------------------------------------------------------------------
def _ctx(sku: str = "h100-sxm-80gb", overrides: dict | None = None) -> HostContext:
    table = load_reference()
    ref = table.sku(sku)
    return HostContext(host="h", directory=Path("/nonexistent"), ref=ref, table=table,
                       expect_count=ref.count, expect_ib_ports=ref.ib.ports if ref.ib else 0,
                       level="standard",
                       overrides=overrides or {})


@pytest.mark.parametrize(("ratio", "status"), [
    (1.02, "pass"), (0.95, "pass"), (0.949, "warn"), (0.90, "warn"), (0.899, "fail"),
    (0.5, "fail"),
])
def test_default_bands_on_the_reference(ratio, status):
    c = judge_metric(_ctx(), "nccl.all_reduce", 475 * ratio, "busbw")
    assert c.status == status and c.ratio == pytest.approx(ratio)


def test_overrides_move_the_bands_and_can_supply_a_reference():
    ctx = _ctx(overrides={"nccl.all_reduce": {"fail_below": 0.85, "warn_below": 0.9}})
    assert judge_metric(ctx, "nccl.all_reduce", 475 * 0.87, "busbw").status == "warn"
    assert judge_metric(ctx, "nccl.all_reduce", 475 * 0.84, "busbw").status == "fail"
    tpu = _ctx("tpu-v5e")
    assert judge_metric(tpu, "tpu.ici_bandwidth", 120.0, "psum").status == "skip"
    tpu = _ctx("tpu-v5e", overrides={"tpu.ici_bandwidth": {"reference": 150}})
    c = judge_metric(tpu, "tpu.ici_bandwidth", 120.0, "psum")
    assert c.status == "fail" and c.ratio == pytest.approx(0.8) and c.source == "override"


@pytest.mark.parametrize("overrides", [
    {"nccl.allreduce": {"fail_below": 0.8}},
    {"xid": {"fail_below": 0.8}},
    {"nccl.all_reduce": {"fail": 0.8}},
    {"nccl.all_reduce": {"fail_below": 0.95, "warn_below": 0.9}},
    {"nccl.all_reduce": {"reference": -1}},
])
def test_bad_overrides_are_input_errors(tmp_path, overrides):
    make_host(tmp_path, "n", H100_HEALTHY, "h100-sxm-80gb")
    with pytest.raises(InputError):
        analyze(tmp_path, overrides=overrides)


def _scale_nccl(text: str, factor: float) -> str:
    """Scale every bandwidth on the result rows (the table stays in its real layout)."""
    def row(m: re.Match) -> str:
        tokens = m[0].split()
        for i in (6, 7, 10, 11):
            tokens[i] = f"{float(tokens[i]) * factor:.2f}"
        return "  " + "  ".join(tokens)
    return re.sub(r"(?m)^\s+8589934592\s+.*$", row, text)


@pytest.mark.parametrize(("factor", "status"), [(0.97, "pass"), (0.93, "warn"), (0.80, "fail")])
def test_nccl_busbw_lands_in_its_band(tmp_path, factor, status):
    d = make_host(tmp_path, "n", H100_HEALTHY, "h100-sxm-80gb")
    (d / "nccl-all_reduce.txt").write_text(_scale_nccl(fixture("nccl-all_reduce-h100.txt"),
                                                       factor * 475 / 477.52))
    c = checks(analyze(tmp_path), "n")["nccl.all_reduce"]
    assert c.status == status and c.ratio == pytest.approx(factor, abs=0.002)


def test_nccl_ring_figure_gets_an_nvls_hint(tmp_path):
    d = make_host(tmp_path, "n", H100_HEALTHY, "h100-sxm-80gb")
    (d / "nccl-all_reduce.txt").write_text(_scale_nccl(fixture("nccl-all_reduce-h100.txt"),
                                                       370 / 477.52))
    c = checks(analyze(tmp_path), "n")["nccl.all_reduce"]
    assert c.status == "fail" and "NVLS may be off" in c.detail


def test_nccl_failure_and_wrong_rank_count(tmp_path):
    d = make_host(tmp_path, "n", H100_HEALTHY, "h100-sxm-80gb")
    (d / "nccl-all_reduce.txt").write_text(fixture("nccl-all_reduce-failure.txt"))
    c = checks(analyze(tmp_path), "n")["nccl.all_reduce"]
    assert c.status == "fail" and "Test NCCL failure" in c.detail
    (d / "sku").write_text("h100-sxm-80gb gpus=4\n")
    (d / "nccl-all_reduce.txt").write_text(fixture("nccl-all_reduce-h100.txt"))
    c = checks(analyze(tmp_path), "n")["nccl.all_reduce"]
    assert c.status == "fail" and "8 ranks, 4 expected" in c.detail
    assert "device 4, 5, 6, 7 beyond the 4 expected" in c.detail


def test_slow_gpu_on_host_link_fails_h2d_and_names_it(tmp_path):
    d = make_host(tmp_path, "n", H100_HEALTHY, "h100-sxm-80gb")
    lines = fixture("nvbandwidth-h100.txt").splitlines()
    row = lines.index("Running host_to_device_memcpy_ce.") + 3
    cells = lines[row].split()
    cells[4] = "44.00"  # GPU 3 at 86 % of 51 GB/s
    lines[row] = f"{cells[0]:>2}" + "".join(f"{c:>10}" for c in cells[1:])
    (d / "nvbandwidth.txt").write_text("\n".join(lines) + "\n")
    got = checks(analyze(tmp_path), "n")
    assert got["nvbandwidth.h2d"].status == "fail" and "GPU 3" in got["nvbandwidth.h2d"].detail
    assert got["nvbandwidth.d2h"].status == "pass"


# ---- links, inventory, health -------------------------------------------------------------------
def test_inactive_nvlink_and_nv17_topology_fail(tmp_path):
    make_host(tmp_path, "n", {**H100_HEALTHY, "nvidia-smi-nvlink.txt": "nvlink-h100-inactive.txt",
                              "nvidia-smi-topo.txt": "topo-h100-nv17.txt"}, "h100-sxm-80gb")
    got = checks(analyze(tmp_path, level="quick"), "n")
    assert got["nvlink.status"].status == "fail"
    assert "GPU 3 link 5 inactive" in got["nvlink.status"].detail
    assert "GPU 6: all links inactive" in got["nvlink.status"].detail
    topo = got["nvlink.topology"]
    assert topo.status == "fail" and topo.measured == 17 and "GPU0-GPU3 NV17" in topo.detail


def test_wrong_model_count_driver_and_pcie(tmp_path):
    d = make_host(tmp_path, "n", H100_HEALTHY, "h200-sxm-141gb")
    rows = fixture("query-gpu-h100.csv").splitlines()[:7]
    rows[2] = rows[2].replace(", 5, 16,", ", 5, 8,")
    rows[5] = rows[5].replace(", 5, 16,", ", 4, 16,")
    (d / "nvidia-smi-query.csv").write_text("\n".join(rows) + "\n")
    got = checks(analyze(tmp_path, level="quick", expected_driver="535"), "n")
    assert got["gpu.count"].status == "fail" and "GPU 7 missing" in got["gpu.count"].detail
    assert got["gpu.model"].status == "fail" and "NVIDIA H200" in got["gpu.model"].detail
    assert got["gpu.memory"].status == "fail" and got["gpu.memory"].ratio < 0.6
    assert got["gpu.driver"].status == "fail" and got["gpu.driver"].expected == "535"
    assert got["gpu.pcie"].status == "fail" and "GPU 2 x8" in got["gpu.pcie"].detail


def test_pcie_gen_only_below_warns_and_driver_prefix_matches(tmp_path):
    d = make_host(tmp_path, "n", H100_HEALTHY, "h100-sxm-80gb")
    text = fixture("query-gpu-h100.csv").replace("550.127.05, 5, 16", "550.127.05, 1, 16", 1)
    (d / "nvidia-smi-query.csv").write_text(text)
    got = checks(analyze(tmp_path, level="quick", expected_driver="550"), "n")
    assert got["gpu.pcie"].status == "warn" and "Gen1" in got["gpu.pcie"].detail
    assert got["gpu.driver"].status == "pass"


def test_driver_that_cannot_talk_to_the_gpu(tmp_path):
    d = make_host(tmp_path, "n", H100_HEALTHY, "h100-sxm-80gb")
    (d / "nvidia-smi-query.csv").write_text(fixture("query-gpu-driver-failure.csv"))
    (d / "nvidia-smi-query.csv.rc").write_text("9\n")
    got = checks(analyze(tmp_path, level="quick"), "n")
    assert got["gpu.count"].status == "fail" and got["gpu.count"].measured == 0
    assert "couldn't communicate" in got["gpu.count"].detail and "exit 9" in got[
        "gpu.count"].detail
    assert got["gpu.model"].status == "skip"


def test_ecc_and_row_remap_failures(tmp_path):
    d = make_host(tmp_path, "n", {**H100_HEALTHY, "remap.csv": "remap-pending-failure.csv"},
                  "h100-sxm-80gb")
    text = fixture("query-gpu-h100.csv").replace("5, 16, 0\n", "5, 16, 3\n", 1)
    (d / "nvidia-smi-query.csv").write_text(text)
    got = checks(analyze(tmp_path, level="quick"), "n")
    assert got["gpu.ecc"].status == "fail" and got["gpu.ecc"].measured == 3
    remap = got["gpu.row_remap"]
    assert remap.status == "fail" and "00000000:3A:00.0" in remap.detail
    assert "00000000:BA:00.0" in remap.detail and remap.measured == 2


@pytest.mark.parametrize(("lines", "status"), [
    (None, "pass"),
    ([0, 1], "warn"),  # Xid 13: application faults
    ([2], "fail"),  # Xid 48: double-bit ECC
    ([3], "fail"),  # Xid 79: fallen off the bus
])
def test_xid_codes(tmp_path, lines, status):
    d = make_host(tmp_path, "n", H100_HEALTHY, "h100-sxm-80gb")
    log = fixture("xid-kernel-log.txt").splitlines()
    (d / "xid.txt").write_text("\n".join(log[i] for i in lines or []))
    c = checks(analyze(tmp_path, level="quick"), "n")["xid"]
    assert c.status == status


def test_dcgm_failure_lower_level_and_warnings(tmp_path):
    d = make_host(tmp_path, "n", {**H100_HEALTHY,
                                  "dcgmi-diag.json": "dcgm-diag-r3-dcgm4-fail.json"},
                  "h100-sxm-80gb")
    c = checks(analyze(tmp_path, level="full"), "n")["dcgm.diag"]
    assert c.status == "fail" and "memory_bandwidth GPU 2" in c.detail
    (d / "dcgmi-diag.json").write_text(fixture("dcgm-diag-r2-dcgm4-pass.json"))
    c = checks(analyze(tmp_path, level="full"), "n")["dcgm.diag"]
    assert c.status == "warn" and "ran -r 2, level full expects -r 3" in c.detail
    (d / "dcgmi-diag.json").write_text(fixture("dcgm-diag-r2-dcgm3.json"))
    c = checks(analyze(tmp_path, level="standard"), "n")["dcgm.diag"]
    assert c.status == "warn" and "replay count" in c.detail


# ---- InfiniBand -------------------------------------------------------------------------------
def test_infiniband_ports_and_bandwidth(tmp_path):
    d = make_host(tmp_path, "n", {**H100_HEALTHY, "ibstat.txt": "ibstat-ndr.txt",
                                  "ib_write_bw.txt": "ib_write_bw-gbits.txt"},
                  "h100-sxm-80gb ib_ports=3")
    got = checks(analyze(tmp_path, level="full"), "n")
    assert got["ib.ports"].status == "fail" and "mlx5_2/1 Down/Polling" in got["ib.ports"].detail
    assert got["ib.ports"].measured == 2  # the Ethernet port is not counted
    bw = got["ib.write_bw"]
    assert bw.status == "fail" and bw.measured == pytest.approx(391.78)
    assert "2 HCAs measured of 3 expected" in bw.detail
    (d / "sku").write_text("h100-sxm-80gb ib_ports=2\n")
    got = checks(analyze(tmp_path, level="full"), "n")
    assert got["ib.write_bw"].status == "pass"


def test_no_infiniband_expected_skips(tmp_path):
    make_host(tmp_path, "n", H100_HEALTHY, "h100-sxm-80gb ib_ports=0")
    got = checks(analyze(tmp_path, level="full"), "n")
    assert got["ib.ports"].status == "skip" and got["ib.write_bw"].status == "skip"


# ---- missing files, markers, levels -----------------------------------------------------------
def test_missing_file_inside_level_fails_outside_level_is_omitted(tmp_path):
    d = make_host(tmp_path, "n", H100_HEALTHY, "h100-sxm-80gb")
    (d / "nvbandwidth.txt").unlink()
    got = checks(analyze(tmp_path, level="standard"), "n")
    assert got["nvbandwidth.h2d"].status == "fail" and "missing" in got["nvbandwidth.h2d"].detail
    got = checks(analyze(tmp_path, level="quick"), "n")
    assert "nvbandwidth.h2d" not in got and "nccl.all_reduce" in got  # present: judged anyway


def test_timeout_marker_and_not_installed(tmp_path):
    d = make_host(tmp_path, "n", H100_HEALTHY, "h100-sxm-80gb")
    (d / "nccl-all_reduce.txt").write_text("# nThread 1 nGpus 8\n")
    (d / "nccl-all_reduce.txt.timeout").write_text("600\n")
    (d / "nvbandwidth.txt").unlink()
    (d / "nvbandwidth.txt.rc").write_text("127\n")
    (d / "nvbandwidth.txt.stderr").write_text("bash: nvbandwidth: command not found\n")
    got = checks(analyze(tmp_path), "n")
    assert got["nccl.all_reduce"].status == "fail"
    assert "hung and was killed after 600 s" in got["nccl.all_reduce"].detail
    assert "not installed" in got["nvbandwidth.d2d"].detail
    assert "command not found" in got["nvbandwidth.d2d"].detail


def test_empty_host_directory_fails_every_expected_check(tmp_path):
    (tmp_path / "unreachable").mkdir()
    report = analyze(tmp_path, default_sku="h100-sxm-80gb", level="quick")
    statuses = {c.status for c in report.hosts["unreachable"].checks}
    assert statuses == {"fail"} and len(report.hosts["unreachable"].checks) == 11


@pytest.mark.parametrize("garbage", ["", "\x00\xff\xfe not a tool's output\n", "{}", "N/A\n"])
def test_garbage_in_every_file_is_reported_never_raised(tmp_path, garbage):
    d = make_host(tmp_path, "n", {**H100_HEALTHY, "ibstat.txt": None, "ib_write_bw.txt": None},
                  "h100-sxm-80gb")
    for f in d.iterdir():
        if f.name != "sku":
            f.write_text(garbage)
    t = make_host(tmp_path, "t", {}, "tpu-v5e")
    (t / "tpu-check.json").write_text(garbage)
    (tmp_path / "_cluster").mkdir()
    (tmp_path / "_cluster" / "nccl-all_reduce.txt").write_text(garbage)
    report = analyze(tmp_path, level="full")
    every = [c for h in report.hosts.values() for c in h.checks] + report.cluster.checks
    # Only the XID log may pass: a log without XID lines is a clean log.
    assert {c.name for c in every if c.status == "pass"} <= {"xid"}
    failed = {c.name for c in every if c.status == "fail"}
    assert {"gpu.count", "nvlink.topology", "nvlink.status", "dcgm.diag", "nvbandwidth.h2d",
            "nccl.all_reduce", "ib.ports", "ib.write_bw", "tpu.chips",
            "nccl.all_reduce.multinode"} <= failed


def test_unusable_input_raises_input_error(tmp_path):
    with pytest.raises(InputError, match="no such directory"):
        analyze(tmp_path / "nope")
    with pytest.raises(InputError, match="no host directories"):
        analyze(tmp_path)
    make_host(tmp_path, "n", H100_HEALTHY, None)
    with pytest.raises(InputError, match="no sku file"):
        analyze(tmp_path)
    with pytest.raises(InputError, match="unknown SKU 'h900'"):
        analyze(tmp_path, default_sku="h900")
    (tmp_path / "n" / "sku").write_text("h100-sxm-80gb gpus=eight\n")
    with pytest.raises(InputError, match="cannot read"):
        analyze(tmp_path)
    with pytest.raises(InputError, match="level"):
        analyze(tmp_path, default_sku="h100-sxm-80gb", level="thorough")


# ---- cluster, TPU -----------------------------------------------------------------------------
def test_multinode_nccl_judged_per_nic(tmp_path):
    for h in ("gpu-node-0", "gpu-node-1"):
        make_host(tmp_path, h, H100_HEALTHY, "h100-sxm-80gb")
    (tmp_path / "_cluster").mkdir()
    (tmp_path / "_cluster" / "nccl-all_reduce.txt").write_text(
        fixture("nccl-all_reduce-openmpi-sweep.txt"))
    report = analyze(tmp_path, level="full")
    (c,) = report.cluster.checks
    assert c.name == "nccl.all_reduce.multinode" and c.status == "pass"
    assert c.expected == 46 * 8 and c.measured == pytest.approx(368.0)
    assert "16 ranks on 2 nodes" in c.detail and "46 GB/s per NIC" in c.source
    make_host(tmp_path, "gpu-node-2", H100_HEALTHY, "h100-sxm-80gb")
    (c,) = analyze(tmp_path, level="full").cluster.checks
    assert c.status == "fail" and "16 ranks, 24 expected" in c.detail


def test_cluster_check_missing_at_full_fails_and_absent_below_full(tmp_path):
    for h in ("a", "b"):
        make_host(tmp_path, h, H100_HEALTHY, "h100-sxm-80gb")
    assert analyze(tmp_path, level="standard").cluster.checks == []
    (c,) = analyze(tmp_path, level="full").cluster.checks
    assert c.status == "fail" and "_cluster/nccl-all_reduce.txt is missing" in c.detail


def test_tpu_host(tmp_path):
    d = tmp_path / "t1v-w-0"
    d.mkdir()
    (d / "sku").write_text("tpu-v5e\n")
    (d / "tpu-check.json").write_text(fixture("tpu-check-v5e.json"))
    got = checks(analyze(tmp_path, level="standard"), "t1v-w-0")
    assert set(got) == {"tpu.chips", "tpu.ici_bandwidth"}
    assert got["tpu.chips"].status == "pass"
    ici = got["tpu.ici_bandwidth"]
    assert ici.status == "skip" and ici.ratio_to_peak == pytest.approx(121.57 / 400)
    (d / "sku").write_text("tpu-v5e chips=4\n")
    assert checks(analyze(tmp_path), "t1v-w-0")["tpu.chips"].status == "fail"


# ---- report renderers -------------------------------------------------------------------------
def test_json_markdown_and_table_name_the_node_and_check(tmp_path):
    make_host(tmp_path, "gpu-node-0", H100_HEALTHY, "h100-sxm-80gb")
    make_host(tmp_path, "gpu-node-1", {**H100_HEALTHY,
                                       "nvidia-smi-nvlink.txt": "nvlink-h100-inactive.txt"},
              "h100-sxm-80gb")
    report = analyze(tmp_path)
    doc = json.loads(json.dumps(to_json(report)))
    assert set(doc) == {"status", "hosts", "cluster"} and doc["status"] == "fail"
    assert set(doc["hosts"]["gpu-node-1"]) == {"status", "checks"}
    check = doc["hosts"]["gpu-node-1"]["checks"][0]
    assert {"name", "status", "measured", "expected", "unit", "ratio", "ratio_to_peak",
            "detail"} <= set(check)
    assert doc["cluster"] == {"status": "pass", "checks": []}
    md = to_markdown(report)
    assert md.startswith("### provision verify: FAIL (level standard)")
    assert "| gpu-node-1 | `nvlink.status` | FAIL |" in md
    from rich.console import Console

    console = Console(record=True, width=200)
    render_table(report, console)
    text = console.export_text()
    assert "gpu-node-1" in text and "nvlink.status" in text and "GPU 3 link 5 inactive" in text


def test_table_on_a_larger_cluster_details_only_hosts_with_problems(tmp_path):
    for i in range(5):
        make_host(tmp_path, f"gpu-node-{i}", H100_HEALTHY, "h100-sxm-80gb")
    (tmp_path / "gpu-node-3" / "xid.txt").write_text(fixture("xid-kernel-log.txt"))
    from rich.console import Console

    console = Console(record=True, width=200)
    render_table(analyze(tmp_path, level="quick"), console)
    text = console.export_text()
    assert "gpu-node-3  (h100-sxm-80gb)  FAIL" in text and "fatal XID events" in text
    assert "gpu-node-0  (h100-sxm-80gb)" not in text and "gpu-node-0" in text
    assert "4 passing host(s) not shown" in text


def test_copying_a_host_directory_changes_nothing(tmp_path):
    """analyze() is pure: the same files give the same report, wherever they sit."""
    make_host(tmp_path / "a", "n", H100_HEALTHY, "h100-sxm-80gb")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    assert to_json(analyze(tmp_path / "a")) == to_json(analyze(tmp_path / "b"))
