"""SIMULATED NVIDIA GPU and InfiniBand tools for provision's simulated nodes (no GPU present).

Stand-ins for ``nvidia-smi``, ``nvbandwidth``, ``all_reduce_perf``, ``dcgmi``, ``ibstat``,
``ib_write_bw`` and the kernel log's XID lines (``nvidia-sim-dmesg``), printing the REAL output
formats for the node's SKU so the verify parsers run unchanged. Stdlib only (Python 3.11, the
Debian 12 python3), so this file and the thin executables in ``bin/`` can be copied into a .deb.

Labelling: everything simulated says so. Outputs people read as a whole carry a ``SIMULATED``
banner line (nvidia-smi's summary and ``-q``, dcgmi's text table), or the label sits where the
format has free text (the nccl-tests header as a ``#`` comment, nvbandwidth's ``Built from``
line, ib_write_bw's title, the kernel-log lines end in ``(SIMULATED by provision-sim)``).
Outputs the verify step parses line by line (the CSV ``--query-*`` forms, ``nvidia-smi -L``,
``topo -m``, ``nvlink --status``, ``ibstat``, ``dcgmi diag -j`` JSON) keep the real layout
line for line, as recorded on real machines (tests/fixtures/real/), and print the banner on
stderr instead.

Configuration: a JSON file, ``/etc/provision-sim/node.json`` or ``$PROVISION_SIM_CONFIG``::

    {"sku": "h100-sxm-80gb", "faults": ["nvlink-down"], "hostname": "node-0",
     "driver": "550.127.05", "cuda": "12.4", "gpus": 8, "ib_ports": 8}

Only ``sku`` is required; ``gpus`` and ``ib_ports`` override the SKU's defaults. Figures come
from the verify reference table, never from this file: ``$PROVISION_SIM_REFERENCE``, else
``reference.json`` next to this module (the .deb ships a copy there), else the source tree's
``provision/verify/data/reference.json``, else ``/usr/share/provision-sim/reference.json``.
A healthy node prints each known-good reference figure times a deterministic jitter in
[0.985, 1.015) (seeded by hostname, tool and GPU), never above a line-rate peak.

Faults (``faults`` list):

- ``gpu-missing``  the last GPU is gone from every tool; all_reduce_perf -g N fails.
- ``nvlink-down``  GPU 0's last NVLink is ``<inactive>``: topo shows NV(n-1) on GPU 0's pairs,
  D2D copies with GPU 0 and NCCL busbw drop by 1/n (NVLink SKUs only).
- ``hbm-degraded`` DCGM -r 3 memory_bandwidth fails on GPU 0 at 80 % of the DCGM floor.
- ``pcie-degraded`` GPU 0 links at Gen3 x8; its host<->device copies scale down accordingly.
- ``nccl-degraded`` NCCL all_reduce busbw at 80 % (single and multi-node).
- ``ib-down``      the first HCA's port is Down/Polling; ib_write_bw on it fails; multi-node
  NCCL loses that NIC's share.
- ``xid-79``       kernel log has fatal ``Xid 79`` (GPU fallen off the bus) lines for GPU 0.
- ``ecc-row-remap-failure`` GPU 0 has 2 uncorrectable ECC errors and a failed row remap.
- ``dcgm-fail``    DCGM's software test fails on GPU 0 (every -r level).
- ``hang:<tool>``  that tool (e.g. ``hang:nvidia-smi``) sleeps forever, for collector timeouts.

Multi-node all_reduce_perf: under MPI only rank 0 prints (OMPI_COMM_WORLD_RANK, PMI_RANK or
SLURM_PROCID); ranks = world size x -g x -t; nodes = ``$PROVISION_SIM_NODES`` or ranks / GPUs
per node; host names in the device list from ``$PROVISION_SIM_HOSTS`` (comma-separated). The
multi-node figure is the reference's busbw per NIC x IB ports, capped at the single-node figure.

Installed-driver mode: when the stand-in driver packages are installed (provision's simulated
apt repository, provision/simulate/packages.py), ``/usr/lib/provision-sim/driver.json`` (or
``$PROVISION_SIM_DRIVER``) names the userspace driver version and the CUDA version it supports,
and ``kernel-module.json`` next to it the "loaded" kernel module. nvidia-smi then behaves like a
real driver install: no kernel module -> "couldn't communicate with the NVIDIA driver" (9);
kernel module and userspace of different versions -> "Driver/library version mismatch" (18);
a GPU that only the open modules drive (Blackwell) with the proprietary module -> "No devices
were found" (6). Persistence mode (``-pm``, or the nvidia-persistenced stand-in running) and
application clocks (``-ac``/``-rac``) are kept in ``$PROVISION_SIM_STATE`` (default
``/run/provision-sim``); on NVSwitch SKUs ``-q`` reports the fabric "Completed" only while the
fabric manager stand-in of the driver's exact version runs (else "In Progress"). Without
driver.json (the tools copied by hand) everything behaves as before: persistence on, fabric
completed. node.json's ``driver``/``cuda`` still win over driver.json when set.

Exit codes: the tools' own (0 ok, 1 tool failure, 2 bad arguments); 3 for a broken simulator
configuration (no config file, unknown SKU or fault).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

CONFIG_ENV = "PROVISION_SIM_CONFIG"
CONFIG_DEFAULT = "/etc/provision-sim/node.json"
REFERENCE_ENV = "PROVISION_SIM_REFERENCE"
DRIVER_ENV = "PROVISION_SIM_DRIVER"
DRIVER_DEFAULT = "/usr/lib/provision-sim/driver.json"
STATE_ENV = "PROVISION_SIM_STATE"
STATE_DEFAULT = "/run/provision-sim"
# SKUs only the open kernel modules drive (Blackwell).
OPEN_ONLY = frozenset({"b200-sxm-180gb"})
# Compute capability per SKU (deviceQuery, nvidia-container-cli info).
CAPABILITY = {"h100-sxm-80gb": "9.0", "h200-sxm-141gb": "9.0", "a100-sxm-80gb": "8.0",
              "a100-sxm-40gb": "8.0", "b200-sxm-180gb": "10.0", "l40s-48gb": "8.9",
              "l4-24gb": "8.9", "a10g-24gb": "8.6"}
# (memory MHz, max graphics MHz, default application graphics MHz): SIMULATED figures in the
# range of each part's datasheet clocks, for -ac/-rac and the clocks.* query fields.
CLOCKS = {"h100-sxm-80gb": (2619, 1980, 1755), "h200-sxm-141gb": (3201, 1980, 1755),
          "a100-sxm-80gb": (1593, 1410, 1275), "a100-sxm-40gb": (1215, 1410, 1095),
          "b200-sxm-180gb": (3996, 1965, 1665), "l40s-48gb": (9001, 2520, 2520),
          "l4-24gb": (6251, 2040, 2040), "a10g-24gb": (6251, 1710, 1710)}
TAG = "SIMULATED by provision-sim"
BANNER = f"{TAG}: no NVIDIA hardware is present; figures come from reference.json"
FAULTS = frozenset({"gpu-missing", "nvlink-down", "hbm-degraded", "pcie-degraded",
                    "nccl-degraded", "ib-down", "xid-79", "ecc-row-remap-failure", "dcgm-fail"})
TOOLS = ("nvidia-smi", "nvbandwidth", "all_reduce_perf", "dcgmi", "ibstat", "ib_write_bw",
         "nvidia-sim-dmesg")
DEFAULT_DRIVER = "550.127.05"
DEFAULT_CUDA = "12.4"
DCGM_VERSION = "4.1.1"
NCCL_TESTS_VERSION = "2.13.11"
NVB_VERSION = "v0.7"
# HGX baseboard PCI bus numbers, used for bus ids in every tool's output.
BUS_IDS = (0x18, 0x2A, 0x3A, 0x5D, 0x9A, 0xAB, 0xBA, 0xDB)
DEGRADED_PCIE = (3, 8)  # what pcie-degraded leaves GPU 0 at
DEGRADED_FACTOR = 0.8  # nccl-degraded busbw, hbm-degraded bandwidth against the DCGM floor
FIRMWARE = {"MT4129": "28.39.1002", "MT4123": "20.39.1002"}  # ConnectX-7, ConnectX-6


class SimError(Exception):
    """A broken simulator setup (exit 3), not a simulated tool failure."""


def _reference_path() -> Path:
    here = Path(__file__).resolve().parent
    candidates = [os.environ.get(REFERENCE_ENV), here / "reference.json",
                  here.parent / "verify" / "data" / "reference.json",
                  "/usr/share/provision-sim/reference.json"]
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c)
    raise SimError("reference.json not found: set " + REFERENCE_ENV)


def load_node() -> Node:
    path = Path(os.environ.get(CONFIG_ENV) or CONFIG_DEFAULT)
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SimError(f"no node config at {path} (set {CONFIG_ENV})") from None
    except ValueError as exc:
        raise SimError(f"{path}: not JSON: {exc}") from None
    reference = json.loads(_reference_path().read_text(encoding="utf-8"))
    return Node(config, reference, _installed_driver())


def _installed_driver() -> dict[str, Any] | None:
    """driver.json of the installed stand-in driver (with its kernel module), or None."""
    path = Path(os.environ.get(DRIVER_ENV) or DRIVER_DEFAULT)
    try:
        driver = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    try:
        driver["kernel_module"] = json.loads(
            (path.parent / "kernel-module.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        driver["kernel_module"] = None
    return driver


def state_dir() -> Path:
    return Path(os.environ.get(STATE_ENV) or STATE_DEFAULT)


def read_state(name: str) -> dict[str, Any]:
    try:
        return json.loads((state_dir() / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def write_state(name: str, data: dict[str, Any]) -> None:
    state_dir().mkdir(parents=True, exist_ok=True)
    tmp = state_dir() / f".{name}.tmp"
    tmp.write_text(json.dumps(data), encoding="utf-8")
    tmp.replace(state_dir() / name)


def daemon_running(name: str) -> dict[str, Any] | None:
    """The state a stand-in daemon wrote (``<name>.json`` with its pid), if it still runs."""
    info = read_state(f"{name}.json")
    pid = info.get("pid")
    if not isinstance(pid, int):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return info
    return info


class Node:
    """The simulated node: its SKU's reference entry, its faults and derived figures."""

    def __init__(self, config: dict[str, Any], reference: dict[str, Any],
                 installed: dict[str, Any] | None = None) -> None:
        sku = str(config.get("sku", "")).lower()
        if sku not in reference["skus"]:
            raise SimError(f"unknown sku {sku!r}; known: {', '.join(sorted(reference['skus']))}")
        self.sku = sku
        self.ref: dict[str, Any] = reference["skus"][sku]
        if self.ref["kind"] != "gpu":
            raise SimError(f"{sku} is a TPU: run provision/verify/tpu_check.py there instead")
        self.table = reference
        self.faults = set(config.get("faults") or [])
        bad = [f for f in self.faults
               if f not in FAULTS and not (f.startswith("hang:") and f[5:] in TOOLS)]
        if bad:
            raise SimError(f"unknown fault(s) {', '.join(sorted(bad))}; known: "
                           f"{', '.join(sorted(FAULTS))}, hang:<{'|'.join(TOOLS)}>")
        self.hostname = str(config.get("hostname") or socket.gethostname())
        self.installed = installed
        inst = installed or {}
        self.driver = str(config.get("driver") or inst.get("driver") or DEFAULT_DRIVER)
        self.cuda = str(config.get("cuda") or inst.get("cuda") or DEFAULT_CUDA)
        full = int(config.get("gpus") or self.ref["gpu_count"])
        self.full_count = full
        self.gpu_count = full - 1 if "gpu-missing" in self.faults else full
        ports = config.get("ib_ports")
        self.ib_ports = int(ports) if ports is not None else int(self.ref["ib"]["ports"])
        self.nvlink = self.ref["nvlink"]

    # ---- figures ----------------------------------------------------------------------------
    def jitter(self, *key: object) -> float:
        digest = hashlib.sha256("|".join(map(str, (self.hostname, *key))).encode()).digest()
        return 0.985 + 0.03 * int.from_bytes(digest[:4], "big") / 2**32

    def metric(self, name: str) -> dict[str, Any]:
        return self.ref["metrics"].get(name, {})

    def healthy(self, name: str, *key: object, base: float | None = None) -> float | None:
        m = self.metric(name)
        ref = base if base is not None else m.get("reference")
        if ref is None:
            return None
        value = ref * self.jitter(name, *key)
        peak = m.get("peak")
        if peak is not None and ref <= peak:
            value = min(value, peak)  # a line rate is a ceiling
        return value

    def gpu_name(self) -> str:
        return self.ref["gpu_names"][0]

    def uuid(self, i: int) -> str:
        digest = hashlib.sha256(f"{self.hostname}|gpu|{i}".encode()).digest()
        return "GPU-" + str(uuid.UUID(bytes=digest[:16]))

    def bus(self, i: int) -> int:
        return BUS_IDS[i % len(BUS_IDS)] + 0x100 * (i // len(BUS_IDS))

    def bus_id(self, i: int, width: int = 8) -> str:
        return f"{0:0{width}X}:{self.bus(i):02X}:00.0"

    def pcie(self, i: int) -> tuple[int, int]:
        if i == 0 and "pcie-degraded" in self.faults:
            return DEGRADED_PCIE
        return self.ref["pcie"]["gen"], self.ref["pcie"]["width"]

    def pcie_factor(self, i: int) -> float:
        lanes = self.table["pcie_lane_gbps"]["values"]
        gen, width = self.pcie(i)
        ref_gen, ref_width = self.ref["pcie"]["gen"], self.ref["pcie"]["width"]
        return lanes[str(gen)] * width / (lanes[str(ref_gen)] * ref_width)

    def has_nvlink(self) -> bool:
        return self.nvlink["fabric"] != "none" and self.nvlink["links_per_gpu"] > 0

    def links(self, i: int) -> list[float | None]:
        """Per-link speed in GB/s for GPU i; None for an inactive link."""
        if not self.has_nvlink():
            return []
        n, speed = self.nvlink["links_per_gpu"], self.nvlink["link_gbps"]
        speeds: list[float | None] = [speed] * n
        if i == 0 and "nvlink-down" in self.faults:
            speeds[-1] = None
        return speeds

    def pair_links(self) -> int:
        """NV# between two healthy GPUs: all links behind NVSwitches, a share on 4-GPU boards."""
        by_count = self.nvlink.get("pair_links_by_gpus") or {}
        return int(by_count.get(str(self.full_count), self.nvlink["pair_links"]))

    def active_links(self, i: int) -> int:
        return sum(1 for s in self.links(i) if s)

    def nvlink_factor(self, *gpus: int) -> float:
        if not self.has_nvlink():
            return 1.0
        return min(self.active_links(g) for g in gpus) / self.nvlink["links_per_gpu"]

    def ecc_uncorrected(self, i: int) -> int:
        return 2 if i == 0 and "ecc-row-remap-failure" in self.faults else 0

    # ---- installed-driver state ----------------------------------------------------------
    def persistence(self, i: int) -> bool:
        if self.installed is None:
            return True
        if daemon_running("nvidia-persistenced") is not None:
            return True
        return bool(read_state("persistence.json").get(str(i)))

    def clocks(self) -> tuple[int, int, int]:
        return CLOCKS.get(self.sku, (1593, 1410, 1275))

    def app_clocks(self, i: int) -> tuple[int, int]:
        mem, _, default = self.clocks()
        got = read_state("clocks.json").get(str(i))
        return (int(got[0]), int(got[1])) if got else (mem, default)

    def fabric_state(self) -> tuple[str, str]:
        """(State, Status) of nvidia-smi -q's Fabric section."""
        if self.nvlink["fabric"] != "nvswitch":
            return "N/A", "N/A"
        if self.installed is None:
            return "Completed", "Success"
        fm = daemon_running("nvidia-fabricmanager")
        if fm is not None and fm.get("version") == self.driver:
            return "Completed", "Success"
        return "In Progress", "N/A"

    def driver_problem(self) -> tuple[int, str] | None:
        """Why nvidia-smi cannot talk to the GPUs, as the real one says it (installed mode)."""
        if self.installed is None:
            return None
        module = self.installed.get("kernel_module")
        if not module:
            return 9, ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA "
                       "driver. Make sure that the latest NVIDIA driver is installed and running.")
        if module.get("version") != self.driver:
            return 18, ("Failed to initialize NVML: Driver/library version mismatch\n"
                        f"NVML library version: {self.driver.rsplit('.', 1)[0]}")
        if self.sku in OPEN_ONLY and module.get("flavour") != "open":
            return 6, "No devices were found"
        return None


def banner(stream: Any = sys.stdout) -> None:
    print(BANNER, file=stream)


# ---- nvidia-smi -----------------------------------------------------------------------------
QUERY_FIELDS = {
    "index": lambda n, i: str(i),
    "name": lambda n, i: n.gpu_name(),
    "uuid": lambda n, i: n.uuid(i),
    "gpu_uuid": lambda n, i: n.uuid(i),
    "pci.bus_id": lambda n, i: n.bus_id(i),
    "gpu_bus_id": lambda n, i: n.bus_id(i),
    "memory.total": lambda n, i: f"{n.ref['memory_mib']} MiB",
    "memory.used": lambda n, i: "1 MiB",
    "driver_version": lambda n, i: n.driver,
    "pcie.link.gen.current": lambda n, i: str(n.pcie(i)[0]),
    "pcie.link.gen.max": lambda n, i: str(n.ref["pcie"]["gen"]),
    "pcie.link.width.current": lambda n, i: str(n.pcie(i)[1]),
    "pcie.link.width.max": lambda n, i: str(n.ref["pcie"]["width"]),
    "ecc.errors.uncorrected.volatile.total": lambda n, i: str(n.ecc_uncorrected(i)),
    "ecc.errors.corrected.volatile.total": lambda n, i: "0",
    "temperature.gpu": lambda n, i: "31",
    "utilization.gpu": lambda n, i: "0 %",
    "persistence_mode": lambda n, i: "Enabled" if n.persistence(i) else "Disabled",
    "pcie.link.gen.gpucurrent": lambda n, i: str(n.pcie(i)[0]),
    "clocks.applications.graphics": lambda n, i: f"{n.app_clocks(i)[1]} MHz",
    "clocks.applications.memory": lambda n, i: f"{n.app_clocks(i)[0]} MHz",
    "clocks.default_applications.graphics": lambda n, i: f"{n.clocks()[2]} MHz",
    "clocks.default_applications.memory": lambda n, i: f"{n.clocks()[0]} MHz",
    "clocks.max.graphics": lambda n, i: f"{n.clocks()[1]} MHz",
    "clocks.max.memory": lambda n, i: f"{n.clocks()[0]} MHz",
    "count": lambda n, i: str(n.gpu_count),
}
REMAP_FIELDS = {
    "gpu_bus_id": lambda n, i: n.bus_id(i),
    "gpu_uuid": lambda n, i: n.uuid(i),
    "remapped_rows.correctable": lambda n, i: _remap(n, i, 0),
    "remapped_rows.uncorrectable": lambda n, i: _remap(n, i, 1),
    "remapped_rows.pending": lambda n, i: _remap(n, i, 2),
    "remapped_rows.failure": lambda n, i: _remap(n, i, 3),
}


def _remap(n: Node, i: int, field: int) -> str:
    if not n.ref["row_remapping"]:
        return "[N/A]"
    bad = i == 0 and "ecc-row-remap-failure" in n.faults
    return ("0", "1" if bad else "0", "No", "Yes" if bad else "No")[field]


def _csv_query(n: Node, spec: str, fmt: str, table: dict, gpus: list[int]) -> int:
    fields = [f.strip() for f in spec.split(",") if f.strip()]
    for f in fields:
        if f not in table:
            print(f'Field "{f}" is not a valid field to query.', file=sys.stderr)
            return 2
    opts = {o.strip() for o in fmt.split(",")}
    if "csv" not in opts:
        print(f'"{fmt}" is not a valid format. Use --format=csv[,noheader][,nounits].',
              file=sys.stderr)
        return 2
    banner(sys.stderr)
    if "noheader" not in opts:
        print(", ".join(fields))
    for i in gpus:
        values = [table[f](n, i) for f in fields]
        if "nounits" in opts:
            values = [v.rsplit(" ", 1)[0] if v.endswith((" MiB", " %", " MHz")) else v
                      for v in values]
        print(", ".join(values))
    return 0


def _summary(n: Node) -> None:
    banner()
    print(datetime.now().strftime("%a %b %d %H:%M:%S %Y"))
    edge = "+" + "-" * 89 + "+"
    print(edge)
    print(f"| NVIDIA-SMI {n.driver:<23}Driver Version: {n.driver:<15}"
          f"CUDA Version: {n.cuda:<9}|")
    print("|" + "-" * 41 + "+" + "-" * 24 + "+" + "-" * 22 + "+")
    print(f"|{' GPU  Name                 Persistence-M':<41}|{' Bus-Id          Disp.A':<24}|"
          f"{' Volatile Uncorr. ECC':<22}|")
    print(f"|{' Fan  Temp   Perf          Pwr:Usage/Cap':<41}|{'           Memory-Usage':<24}|"
          f"{' GPU-Util  Compute M.':<22}|")
    print(f"|{'':<41}|{'':<24}|{'MIG M. ':>22}|")
    print("|" + "=" * 41 + "+" + "=" * 24 + "+" + "=" * 22 + "|")
    for i in range(n.gpu_count):
        pm = "On" if n.persistence(i) else "Off"
        print(f"|{i:>4}  {n.gpu_name():<28}{pm:>5}  |{n.bus_id(i) + ' Off':>23} |"
              f"{n.ecc_uncorrected(i):>21} |")
        mem = f"1MiB / {n.ref['memory_mib']}MiB"
        print(f"|{' N/A   31C    P0            N/A /  N/A':<41}|{mem:>23} |"
              f"{'0%      Default':>21} |")
        print(f"|{'':<41}|{'':<24}|{'Disabled ':>22}|")
        print("+" + "-" * 41 + "+" + "-" * 24 + "+" + "-" * 22 + "+")
    print()
    print(edge)
    print(f"|{' Processes:':<89}|")
    print(f"|{'  GPU   GI   CI        PID   Type   Process name':<77}{'GPU Memory ':>12}|")
    print(f"|{'        ID   ID':<77}{'Usage      ':>12}|")
    print("|" + "=" * 89 + "|")
    print(f"|{'  No running processes found':<89}|")
    print(edge)


def _list(n: Node) -> None:
    banner(sys.stderr)
    for i in range(n.gpu_count):
        print(f"GPU {i}: {n.gpu_name()} (UUID: {n.uuid(i)})")


def _numa(n: Node, i: int) -> int:
    return 0 if n.gpu_count < 2 or i < (n.full_count + 1) // 2 else 1


def _topo(n: Node) -> None:
    gpus = [f"GPU{i}" for i in range(n.gpu_count)]
    nics = [f"NIC{j}" for j in range(n.ib_ports)]
    tty = sys.stdout.isatty()
    under = (lambda s: f"\x1b[4m{s}\x1b[0m") if tty else (lambda s: s)
    banner(sys.stderr)
    print("\t" + "\t".join(under(h) for h in [*gpus, *nics, "CPU Affinity", "NUMA Affinity",
                                                "GPU NUMA ID"]))
    affinity = {0: "0-55,112-167", 1: "56-111,168-223"} if n.gpu_count > 1 else {0: "0-7"}

    def path(a: int, b: int) -> str:
        return "NODE" if _numa(n, a) == _numa(n, b) else "SYS"

    for i in range(n.gpu_count):
        cells = []
        for j in range(n.gpu_count):
            if i == j:
                cells.append(" X ")
            elif n.has_nvlink():
                down = n.nvlink["links_per_gpu"] - min(n.active_links(i), n.active_links(j))
                cells.append(f"NV{n.pair_links() - down}")
            else:
                cells.append(path(i, j))
        cells += ["PXB" if j == i else path(i, j) for j in range(n.ib_ports)]
        numa = _numa(n, i)
        print(under(f"GPU{i}") + "\t" + "\t".join([*cells, affinity[numa], str(numa), "", "N/A"]))
    for j in range(n.ib_ports):
        cells = ["PXB" if i == j else path(i, j) for i in range(n.gpu_count)]
        cells += [" X " if k == j else path(j, k) for k in range(n.ib_ports)]
        print(under(f"NIC{j}") + "\t" + "\t".join(cells))
    print()
    print("Legend:\n")
    for code, text in (("X", "Self"),
                       ("SYS", "Connection traversing PCIe as well as the SMP interconnect "
                               "between NUMA nodes (e.g., QPI/UPI)"),
                       ("NODE", "Connection traversing PCIe as well as the interconnect between "
                                "PCIe Host Bridges within a NUMA node"),
                       ("PHB", "Connection traversing PCIe as well as a PCIe Host Bridge "
                               "(typically the CPU)"),
                       ("PXB", "Connection traversing multiple PCIe bridges (without traversing "
                               "the PCIe Host Bridge)"),
                       ("PIX", "Connection traversing at most a single PCIe bridge"),
                       ("NV#", "Connection traversing a bonded set of # NVLinks")):
        print(f"  {code:<4} = {text}")
    if n.ib_ports:
        print("\nNIC Legend:\n")
        for j in range(n.ib_ports):
            print(f"  NIC{j}: mlx5_{j}")


def _nvlink_status(n: Node, only: int | None) -> None:
    banner(sys.stderr)
    for i in range(n.gpu_count):
        if only is not None and i != only:
            continue
        print(f"GPU {i}: {n.gpu_name()} (UUID: {n.uuid(i)})")
        speeds = n.links(i)
        if speeds and not any(speeds):
            print("\tNVML: Unable to retrieve NVLink information as all links are inactive")
            continue
        for k, s in enumerate(speeds):
            print(f"\t Link {k}: " + (f"{s:g} GB/s" if s else "<inactive>"))


def _query_text(n: Node, gpus: list[int]) -> None:
    banner()
    w = 42
    print("\n==============NVSMI LOG==============\n")
    print(f"{'Timestamp':<{w}}: {datetime.now().strftime('%a %b %d %H:%M:%S %Y')}")
    print(f"{'Driver Version':<{w}}: {n.driver}")
    print(f"{'CUDA Version':<{w}}: {n.cuda}\n")
    print(f"{'Attached GPUs':<{w}}: {n.gpu_count}")
    fabric_state, fabric_status = n.fabric_state()
    for i in gpus:
        gen, width = n.pcie(i)
        remap = [_remap(n, i, k) for k in range(4)]
        rows = [
            (f"GPU {n.bus_id(i)}", None),
            ("    Product Name", n.gpu_name()),
            ("    Minor Number", str(i)),
            ("    GPU UUID", n.uuid(i)),
            ("    Persistence Mode", "Enabled" if n.persistence(i) else "Disabled"),
            ("    Fabric", ""),
            ("        State", fabric_state),
            ("        Status", fabric_status),
            ("    PCI", ""),
            ("        Bus Id", n.bus_id(i)),
            ("        GPU Link Info", ""),
            ("            PCIe Generation", ""),
            ("                Max", str(n.ref["pcie"]["gen"])),
            ("                Current", str(gen)),
            ("            Link Width", ""),
            ("                Max", f"{n.ref['pcie']['width']}x"),
            ("                Current", f"{width}x"),
            ("    FB Memory Usage", ""),
            ("        Total", f"{n.ref['memory_mib']} MiB"),
            ("        Used", "1 MiB"),
            ("    ECC Errors", ""),
            ("        Volatile", ""),
            ("            DRAM Correctable", "0"),
            ("            DRAM Uncorrectable", str(n.ecc_uncorrected(i))),
            ("    Remapped Rows", "" if n.ref["row_remapping"] else "N/A"),
        ]
        if n.ref["row_remapping"]:
            rows += [("        Correctable Error", remap[0]),
                     ("        Uncorrectable Error", remap[1]),
                     ("        Pending", remap[2]),
                     ("        Remapping Failure Occurred", remap[3])]
        print()
        for label, value in rows:
            print(label if value is None else (f"{label:<{w}}: {value}" if value else label))


def _set_persistence(n: Node, gpus: list[int], value: str) -> int:
    if value not in ("0", "1", "ENABLED", "DISABLED"):
        print(f'Invalid value "{value}" for persistence mode.', file=sys.stderr)
        return 2
    on = value in ("1", "ENABLED")
    state = read_state("persistence.json")
    for i in gpus:
        word = "Enabled" if on else "Disabled"
        if bool(state.get(str(i))) == on:
            print(f"Persistence mode is already {word} for GPU {n.bus_id(i)}.")
        else:
            print(f"{word} persistence mode for GPU {n.bus_id(i)}.")
        state[str(i)] = on
    write_state("persistence.json", state)
    print("All done.")
    return 0


def _set_app_clocks(n: Node, gpus: list[int], value: str | None) -> int:
    mem, top, _ = n.clocks()
    state = read_state("clocks.json")
    if value is None:  # -rac
        for i in gpus:
            state.pop(str(i), None)
            print(f"All done. Applications clocks reset to default for GPU {n.bus_id(i)}.")
        write_state("clocks.json", state)
        return 0
    try:
        want_mem, want_gr = (int(x) for x in value.split(","))
    except ValueError:
        print(f'Invalid clock pair "{value}": use MEMORY_CLOCK,GRAPHICS_CLOCK.', file=sys.stderr)
        return 2
    if want_mem != mem or not 0 < want_gr <= top:
        print(f"Specified clock combination \"(MEM {want_mem}, SM {want_gr})\" is not supported "
              f"for GPU {n.bus_id(gpus[0])}. Run 'nvidia-smi -q -d SUPPORTED_CLOCKS' to see "
              "list of supported clock combinations", file=sys.stderr)
        return 3
    for i in gpus:
        state[str(i)] = [want_mem, want_gr]
        print(f'Applications clocks set to "(MEM {want_mem}, SM {want_gr})" for GPU '
              f"{n.bus_id(i)}")
    write_state("clocks.json", state)
    print("All done.")
    return 0


def nvidia_smi(n: Node, argv: list[str]) -> int:
    problem = n.driver_problem()
    if problem is not None:
        print(problem[1])
        return problem[0]
    gpus = list(range(n.gpu_count))
    args = list(argv)
    only: int | None = None
    for flag in ("-i", "--id"):
        if flag in args:
            k = args.index(flag)
            only = int(args[k + 1])
            del args[k:k + 2]
    if only is not None:
        if only >= n.gpu_count:
            print(f"No devices were found matching the id {only}", file=sys.stderr)
            return 6
        gpus = [only]
    opts = {a.split("=", 1)[0]: a.split("=", 1)[1] if "=" in a else "" for a in args}
    for flag, long in (("-pm", "--persistence-mode"), ("-ac", "--applications-clocks")):
        value = opts.get(long) or (args[args.index(flag) + 1] if flag in args
                                   and args.index(flag) + 1 < len(args) else None)
        if value is not None:
            if flag == "-pm":
                return _set_persistence(n, gpus, value.upper())
            return _set_app_clocks(n, gpus, value)
    if args in (["-rac"], ["--reset-applications-clocks"]):
        return _set_app_clocks(n, gpus, None)
    if not args:
        _summary(n)
    elif args[0] == "topo" and ("-m" in args or "--matrix" in args):
        _topo(n)
    elif args[0] == "nvlink" and ("-s" in args or "--status" in args):
        _nvlink_status(n, only)
    elif args == ["-L"] or args == ["--list-gpus"]:
        _list(n)
    elif "--query-gpu" in opts:
        return _csv_query(n, opts["--query-gpu"], opts.get("--format", ""), QUERY_FIELDS, gpus)
    elif "--query-remapped-rows" in opts:
        return _csv_query(n, opts["--query-remapped-rows"], opts.get("--format", ""),
                          REMAP_FIELDS, gpus)
    elif args[0] in ("-q", "--query"):
        _query_text(n, gpus)
    else:
        print("Invalid combination of input arguments. Please run 'nvidia-smi -h' for help.",
              file=sys.stderr)
        return 2
    return 0


# ---- nvbandwidth ----------------------------------------------------------------------------
NVB_TESTS = {
    "host_to_device_memcpy_ce": ("memcpy CE CPU(row) -> GPU(column) bandwidth (GB/s)", "h2d"),
    "device_to_host_memcpy_ce": ("memcpy CE CPU(row) <- GPU(column) bandwidth (GB/s)", "d2h"),
    "host_to_device_memcpy_sm": ("memcpy SM CPU(row) -> GPU(column) bandwidth (GB/s)", "h2d"),
    "device_to_host_memcpy_sm": ("memcpy SM CPU(row) <- GPU(column) bandwidth (GB/s)", "d2h"),
    "device_to_device_bidirectional_memcpy_read_sm":
        ("memcpy SM GPU(row) <-> GPU(column) bandwidth (GB/s)", "d2d"),
    "device_to_device_bidirectional_memcpy_write_sm":
        ("memcpy SM GPU(row) <-> GPU(column) bandwidth (GB/s)", "d2d"),
}


def _matrix(cols: int, rows: list[list[float | None]]) -> list[str]:
    out = ["  " + "".join(f"{c:>10}" for c in range(cols))]
    for r, cells in enumerate(rows):
        out.append(f"{r:>2}" + "".join(f"{'N/A' if v is None else f'{v:.2f}':>10}"
                                      for v in cells))
    return out


def nvbandwidth(n: Node, argv: list[str]) -> int:
    wanted: list[str] = []
    k = 0
    while k < len(argv):
        a = argv[k]
        if a in ("-l", "--list"):
            for idx, name in enumerate(NVB_TESTS):
                print(f"{idx}, {name}:\n\t(SIMULATED)\n")
            return 0
        if a in ("-t", "--testcase"):
            k += 1
            while k < len(argv) and not argv[k].startswith("-"):
                wanted.append(argv[k])
                k += 1
            continue
        if a.startswith("--testcase="):
            wanted.append(a.split("=", 1)[1])
        elif a in ("-b", "--bufferSize", "-i", "--testSamples"):
            k += 1
        k += 1
    wanted = wanted or list(NVB_TESTS)
    print(f"nvbandwidth Version: {NVB_VERSION}")
    print(f"Built from Git version: {NVB_VERSION} ({TAG})\n")
    banner(sys.stderr)
    # v0.7 prints no NOTE before the device list (v0.4 did; v0.8 prints one at the end) and the
    # bus ids in lower case, as NVIDIA/nvbandwidth#34 records (tests/fixtures/real/).
    cuda = int(n.cuda.split(".")[0]) * 1000 + int(n.cuda.split(".")[1]) * 10
    print(f"CUDA Runtime Version: {cuda}\nCUDA Driver Version: {cuda}\n"
          f"Driver Version: {n.driver}\n")
    for i in range(n.gpu_count):
        print(f"Device {i}: {n.gpu_name()} ({n.bus_id(i, 8)[:-2].lower()})")
    print()
    status = 0
    for name in wanted:
        if name not in NVB_TESTS:
            print(f"ERROR: Testcase {name} not found!")
            status = 1
            continue
        title, kind = NVB_TESTS[name]
        if kind == "d2d" and (n.gpu_count < 2 or not n.has_nvlink()):
            print("Waived: ")  # no peer access: nvbandwidth waives the test, naming nothing
            print()
            continue
        print(f"Running {name}.")
        print(title)
        if kind == "d2d":
            rows = [[None if i == j else
                     (n.healthy("nvbandwidth.d2d", name, i, j) or 0) * n.nvlink_factor(i, j)
                     for j in range(n.gpu_count)] for i in range(n.gpu_count)]
        else:
            metric = f"nvbandwidth.{kind}"
            rows = [[(n.healthy(metric, name, i) or 0) * n.pcie_factor(i)
                     for i in range(n.gpu_count)]]
        for line in _matrix(n.gpu_count, rows):
            print(line)
        total = sum(v for r in rows for v in r if v is not None)
        print(f"\nSUM {name} {total:.2f}\n")
    return status


# ---- all_reduce_perf (nccl-tests) -----------------------------------------------------------
_NCCL_VALUE_OPTS = {"-b": "minbytes", "--minbytes": "minbytes", "-e": "maxbytes",
                    "--maxbytes": "maxbytes", "-f": "stepfactor", "--stepfactor": "stepfactor",
                    "-i": "stepbytes", "--stepbytes": "stepbytes", "-g": "ngpus",
                    "--ngpus": "ngpus", "-t": "nthreads", "--nthreads": "nthreads",
                    "-c": "check", "--check": "check", "-n": "iters", "--iters": "iters",
                    "-w": "warmup_iters", "--warmup_iters": "warmup_iters", "-d": "datatype",
                    "--datatype": "datatype", "-o": "op", "--op": "op", "-r": "root",
                    "--root": "root", "-a": "average", "--average": "average", "-G": "cudagraph",
                    "--cudagraph": "cudagraph", "-z": "blocking", "--blocking": "blocking",
                    "-m": "agg_iters", "--agg_iters": "agg_iters", "-p": "parallel_init",
                    "-N": "run_cycles", "-C": "report_cputime", "-T": "timeout", "-M": "memory",
                    "-J": "json", "-R": "local_register", "-u": "unalign"}


def parse_size(text: str) -> int:
    """nccl-tests sizes: 8G, 512M, 64K (powers of 1024) or plain bytes."""
    text = text.strip()
    scale = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}.get(text[-1:].lower())
    return int(float(text[:-1]) * scale) if scale else int(text)


def _mpi(env_names: tuple[str, ...], default: int) -> int:
    for name in env_names:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return default


def _nccl_time(usec: float) -> str:
    """nccl-tests' time column: 2 decimals below 100 us, 1 below 10,000, none above, as real
    logs print ``69.12``, ``108.9``, ``6759.0``, ``47535`` (tests/fixtures/real/nccl-*)."""
    decimals = 2 if usec < 100 else 1 if usec < 10_000 else 0
    return f"{usec:7.{decimals}f}"


def _nccl_busbw(n: Node, nodes: int, ranks: int, size: int, key: str) -> float | None:
    if nodes <= 1:
        base = n.metric("nccl.all_reduce").get("reference")
        if base is None:  # PCIe-only SKUs: model a ring bound by the host link
            base = n.metric("nvbandwidth.h2d").get("reference")
        if base is None:
            return None
        value = n.healthy("nccl.all_reduce", key, base=base) or 0
        value *= n.nvlink_factor(*range(n.gpu_count))
    else:
        m = n.metric("nccl.all_reduce.multinode")
        if m.get("per_nic") is None or n.ib_ports == 0:
            return None
        base = m["per_nic"] * n.ib_ports
        single = n.metric("nccl.all_reduce").get("reference")
        if single is not None:
            base = min(base, single)
        value = n.healthy("nccl.all_reduce.multinode", key, base=base) or 0
        if "ib-down" in n.faults:
            value *= (n.ib_ports - 1) / n.ib_ports
    if "nccl-degraded" in n.faults:
        value *= DEGRADED_FACTOR
    return value * size / (size + (32 << 20))  # small messages do not reach the plateau


def all_reduce_perf(n: Node, argv: list[str]) -> int:
    opts: dict[str, str] = {}
    k = 0
    while k < len(argv):
        a = argv[k]
        name, _, inline = a.partition("=")
        if name in _NCCL_VALUE_OPTS:
            if inline:
                opts[_NCCL_VALUE_OPTS[name]] = inline
            elif k + 1 < len(argv):
                opts[_NCCL_VALUE_OPTS[name]] = argv[k + 1]
                k += 1
        elif a in ("-h", "--help"):
            print("USAGE: all_reduce_perf [-b minbytes] [-e maxbytes] [-f stepfactor] "
                  f"[-g ngpus] ... ({TAG})")
            return 0
        k += 1
    rank = _mpi(("OMPI_COMM_WORLD_RANK", "PMI_RANK", "SLURM_PROCID"), 0)
    world = _mpi(("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"), 1)
    if rank != 0:
        return 0  # nccl-tests prints from rank 0 only
    minb = parse_size(opts.get("minbytes", "32M"))
    maxb = parse_size(opts.get("maxbytes", "32M"))
    factor = int(opts.get("stepfactor", "1" if "stepbytes" in opts else "2"))
    step = parse_size(opts.get("stepbytes", "1M"))
    ngpus, nthreads = int(opts.get("ngpus", "1")), int(opts.get("nthreads", "1"))
    check = int(opts.get("check", "1"))
    per_proc = ngpus * nthreads
    ranks = world * per_proc
    # Outside MPI one process drives its own node's GPUs; under MPI, ranks fill whole nodes.
    nodes = int(os.environ.get("PROVISION_SIM_NODES")
                or (1 if world == 1 else -(-ranks // max(n.full_count, 1))))
    hosts = [h for h in os.environ.get("PROVISION_SIM_HOSTS", "").split(",") if h]
    hosts = hosts or [n.hostname]
    hosts += [f"{n.hostname}-peer{h}" for h in range(len(hosts), nodes)]
    print(f"# {BANNER}")
    print(f"# nccl-tests version {NCCL_TESTS_VERSION} nccl-headers=22105 nccl-library=22105")
    print("# Collective test starting: all_reduce_perf")
    print(f"# nThread {nthreads} nGpus {ngpus} minBytes {minb} maxBytes {maxb} step: "
          + (f"{factor}(factor)" if factor > 1 else f"{step}(bytes)")
          + f" warmup iters: {opts.get('warmup_iters', '1')} iters: {opts.get('iters', '20')}"
          " agg iters: 1 validation: " + str(check) + " graph: 0")
    print("#")
    per_node = -(-ranks // nodes)
    if per_node > n.gpu_count:
        print(f"Invalid number of GPUs: {per_node} requested but only {n.gpu_count} were found.",
              file=sys.stderr)
        print("Please check the number of processes and GPUs per process.", file=sys.stderr)
        print(f"{n.hostname}: Test failure common.cu:1011")
        return 1
    print("# Using devices")
    for r in range(ranks):
        node, dev = divmod(r, per_node)
        print(f"#  Rank {r:2d} Group  0 Pid {4000 + r:6d} on {hosts[node]:>10} device {dev:2d} "
              f"[{0:04x}:{n.bus(dev):02x}:00] {n.gpu_name()}")
    print("#")
    print(f"# {'':>10}  {'':>12}  {'':>8}  {'':>6}  {'':>6}           out-of-place"
          "                       in-place          ")
    print(f"# {'size':>10}  {'count':>12}  {'type':>8}  {'redop':>6}  {'root':>6}  "
          f"{'time':>7}  {'algbw':>6}  {'busbw':>6}  {'#wrong':>6}  {'time':>7}  {'algbw':>6}  "
          f"{'busbw':>6}  {'#wrong':>6}")
    print(f"# {'(B)':>10}  {'(elements)':>12}  {'':>8}  {'':>6}  {'':>6}  {'(us)':>7}  "
          f"{'(GB/s)':>6}  {'(GB/s)':>6}  {'':>6}  {'(us)':>7}  {'(GB/s)':>6}  {'(GB/s)':>6}  "
          f"{'':>6}")
    sizes, size = [], minb
    while size <= maxb and len(sizes) < 64:
        sizes.append(size)
        size = size * factor if factor > 1 else size + step
    total = 0.0
    bus_factor = 2 * (ranks - 1) / ranks if ranks > 1 else 0.0
    for size in sizes:
        line = f"{size:12d}  {size // 4:12d}  {'float':>8}  {'sum':>6}  {-1:6d}"
        for place in ("oop", "ip"):
            busbw = _nccl_busbw(n, nodes, ranks, size, f"{place}|{size}")
            if busbw is None:
                print(f"{n.hostname}: Test failure: {TAG} has no multi-node figure for "
                      f"{n.sku} (no InfiniBand in reference.json)")
                return 1
            algbw = busbw / bus_factor if bus_factor else busbw
            usec = size / (algbw * 1e9) * 1e6
            wrong = "N/A" if check == 0 else "0"
            line += (f"  {_nccl_time(usec)}  {algbw:6.2f}  "
                     f"{busbw if bus_factor else 0.0:6.2f}  {wrong:>6}")
            if place == "oop":
                total += busbw if bus_factor else 0.0
        print(line)
    avg = total / len(sizes) if sizes else 0.0
    min_bw = os.environ.get("NCCL_TESTS_MIN_BW")
    verdict = "" if not min_bw else ("FAILED" if avg < float(min_bw) * 0.9 else "OK")
    print(f"# {'Out of bounds values':<20} : 0 OK")
    print(f"# {'Avg bus bandwidth':<20} : {avg:g} {verdict}")
    print("#")
    print("# Collective test concluded: all_reduce_perf")
    print("#")
    return 1 if verdict == "FAILED" else 0


# ---- dcgmi ----------------------------------------------------------------------------------
DCGM_TESTS = (  # (level, category, test)
    (1, "Deployment", "software"),
    (2, "Integration", "pcie"),
    (2, "Hardware", "memory"),
    (3, "Hardware", "diagnostic"),
    (3, "Stress", "targeted_stress"),
    (3, "Stress", "targeted_power"),
    (3, "Stress", "memory_bandwidth"),
)


def _dcgm_result(n: Node, level: int, test: str, gpu: int) -> tuple[str, list[str]]:
    if test == "software" and gpu == 0 and "dcgm-fail" in n.faults:
        return "Fail", [f"The inforom on GPU {gpu} is corrupt or invalid ({TAG})"]
    if test == "memory_bandwidth" and gpu == 0 and "hbm-degraded" in n.faults:
        floor = n.ref.get("dcgm", {}).get("memory_bandwidth_floor_mbps")
        if floor:
            got = int(floor * DEGRADED_FACTOR)
            return "Fail", [f"GPU {gpu}: memory bandwidth {got:,} MB/s is below the minimum "
                            f"{floor:,} MB/s ({TAG})"]
        return "Fail", [f"GPU {gpu}: memory bandwidth below the minimum ({TAG})"]
    return "Pass", []


def dcgmi(n: Node, argv: list[str]) -> int:
    if argv[:1] == ["discovery"] and "-l" in argv:
        banner()
        print(f"{n.gpu_count} GPU{'s' if n.gpu_count != 1 else ''} found.")
        for i in range(n.gpu_count):
            print(f"GPU {i}: {n.gpu_name()}  PCI Bus ID: {n.bus_id(i)}  UUID: {n.uuid(i)}")
        return 0
    if argv[:1] != ["diag"]:
        print(f"Error: {TAG} dcgmi supports `diag -r N [-j]` and `discovery -l` only",
              file=sys.stderr)
        return 2
    level = 1
    for flag in ("-r", "--run"):
        if flag in argv and argv.index(flag) + 1 < len(argv):
            value = argv[argv.index(flag) + 1]
            if not value.isdigit() or not 1 <= int(value) <= 4:
                print(f"Error: invalid run level {value!r}", file=sys.stderr)
                return 2
            level = int(value)
    tests = [(cat, t) for lvl, cat, t in DCGM_TESTS if lvl <= level]
    categories: dict[str, list[dict[str, Any]]] = {}
    failed = False
    for cat, test in tests:
        results = []
        for gpu in range(n.gpu_count):
            status, warnings = _dcgm_result(n, level, test, gpu)
            failed |= status == "Fail"
            entry: dict[str, Any] = {"entity_group": "GPU", "entity_group_id": 1,
                                     "entity_id": gpu, "status": status}
            if warnings:
                entry["warnings"] = [{"error_category": 1, "error_id": 33, "error_severity": 2,
                                      "warning": w} for w in warnings]
            results.append(entry)
        summary = "Fail" if any(r["status"] == "Fail" for r in results) else "Pass"
        categories.setdefault(cat, []).append(
            {"name": test, "results": results, "test_summary": {"status": summary}})
    if "-j" in argv or "--json" in argv:
        banner(sys.stderr)
        doc = {"DCGM Diagnostic": {"test_categories": [
                   {"category": c, "tests": t} for c, t in categories.items()]},
               "entity_groups": [{"entity_group": "GPU", "entity_group_id": 1, "entities": [
                   {"entity_id": i, "device_id": "SIMULATED", "serial_num": n.uuid(i)[4:16]}
                   for i in range(n.gpu_count)]}],
               "metadata": {"version": DCGM_VERSION, "Driver Version Detected": n.driver}}
        print(json.dumps(doc, indent=3))
        return 1 if failed else 0
    banner()
    print("Successfully ran diagnostic for group.")
    edge = "+---------------------------+------------------------------------------------+"
    print(edge)
    print(f"| {'Diagnostic':<26}| {'Result':<47}|")
    print(edge.replace("-", "="))
    print(f"|{'-----  Metadata  ':-<27}+{'':-<48}|")
    print(f"| {'DCGM Version':<26}| {DCGM_VERSION:<47}|")
    print(f"| {'Driver Version Detected':<26}| {n.driver:<47}|")
    for cat, entries in categories.items():
        print(f"|{'-----  ' + cat + '  ':-<27}+{'':-<48}|")
        for e in entries:
            print(f"| {e['name']:<26}| {e['test_summary']['status']:<47}|")
    print(edge)
    return 1 if failed else 0


# ---- InfiniBand -----------------------------------------------------------------------------
def _guid(n: Node, j: int) -> str:
    return "0x" + hashlib.sha256(f"{n.hostname}|hca|{j}".encode()).hexdigest()[:16]


def ibstat(n: Node, argv: list[str]) -> int:
    if n.ib_ports == 0:
        print(f"ibstat: no InfiniBand devices found ({TAG}: {n.sku} has none)", file=sys.stderr)
        return 1
    cas = [f"mlx5_{j}" for j in range(n.ib_ports)]
    if "-l" in argv:
        print("\n".join(cas))
        return 0
    wanted = [a for a in argv if not a.startswith("-")][:1] or cas
    if wanted[0] not in cas:
        print(f"ibpanic: [{os.getpid()}] main: stat of IB device '{wanted[0]}' failed: "
              "No such file or directory", file=sys.stderr)
        return 1
    ca_type = n.ref["ib"]["ca_type"] or "MT4129"
    banner(sys.stderr)
    for j, ca in enumerate(cas):
        if ca not in wanted:
            continue
        down = j == 0 and "ib-down" in n.faults
        print(f"CA '{ca}'")
        for key, value in (("CA type", ca_type), ("Number of ports", "1"),
                           ("Firmware version", FIRMWARE.get(ca_type, "28.39.1002")),
                           ("Hardware version", "0"), ("Node GUID", _guid(n, j)),
                           ("System image GUID", _guid(n, j))):
            print(f"\t{key}: {value}")
        print("\tPort 1:")
        rate = n.ref["ib"]["rate_gbps"]
        for key, value in (("State", "Down" if down else "Active"),
                           ("Physical state", "Polling" if down else "LinkUp"),
                           ("Rate", "10" if down else f"{rate:g}"),
                           ("Base lid", "65535" if down else str(j + 1)), ("LMC", "0"),
                           ("SM lid", "0" if down else "1"),
                           ("Capability mask", "0xa651e848"), ("Port GUID", _guid(n, j)),
                           ("Link layer", "InfiniBand")):
            print(f"\t\t{key}: {value}")
    return 0


def ib_write_bw(n: Node, argv: list[str]) -> int:
    device, server, gbits, size, duration = None, None, False, 65536, None
    k = 0
    value_opts = {"-d", "--ib-dev", "-s", "--size", "-D", "--duration", "-n", "--iters", "-q",
                  "--qp", "-x", "--gid-index", "-p", "--port", "-i", "--ib-port", "-m", "--mtu",
                  "--use_cuda"}
    while k < len(argv):
        a = argv[k]
        name, _, inline = a.partition("=")
        if name in value_opts:
            value = inline or (argv[k + 1] if k + 1 < len(argv) else "")
            k += 0 if inline else 1
            if name in ("-d", "--ib-dev"):
                device = value
            elif name in ("-s", "--size"):
                size = int(value)
            elif name in ("-D", "--duration"):
                duration = int(value)
        elif a == "--report_gbits":
            gbits = True
        elif not a.startswith("-"):
            server = a
        k += 1
    cas = [f"mlx5_{j}" for j in range(n.ib_ports)]
    device = device or (cas[0] if cas else None)
    if device not in cas:
        print(f" IB device {device} not found\n Unable to find the Infiniband/RoCE device",
              file=sys.stderr)
        return 1
    j = cas.index(device)
    if j == 0 and "ib-down" in n.faults:
        print(" Port number 1 state is Down\n Couldn't set the link layer\n"
              " Couldn't get context for the device", file=sys.stderr)
        return 1
    if server is None:
        print("\n************************************\n* Waiting for client to connect... *\n"
              "************************************")
    rule = "-" * 87
    bw = n.healthy("ib.write_bw", device) or 0.0
    iterations = int(bw * 1e9 / 8 / size * duration) if duration else 5000
    msg_rate = bw * 1e9 / 8 / size / 1e6
    unit = "Gb/sec" if gbits else "MB/sec"
    shown = bw if gbits else bw * 1e9 / 8 / 2**20
    print(rule)
    print(f"                    RDMA_Write BW Test  ({TAG})")
    print(f" Dual-port       : OFF\t\tDevice         : {device}")
    print(" Number of qps   : 1\t\tTransport type : IB")
    print(" Connection type : RC\t\tUsing SRQ      : OFF")
    print(" PCIe relax order: ON\n ibv_wr* API     : ON\n TX depth        : 128\n"
          " CQ Moderation   : 1\n Mtu             : 4096[B]\n Link type       : IB\n"
          " Max inline data : 0[B]\n rdma_cm QPs\t : OFF\n Data ex. method : Ethernet")
    print(rule)
    print(f" local address: LID {j + 1:#04x} QPN 0x0127 PSN 0x6b2e3c RKey 0x1fff00 "
          "VAddr 0x007f5e6a9ff000")
    print(f" remote address: LID {j + 2:#04x} QPN 0x0127 PSN 0x2a1c6b RKey 0x1fff00 "
          "VAddr 0x007f8a2c5ff000")
    print(rule)
    print(f" #bytes     #iterations    BW peak[{unit}]    BW average[{unit}]   MsgRate[Mpps]")
    # perftest's REPORT_FMT, as the recorded run in tests/fixtures/real prints it:
    # " %-7lu    %-7lu          %-7.2lf            %-7.2lf\t\t   %-7.6lf"
    print(f" {size:<7}    {iterations:<7}          {shown * 1.0005:<7.2f}            "
          f"{shown:<7.2f}\t\t   {msg_rate:<7.6f}")
    print(rule)
    return 0


# ---- kernel log -----------------------------------------------------------------------------
def dmesg(n: Node, argv: list[str]) -> int:
    """Kernel-log lines as dmesg prints them; the collector greps 'NVRM: Xid' out of them."""
    banner(sys.stderr)
    print("[    4.112233] nvidia: module license 'NVIDIA' taints kernel.")
    print(f"[    4.245061] NVRM: loading NVIDIA UNIX x86_64 Kernel Module  {n.driver}  ({TAG})")
    if "xid-79" in n.faults:
        pci = n.bus_id(0, 4)[:-2].lower()
        for t in ("8342.114520", "8342.131877"):
            print(f"[ {t}] NVRM: Xid (PCI:{pci}): 79, pid='<unknown>', name=<unknown>, "
                  f"GPU has fallen off the bus. ({TAG})")
        print(f"[ 8342.131902] NVRM: GPU {pci}.0: GPU has fallen off the bus. ({TAG})")
    return 0


HANDLERS = {"nvidia-smi": nvidia_smi, "nvbandwidth": nvbandwidth,
            "all_reduce_perf": all_reduce_perf, "dcgmi": dcgmi, "ibstat": ibstat,
            "ib_write_bw": ib_write_bw, "nvidia-sim-dmesg": dmesg}


def main(tool: str, argv: list[str]) -> int:
    """Run simulated ``tool`` with ``argv``; returns the exit status."""
    try:
        node = load_node()
    except SimError as exc:
        print(f"provision-sim ({tool}): {exc}", file=sys.stderr)
        return 3
    if f"hang:{tool}" in node.faults:
        print(f"{BANNER}\n{tool}: hanging on purpose (fault hang:{tool})", file=sys.stderr)
        sys.stderr.flush()
        while True:
            time.sleep(3600)
    try:
        return HANDLERS[tool](node, argv)
    except BrokenPipeError:  # `nvidia-smi | head`: the reader left, as with the real tools
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in HANDLERS:
        print(f"usage: simgpu.py {{{'|'.join(TOOLS)}}} [ARGS...]", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2:]))
