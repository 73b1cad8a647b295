"""The SIMULATED driver's userspace as files to bind into a container (provision-sim).

A real GPU container gets the host driver's userspace injected: the NVIDIA Container Toolkit's
CDI spec and Apptainer's ``--nv`` bind nvidia-smi, libcuda, libnvidia-ml and friends from the
host. On a simulated node the "driver userspace" is the simulator: the nvidia-smi stand-in, its
Python modules and reference data, the node's GPU description (/etc/provision-sim/node.json,
the simulated hardware itself) and the Python interpreter that runs them, with the shared
libraries ``ldd`` says it needs. The container-toolkit and Apptainer stand-ins both bind
exactly this list, so a container "sees the GPUs" only through them, as on a real node.
Stdlib only (python3 -S).
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys

SIM_LIB = "/usr/lib/provision-sim"
NODE_CONFIG_DIR = "/etc/provision-sim"
TOOLS = ("nvidia-smi",)


def _ldd(paths: list[str]) -> set[str]:
    """Shared libraries (resolved paths) and the dynamic loader the files need."""
    out: set[str] = set()
    for chunk in range(0, len(paths), 64):
        proc = subprocess.run(["ldd", *paths[chunk:chunk + 64]], capture_output=True,
                              text=True, check=False)
        for line in proc.stdout.splitlines():
            parts = line.split()
            if "=>" in parts and len(parts) > parts.index("=>") + 1:
                target = parts[parts.index("=>") + 1]
                if target.startswith("/"):
                    out.add(target)
            elif parts and parts[0].startswith("/") and not parts[0].endswith(":"):
                # the loader ("/lib64/ld-linux-x86-64.so.2 (0x...)"); "FILE:" lines head each
                # file's list when ldd is given several
                out.add(parts[0])
    return out


def userspace_mounts() -> list[tuple[str, str]]:
    """(host path, container path) pairs; empty when no stand-in driver is installed."""
    if not os.path.isfile(os.path.join(SIM_LIB, "simgpu.py")):
        return []
    python = os.path.realpath(sys.executable or "/usr/bin/python3")
    stdlib = os.path.dirname(os.__file__)
    dynload = sorted(glob.glob(os.path.join(stdlib, "lib-dynload", "*.so")))
    env = os.path.realpath("/usr/bin/env")
    mounts = [(SIM_LIB, SIM_LIB), (NODE_CONFIG_DIR, NODE_CONFIG_DIR),
              (python, python), (python, "/usr/bin/python3"), (stdlib, stdlib),
              (env, "/usr/bin/env")]
    for tool in TOOLS:
        real = os.path.realpath(f"/usr/bin/{tool}")
        if os.path.isfile(real):
            mounts.append((real, f"/usr/bin/{tool}"))
    libs = _ldd([python, env, *dynload])
    for lib in sorted(libs):
        real = os.path.realpath(lib)
        mounts.append((real, lib))
        if real != lib:
            mounts.append((real, real))
    seen: set[tuple[str, str]] = set()
    return [m for m in mounts if not (m in seen or seen.add(m))]
