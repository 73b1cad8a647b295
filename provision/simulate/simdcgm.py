"""SIMULATED dcgm-exporter (provision-sim): NVIDIA's DCGM exporter's metrics for a simulated node.

Serves ``/metrics`` in dcgm-exporter's Prometheus text format (metric names, HELP/TYPE lines from
the counters CSV, and its labels: ``gpu``, ``UUID``, ``pci_bus_id``, ``device``, ``modelName``,
``Hostname``, ``DCGM_FI_DRIVER_VERSION``), with the values the GPU simulator (simgpu.py, reading
``/etc/provision-sim/node.json``) gives every other tool, so nvidia-smi and the exporter agree:

- one series per visible GPU (``gpu-missing`` drops the last one);
- temperature, utilisation and framebuffer use from nvidia-smi's query fields;
- ``DCGM_FI_DEV_XID_ERRORS`` (the last XID) is 79 on GPU 0 with ``xid-79``;
- ECC and row-remap fields from nvidia-smi's ECC and remapped-rows answers
  (``ecc-row-remap-failure``: 2 uncorrectable, 1 uncorrectable remapped row, remap failure);
- NVLink error counters on NVLink SKUs; an inactive link (``nvlink-down``) shows as a link
  recovery error on GPU 0.

Fields the simulator does not model (power, profiling metrics, ...) are left out, as the real
exporter leaves out fields a GPU does not support. When simgpu reports a driver problem (the
stand-in driver half installed), ``/metrics`` answers 503 like an exporter that cannot reach
DCGM, so the target is down. Every scrape reads node.json again (faults can be changed live).

Command line as the real exporter's: ``dcgm-exporter [-f COUNTERS.csv] [-a [HOST]:PORT]``
(also ``DCGM_EXPORTER_COLLECTORS`` / ``DCGM_EXPORTER_LISTEN``). Stdlib only; finds simgpu.py
beside itself. Every answer says SIMULATED: a comment line in /metrics, and the Server header.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import simgpu

TAG = simgpu.TAG
# The counters the exporter collects without -f: the same set provision's monitoring role ships
# (playbooks/roles/monitoring/files/dcgm-counters.csv): NVIDIA's defaults plus the ECC, NVLink
# error and row-remap fields.
DEFAULT_COUNTERS = """\
# Format: DCGM FIELD, Prometheus metric type, help text
DCGM_FI_DEV_SM_CLOCK, gauge, SM clock (MHz).
DCGM_FI_DEV_MEM_CLOCK, gauge, Memory clock (MHz).
DCGM_FI_DEV_MEMORY_TEMP, gauge, Memory temperature (C).
DCGM_FI_DEV_GPU_TEMP, gauge, GPU temperature (C).
DCGM_FI_DEV_POWER_USAGE, gauge, Power draw (W).
DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION, counter, Energy used since boot (mJ).
DCGM_FI_DEV_PCIE_REPLAY_COUNTER, counter, PCIe replays (retries).
DCGM_FI_DEV_GPU_UTIL, gauge, GPU utilisation (%).
DCGM_FI_DEV_MEM_COPY_UTIL, gauge, Memory copy utilisation (%).
DCGM_FI_DEV_XID_ERRORS, gauge, The last XID error seen (0: none).
DCGM_FI_DEV_FB_FREE, gauge, Free framebuffer memory (MiB).
DCGM_FI_DEV_FB_USED, gauge, Used framebuffer memory (MiB).
DCGM_FI_DEV_ECC_SBE_VOL_TOTAL, counter, Single-bit (corrected) volatile ECC errors.
DCGM_FI_DEV_ECC_DBE_VOL_TOTAL, counter, Double-bit (uncorrectable) volatile ECC errors.
DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL, counter, \
NVLink flow-control CRC errors (all links).
DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL, counter, NVLink data CRC errors (all links).
DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL, counter, NVLink replays (all links).
DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL, counter, NVLink recovery errors (all links).
DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS, counter, Rows remapped after uncorrectable errors.
DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS, counter, Rows remapped after correctable errors.
DCGM_FI_DEV_ROW_REMAP_FAILURE, gauge, 1 when remapping a row failed (the GPU needs service).
"""
Getter = Callable[[simgpu.Node, int], float | None]


def _smi(field: str) -> Getter:
    """A value exactly as the simulated nvidia-smi's --query-gpu field gives it."""
    def get(n: simgpu.Node, i: int) -> float | None:
        text = simgpu.QUERY_FIELDS[field](n, i).split(" ")[0]
        try:
            return float(text)
        except ValueError:
            return None
    return get


def _remap(field: str) -> Getter:
    def get(n: simgpu.Node, i: int) -> float | None:
        text = simgpu.REMAP_FIELDS[field](n, i)
        if text.startswith("["):  # [N/A]: the GPU has no row remapping
            return None
        return {"Yes": 1.0, "No": 0.0}.get(text) if not text.isdigit() else float(text)
    return get


def _nvlink(errors: Callable[[simgpu.Node, int], int]) -> Getter:
    def get(n: simgpu.Node, i: int) -> float | None:
        return float(errors(n, i)) if n.has_nvlink() else None
    return get


def _fb_free(n: simgpu.Node, i: int) -> float | None:
    used = _smi("memory.used")(n, i)
    return None if used is None else float(n.ref["memory_mib"]) - used


FIELDS: dict[str, Getter] = {
    "DCGM_FI_DEV_SM_CLOCK": lambda n, i: float(n.app_clocks(i)[1]),
    "DCGM_FI_DEV_MEM_CLOCK": lambda n, i: float(n.app_clocks(i)[0]),
    "DCGM_FI_DEV_GPU_TEMP": _smi("temperature.gpu"),
    "DCGM_FI_DEV_PCIE_REPLAY_COUNTER": lambda n, i: 0.0,
    "DCGM_FI_DEV_GPU_UTIL": _smi("utilization.gpu"),
    "DCGM_FI_DEV_XID_ERRORS": lambda n, i: 79.0 if i == 0 and "xid-79" in n.faults else 0.0,
    "DCGM_FI_DEV_FB_FREE": _fb_free,
    "DCGM_FI_DEV_FB_USED": _smi("memory.used"),
    "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL": _smi("ecc.errors.corrected.volatile.total"),
    "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL": _smi("ecc.errors.uncorrected.volatile.total"),
    "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL": _nvlink(lambda n, i: 0),
    "DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL": _nvlink(lambda n, i: 0),
    "DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL": _nvlink(lambda n, i: 0),
    "DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL": _nvlink(
        lambda n, i: n.nvlink["links_per_gpu"] - n.active_links(i)),
    "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS": _remap("remapped_rows.uncorrectable"),
    "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS": _remap("remapped_rows.correctable"),
    "DCGM_FI_DEV_ROW_REMAP_FAILURE": _remap("remapped_rows.failure"),
}


def parse_counters(text: str) -> list[tuple[str, str, str]]:
    """(field, type, help) rows of a dcgm-exporter counters CSV, in file order."""
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.split(",", 2)]
        if len(parts) < 2:
            raise ValueError(f"bad counters line (want FIELD, TYPE, HELP): {line!r}")
        field, kind = parts[0], parts[1]
        if kind not in ("gauge", "counter", "label"):
            raise ValueError(f"{field}: unknown metric type {kind!r}")
        rows.append((field, kind, parts[2] if len(parts) > 2 else ""))
    return rows


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


def render(n: simgpu.Node, counters: list[tuple[str, str, str]]) -> str:
    """The /metrics page for node ``n``."""
    out = [f"# {TAG}: dcgm-exporter stand-in for {n.sku} ({n.gpu_count} GPUs); "
           "no NVIDIA hardware is present"]
    for field, kind, help_text in counters:
        get = FIELDS.get(field)
        if get is None or kind == "label":
            continue
        samples = []
        for i in range(n.gpu_count):
            value = get(n, i)
            if value is None:
                continue
            labels = {"gpu": str(i), "UUID": n.uuid(i), "pci_bus_id": n.bus_id(i),
                      "device": f"nvidia{i}", "modelName": n.gpu_name(),
                      "Hostname": n.hostname, "DCGM_FI_DRIVER_VERSION": n.driver}
            text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            samples.append(f"{field}{{{text}}} {_number(value)}")
        if samples:
            out += [f"# HELP {field} {help_text}", f"# TYPE {field} {kind}", *samples]
    return "\n".join(out) + "\n"


class Handler(BaseHTTPRequestHandler):
    server_version = f"dcgm-exporter-provision-sim ({TAG})"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.split("?")[0] == "/health":
            self._send(200, "OK\n")
            return
        if self.path.split("?")[0] != "/metrics":
            self._send(404, "404 page not found\n")
            return
        try:
            node = simgpu.load_node()
        except simgpu.SimError as exc:
            self._send(503, f"{TAG}: {exc}\n")
            return
        problem = node.driver_problem()
        if problem is not None:
            self._send(503, f"{TAG}: DCGM cannot reach the GPUs: {problem[1]}\n")
            return
        counters: list[tuple[str, str, str]] = self.server.counters  # type: ignore[attr-defined]
        self._send(200, render(node, counters), "text/plain; version=0.0.4; charset=utf-8")

    def _send(self, status: int, body: str, ctype: str = "text/plain; charset=utf-8") -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def parse_address(address: str) -> tuple[str, int]:
    """dcgm-exporter's ``-a`` form: ``:9400`` (every address) or ``HOST:PORT``."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"address must be [HOST]:PORT, got {address!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dcgm-exporter",
                                     description=f"dcgm-exporter stand-in ({TAG}).")
    parser.add_argument("-f", "--collectors", default=os.environ.get("DCGM_EXPORTER_COLLECTORS"),
                        help="counters CSV (default: the built-in set)")
    parser.add_argument("-a", "--address", default=os.environ.get("DCGM_EXPORTER_LISTEN",
                                                                  ":9400"))
    args = parser.parse_args(argv)
    try:
        text = DEFAULT_COUNTERS
        if args.collectors:
            with open(args.collectors, encoding="utf-8") as fh:
                text = fh.read()
        counters = parse_counters(text)
        host, port = parse_address(args.address)
    except (OSError, ValueError) as exc:
        print(f"dcgm-exporter ({TAG}): {exc}", file=sys.stderr)
        return 2
    unmodelled = [f for f, _, _ in counters if f not in FIELDS]
    if unmodelled:
        print(f"dcgm-exporter ({TAG}): not simulated, left out: {', '.join(unmodelled)}",
              file=sys.stderr)
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    server.counters = counters  # type: ignore[attr-defined]
    print(f"dcgm-exporter ({TAG}) listening on {host}:{server.server_address[1]}",
          file=sys.stderr, flush=True)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
