"""The simulated tools print what the real ones print: the same headers, columns, tabs and
number widths as the outputs recorded on real machines in tests/fixtures/real, so simulated
nodes exercise the parsers along the real paths. Each rule checked here is first checked on the
real recording, so the rule itself is not this project's invention."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.unit.test_verify_roundtrip import sim, write_config

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "real"


def real(name: str) -> str:
    return (REAL / name).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def cfg(tmp_path_factory) -> Path:
    return write_config(tmp_path_factory.mktemp("fmt") / "n.json", "h100-sxm-80gb", "gpu-node-0")


@pytest.fixture(scope="module")
def a100(tmp_path_factory) -> Path:
    return write_config(tmp_path_factory.mktemp("fmt") / "a.json", "a100-sxm-80gb", "gpu-node-0",
                        ["xid-79"])


# ---- nvidia-smi topo -m ------------------------------------------------------------------------
def _topo_shape(text: str) -> list[str]:
    """The layout with the codes and numbers abstracted: tabs, ` X ` cells, empty cells."""
    out = []
    for ln in text.splitlines():
        ln = re.sub(r"\b(GPU|NIC)\d+\b", r"\1#", ln)
        ln = re.sub(r"\bNV\d+\b|\b(PHB|PIX|PXB|NODE|SYS)\b", "P", ln)
        out.append(re.sub(r"\b[0-9][0-9,-]*\b", "9", ln))
    return out


def test_topology_layout_matches_a_real_tab_separated_matrix(cfg):
    recorded = _topo_shape(real("topo-rtx5090-2gpu-tabs-club3090.txt"))
    simulated = _topo_shape(sim("nvidia-smi", "topo", "-m", config=cfg).stdout)
    header = "\tGPU#\tGPU#\tCPU Affinity\tNUMA Affinity\tGPU NUMA ID"
    assert recorded[0] == header
    assert simulated[0].startswith("\tGPU#\t") and \
        simulated[0].endswith("\tCPU Affinity\tNUMA Affinity\tGPU NUMA ID")
    assert recorded[1] == "GPU#\t X \tP\t9\t9\t\tN/A"  # self cell, affinity, empty cell, N/A
    gpu_rows = [ln for ln in simulated if ln.startswith("GPU#\t")]
    assert len(gpu_rows) == 8 and all(re.fullmatch(r"GPU#(\t( X |P))+\t9\t9\t\tN/A", ln)
                                      for ln in gpu_rows)
    legend = recorded[recorded.index("Legend:"):]
    assert simulated[simulated.index("Legend:"):][:len(legend)] == legend


# ---- nvidia-smi nvlink --status ------------------------------------------------------------
def test_nvlink_status_lines_match_the_real_ones(a100):
    recorded = real("nvlink-a100-80gb-gpu7-azurehpc.txt").splitlines()
    simulated = sim("nvidia-smi", "nvlink", "--status", config=a100).stdout.splitlines()
    gpu = r"GPU \d+: NVIDIA A100-SXM4-80GB \(UUID: GPU-[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}\)"
    assert re.fullmatch(gpu, recorded[0]) and re.fullmatch(gpu, simulated[0])
    assert recorded[1:] == simulated[1:13]  # "\t Link 0: 25 GB/s" ... link 11, byte for byte


# ---- ibstat --------------------------------------------------------------------------------
def _ibstat_keys(text: str) -> list[str]:
    return [re.sub(r":.*", ":", ln) for ln in text.splitlines() if ln.startswith("\t")]


def test_ibstat_blocks_have_the_real_keys_and_tabs(cfg):
    recorded = _ibstat_keys(real("ibstat-ibpanic-gpud752.txt"))
    block = sim("ibstat", config=cfg).stdout.split("CA 'mlx5_1'")[0]
    assert block.startswith("CA 'mlx5_0'\n")
    assert _ibstat_keys(block) == recorded


# ---- nvbandwidth ---------------------------------------------------------------------------
def _matrix_rows_follow_the_v08_layout(text: str) -> int:
    """Rows are a 2-wide label and 10-wide right-aligned cells (v0.7+, NVIDIA/nvbandwidth#42);
    returns how many matrix lines were checked."""
    checked = 0
    for ln in text.splitlines():
        words = ln.split()
        if words and re.fullmatch(r"\d+", words[0]) and len(words) > 1 and "." in ln:
            assert ln == f"{words[0]:>2}" + "".join(f"{w:>10}" for w in words[1:]), ln
            checked += 1
        elif words and all(re.fullmatch(r"\d+", w) for w in words) and ln.startswith("  "):
            assert ln == " " * 2 + "".join(f"{w:>10}" for w in words), ln
            checked += 1
    return checked


def test_nvbandwidth_header_and_matrix_layout_match_real_runs(cfg):
    out = sim("nvbandwidth", "-t", "host_to_device_memcpy_ce",
              "device_to_device_bidirectional_memcpy_read_sm", config=cfg).stdout
    assert _matrix_rows_follow_the_v08_layout(real("nvbandwidth-a100-40gb-h2d-sm-nvb42.txt")) == 2
    assert _matrix_rows_follow_the_v08_layout(out) == 2 + 9
    recorded = real("nvbandwidth-a100-80gb-assert-nvb34.txt").splitlines()  # v0.7, as simulated
    head = [re.sub(r"\d+", "9", ln) for ln in recorded[:recorded.index("Running "
                                                                         "device_to_device_memcpy_read_ce.")]]
    got = [re.sub(r"\d+", "9", ln) for ln in out.splitlines()]
    got = [re.sub(r"\(SIMULATED by provision-sim\)$", "", g).rstrip() for g in got]
    device = r"Device 9: NVIDIA .+ \(9:[0-9a-f]{1,2}:9\)"
    assert [h for h in head if not h.startswith("Device")] == \
        [g for g in got[:len(head)] if not g.startswith("Device")]
    assert all(re.fullmatch(device, ln) for ln in head + got if ln.startswith("Device"))
    assert re.search(r"^SUM host_to_device_memcpy_ce \d+\.\d\d$", out, re.M)


# ---- all_reduce_perf -----------------------------------------------------------------------
NCCL_REAL = ["nccl-h100-a3mega-2node-ztan.txt", "nccl-h100-p5-2node-srun-awsome.txt",
             "nccl-a100-40gb-8gpu-superbench.txt"]


def _numbers_follow_nccl_tests(row: list[str]) -> None:
    """Times: 2 decimals below 100 us, 1 below 10,000, none above; bandwidths: 2 decimals."""
    times, bws = ((5, 9), (6, 7, 10, 11)) if len(row) == 13 else ((4, 8), (5, 6, 9, 10))
    for i in times:
        value = float(row[i])
        want = 2 if value < 100 else 1 if value < 10_000 else 0
        assert len(row[i].partition(".")[2]) == want, row[i]
    for i in bws:
        assert re.fullmatch(r"\d+\.\d\d", row[i]), row[i]


def _rows(text: str) -> list[list[str]]:
    lines = [re.sub(r"^(\[\d+,\d+\]<stdout>:|\d+:)", "", ln) for ln in text.splitlines()]
    return [ln.split() for ln in lines if re.match(r"\s+\d+\s+\d+\s+float", ln)]


@pytest.mark.parametrize("name", NCCL_REAL)
def test_real_nccl_rows_follow_the_number_rule(name):
    rows = _rows(real(name))
    assert len(rows) > 20
    for row in rows:
        _numbers_follow_nccl_tests(row)


def test_simulated_nccl_log_matches_the_real_layout(cfg):
    out = sim("all_reduce_perf", "-b", "8", "-e", "8G", "-f", "2", "-g", "8", config=cfg).stdout
    recorded = real("nccl-h100-a3mega-2node-ztan.txt")
    for pattern in (r"^# nThread \d+ nGpus \d+ minBytes \d+ maxBytes \d+ step: 2\(factor\) "
                    r"warmup iters: \d+ iters: \d+ agg iters: \d+ validation: \d+ graph: \d+$",
                    r"^#  Rank +\d+ Group +\d+ Pid +\d+ on +\S+ device +\d+ "
                    r"\[0000:[0-9a-f]{2}:00\] NVIDIA H100 80GB HBM3$",
                    r"^# Out of bounds values : 0 OK$", r"^# Avg bus bandwidth    : [\d.]+ ?$"):
        assert re.search(pattern, recorded, re.M), pattern
        assert re.search(pattern, out, re.M), pattern
    columns = [ln.split() for ln in (recorded, out) for ln in [
        next(x for x in ln.splitlines() if "redop" in x)]]
    assert [c.lstrip("#") for c in columns[0]] == [c.lstrip("#") for c in columns[1]]
    real_row, sim_row = _rows(recorded)[-1], _rows(out)[-1]
    assert len(real_row) == len(sim_row) == 13
    real_line = next(x for x in recorded.splitlines() if x.strip().startswith("8589934592"))
    sim_line = next(x for x in out.splitlines() if x.strip().startswith("8589934592"))
    assert real_line[:52] == sim_line[:52]  # size, count, type, redop, root: same columns
    for row in _rows(out):
        _numbers_follow_nccl_tests(row)


# ---- ib_write_bw ---------------------------------------------------------------------------
def _perftest_row(ln: str) -> bool:
    """perftest's REPORT_FMT (the version of the recorded run):
    ``" %-7lu    %-7lu          %-7.2lf            %-7.2lf\\t\\t   %-7.6lf"``."""
    w = ln.split()
    return ln.rstrip() == (f" {w[0]:<7}    {w[1]:<7}          {w[2]:<7}            "
                           f"{w[3]:<7}\t\t   {w[4]}")


def test_ib_write_bw_banner_and_row_match_perftest(cfg):
    recorded = real("ib_write_bw-loopback-mbsec-superbench.txt")
    out = sim("ib_write_bw", "-d", "mlx5_0", "--report_gbits", "-F", "-D", "10", "localhost",
              config=cfg).stdout
    for text in (recorded, out):
        rows = [ln for ln in text.splitlines() if re.match(r" \d+\s+\d+\s+[\d.]+", ln)]
        assert rows and all(_perftest_row(r) for r in rows)
        assert re.search(r"^ Dual-port       : OFF\t\tDevice         : \S+$", text, re.M)
        assert re.search(r"^ #bytes     #iterations    BW peak\[(MB|Gb)/sec\]    "
                         r"BW average\[(MB|Gb)/sec\]   MsgRate\[Mpps\]$", text, re.M)


# ---- kernel-log XID lines ------------------------------------------------------------------
def test_xid_lines_have_the_real_shape(a100):
    xid = r"\[[ \d.]+\] NVRM: Xid \(PCI:[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\): \d+, pid=[^,]+, "
    assert re.search(xid, real("xid-119-gsp-timeout-gpud.txt").replace(
        "[Sun Feb 23 16:24:18 2025]", "[ 1.0]"))
    lines = [ln for ln in sim("nvidia-sim-dmesg", config=a100).stdout.splitlines()
             if "NVRM: Xid" in ln]
    assert lines and all(re.match(xid, ln) for ln in lines)
