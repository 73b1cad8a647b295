"""A corrupted measurement is never a pass, and the analyzer never crashes or hangs: one test
per corruption class of issue 13, on hosts assembled from the recorded-format samples (the fuzz
test covers the same classes at random on a simulated run)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from provision.errors import InputError
from provision.verify import analyze
from tests.unit.test_verify_judge import H100_HEALTHY, checks, fixture, make_host
from tests.unit.verify_fuzz import make_special

FULL = {**H100_HEALTHY, "ibstat.txt": "ibstat-ndr.txt", "ib_write_bw.txt": "ib_write_bw-gbits.txt"}


@pytest.fixture
def node(tmp_path: Path) -> Path:
    return make_host(tmp_path, "n", H100_HEALTHY, "h100-sxm-80gb")


def judged(run: Path, level: str = "standard") -> dict:
    return checks(analyze(run, level=level), "n")


def replace(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, count))


def test_healthy_sample_host_passes(node):
    assert {c.status for c in judged(node.parent).values()} == {"pass"}


# ---- NaN, inf, negative, impossible -----------------------------------------------------------
@pytest.mark.parametrize("bad", ["nan", "inf", "-480.07", "9999.99"])
def test_corrupt_busbw_fails_naming_file_and_line(node, bad):
    row = next(ln for ln in (node / "nccl-all_reduce.txt").read_text().splitlines()
               if ln.strip().startswith("8589934592"))
    cells = row.split()
    replace(node / "nccl-all_reduce.txt", row, row.replace(cells[7], bad, 1))
    c = judged(node.parent)["nccl.all_reduce"]
    assert c.status == "fail"
    assert ("unusable output" in c.detail and "line" in c.detail) or "impossible" in c.detail


@pytest.mark.parametrize(("file", "old", "new", "check"), [
    ("nvbandwidth.txt", "51.", "nan", "nvbandwidth.h2d"),
    ("nvidia-smi-nvlink.txt", "Link 3: 26.562", "Link 3: NaN", "nvlink.status"),
    ("nvidia-smi-nvlink.txt", "Link 3: 26.562", "Link 3: 265620", "nvlink.status"),
    ("nvidia-smi-topo.txt", "NV18", "NV1800", "nvlink.topology"),
    ("nvidia-smi-query.csv", "81559", "inf", "gpu.memory"),
    ("nvidia-smi-query.csv", "81559", "815590", "gpu.memory"),
    ("nvidia-smi-query.csv", ", 5, 16,", ", 9, 16,", "gpu.pcie"),
    ("remap.csv", ", 0, 0,", ", nan, 0,", "gpu.row_remap"),
])
def test_unusable_or_impossible_numbers_fail(node, file, old, new, check):
    replace(node / file, old, new)
    c = judged(node.parent)[check]
    assert c.status == "fail", c.detail
    assert any(w in c.detail for w in ("unusable output", "impossible", "corrupt", "no "
                                       "topology code", "more NVLinks")), c.detail


def test_nan_in_ib_write_bw_fails(tmp_path):
    d = make_host(tmp_path, "n", FULL, "h100-sxm-80gb ib_ports=2")
    text = (d / "ib_write_bw.txt").read_text()
    row = next(ln for ln in text.splitlines() if ln.strip().startswith("65536"))
    replace(d / "ib_write_bw.txt", row, row.replace(row.split()[3], "nan"))
    c = judged(tmp_path, "full")["ib.write_bw"]
    assert c.status == "fail" and "BW average" in c.detail and "line" in c.detail


# ---- exit status ---------------------------------------------------------------------------
def test_a_crash_after_the_table_fails_its_checks(node):
    (node / "nccl-all_reduce.txt.rc").write_text("139\n")
    c = judged(node.parent)["nccl.all_reduce"]
    assert c.status == "fail" and "exited with status 139 (killed by signal 11)" in c.detail
    (node / "nccl-all_reduce.txt.rc").write_text("0\n")
    assert judged(node.parent)["nccl.all_reduce"].status == "pass"


def test_grep_finding_nothing_is_benign_and_garbage_rc_is_not(node):
    (node / "xid.txt.rc").write_text("1\n")  # `grep` selected no line: a clean kernel log
    assert judged(node.parent)["xid"].status == "pass"
    (node / "xid.txt.rc").write_text("one\n")
    c = judged(node.parent)["xid"]
    assert c.status == "fail" and "not a status" in c.detail


# ---- identity --------------------------------------------------------------------------------
def test_query_with_gpu_3_twice_and_7_missing_fails(node):
    rows = (node / "nvidia-smi-query.csv").read_text().splitlines()
    rows[7] = rows[3]
    (node / "nvidia-smi-query.csv").write_text("\n".join(rows) + "\n")
    c = judged(node.parent)["gpu.count"]
    assert c.status == "fail" and "GPU 3 listed 2 times" in c.detail
    assert "GPU 7 missing" in c.detail


def test_nvlink_status_cut_after_gpu_3_fails(node):
    text = (node / "nvidia-smi-nvlink.txt").read_text()
    (node / "nvidia-smi-nvlink.txt").write_text(text[:text.index("GPU 4:")])
    c = judged(node.parent)["nvlink.status"]
    assert c.status == "fail" and "GPU 4, 5, 6, 7 missing" in c.detail


def test_topology_and_nvbandwidth_matrices_of_gpus_0_to_3_fail(node):
    lines = (node / "nvidia-smi-topo.txt").read_text().splitlines(keepends=True)
    keep = [ln for ln in lines if not any(ln.lstrip("\x1b[4m").startswith(f"GPU{i}")
                                          for i in range(4, 8))]
    (node / "nvidia-smi-topo.txt").write_text("".join(keep))
    assert judged(node.parent)["nvlink.topology"].status == "fail"
    text = (node / "nvbandwidth.txt").read_text()
    out = []
    for ln in text.splitlines():
        words = ln.split()
        if words and all(w.isdigit() for w in words) and len(words) == 8:
            ln = "".join(f"{w:>10}" for w in words[:4])
        elif words and words[0].isdigit() and len(words) == 9:
            ln = f"{words[0]:>2}" + "".join(f"{w:>10}" for w in words[1:5])
        out.append(ln)
    (node / "nvbandwidth.txt").write_text("\n".join(out) + "\n")
    got = judged(node.parent)
    assert got["nvbandwidth.h2d"].status == "fail" and "4, 5, 6, 7 missing" in \
        got["nvbandwidth.h2d"].detail


def test_uuids_must_agree_across_files(node):
    uuid = (node / "nvidia-smi-query.csv").read_text().splitlines()[2].split(", ")[2]
    replace(node / "nvidia-smi-nvlink.txt", uuid, "GPU-00000000-1111-2222-3333-444444444444")
    c = judged(node.parent)["nvlink.status"]
    assert c.status == "fail" and "does not list" in c.detail


# ---- DCGM ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("old", "new", "words"), [
    ('"Pass"', '"Skip"', "none of"),
    ('"Pass"', '"Error"', "statuses DCGM does not document"),
    ('"Pass"', '"Fail (XID 79)"', "'Fail (XID 79)'"),
])
def test_dcgm_skip_only_and_unknown_statuses_fail(node, old, new, words):
    count = -1 if new == '"Skip"' else 1
    replace(node / "dcgmi-diag.json", old, new, count)
    c = judged(node.parent)["dcgm.diag"]
    assert c.status == "fail" and words in c.detail


def test_dcgm_with_zero_tests_fails(node):
    (node / "dcgmi-diag.json").write_text('{"DCGM Diagnostic": {"test_categories": []}}\n')
    c = judged(node.parent)["dcgm.diag"]
    assert c.status == "fail" and "no test results" in c.detail


# ---- nvbandwidth CE device-to-device fallback -------------------------------------------------
def test_ce_read_test_is_judged_against_its_own_reference(node):
    text = (node / "nvbandwidth.txt").read_text()
    text = text.replace("device_to_device_bidirectional_memcpy_read_sm",
                        "device_to_device_memcpy_read_ce")
    (node / "nvbandwidth.txt").write_text(text)
    c = judged(node.parent)["nvbandwidth.d2d"]
    # The SM bidirectional figures (~670) are above any one-direction CE copy: the CE metric's
    # own ceiling (450 GB/s NVLink4 per direction x 1.1) says so.
    assert c.status == "fail" and "impossible" in c.detail
    real = (Path(__file__).resolve().parents[1] / "fixtures" / "real" /
            "nvbandwidth-h100-d2d-read-ce-azure-ndv5.txt").read_text()
    (node / "nvbandwidth.txt").write_text(fixture("nvbandwidth-h100.txt") + "\n" +
                                          real[real.index("Running "):])
    c = judged(node.parent)["nvbandwidth.d2d"]  # SM bidirectional preferred when present
    assert c.status == "pass" and c.expected == 672


# ---- the analyzer never crashes or hangs --------------------------------------------------------
@pytest.mark.parametrize(("file", "text", "words"), [
    ("nvidia-smi-query.csv", "0, NVIDIA H100 80GB HBM3, GPU-x, inf, 550.1, nan, 16, -inf\n",
     "unusable output"),
    ("remap.csv", "00000000:18:00.0, GPU-x, inf, nan, No, No\n", "unusable output"),
    ("nccl-all_reduce.txt", "#  size count type redop root time algbw busbw #wrong time algbw "
     "busbw #wrong\n  8589934592 2147483648 float sum -1 31631 271.57 475.24 inf 31312 274.33 "
     "480.07 nan\n", "unusable output"),
])
def test_inf_and_nan_in_integer_columns_fail(node, file, text, words):
    (node / file).write_text(text)
    assert any(words in c.detail and c.status == "fail" for c in judged(node.parent).values())


def test_float_iterations_and_ibstat_port_without_rate(tmp_path):
    d = make_host(tmp_path, "n", FULL, "h100-sxm-80gb ib_ports=2")
    bw = (d / "ib_write_bw.txt").read_text()
    row = next(ln for ln in bw.splitlines() if ln.strip().startswith("65536"))
    replace(d / "ib_write_bw.txt", row, row.replace(row.split()[1], row.split()[1] + ".0"))
    replace(d / "ibstat.txt", "Rate: 400", "", 1)
    got = judged(tmp_path, "full")
    assert got["ib.write_bw"].status == "pass"
    assert got["ib.ports"].status == "fail" and "no Rate line" in got["ib.ports"].detail


def test_non_utf8_bytes_fail_the_file_naming_the_line(node):
    data = (node / "nvidia-smi-nvlink.txt").read_bytes()
    (node / "nvidia-smi-nvlink.txt").write_bytes(data.replace(b"Link 2:", b"Link \xff2:", 1))
    c = judged(node.parent)["nvlink.status"]
    assert c.status == "fail" and "not UTF-8 text (byte 0xff on line 4)" in c.detail


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "directory", "million-lines", "oversize"])
def test_special_and_huge_files_fail_within_seconds(node, kind):
    make_special(node / "nvidia-smi-query.csv", kind)
    start = time.monotonic()
    c = judged(node.parent)["gpu.count"]
    assert time.monotonic() - start < 30  # a hang would never get here; this bounds a crawl
    assert c.status == "fail" and "nvidia-smi-query.csv: unusable output: the file" in c.detail


@pytest.mark.parametrize(("line", "words"), [
    ("h100-sxm-80gb gpus=100000000000000000000", "cannot read"),
    ("h100-sxm-80gb gpus=100000", "gpus=100000 is outside 1-64"),
    ("h100-sxm-80gb gpus=0", "outside 1-64"),
    ("h100-sxm-80gb ib_ports=65", "outside 0-64"),
    ("h100-sxm-80gb gpus=8 gpus=4", "given twice"),
    ("h100-sxm-80gb gpus=²", "cannot read"),
])
def test_sku_file_asking_for_absurd_counts_is_an_input_error(node, line, words):
    (node / "sku").write_text(line + "\n")
    with pytest.raises(InputError, match=words) as err:
        analyze(node.parent)
    assert str(node / "sku") in str(err.value)


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "non-utf8"])
def test_unreadable_sku_file_is_an_input_error_naming_it(node, kind):
    if kind == "non-utf8":
        (node / "sku").write_bytes(b"\xff\xfeh100\n")
    else:
        make_special(node / "sku", kind)
    with pytest.raises(InputError, match="sku"):
        analyze(node.parent)


def test_cli_exits_2_naming_the_sku_file(run_cli, node):
    (node / "sku").write_text("h100-sxm-80gb gpus=100000000000000000000\n")
    proc = run_cli("verify", "--offline", str(node.parent))
    assert proc.returncode == 2 and "sku" in proc.stderr and "Traceback" not in proc.stderr

