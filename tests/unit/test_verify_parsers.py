"""Parsers on recorded-format samples (tests/fixtures/verify), including the ugly cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from provision.verify.parsers.dcgm import parse_dcgm
from provision.verify.parsers.ib_write_bw import parse_ib_write_bw
from provision.verify.parsers.ibstat import parse_ibstat
from provision.verify.parsers.nccl import parse_nccl
from provision.verify.parsers.nvbandwidth import parse_nvbandwidth
from provision.verify.parsers.remap import parse_remap
from provision.verify.parsers.smi_nvlink import parse_nvlink
from provision.verify.parsers.smi_query import parse_query_gpu
from provision.verify.parsers.smi_topo import parse_topo
from provision.verify.parsers.tpu import parse_tpu_check
from provision.verify.parsers.xid import parse_xid

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "verify"


def fixture(name: str) -> str:
    return (FIXTURES / f"recorded-format-{name}").read_text(encoding="utf-8")


def test_every_fixture_is_labelled_a_recorded_format_sample():
    names = [p.name for p in FIXTURES.iterdir() if p.name != "README.md"]
    assert names and all(n.startswith("recorded-format-") for n in names)
    readme = (FIXTURES / "README.md").read_text()
    assert "None of them is a live" in readme


# ---- nccl-tests -------------------------------------------------------------------------------
def test_nccl_single_node_with_nccl_info_lines_interleaved():
    r = parse_nccl(fixture("nccl-all_reduce-h100.txt"))
    assert len(r.rows) == 1 and len(r.ranks) == 8 and r.hosts == ["gpu-node-0"]
    row = r.largest()
    assert row.size == 8 << 30 and row.count == 2147483648 and row.root == -1
    assert row.busbw == pytest.approx(477.13) and row.ip_busbw == pytest.approx(477.52)
    assert row.best_busbw == pytest.approx(477.52)
    assert row.wrong == 0 and row.ip_wrong == 0
    assert r.gpus_per_process == 8 and r.avg_busbw == pytest.approx(477.13)
    assert r.out_of_bounds == 0 and not r.errors
    assert r.ranks[3].gpu_name == "NVIDIA H100 80GB HBM3" and r.ranks[3].bus_id == "0000:5d:00"


def test_nccl_openmpi_tag_output_sweep_judges_largest_size_not_average():
    r = parse_nccl(fixture("nccl-all_reduce-openmpi-sweep.txt"))
    assert len(r.rows) == 8 and len(r.ranks) == 16
    assert r.hosts == ["gpu-node-0", "gpu-node-1"]
    assert r.largest().size == 8 << 30
    assert r.largest().busbw == pytest.approx(367.6)
    assert r.avg_busbw < 250  # the sweep average is far below what the largest size shows


def test_nccl_srun_labels_under_timestamps():
    r = parse_nccl(fixture("nccl-all_reduce-srun-timestamps.txt"))
    assert len(r.rows) == 1 and len(r.ranks) == 8
    assert r.largest().size == 16 << 30 and r.largest().busbw == pytest.approx(479.41)
    assert r.ranks[0].host == "h200-a-0"


def test_nccl_old_layout_without_root_and_with_error_column_and_exponent_times():
    r = parse_nccl(fixture("nccl-all_reduce-old-layout.txt"))
    row = r.largest()
    assert row.root is None and row.redop == "sum"
    assert row.time_us == pytest.approx(6.5e4)
    assert row.busbw == pytest.approx(231.40) and row.wrong == 0
    assert len(r.ranks) == 8 and r.ranks[0].bus_id == "0x18"


def test_nccl_check_disabled_prints_na_in_wrong_column():
    row = parse_nccl(fixture("nccl-all_reduce-check-off.txt")).largest()
    assert row.wrong is None and row.ip_wrong is None and row.wrong_total == 0
    assert row.busbw == pytest.approx(478.02)


def test_nccl_failed_run_has_no_rows_and_keeps_the_error():
    r = parse_nccl(fixture("nccl-all_reduce-failure.txt"))
    assert r.rows == [] and r.largest() is None
    assert any("Test NCCL failure" in e for e in r.errors)
    assert any("NCCL WARN Cuda failure" in w for w in r.nccl_warnings)


def test_nccl_ignores_garbage_and_empty_input():
    assert parse_nccl("").rows == []
    r = parse_nccl("random text\n12 34\n# size count type\n")
    assert r.rows == [] and r.largest() is None


# ---- nvbandwidth ------------------------------------------------------------------------------
def test_nvbandwidth_h100_tests_and_na_diagonal():
    r = parse_nvbandwidth(fixture("nvbandwidth-h100.txt"))
    assert set(r.tests) == {"host_to_device_memcpy_ce", "device_to_host_memcpy_ce",
                            "device_to_device_bidirectional_memcpy_read_sm"}
    assert r.version == "v0.5" and len(r.devices) == 8
    h2d = r.tests["host_to_device_memcpy_ce"].per_gpu()
    assert sorted(h2d) == list(range(8)) and all(50 < v < 53 for v in h2d.values())
    d2d = r.tests["device_to_device_bidirectional_memcpy_read_sm"]
    pairs = d2d.pairs()
    assert len(pairs) == 56 and (0, 0) not in pairs and all(v > 660 for v in pairs.values())
    assert d2d.rows["0"][0] is None  # the N/A diagonal
    assert d2d.total == pytest.approx(sum(pairs.values()), abs=0.1)


def test_nvbandwidth_old_build_zero_diagonal_is_left_out():
    d2d = parse_nvbandwidth(fixture("nvbandwidth-a100-old-diagonal.txt")).tests[
        "device_to_device_bidirectional_memcpy_read_sm"]
    assert d2d.rows["3"][3] == 0.0
    assert min(d2d.pairs().values()) > 400  # the 0.00 diagonal is not a pair


def test_nvbandwidth_waived_test_is_counted_not_named():
    r = parse_nvbandwidth(fixture("nvbandwidth-l40s-waived.txt"))
    assert r.waived == 1
    assert "device_to_device_bidirectional_memcpy_read_sm" not in r.tests
    assert len(r.tests["device_to_host_memcpy_ce"].per_gpu()) == 4


# ---- nvidia-smi -------------------------------------------------------------------------------
def test_topo_strips_ansi_and_reads_nv18():
    text = fixture("topo-h100-tty.txt")
    assert "\x1b[4m" in text
    t = parse_topo(text)
    assert t.gpus == [f"GPU{i}" for i in range(8)] and len(t.devices) == 16
    assert t.nvlinks("GPU0", "GPU7") == 18 and t.nvlinks("GPU0", "NIC0") == 0
    assert t.cells[("GPU3", "GPU3")] == "X"
    assert t.nic_names["NIC5"] == "mlx5_5"
    assert t.cpu_affinity["GPU6"] == "56-111,168-223"


def test_topo_empty_cpu_affinity_cells_keep_columns_aligned():
    t = parse_topo(fixture("topo-l40s-empty-affinity.txt"))
    assert t.gpus == ["GPU0", "GPU1", "GPU2", "GPU3"]
    assert t.cells[("GPU0", "GPU1")] == "NODE" and t.cells[("GPU0", "GPU3")] == "SYS"
    assert t.cpu_affinity["GPU2"] == "" and t.nvlinks("GPU0", "GPU1") == 0


def test_topo_whitespace_copy_without_tabs_still_reads():
    text = fixture("topo-a100.txt").replace("\t", "   ")
    t = parse_topo(text)
    assert t.nvlinks("GPU1", "GPU6") == 12 and len(t.gpus) == 8


def test_topo_degraded_pairs():
    t = parse_topo(fixture("topo-h100-nv17.txt"))
    assert t.nvlinks("GPU3", "GPU0") == 17 and t.nvlinks("GPU1", "GPU2") == 18


def test_topo_without_matrix_reports_error():
    assert parse_topo("NVIDIA-SMI has failed\n").errors


def test_nvlink_status_speeds():
    s = parse_nvlink(fixture("nvlink-h100.txt"))
    assert len(s.gpus) == 8 and all(len(g.active) == 18 for g in s.gpus)
    assert s.gpus[2].links[17] == pytest.approx(26.562)
    assert s.gpus[0].uuid.startswith("GPU-") and s.gpus[0].name == "NVIDIA H100 80GB HBM3"
    a100 = parse_nvlink(fixture("nvlink-a100.txt"))
    assert {s for g in a100.gpus for s in g.links.values()} == {25.0}


def test_nvlink_inactive_link_and_all_links_inactive_message():
    s = parse_nvlink(fixture("nvlink-h100-inactive.txt"))
    assert s.gpus[3].links[5] is None and len(s.gpus[3].active) == 17
    assert s.gpus[6].all_inactive and s.gpus[6].links == {}
    assert not s.gpus[0].all_inactive


def test_nvlink_pcie_only_gpus_list_no_links():
    s = parse_nvlink(fixture("nvlink-l40s.txt"))
    assert len(s.gpus) == 4 and all(g.links == {} for g in s.gpus)


def test_nvlink_zero_speed_counts_as_down():
    s = parse_nvlink("GPU 0: NVIDIA H100 80GB HBM3\n\t Link 0: 26.562 GB/s\n\t Link 1: 0 GB/s\n")
    assert s.gpus[0].links == {0: 26.562, 1: None} and s.gpus[0].uuid is None


def test_query_gpu_rows():
    q = parse_query_gpu(fixture("query-gpu-h100.csv"))
    assert len(q.gpus) == 8 and not q.errors
    g = q.gpus[7]
    assert (g.index, g.name, g.memory_mib, g.driver, g.pcie_gen, g.pcie_width,
            g.ecc_uncorrected) == (7, "NVIDIA H100 80GB HBM3", 81559, "550.127.05", 5, 16, 0)


def test_query_gpu_na_and_not_supported_cells_become_none():
    q = parse_query_gpu(fixture("query-gpu-l40s-na.csv"))
    assert len(q.gpus) == 4
    assert q.gpus[3].pcie_gen is None and q.gpus[3].pcie_width is None
    assert q.gpus[1].ecc_uncorrected is None and q.gpus[0].ecc_uncorrected == 0


def test_query_gpu_driver_failure_is_an_error_not_a_row():
    q = parse_query_gpu(fixture("query-gpu-driver-failure.csv"))
    assert q.gpus == [] and "couldn't communicate with the NVIDIA driver" in q.errors[0]


def test_query_gpu_tolerates_units_left_in():
    q = parse_query_gpu("0, NVIDIA A100-SXM4-80GB, GPU-x, 81920 MiB, 535.1, 4, 16, 0\n")
    assert q.gpus[0].memory_mib == 81920


def test_remap_rows():
    ok = parse_remap(fixture("remap-h100.csv"))
    assert len(ok.gpus) == 8 and not any(r.pending or r.failure for r in ok.gpus)
    assert ok.gpus[5].uncorrectable == 1
    bad = parse_remap(fixture("remap-pending-failure.csv"))
    assert [r.bus_id for r in bad.gpus if r.pending] == ["00000000:3A:00.0"]
    assert [r.bus_id for r in bad.gpus if r.failure] == ["00000000:BA:00.0"]
    na = parse_remap(fixture("remap-l40s-na.csv"))
    assert all(r.pending is None and r.correctable is None for r in na.gpus)


# ---- DCGM -------------------------------------------------------------------------------------
def test_dcgm3_shape_with_leading_warning_and_nulls():
    d = parse_dcgm(fixture("dcgm-diag-r2-dcgm3.json"))
    assert d.version == "3.3.5" and not d.errors
    assert {"denylist", "pcie", "gpu_memory", "persistence_mode"} <= d.tests
    assert d.level_run() == 2
    warn = [r for r in d.results if r.status == "warn"]
    assert len(warn) == 1 and warn[0].gpu == "4" and "replay" in warn[0].messages[0]


def test_dcgm4_shape_with_failure():
    d = parse_dcgm(fixture("dcgm-diag-r3-dcgm4-fail.json"))
    assert d.version == "4.1.1" and d.level_run() == 3
    failed = [r for r in d.results if r.status == "fail"]
    assert [(r.test, r.gpu) for r in failed] == [("memory_bandwidth", "2")]
    assert "below the minimum" in failed[0].messages[0]


def test_dcgm_not_json_and_runtime_error():
    assert parse_dcgm("Error: unable to connect to host engine\n").errors
    d = parse_dcgm('{"DCGM Diagnostic": {"runtime_error": "No GPUs found"}}')
    assert d.runtime_error == "No GPUs found"


# ---- InfiniBand -------------------------------------------------------------------------------
def test_ibstat_ports_states_and_link_layers():
    r = parse_ibstat(fixture("ibstat-ndr.txt"))
    assert [p.name for p in r.ports] == ["mlx5_0/1", "mlx5_1/1", "mlx5_2/1", "mlx5_bond_0/1"]
    ib = [p for p in r.ports if p.is_infiniband]
    assert len(ib) == 3 and [p.up for p in ib] == [True, True, False]
    assert ib[0].rate == 400 and ib[0].ca_type == "MT4129"
    assert ib[2].state == "Down" and ib[2].physical_state == "Polling"


def test_ib_write_bw_runs_appended_with_error_lines():
    r = parse_ib_write_bw(fixture("ib_write_bw-gbits.txt"))
    assert [run.device for run in r.runs] == ["mlx5_0", "mlx5_1"]
    assert r.runs[0].bw_avg_gbps == pytest.approx(392.45) and r.runs[1].size == 65536
    assert any("state is Down" in e for e in r.runs[1].errors + r.errors)


def test_ib_write_bw_mb_per_second_is_converted():
    r = parse_ib_write_bw(fixture("ib_write_bw-mbsec.txt"))
    assert r.runs[0].device == "mlx5_4"
    assert r.runs[0].bw_avg_gbps == pytest.approx(46770.21 * 2**20 * 8 / 1e9)


# ---- XID, TPU ---------------------------------------------------------------------------------
def test_xid_lines_from_dmesg_and_journalctl():
    log = parse_xid(fixture("xid-kernel-log.txt"))
    assert [(e.code, e.pci) for e in log.events] == [
        (13, "0000:3a:00"), (13, "0000:3a:00"), (48, "0000:9a:00"), (79, "0000:db:00")]
    assert log.events[3].message == "GPU has fallen off the bus."


def test_tpu_check_json():
    t = parse_tpu_check(fixture("tpu-check-v5e.json"))
    assert (t.platform, t.local_chips, t.psum_correct) == ("tpu", 8, True)
    assert t.busbw_gbps == pytest.approx(121.57)
    assert parse_tpu_check("{}").errors and parse_tpu_check("nope").errors


# ---- robustness -------------------------------------------------------------------------------
PARSERS = (parse_nccl, parse_nvbandwidth, parse_topo, parse_nvlink, parse_query_gpu, parse_remap,
           parse_dcgm, parse_ibstat, parse_ib_write_bw, parse_xid, parse_tpu_check)
ODD_INPUTS = ("", "\n\n", "\x00\x01\xff garbage", "N/A\n[N/A], [N/A]\n", "{", "}{", "# size\n1 2",
              "Running x.\nmemcpy bandwidth\n 0 1\n0 N/A x\n", "GPU 0: x\n Link a: b\n",
              "CA 'x'\n\tPort 1:\n\t\tRate: fast\n", '{"DCGM Diagnostic": {"test_categories": 3}}',
              '{"DCGM GPU Diagnostic": {"test_categories": [{"tests": [{"results": [7]}]}]}}',
              '{"format": "provision-tpu-check", "psum": 3, "errors": 5, "local_chips": "x"}')


@pytest.mark.parametrize("parser", PARSERS, ids=lambda p: p.__name__)
def test_parsers_never_raise_on_other_tools_output_or_garbage(parser):
    for path in sorted(FIXTURES.glob("recorded-format-*")):
        parser(path.read_text())
    for text in ODD_INPUTS:
        parser(text)
