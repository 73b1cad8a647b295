"""The SIMULATED dcgm-exporter (provision/simulate/bin/dcgm-exporter): dcgm-exporter's format,
the node's GPUs and faults as the GPU simulator (and so nvidia-smi) sees them, live fault
changes, the counters file, and a broken driver as a down target. Runs the real executable on
127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from provision.simulate import BIN_DIR
from tests.conftest import REPO

EXPORTER = BIN_DIR / "dcgm-exporter"
ROLE_COUNTERS = REPO / "playbooks" / "roles" / "monitoring" / "files" / "dcgm-counters.csv"
SAMPLE = re.compile(r'^(DCGM_FI_[A-Z_]+)\{([^}]*)\} (\S+)$')


def parse(text: str) -> dict[str, dict[str, float]]:
    """{metric: {gpu index: value}}; every sample line must be in the exposition format."""
    out: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
        assert set(labels) == {"gpu", "UUID", "pci_bus_id", "device", "modelName", "Hostname",
                               "DCGM_FI_DRIVER_VERSION"}
        out.setdefault(m.group(1), {})[labels["gpu"]] = float(m.group(3))
    return out


class Exporter:
    def __init__(self, tmp: Path, sku: str, faults: list[str], *args: str) -> None:
        self.config = tmp / "node.json"
        self.configure(sku, faults)
        env = {**os.environ, "PROVISION_SIM_CONFIG": str(self.config),
               "PROVISION_SIM_STATE": str(tmp / "state"),
               "PROVISION_SIM_DRIVER": str(tmp / "no-driver.json")}
        self.env = env
        self.proc = subprocess.Popen([str(EXPORTER), "-a", "127.0.0.1:0", *args], env=env,
                                     stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        line = ""
        deadline = time.monotonic() + 15
        while "listening on" not in line and time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line and self.proc.poll() is not None:
                break
        assert "listening on" in line, line
        self.url = "http://" + line.rsplit(" ", 1)[1].strip()

    def configure(self, sku: str, faults: list[str]) -> None:
        self.config.write_text(json.dumps({"sku": sku, "faults": faults, "hostname": "node-7"}))

    def get(self, path: str = "/metrics") -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def metrics(self) -> dict[str, dict[str, float]]:
        status, body = self.get()
        assert status == 200, body
        assert body.startswith("# SIMULATED by provision-sim")
        return parse(body)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture
def exporters() -> Iterator[list[Exporter]]:
    started: list[Exporter] = []
    yield started
    for e in started:
        e.stop()


def test_a_healthy_h100_agrees_with_the_simulated_nvidia_smi(tmp_path, exporters):
    e = Exporter(tmp_path, "h100-sxm-80gb", [])
    exporters.append(e)
    m = e.metrics()
    assert all(len(per_gpu) == 8 for per_gpu in m.values())
    smi = subprocess.run(
        [str(BIN_DIR / "nvidia-smi"), "--query-gpu=index,temperature.gpu,utilization.gpu,"
         "memory.used,memory.total", "--format=csv,noheader,nounits"],
        env=e.env, capture_output=True, text=True, check=True).stdout
    for row in smi.strip().splitlines():
        gpu, temp, util, used, total = (x.strip() for x in row.split(","))
        assert m["DCGM_FI_DEV_GPU_TEMP"][gpu] == float(temp)
        assert m["DCGM_FI_DEV_GPU_UTIL"][gpu] == float(util)
        assert m["DCGM_FI_DEV_FB_USED"][gpu] == float(used)
        assert m["DCGM_FI_DEV_FB_USED"][gpu] + m["DCGM_FI_DEV_FB_FREE"][gpu] == float(total)
    for name in ("DCGM_FI_DEV_XID_ERRORS", "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
                 "DCGM_FI_DEV_ROW_REMAP_FAILURE", "DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL"):
        assert set(m[name].values()) == {0.0}, name
    _, body = e.get()
    assert '# TYPE DCGM_FI_DEV_XID_ERRORS gauge' in body
    assert 'modelName="NVIDIA H100 80GB HBM3"' in body and 'Hostname="node-7"' in body
    assert e.get("/health")[0] == 200


def test_faults_show_up_live(tmp_path, exporters):
    e = Exporter(tmp_path, "h100-sxm-80gb", [])
    exporters.append(e)
    assert len(e.metrics()["DCGM_FI_DEV_GPU_TEMP"]) == 8
    e.configure("h100-sxm-80gb", ["gpu-missing", "xid-79", "ecc-row-remap-failure",
                                  "nvlink-down"])
    m = e.metrics()  # no restart: every scrape reads the node again
    assert len(m["DCGM_FI_DEV_GPU_TEMP"]) == 7
    assert m["DCGM_FI_DEV_XID_ERRORS"]["0"] == 79 and m["DCGM_FI_DEV_XID_ERRORS"]["1"] == 0
    assert m["DCGM_FI_DEV_ECC_DBE_VOL_TOTAL"]["0"] == 2
    assert m["DCGM_FI_DEV_ROW_REMAP_FAILURE"]["0"] == 1
    assert m["DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS"]["0"] == 1
    assert m["DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL"]["0"] == 1
    assert m["DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL"]["3"] == 0


def test_pcie_gpus_have_no_nvlink_or_row_remap_fields(tmp_path, exporters):
    e = Exporter(tmp_path, "l40s-48gb", [])
    exporters.append(e)
    m = e.metrics()
    assert len(m["DCGM_FI_DEV_GPU_TEMP"]) == 8
    assert not any("NVLINK" in name or "REMAP" in name for name in m)


def test_the_counters_file_chooses_the_fields(tmp_path, exporters):
    counters = tmp_path / "counters.csv"
    counters.write_text("# only two\nDCGM_FI_DEV_GPU_TEMP, gauge, temp\n"
                        "DCGM_FI_DEV_FB_USED, gauge, used\nDCGM_FI_PROF_SM_ACTIVE, gauge, x\n")
    e = Exporter(tmp_path, "a100-sxm-80gb", [], "-f", str(counters))
    exporters.append(e)
    assert set(e.metrics()) == {"DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_FB_USED"}


def test_the_monitoring_role_ships_the_exporters_default_counters():
    sys.path.insert(0, str(BIN_DIR.parent))
    try:
        import simdcgm
    finally:
        sys.path.remove(str(BIN_DIR.parent))
    role = simdcgm.parse_counters(ROLE_COUNTERS.read_text())
    assert role == simdcgm.parse_counters(simdcgm.DEFAULT_COUNTERS)
    assert set(simdcgm.FIELDS) <= {field for field, _, _ in role}


def test_a_broken_driver_makes_the_target_down(tmp_path, exporters):
    e = Exporter(tmp_path, "h100-sxm-80gb", [])
    exporters.append(e)
    # the stand-in driver's userspace is installed but no kernel module is "loaded"
    (tmp_path / "no-driver.json").write_text(json.dumps({"driver": "550.127.05",
                                                          "cuda": "12.4"}))
    status, body = e.get()
    assert status == 503 and "couldn't communicate with the NVIDIA driver" in body
