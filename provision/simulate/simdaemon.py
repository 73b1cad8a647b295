"""SIMULATED NVIDIA daemons (provision-sim): nvidia-persistenced, nv-fabricmanager,
nv-hostengine.

Each checks what the real daemon needs before it starts (the driver stand-in installed with
its kernel module; for the fabric manager also an NVSwitch SKU and exactly the driver's
version) and fails the way the real one does, otherwise daemonizes, writes its pid file and
its state (``$PROVISION_SIM_STATE/<service>.json``) that simgpu reads: persistence mode on
while nvidia-persistenced runs, fabric state "Completed" while the matching fabric manager
runs. SIGTERM removes the state. The packages' init scripts start and stop them with
start-stop-daemon, so Ansible's service module, handlers and restarts run unchanged.
Stdlib only (python3 -S).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

TAG = "SIMULATED by provision-sim"
SERVICES = {
    # tool: (state name, pid file, log file)
    "nvidia-persistenced": ("nvidia-persistenced",
                            "/var/run/nvidia-persistenced/nvidia-persistenced.pid", None),
    "nv-fabricmanager": ("nvidia-fabricmanager",
                         "/var/run/nvidia-fabricmanager/nv-fabricmanager.pid",
                         "/var/log/fabricmanager.log"),
    "nv-hostengine": ("nvidia-dcgm", "/var/run/nvhostengine.pid", "/var/log/nv-hostengine.log"),
}


def _simgpu() -> Any:
    for lib in (os.environ.get("PROVISION_SIM_LIB"), "/usr/lib/provision-sim"):
        if lib and (Path(lib) / "simgpu.py").is_file():
            sys.path.insert(0, lib)
            import simgpu

            return simgpu
    return None


def _log(path: str | None, line: str) -> None:
    stamp = time.strftime("[%b %d %Y %H:%M:%S]")
    text = f"{stamp} [INFO] [tid {os.getpid()}] {line} ({TAG})"
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(text + "\n")
    print(text, file=sys.stderr)


def preflight(tool: str) -> tuple[dict[str, Any] | None, str | None]:
    """(state to publish, None) when the daemon may start, else (None, why not)."""
    sim = _simgpu()
    if sim is None:
        return None, f"{tool}: failed to initialize: the NVIDIA driver is not installed"
    try:
        node = sim.load_node()
    except sim.SimError as exc:
        return None, f"{tool}: {exc}"
    problem = node.driver_problem()
    if problem is not None:
        return None, f"{tool}: failed to initialize NVML: {problem[1].splitlines()[0]}"
    state: dict[str, Any] = {"driver": node.driver}
    if tool == "nv-fabricmanager":
        own_file = (os.environ.get("PROVISION_SIM_FABRICMANAGER")
                    or Path(__file__).resolve().parent / "fabricmanager.json")
        own = json.loads(Path(own_file).read_text(encoding="utf-8"))["version"]
        if node.nvlink["fabric"] != "nvswitch":
            return None, ("nv-fabricmanager: request to query NVSwitch device information from "
                          "NVSwitch driver failed: no NVSwitch found on this system "
                          f"({node.sku}); fabric manager is for NVSwitch systems only")
        if own != node.driver:
            return None, (f"nv-fabricmanager: fabric manager NVIDIA GPU driver interface version "
                          f"{own} don't match with driver version {node.driver}. Please update "
                          "with matching NVIDIA driver package.")
        state["version"] = own
    return state, None


def _daemonize(pidfile: str) -> None:
    """Detach (double fork); the starting process returns only once the daemon is ready (its
    pid file exists), so `service X start` followed at once by a check sees it running."""
    Path(pidfile).unlink(missing_ok=True)
    if os.fork():
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not Path(pidfile).exists():
            time.sleep(0.05)
        os._exit(0 if Path(pidfile).exists() else 1)
    os.setsid()
    if os.fork():
        os._exit(0)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)


def main(tool: str, argv: list[str]) -> int:
    """Run daemon ``tool``; exits 1 (after logging why) when it cannot start."""
    if tool not in SERVICES:
        print(f"{TAG}: no simulated daemon {tool!r}", file=sys.stderr)
        return 2
    if "--version" in argv or "-v" in argv:
        print(f"{tool}: {TAG}")
        return 0
    name, pidfile, logfile = SERVICES[tool]
    state, error = preflight(tool)
    if state is None:
        _log(logfile, error or f"{tool} failed to start")
        return 1
    sim = _simgpu()
    _log(logfile, f"{tool} for driver {state['driver']} is starting")
    if "--foreground" not in argv and "-f" not in argv:
        _daemonize(pidfile)

    def stop(_sig: int, _frame: Any) -> None:
        (sim.state_dir() / f"{name}.json").unlink(missing_ok=True)
        Path(pidfile).unlink(missing_ok=True)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sim.write_state(f"{name}.json", {**state, "pid": os.getpid()})
    Path(pidfile).parent.mkdir(parents=True, exist_ok=True)
    Path(pidfile).write_text(f"{os.getpid()}\n", encoding="utf-8")
    if tool == "nv-fabricmanager":
        _log(logfile, "Successfully configured all the available NVSwitches to route GPU NVLink "
             "traffic. NVLink Peer-to-Peer support will be enabled once the GPUs are "
             "successfully registered with the NVLink fabric.")
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
