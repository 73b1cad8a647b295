"""The parsers and checks against tool outputs recorded on real machines (tests/fixtures/real,
sources in its SOURCES.md): every number is read back, and every file is judged as its source
says. These files were not written by this project, so they check the formats independently
of the simulator."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from provision.verify import analyze
from provision.verify.parsers.dcgm import parse_dcgm
from provision.verify.parsers.ib_write_bw import parse_ib_write_bw
from provision.verify.parsers.ibstat import parse_ibstat
from provision.verify.parsers.nccl import parse_nccl
from provision.verify.parsers.nvbandwidth import parse_nvbandwidth
from provision.verify.parsers.smi_nvlink import parse_nvlink
from provision.verify.parsers.smi_topo import parse_topo
from provision.verify.parsers.xid import parse_xid

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "real"
NUMBER = r"[0-9]+(?:\.[0-9]+)?"


def text(name: str) -> str:
    return (REAL / name).read_text(encoding="utf-8")


def files() -> list[str]:
    return sorted(p.name for p in REAL.iterdir() if p.name != "SOURCES.md")


def test_corpus_has_at_least_20_outputs_each_with_its_source():
    listed = set(re.findall(r"^\| ([^ |]+\.(?:txt|json)) \|", text("SOURCES.md"), re.M))
    assert len(files()) >= 20
    assert listed == set(files())


# ---- read-back: every number the parsers take, found again by a plain pattern ----------------
@pytest.mark.parametrize("name", [f for f in files() if f.startswith("topo-")])
def test_topology_cells_read_back(name):
    raw = text(name)
    topo = parse_topo(raw)
    rows = [ln for ln in raw.splitlines() if re.match(r"GPU\d+\s", ln)]
    assert len(topo.gpus) == len(rows) and not topo.unusable and not topo.errors
    for ln in rows:
        cells = ln.split("\t") if "\t" in ln else ln.split()
        row = cells[0].strip()
        codes = [c.strip() for c in cells[1:len(topo.devices) + 1]]
        assert [topo.cells[(row, col)] for col in topo.devices] == codes
        for col, code in zip(topo.devices, codes, strict=True):
            nv = re.fullmatch(r"NV(\d+)", code)
            assert topo.nvlinks(row, col) == (int(nv[1]) if nv else 0)


@pytest.mark.parametrize("name", [f for f in files() if f.startswith("nvlink-")])
def test_nvlink_speeds_read_back(name):
    raw = text(name)
    status = parse_nvlink(raw)
    found = [(int(g), float(s)) for g, s in re.findall(rf"Link (\d+): ({NUMBER}) GB/s", raw)]
    parsed = [(k, v) for g in status.gpus for k, v in g.links.items()]
    assert parsed == found and not status.unusable
    assert [g.index for g in status.gpus] == [int(i) for i in re.findall(r"^GPU (\d+):", raw,
                                                                          re.M)]


@pytest.mark.parametrize("name", [f for f in files() if f.startswith("nvbandwidth-")])
def test_nvbandwidth_matrix_read_back(name):
    raw = text(name)
    parsed = parse_nvbandwidth(raw)
    assert not parsed.unusable
    for test in parsed.tests.values():
        block = raw.split(f"Running {test.name}.", 1)[1].split("\n\n", 1)[0]
        rows = [ln.split() for ln in block.splitlines()[2:]
                if re.match(r"\s*\d+\s", ln) and ("." in ln or "N/A" in ln)]
        assert len(rows) == len(test.rows)
        for cells in rows:
            want = [None if c == "N/A" else float(c) for c in cells[1:]]
            assert test.rows[cells[0]] == want


@pytest.mark.parametrize("name", [f for f in files() if f.startswith("nccl-")])
def test_nccl_rows_read_back(name):
    raw = text(name)
    parsed = parse_nccl(raw)
    lines = [re.sub(r"^(\[\d+,\d+\]<stdout>:|\d+:)", "", ln).split() for ln in raw.splitlines()]
    rows = [t for t in lines if len(t) >= 12 and t[0].isdigit() and t[2] == "float"]
    assert len(parsed.rows) == len(rows) and not parsed.unusable
    for row, tokens in zip(parsed.rows, rows, strict=True):
        oop, ip = (7, 11) if len(tokens) == 13 else (6, 10)  # older builds: no root column
        assert row.size == int(tokens[0])
        assert (row.busbw, row.ip_busbw) == (float(tokens[oop]), float(tokens[ip]))
        assert (row.wrong, row.ip_wrong) == tuple(None if tokens[i] == "N/A" else int(tokens[i])
                                                  for i in (oop + 1, ip + 1))
    ranks = re.findall(r"Rank\s+(\d+) .*? device\s+(\d+)", raw)
    assert [(r.rank, r.device) for r in parsed.ranks] == [(int(a), int(b)) for a, b in ranks]


@pytest.mark.parametrize("name", [f for f in files() if f.startswith("ibstat-")])
def test_ibstat_ports_read_back(name):
    raw = text(name)
    parsed = parse_ibstat(raw)
    assert [p.rate for p in parsed.ports] == [float(r) for r in re.findall(r"Rate: (\d+)", raw)]
    assert [p.state for p in parsed.ports] == re.findall(r"\bState: (\w+)", raw)
    assert len(parsed.errors) == raw.count("ibpanic")


def test_ib_write_bw_averages_read_back():
    raw = text("ib_write_bw-loopback-mbsec-superbench.txt")
    parsed = parse_ib_write_bw(raw)
    averages = [float(a) for a in re.findall(rf"^ \d+\s+\d+\s+{NUMBER}\s+({NUMBER})", raw, re.M)]
    assert [r.bw_avg_gbps for r in parsed.runs] == \
        pytest.approx([a * 2**20 * 8 / 1e9 for a in averages])  # perftest MB = 2^20 bytes
    assert [r.device for r in parsed.runs] == ["ib0", "ib0"]


@pytest.mark.parametrize("name", [f for f in files() if f.startswith("xid-")])
def test_xid_codes_read_back(name):
    raw = text(name)
    assert [e.code for e in parse_xid(raw).events] == \
        [int(c) for c in re.findall(r"NVRM: Xid \([^)]*\): (\d+)", raw)]


def test_dcgm_results_read_back():
    raw = text("dcgm-diag-r1-8gpu-dcgm310-nvidia-tests.json")
    diag = parse_dcgm(raw)
    assert len(diag.results) == raw.count('"status"') and diag.version == "3.1.0"
    assert {r.raw_status for r in diag.results} == {"PASS"}
    assert sorted({g for r in diag.results for g in r.gpus}) == list(range(8))


# ---- verdicts: each file judged as its source says ---------------------------------------------
@dataclass(frozen=True)
class Case:
    file: str
    target: str  # artifact name in a host directory, or "_cluster/..." for cluster files
    sku: str  # the sku file's line
    check: str
    status: str
    says: tuple[str, ...] = ()  # words the detail must carry
    level: str = "full"
    extra: dict = field(default_factory=dict)  # attribute -> value on the check


CASES = [
    Case("topo-a100-8gpu-ml-engineering.txt", "nvidia-smi-topo.txt", "a100-sxm-80gb",
         "nvlink.topology", "pass", ("NV12 between all 28",)),
    Case("topo-h100-8gpu-ml-engineering.txt", "nvidia-smi-topo.txt", "h100-sxm-80gb",
         "nvlink.topology", "pass", ("NV18 between all 28",)),
    Case("topo-h100-4gpu-nv6-nccl1617.txt", "nvidia-smi-topo.txt", "h100-sxm-80gb gpus=4",
         "nvlink.topology", "pass", ("NV6 between all 6",)),
    Case("topo-rtx5090-2gpu-tabs-club3090.txt", "nvidia-smi-topo.txt", "l40s-48gb gpus=2",
         "nvlink.topology", "pass", ("no NVLink expected",)),
    Case("nvlink-a100-80gb-8gpu-gpud.txt", "nvidia-smi-nvlink.txt", "a100-sxm-80gb",
         "nvlink.status", "pass", ("12 links active at 25 GB/s on each of 8 GPUs",)),
    Case("nvlink-a100-80gb-gpu7-azurehpc.txt", "nvidia-smi-nvlink.txt", "a100-sxm-80gb",
         "nvlink.status", "fail", ("GPU 0, 1, 2, 3 and 3 more missing",),
         extra={"measured": 12}),
    Case("nvlink-a100-80gb-all-inactive-azurehpc.txt", "nvidia-smi-nvlink.txt",
         "a100-sxm-80gb", "nvlink.status", "fail", ("GPU 6: all links inactive",)),
    Case("nvbandwidth-h100-d2d-read-ce-azure-ndv5.txt", "nvbandwidth.txt", "h100-sxm-80gb",
         "nvbandwidth.d2d", "pass", ("device_to_device_memcpy_read_ce", "GPU 0->6"),
         extra={"expected": 370, "measured": 370.26}),
    Case("nvbandwidth-a100-80gb-assert-nvb34.txt", "nvbandwidth.txt", "a100-sxm-80gb",
         "nvbandwidth.d2d", "fail", ("ASSERT in expression h_errorFlag == 0",)),
    Case("nvbandwidth-a100-40gb-h2d-sm-nvb42.txt", "nvbandwidth.txt", "a100-sxm-40gb gpus=1",
         "nvbandwidth.h2d", "pass", ("host_to_device_memcpy_sm",), extra={"measured": 25.13}),
    Case("nvbandwidth-h100-sm-h2d-low-nvb24.txt", "nvbandwidth.txt", "h100-sxm-80gb",
         "nvbandwidth.h2d", "fail", ("slowest GPU 3", "35"), extra={"measured": 35.03}),
    Case("nvbandwidth-h100-sm-h2d-low-nvb24.txt", "nvbandwidth.txt", "h100-sxm-80gb",
         "nvbandwidth.d2h", "pass", ("device_to_host_memcpy_sm",), extra={"measured": 52.76}),
    Case("nccl-a100-40gb-8gpu-superbench.txt", "nccl-all_reduce.txt", "a100-sxm-40gb",
         "nccl.all_reduce", "pass", ("8 ranks",), extra={"measured": 235.26}),
    Case("nccl-a100-80gb-p4de-2node-srun-awsome.txt", "_cluster/nccl-all_reduce.txt",
         "a100-sxm-80gb ib_ports=0", "nccl.all_reduce.multinode", "skip", ("2 GiB",),
         extra={"measured": 78.33}),
    Case("nccl-h100-p5-2node-srun-awsome.txt", "_cluster/nccl-all_reduce.txt",
         "h100-sxm-80gb ib_ports=0", "nccl.all_reduce.multinode", "skip", ("16 GiB",),
         extra={"measured": 487.26}),
    Case("nccl-h100-p5-awsbatch-mpirun-awsome.txt", "_cluster/nccl-all_reduce.txt",
         "h100-sxm-80gb ib_ports=0", "nccl.all_reduce.multinode", "skip", ("16 GiB",),
         extra={"measured": 483.35}),
    Case("nccl-h100-a3mega-2node-ztan.txt", "_cluster/nccl-all_reduce.txt",
         "h100-sxm-80gb ib_ports=0", "nccl.all_reduce.multinode", "skip",
         ("16 ranks on 2 nodes",), extra={"measured": 338.82}),
    Case("nccl-h200-8gpu-azure-nhc142.txt", "nccl-all_reduce.txt", "h200-sxm-141gb",
         "nccl.all_reduce", "pass", ("8 ranks", "100% of the 480 GB/s reference"),
         extra={"measured": 480.26}),
    Case("nccl-h100-dgx-wrong-values-nccl1184.txt", "nccl-all_reduce.txt", "h100-sxm-80gb",
         "nccl.all_reduce", "fail", ("data corruption", "237858 out-of-place and 238038 in-place")),
    Case("xid-119-gsp-timeout-gpud.txt", "xid.txt", "h100-sxm-80gb", "xid", "fail",
         ("Xid 119 on 0000:9b:00 x5",)),
    Case("xid-63-row-remap-ml-engineering.txt", "xid.txt", "a100-sxm-80gb", "xid", "fail",
         ("Xid 63",)),
    Case("ibstat-hdr-port-down-nccltests128.txt", "ibstat.txt", "a100-sxm-80gb ib_ports=2",
         "ib.ports", "fail", ("mlx5_1/1 Down/Disabled",)),
    Case("ibstat-ndr-cx7-h20-deepep303.txt", "ibstat.txt", "h100-sxm-80gb ib_ports=2",
         "ib.ports", "pass", ("2 InfiniBand ports Active/LinkUp at 400 Gb/s",)),
    Case("ibstat-ibpanic-gpud752.txt", "ibstat.txt", "a100-sxm-80gb ib_ports=1", "ib.ports",
         "fail", ("ibpanic", "mlx5_8")),
    Case("ib_write_bw-loopback-mbsec-superbench.txt", "ib_write_bw.txt",
         "a100-sxm-80gb ib_ports=1", "ib.write_bw", "pass", ("ib0",)),
    Case("dcgm-diag-r1-8gpu-dcgm310-nvidia-tests.json", "dcgmi-diag.json", "h100-sxm-80gb",
         "dcgm.diag", "pass", ("DCGM 3.1.0 -r 1: 10 tests, none failed",), level="quick"),
]


def test_every_file_is_judged():
    assert {c.file for c in CASES} == set(files())


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.file}:{c.check}")
def test_each_real_output_is_judged_as_its_source_says(tmp_path, case):
    hosts = ["node-0", "node-1"] if case.target.startswith("_cluster/") else ["node-0"]
    for host in hosts:
        (tmp_path / host).mkdir()
        (tmp_path / host / "sku").write_text(case.sku + "\n")
    target = tmp_path / (case.target if len(hosts) > 1 else f"node-0/{case.target}")
    target.parent.mkdir(exist_ok=True)
    target.write_text(text(case.file), encoding="utf-8")
    report = analyze(tmp_path, level=case.level)
    found = report.cluster.checks if len(hosts) > 1 else report.hosts["node-0"].checks
    (check,) = [c for c in found if c.name == case.check]
    assert check.status == case.status, check.detail
    for words in case.says:
        assert words in check.detail, check.detail
    for attribute, value in case.extra.items():
        assert getattr(check, attribute) == pytest.approx(value), check.detail
