"""SIMULATED stand-ins for NVIDIA's packages, and the local repository simulated nodes use.

Simulated GPU nodes (the local target's ``sku: h100-sxm-80gb`` and friends) have no GPU and
cannot reach NVIDIA's servers, yet the GPU roles must run their real code: add the CUDA
repository through cuda-keyring, pin the driver branch, install ``cuda-drivers-550``,
``nvidia-fabricmanager-550``, ``cuda-toolkit-12-4``, ``libnccl2=2.21.5-1+cuda12.4``, the
container toolkit, restart services through handlers, and prove the result works. So this
module builds .debs with Debian's ``equivs`` under NVIDIA's package names and versions, whose
contents are the simulator (simgpu and friends: nvidia-smi, nvcc, nvidia-ctk, the daemons,
...), and lays them out as signed flat apt repositories at the same paths as NVIDIA's:

    <root>/current/compute/cuda/repos/debian12/x86_64/     the CUDA repository + cuda-keyring
    <root>/current/libnvidia-container/stable/deb/amd64/   the container toolkit repository
    <root>/current/public/repo/doca/<v>/debian12/x86_64/   DOCA-OFED (simulated HCA tools)
    <root>/current/apptainer/releases/download/v<v>/       Apptainer's GitHub release .deb
    <root>/current/nccl-tests/archive/refs/tags/v<v>.tar.gz  nccl-tests' source (stand-in)
    <root>/current/images/                                 a busybox image (docker-archive)
    <root>/current/pypi/                                   jax/jaxlib/libtpu stand-in wheels

Nodes see ``<root>`` read-only at /opt/provision-sim-repo, and the inventory points the roles'
URL variables there (:func:`role_vars`) instead of developer.download.nvidia.com. Every package
says "SIMULATED stand-in" first in its description; every tool says SIMULATED in its output.

Builds are cached by content: each .deb under ``debs/<digest>/`` is built once, the tree
under ``trees/<digest>/`` is the union of every package built so far (several driver
branches side by side, so pinning has something to choose from), and ``current`` is a
relative symlink switched atomically, so running nodes always see a complete tree.
"""

from __future__ import annotations

import argparse
import fcntl
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from base64 import urlsafe_b64encode
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provision.errors import ProvisionError

SIM_DIR = Path(__file__).resolve().parent
BIN_DIR = SIM_DIR / "bin"
REFERENCE = SIM_DIR.parent / "verify" / "data" / "reference.json"
MOUNT = "/opt/provision-sim-repo"  # where nodes see the repository root
URL = f"file://{MOUNT}/current"
DISTRO = "debian12"
CUDA_REPO = f"compute/cuda/repos/{DISTRO}/x86_64"
CTK_REPO = "libnvidia-container/stable/deb/amd64"
DOCA_VERSION = "2.9.1"
DOCA_REPO = f"public/repo/doca/{DOCA_VERSION}/{DISTRO}/x86_64"
APPTAINER_VERSION = "1.3.6"
NCCL_TESTS_VERSION = "2.13.11"
CTK_VERSION = "1.17.3-1"
DCGM_VERSION = "1:4.1.1-1"
DCGM_EXPORTER_VERSION = "4.1.1-4.0.4-1"
BUSYBOX_IMAGE = "localhost/provision-sim-busybox:1.35"
BUSYBOX_ARCHIVE = "images/provision-sim-busybox-1.35.tar"
SIGNER = "provision simulated repository (SIMULATED, not NVIDIA) <sim@provision.invalid>"
PREFIX = "SIMULATED stand-in"
MAINTAINER = "provision simulator <sim@provision.invalid>"
Event = Callable[[str], None]


def repo_root() -> Path:
    """Where the repository lives on this machine (``$PROVISION_SIM_REPO_DIR`` overrides)."""
    env = os.environ.get("PROVISION_SIM_REPO_DIR")
    if env:
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "provision" / "sim-repo"


# ---- what to build -------------------------------------------------------------------------
@dataclass(frozen=True)
class Needs:
    """The versions the simulated nodes' profiles ask for."""

    branches: frozenset[str] = frozenset()  # driver branches: "550"
    cuda: frozenset[str] = frozenset()  # "12.4"
    nccl: frozenset[tuple[str, str]] = frozenset()  # ("2.21.5", "12.4")
    jax: frozenset[str] = frozenset()  # "0.6.2"

    @classmethod
    def from_profiles(cls, profiles: Iterable[Any]) -> Needs:
        """From provision.catalog.software.Profile objects (GPU and TPU ones)."""
        b, c, n, j = set(), set(), set(), set()
        for p in profiles:
            v = p.values
            if "jax" in v:
                j.add(v["jax"])
                continue
            b.add(v["driver_branch"])
            c.add(v["cuda"])
            n.add((v["nccl"], v["nccl_build"]))
        return cls(frozenset(b), frozenset(c), frozenset(n), frozenset(j))

    def __or__(self, other: Needs) -> Needs:
        return Needs(self.branches | other.branches, self.cuda | other.cuda,
                     self.nccl | other.nccl, self.jax | other.jax)


@dataclass(frozen=True)
class StandIn:
    """One stand-in .deb: NVIDIA's package name and version, the simulator as contents."""

    name: str
    version: str
    summary: str
    repo: str  # directory under the tree (CUDA_REPO, CTK_REPO, DOCA_REPO, or a release path)
    files: tuple[tuple[str, bytes, int], ...] = ()  # (destination path, content, mode)
    links: tuple[tuple[str, str], ...] = ()  # (link path, target)
    depends: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    scripts: tuple[tuple[str, str], ...] = ()  # (preinst|postinst|prerm|postrm, shell)
    arch: str = "amd64"

    @property
    def filename(self) -> str:
        version = self.version.split(":", 1)[-1]
        return f"{self.name}_{version}_{self.arch}.deb"

    def control(self, staged: dict[str, str], scripts: dict[str, str]) -> str:
        lines = ["Section: misc", "Priority: optional", "Standards-Version: 3.9.2", "",
                 f"Package: {self.name}", f"Version: {self.version}",
                 f"Maintainer: {MAINTAINER}", f"Architecture: {self.arch}"]
        for key, values in (("Depends", self.depends), ("Provides", self.provides),
                            ("Conflicts", self.conflicts), ("Replaces", self.conflicts)):
            if values:
                lines.append(f"{key}: {', '.join(values)}")
        if staged:
            lines.append("Files: " + "\n ".join(f"{src} {os.path.dirname(dest)}/"
                                                for dest, src in staged.items()))
        if self.links:
            lines.append("Links: " + "\n ".join(f"{target} {link}"
                                                for link, target in self.links))
        for kind, path in scripts.items():
            lines.append(f"{kind.capitalize()}: {path}")
        lines.append(f"Description: {PREFIX} for {self.summary}")
        lines.append(f" {PREFIX} (provision-sim): no NVIDIA hardware or software inside.\n"
                     " It carries NVIDIA's package name and version so provision's roles run\n"
                     " their real repository, pinning, install and service logic on simulated\n"
                     " GPU nodes; its tools print real output formats.")
        return "\n".join(lines) + "\n"

    def digest(self) -> str:
        h = hashlib.sha256(repr((self.name, self.version, self.summary, self.links,
                                 self.depends, self.provides, self.conflicts, self.scripts,
                                 self.arch)).encode())
        for dest, content, mode in self.files:
            h.update(f"{dest}\0{mode}\0".encode())
            h.update(hashlib.sha256(content).digest())
        return h.hexdigest()[:20]


def _read(path: Path) -> bytes:
    return path.read_bytes()


def _tool_wrapper(tool: str, module: str, lib_dir: str, call: str | None = None) -> bytes:
    """The thin executable for a simulated tool (like bin/*: finds its module, calls it)."""
    call = call or f"{module}.main({tool!r}, sys.argv[1:])"
    return (f'#!/usr/bin/env -S python3 -S\n"""SIMULATED {tool} (provision-sim): a stand-in, '
            f'no NVIDIA software inside."""\nimport os\nimport sys\n\n'
            f"_here = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))\n"
            f"for _lib in (_here, {lib_dir!r}, '/usr/lib/provision-sim'):\n"
            f"    if os.path.isfile(os.path.join(_lib, {module + '.py'!r})):\n"
            f"        sys.path.insert(0, _lib)\n        break\n"
            f"import {module}  # noqa: E402\n\nsys.exit({call})\n").encode()


def _init_script(service: str, daemon: str, pidfile: str, desc: str, args: str = "") -> bytes:
    """An LSB init script (nodes without systemd start services through these)."""
    return f"""#!/bin/sh
### BEGIN INIT INFO
# Provides:          {service}
# Required-Start:    $remote_fs $syslog
# Required-Stop:     $remote_fs $syslog
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: {desc} (SIMULATED by provision-sim)
### END INIT INFO
# SIMULATED stand-in init script (provision-sim).
NAME={service}
DAEMON={daemon}
PIDFILE={pidfile}
. /lib/lsb/init-functions
case "$1" in
  start)
    log_daemon_msg "Starting {desc}" "$NAME"
    start-stop-daemon --start --quiet --oknodo --pidfile "$PIDFILE" --startas "$DAEMON" -- {args}
    log_end_msg $?
    ;;
  stop)
    log_daemon_msg "Stopping {desc}" "$NAME"
    start-stop-daemon --stop --quiet --oknodo --retry=TERM/10/KILL/5 --pidfile "$PIDFILE" \\
      --remove-pidfile
    log_end_msg $?
    ;;
  restart|force-reload)
    "$0" stop
    "$0" start
    ;;
  status)
    status_of_proc -p "$PIDFILE" "$DAEMON" "$NAME" && exit 0 || exit $?
    ;;
  *)
    echo "Usage: $0 {{start|stop|restart|force-reload|status}}" >&2
    exit 3
    ;;
esac
""".encode()


def _unit(desc: str, exec_start: str, pidfile: str) -> bytes:
    return (f"[Unit]\nDescription={desc} (SIMULATED by provision-sim)\n\n[Service]\n"
            f"Type=forking\nPIDFile={pidfile}\nExecStart={exec_start}\n\n[Install]\n"
            "WantedBy=multi-user.target\n").encode()


def _daemon_package(name: str, version: str, summary: str, service: str, tool: str,
                    pidfile: str, lib: str, extra: tuple[tuple[str, bytes, int], ...] = (),
                    depends: tuple[str, ...] = (), args: str = "",
                    links: tuple[tuple[str, str], ...] = (),
                    provides: tuple[str, ...] = ()) -> StandIn:
    return StandIn(
        name=name, version=version, summary=summary, repo=CUDA_REPO, depends=depends,
        provides=provides,
        files=((f"{lib}/simdaemon.py", _read(SIM_DIR / "simdaemon.py"), 0o644),
               (f"{lib}/bin/{tool}", _tool_wrapper(tool, "simdaemon", lib), 0o755),
               (f"/etc/init.d/{service}", _init_script(service, f"/usr/bin/{tool}", pidfile,
                                                       summary, args), 0o755),
               (f"/lib/systemd/system/{service}.service",
                _unit(summary, f"/usr/bin/{tool} {args}".strip(), pidfile), 0o644), *extra),
        links=((f"/usr/bin/{tool}", f"{lib}/bin/{tool}"), *links),
        scripts=(("postrm", f"#!/bin/sh\nset -e\nif [ \"$1\" = purge ]; then update-rc.d "
                  f"{service} remove >/dev/null || true; fi\n"),))


def driver_packages(branch: str, version: str, cuda: str) -> list[StandIn]:
    """The driver of one branch, as NVIDIA's Debian 12 repository splits it."""
    v = f"{version}-1"
    sim = "/usr/lib/provision-sim"
    tools = [(f"{sim}/bin/{t}", _read(BIN_DIR / t), 0o755)
             for t in ("nvidia-smi", "nvidia-sim-dmesg")]
    kernel = []
    for flavour, pkg, other in (("proprietary", "nvidia-kernel-dkms", "nvidia-kernel-open-dkms"),
                                ("open", "nvidia-kernel-open-dkms", "nvidia-kernel-dkms")):
        module = json.dumps({"flavour": flavour, "version": version}).encode()
        kernel.append(StandIn(
            name=pkg, version=v, repo=CUDA_REPO,
            summary=f"the NVIDIA {flavour} kernel modules {version} (DKMS); a marker file is "
                    "the simulated loaded module",
            files=((f"{sim}/kernel-module.json", module, 0o644),),
            provides=(f"nvidia-kernel (= {v})",), conflicts=(other,)))
    return [
        *kernel,
        StandIn(name="nvidia-driver-cuda", version=v, repo=CUDA_REPO,
                summary=f"the NVIDIA driver {version} CUDA userspace and nvidia-smi",
                files=((f"{sim}/simgpu.py", _read(SIM_DIR / "simgpu.py"), 0o644),
                       (f"{sim}/reference.json", _read(REFERENCE), 0o644),
                       (f"{sim}/driver.json", json.dumps(
                           {"driver": version, "cuda": cuda, "branch": branch}).encode(),
                        0o644), *tools),
                links=(("/usr/bin/nvidia-smi", f"{sim}/bin/nvidia-smi"),
                       ("/usr/bin/nvidia-sim-dmesg", f"{sim}/bin/nvidia-sim-dmesg"))),
        _daemon_package("nvidia-persistenced", v, f"the NVIDIA Persistence Daemon {version}",
                        "nvidia-persistenced", "nvidia-persistenced",
                        "/var/run/nvidia-persistenced/nvidia-persistenced.pid",
                        "/usr/lib/provision-sim-persistenced",
                        depends=(f"nvidia-driver-cuda (= {v})",), args="--verbose"),
        StandIn(name=f"cuda-drivers-{branch}", version=v, repo=CUDA_REPO,
                summary=f"cuda-drivers-{branch}: the NVIDIA driver branch {branch} metapackage",
                depends=(f"nvidia-driver-cuda (= {v})", f"nvidia-persistenced (= {v})",
                         f"nvidia-kernel-dkms (= {v}) | nvidia-kernel-open-dkms (= {v})")),
        _daemon_package(f"nvidia-fabricmanager-{branch}", v,
                        f"NVIDIA Fabric Manager {version} (NVSwitch systems)",
                        "nvidia-fabricmanager", "nv-fabricmanager",
                        "/var/run/nvidia-fabricmanager/nv-fabricmanager.pid",
                        "/usr/lib/provision-sim-fabricmanager",
                        extra=(("/usr/lib/provision-sim-fabricmanager/fabricmanager.json",
                                json.dumps({"version": version}).encode(), 0o644),
                               ("/usr/share/nvidia/nvswitch/fabricmanager.cfg",
                                b"# SIMULATED stand-in (provision-sim)\nLOG_LEVEL=4\n"
                                b"LOG_FILE_NAME=/var/log/fabricmanager.log\n"
                                b"FABRIC_MODE=0\n", 0o644)),
                        args="-c /usr/share/nvidia/nvswitch/fabricmanager.cfg"),
    ]


def cuda_toolkit(cuda: str, package_version: str) -> StandIn:
    """cuda-toolkit-X-Y: nvcc (simcuda) under /usr/local/cuda-X.Y, alternatives as NVIDIA's."""
    dashed = cuda.replace(".", "-")
    home = f"/usr/local/cuda-{cuda}"
    major = cuda.split(".")[0]
    full = package_version.split("-")[0]
    code = int(major) * 1000 + int(cuda.split(".")[1]) * 10
    header = (f"/* SIMULATED stand-in (provision-sim) of cuda_runtime.h for CUDA {cuda} */\n"
              f"#pragma once\n#define CUDART_VERSION {code}\n").encode()
    prio = int(major) * 100 + int(cuda.split(".")[1])
    return StandIn(
        name=f"cuda-toolkit-{dashed}", version=package_version, repo=CUDA_REPO,
        summary=f"the CUDA Toolkit {full} (nvcc and runtime)",
        files=((f"{home}/bin/nvcc", _tool_wrapper("nvcc", "simcuda", f"{home}/lib/provision-sim",
                                                  call="simcuda.main(sys.argv[1:])"), 0o755),
               (f"{home}/lib/provision-sim/simcuda.py", _read(SIM_DIR / "simcuda.py"), 0o644),
               (f"{home}/version.json", json.dumps(
                   {"cuda": {"name": "CUDA SDK", "version": full},
                    "provision-sim": "SIMULATED stand-in"}, indent=2).encode(), 0o644),
               (f"{home}/include/cuda_runtime.h", header, 0o644),
               (f"{home}/lib64/libcudart.so.{full}",
                b"SIMULATED stand-in of libcudart (provision-sim)\n", 0o644)),
        links=((f"{home}/lib64/libcudart.so.{major}", f"libcudart.so.{full}"),
               (f"{home}/lib64/libcudart.so", f"libcudart.so.{major}")),
        scripts=(("postinst", f"#!/bin/sh\nset -e\nupdate-alternatives --install /usr/local/cuda "
                  f"cuda {home} {prio}\nupdate-alternatives --install /usr/local/cuda-{major} "
                  f"cuda-{major} {home} {prio}\n"),
                 ("prerm", f"#!/bin/sh\nset -e\nif [ \"$1\" = remove ]; then\n"
                  f"  update-alternatives --remove cuda {home}\n"
                  f"  update-alternatives --remove cuda-{major} {home}\nfi\n")))


def nccl_packages(nccl: str, build: str) -> list[StandIn]:
    """libnccl2 and libnccl-dev for one NCCL build, e.g. 2.21.5-1+cuda12.4."""
    version = f"{nccl}-1+cuda{build}"
    major, minor, patch = (int(x) for x in nccl.split("."))
    lib = "/usr/lib/x86_64-linux-gnu"
    header = (f"/* SIMULATED stand-in (provision-sim) of nccl.h for NCCL {nccl}+cuda{build} */\n"
              f"#ifndef NCCL_H_\n#define NCCL_H_\n#define NCCL_MAJOR {major}\n"
              f"#define NCCL_MINOR {minor}\n#define NCCL_PATCH {patch}\n#define NCCL_SUFFIX \"\"\n"
              f"#define NCCL_VERSION_CODE {major * 10000 + minor * 100 + patch}\n"
              "#define NCCL_VERSION(X,Y,Z) ((X) * 10000 + (Y) * 100 + (Z))\n#endif\n").encode()
    return [
        StandIn(name="libnccl2", version=version, repo=CUDA_REPO,
                summary=f"NVIDIA NCCL {nccl} built for CUDA {build}",
                files=((f"{lib}/libnccl.so.{nccl}",
                        f"SIMULATED stand-in of libnccl {version} (provision-sim)\n".encode(),
                        0o644),),
                links=((f"{lib}/libnccl.so.{major}", f"libnccl.so.{nccl}"),)),
        StandIn(name="libnccl-dev", version=version, repo=CUDA_REPO,
                summary=f"NVIDIA NCCL {nccl} development files (CUDA {build})",
                files=(("/usr/include/nccl.h", header, 0o644),),
                links=((f"{lib}/libnccl.so", f"libnccl.so.{major}"),),
                depends=(f"libnccl2 (= {version})",)),
    ]


def common_packages(key: bytes) -> list[StandIn]:
    """What every simulated node may need whatever its profile."""
    ctk_lib = "/usr/lib/provision-sim-ctk"
    app_lib = "/usr/lib/provision-sim-apptainer"
    hca = "/usr/lib/provision-sim-hca"
    dcgm = "/usr/lib/provision-sim-dcgm"
    nvb = "/usr/lib/provision-sim-nvbandwidth"
    cuda_list = (f"deb [signed-by=/usr/share/keyrings/cuda-archive-keyring.gpg] "
                 f"{URL}/{CUDA_REPO}/ /\n").encode()
    divert = [("/usr/sbin/ibstat", "ibstat"), ("/usr/bin/ib_write_bw", "ib_write_bw")]
    preinst = "#!/bin/sh\nset -e\n" + "".join(
        f"dpkg-divert --package doca-ofed --rename --divert {path}.distrib --add {path}\n"
        for path, _ in divert)
    postrm = ("#!/bin/sh\nset -e\nif [ \"$1\" = remove ] || [ \"$1\" = purge ]; then\n" + "".join(
        f"  dpkg-divert --package doca-ofed --rename --remove {path}\n" for path, _ in divert)
        + "fi\n")
    return [
        StandIn(name="cuda-keyring", version="1.1-1", arch="all", repo=CUDA_REPO,
                summary="cuda-keyring: the CUDA repository's signing key and sources entry "
                        "(here: the local simulated repository)",
                files=(("/usr/share/keyrings/cuda-archive-keyring.gpg", key, 0o644),
                       (f"/etc/apt/sources.list.d/cuda-{DISTRO}-x86_64.list", cuda_list,
                        0o644))),
        StandIn(name="nvidia-container-toolkit-base", version=CTK_VERSION, repo=CTK_REPO,
                summary="the NVIDIA Container Toolkit base (nvidia-ctk)",
                files=((f"{ctk_lib}/simctk.py", _read(SIM_DIR / "simctk.py"), 0o644),
                       (f"{ctk_lib}/simmounts.py", _read(SIM_DIR / "simmounts.py"), 0o644),
                       (f"{ctk_lib}/bin/nvidia-ctk",
                        _tool_wrapper("nvidia-ctk", "simctk", ctk_lib), 0o755),
                       ("/etc/nvidia-container-runtime/config.toml",
                        b"# SIMULATED stand-in (provision-sim)\n[nvidia-container-runtime]\n"
                        b'mode = "auto"\n', 0o644)),
                links=(("/usr/bin/nvidia-ctk", f"{ctk_lib}/bin/nvidia-ctk"),)),
        StandIn(name="libnvidia-container1", version=CTK_VERSION, repo=CTK_REPO,
                summary="libnvidia-container",
                files=(("/usr/lib/x86_64-linux-gnu/libnvidia-container.so.1.17.3",
                        b"SIMULATED stand-in (provision-sim)\n", 0o644),)),
        StandIn(name="libnvidia-container-tools", version=CTK_VERSION, repo=CTK_REPO,
                summary="nvidia-container-cli",
                depends=(f"libnvidia-container1 (>= {CTK_VERSION})",),
                files=((f"{ctk_lib}/bin/nvidia-container-cli",
                        _tool_wrapper("nvidia-container-cli", "simctk", ctk_lib), 0o755),),
                links=(("/usr/bin/nvidia-container-cli", f"{ctk_lib}/bin/nvidia-container-cli"),)),
        StandIn(name="nvidia-container-toolkit", version=CTK_VERSION, repo=CTK_REPO,
                summary="the NVIDIA Container Toolkit (runtime, hooks)",
                depends=(f"nvidia-container-toolkit-base (= {CTK_VERSION})",
                         f"libnvidia-container-tools (>= {CTK_VERSION})"),
                files=(("/usr/bin/nvidia-container-runtime",
                        b"#!/bin/sh\necho 'SIMULATED stand-in (provision-sim): the legacy "
                        b"nvidia runtime is not simulated; use CDI (nvidia.com/gpu=all)' >&2\n"
                        b"exit 1\n", 0o755),)),
        _daemon_package("datacenter-gpu-manager-4-cuda12", DCGM_VERSION,
                        "NVIDIA DCGM 4 (dcgmi, nv-hostengine)", "nvidia-dcgm", "nv-hostengine",
                        "/var/run/nvhostengine.pid", dcgm,
                        extra=((f"{dcgm}/bin/dcgmi", _read(BIN_DIR / "dcgmi"), 0o755),),
                        links=(("/usr/bin/dcgmi", f"{dcgm}/bin/dcgmi"),),
                        provides=("datacenter-gpu-manager-4-core",)),
        # simdcgm.py finds simgpu.py beside itself: both live in /usr/lib/provision-sim
        StandIn(name="datacenter-gpu-manager-exporter", version=DCGM_EXPORTER_VERSION,
                repo=CUDA_REPO, summary="NVIDIA dcgm-exporter (Prometheus metrics from DCGM)",
                depends=("datacenter-gpu-manager-4-core",),
                files=(("/usr/lib/provision-sim/simdcgm.py", _read(SIM_DIR / "simdcgm.py"),
                        0o644),
                       ("/usr/lib/provision-sim/bin/dcgm-exporter",
                        _read(BIN_DIR / "dcgm-exporter"), 0o755)),
                links=(("/usr/bin/dcgm-exporter", "/usr/lib/provision-sim/bin/dcgm-exporter"),)),
        StandIn(name="nvbandwidth", version="0.7-1", repo=CUDA_REPO,
                summary="nvbandwidth (NVIDIA's memcpy bandwidth tool, built from source on "
                        "real nodes)",
                files=((f"{nvb}/bin/nvbandwidth", _read(BIN_DIR / "nvbandwidth"), 0o755),),
                links=(("/usr/bin/nvbandwidth", f"{nvb}/bin/nvbandwidth"),)),
        StandIn(name="apptainer", version=APPTAINER_VERSION,
                repo=f"apptainer/releases/download/v{APPTAINER_VERSION}",
                summary="Apptainer (Singularity's successor): sandbox build and exec",
                files=((f"{app_lib}/simapptainer.py", _read(SIM_DIR / "simapptainer.py"), 0o644),
                       (f"{app_lib}/simmounts.py", _read(SIM_DIR / "simmounts.py"), 0o644),
                       (f"{app_lib}/bin/apptainer",
                        _tool_wrapper("apptainer", "simapptainer", app_lib,
                                      call="simapptainer.main(sys.argv[1:])"), 0o755),
                       ("/etc/apptainer/apptainer.conf",
                        b"# SIMULATED stand-in (provision-sim)\nallow setuid = no\n", 0o644),
                       ("/etc/apptainer/nvliblist.conf",
                        b"# SIMULATED stand-in (provision-sim): --nv binds the simulated "
                        b"driver userspace\nnvidia-smi\n", 0o644)),
                links=(("/usr/bin/apptainer", f"{app_lib}/bin/apptainer"),)),
        StandIn(name="doca-ofed", version=f"{DOCA_VERSION}-1", repo=DOCA_REPO,
                summary="NVIDIA DOCA-OFED: InfiniBand userspace; ibstat and ib_write_bw report "
                        "the simulated HCAs (the distribution's, diverted, stay installed)",
                depends=("rdma-core", "ibverbs-utils", "infiniband-diags", "perftest"),
                files=((f"{hca}/simgpu.py", _read(SIM_DIR / "simgpu.py"), 0o644),
                       (f"{hca}/reference.json", _read(REFERENCE), 0o644),
                       *((f"{hca}/bin/{tool}", _read(BIN_DIR / tool), 0o755)
                         for _, tool in divert)),
                links=tuple((path, f"{hca}/bin/{tool}") for path, tool in divert),
                scripts=(("preinst", preinst), ("postrm", postrm))),
    ]


def standins(needs: Needs, key: bytes) -> list[StandIn]:
    """Every package the tree must hold for ``needs`` (plus the common ones)."""
    from provision.catalog.software import software_matrix

    m = software_matrix()
    pkgs = common_packages(key)
    for branch in sorted(needs.branches):
        b = m.branches[branch]
        pkgs += driver_packages(branch, b["version"], b["cuda"])
    for cuda in sorted(needs.cuda):
        pkgs.append(cuda_toolkit(cuda, m.cuda[cuda]["package"]))
    for nccl, build in sorted(needs.nccl):
        pkgs += nccl_packages(nccl, build)
    return pkgs


# ---- other artifacts -----------------------------------------------------------------------
def _tar_bytes(entries: list[tuple[str, bytes, int]], compress: bool) -> bytes:
    """A deterministic tar (fixed mtime, root owner), gzip'd when asked."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        dirs: set[str] = set()
        for name, content, mode in entries:
            parts = name.split("/")[:-1]
            for k in range(1, len(parts) + 1):
                d = "/".join(parts[:k])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
                    tar.addfile(info)
            info = tarfile.TarInfo(name)
            if mode < 0:  # a symlink: content is the target
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, content.decode(), 0o777
                tar.addfile(info)
                continue
            info.size, info.mode, info.mtime = len(content), mode, 0
            tar.addfile(info, io.BytesIO(content))
    data = raw.getvalue()
    if not compress:
        return data
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
        gz.write(data)
    return out.getvalue()


def nccl_tests_tarball() -> bytes:
    """nccl-tests' source as a SIMULATED stand-in: the real Makefiles' variables and targets
    (MPI=1, MPI_HOME, CUDA_HOME, NCCL_HOME, BUILDDIR) around sources the nvcc stand-in knows."""
    top = f"nccl-tests-{NCCL_TESTS_VERSION}"
    makefile = b"""# SIMULATED stand-in (provision-sim) of NVIDIA/nccl-tests' top-level Makefile.
BUILDDIR ?= build
override BUILDDIR := $(abspath $(BUILDDIR))
export BUILDDIR

default: src.build

TARGETS=src
all:   ${TARGETS:%=%.build}
clean: ${TARGETS:%=%.clean}

%.build:
\t${MAKE} -C $* build

%.clean:
\t${MAKE} -C $* clean
"""
    src_makefile = b"""# SIMULATED stand-in (provision-sim) of NVIDIA/nccl-tests' src/Makefile: the
# same variables; nvcc is the CUDA toolkit's (on simulated nodes the provision-sim stand-in).
CUDA_HOME ?= /usr/local/cuda
NCCL_HOME ?= ""
MPI ?= 0
MPI_HOME ?= /usr/lib/x86_64-linux-gnu/openmpi
NVCC ?= $(CUDA_HOME)/bin/nvcc
CXX ?= g++
NVCC_GENCODE ?= -gencode=arch=compute_80,code=sm_80 -gencode=arch=compute_90,code=sm_90
NVCUFLAGS := -ccbin $(CXX) $(NVCC_GENCODE) -std=c++11
NVLDFLAGS := -L$(CUDA_HOME)/lib64 -lcudart -lrt
ifneq ($(NCCL_HOME), "")
NVCUFLAGS += -I$(NCCL_HOME)/include/
NVLDFLAGS += -L$(NCCL_HOME)/lib
endif
ifeq ($(MPI), 1)
NVCUFLAGS += -DMPI_SUPPORT -I$(MPI_HOME)/include
NVLDFLAGS += -L$(MPI_HOME)/lib -L$(MPI_HOME)/lib64 -lmpi
endif
LIBRARIES += nccl
NVLDFLAGS += $(LIBRARIES:%=-l%)

DST_DIR := $(BUILDDIR)
BIN_FILES_LIST := all_reduce
BIN_FILES := $(BIN_FILES_LIST:%=${DST_DIR}/%_perf)

build: ${BIN_FILES}

clean:
\trm -rf ${DST_DIR}

${DST_DIR}/%.o: %.cu common.h
\t@printf "Compiling  %-35s > %s\\n" $< $@
\t@mkdir -p ${DST_DIR}
\t$(NVCC) -o $@ $(NVCUFLAGS) -c $<

${DST_DIR}/%_perf: ${DST_DIR}/%.o ${DST_DIR}/common.o
\t@printf "Linking  %-35s > %s\\n" $< $@
\t@mkdir -p ${DST_DIR}
\t$(NVCC) -o $@ $(NVCUFLAGS) $^ ${NVLDFLAGS}
"""
    common_h = (b"/* SIMULATED stand-in (provision-sim) of nccl-tests' common.h */\n"
                b"#include \"nccl.h\"\n#include <cuda_runtime.h>\n")
    common_cu = (b"/* SIMULATED stand-in (provision-sim) of nccl-tests' common.cu */\n"
                 b"#include \"common.h\"\n")
    all_reduce = (b"/* SIMULATED stand-in (provision-sim) of nccl-tests' all_reduce.cu.\n"
                  b" * provision-sim-program: nccl-tests:all_reduce_perf */\n"
                  b"#include \"common.h\"\n")
    readme = (b"SIMULATED stand-in of NVIDIA/nccl-tests (provision-sim). It builds with the\n"
              b"real Makefile variables; the resulting all_reduce_perf prints nccl-tests' real\n"
              b"output format for the simulated node. Real nodes download the real source.\n")
    return _tar_bytes([(f"{top}/README.SIMULATED", readme, 0o644),
                       (f"{top}/Makefile", makefile, 0o644),
                       (f"{top}/src/Makefile", src_makefile, 0o644),
                       (f"{top}/src/common.h", common_h, 0o644),
                       (f"{top}/src/common.cu", common_cu, 0o644),
                       (f"{top}/src/all_reduce.cu", all_reduce, 0o644)], compress=True)


def busybox_image(busybox: bytes) -> bytes:
    """A docker-archive image (podman load / apptainer build docker-archive:) with busybox."""
    applets = ("sh", "echo", "cat", "ls", "env", "true", "false", "test", "mkdir", "uname")
    os_release = (b'PRETTY_NAME="provision-sim busybox (SIMULATED check image)"\n'
                  b"ID=provision-sim\n")
    layer = _tar_bytes([("bin/busybox", busybox, 0o755),
                        *((f"bin/{a}", b"busybox", -1) for a in applets),
                        ("etc/os-release", os_release, 0o644),
                        ("tmp/.keep", b"", 0o644)], compress=False)
    layer_id = hashlib.sha256(layer).hexdigest()
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": ["sh"], "Labels": {"provision.simulated": "SIMULATED check image"}},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_id}"]},
        "created": "1970-01-01T00:00:00Z"}, sort_keys=True).encode()
    config_id = hashlib.sha256(config).hexdigest()
    manifest = json.dumps([{"Config": f"{config_id}.json", "RepoTags": [BUSYBOX_IMAGE],
                            "Layers": [f"{layer_id}/layer.tar"]}]).encode()
    return _tar_bytes([("manifest.json", manifest, 0o644), (f"{config_id}.json", config, 0o644),
                       (f"{layer_id}/layer.tar", layer, 0o644)], compress=False)


def _wheel(name: str, version: str, modules: dict[str, bytes], requires: list[str],
           summary: str) -> tuple[str, bytes]:
    dist = f"{name}-{version}.dist-info"
    meta = (f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
            f"Summary: {PREFIX} for {summary} (provision-sim)\n"
            + "".join(f"Requires-Dist: {r}\n" for r in requires)
            + "Provides-Extra: tpu\n").encode()
    wheel = (b"Wheel-Version: 1.0\nGenerator: provision-sim\nRoot-Is-Purelib: true\n"
             b"Tag: py3-none-any\n")
    files = {**modules, f"{dist}/METADATA": meta, f"{dist}/WHEEL": wheel}
    record = ""
    for path, content in files.items():
        digest = urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()
        record += f"{path},sha256={digest},{len(content)}\n"
    record += f"{dist}/RECORD,,\n"
    files[f"{dist}/RECORD"] = record.encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for path, content in files.items():
            info = zipfile.ZipInfo(path, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            z.writestr(info, content)
    return f"{name}-{version}-py3-none-any.whl", out.getvalue()


JAX_INIT = '''"""SIMULATED jax {version} (provision-sim): devices from the simulated libtpu;
no XLA, no arrays: enough for device discovery, which is what a TPU runtime check asks."""
import sys as _sys

import jaxlib as _jaxlib

SIMULATED = "SIMULATED by provision-sim: jax stand-in, no XLA and no TPU present"
print(SIMULATED, file=_sys.stderr)

__version__ = "{version}"
if _jaxlib.__version__ != __version__:
    raise RuntimeError(f"jaxlib version {{_jaxlib.__version__}} does not match jax "
                       f"{{__version__}}; install jax and jaxlib of the same version")


class Device:
    def __init__(self, id, platform, device_kind, coords=None):
        self.id, self.platform, self.device_kind = id, platform, device_kind
        self.coords, self.process_index, self.host_id = coords, 0, 0

    def __repr__(self):
        if self.platform == "tpu":
            return f"TpuDevice(id={{self.id}}, process_index=0, coords={{self.coords}})"
        return f"CpuDevice(id={{self.id}})"


def _devices():
    try:
        import libtpu
    except ImportError:
        return [Device(0, "cpu", "cpu")]
    try:
        chips = libtpu.chips()
    except libtpu.TpuError:
        return [Device(0, "cpu", "cpu")]
    return [Device(c["id"], "tpu", c["device_kind"], c["coords"]) for c in chips]


def devices(backend=None):
    return _devices()


def local_devices(process_index=None, backend=None):
    return _devices()


def device_count(backend=None):
    return len(_devices())


def local_device_count(backend=None):
    return len(_devices())


def default_backend():
    return _devices()[0].platform


def process_count():
    return 1


def process_index():
    return 0
'''


def wheels(jax_versions: Iterable[str]) -> dict[str, bytes]:
    """jax, jaxlib and libtpu stand-in wheels for each JAX version (with its libtpu)."""
    from provision.catalog.software import software_matrix

    m = software_matrix()
    out: dict[str, bytes] = {}
    for jax in sorted(jax_versions):
        libtpu = m.jax[jax]["libtpu"]
        tpu_src = _read(SIM_DIR / "simtpu.py").replace(
            b'__version__ = "0.0.0"', f'__version__ = "{libtpu}"'.encode())
        for name, version, modules, requires, summary in (
                ("jax", jax, {"jax/__init__.py": JAX_INIT.format(version=jax).encode()},
                 [f"jaxlib=={jax}", f'jaxlib=={jax}; extra == "tpu"',
                  f'libtpu=={libtpu}; extra == "tpu"'], "JAX"),
                ("jaxlib", jax, {"jaxlib/__init__.py": f'__version__ = "{jax}"\n'.encode()},
                 [], "jaxlib"),
                ("libtpu", libtpu, {"libtpu/__init__.py": tpu_src}, [], "libtpu")):
            fname, data = _wheel(name, version, modules, requires, summary)
            out[fname] = data
    return out


# ---- building ------------------------------------------------------------------------------
def _run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-8:])
        raise ProvisionError(f"{' '.join(cmd[:3])} failed:\n{tail}")
    return proc


def build_deb(pkg: StandIn, debs: Path) -> Path:
    """The .deb for ``pkg`` from the cache, or built now with equivs-build."""
    out_dir = debs / pkg.digest()
    out = out_dir / pkg.filename
    if out.exists():
        return out
    if shutil.which("equivs-build") is None:
        raise ProvisionError("equivs is not installed (simulated GPU nodes need it to build "
                             "their stand-in packages): run ./install.sh or apt-get install "
                             "equivs")
    with tempfile.TemporaryDirectory(prefix="provision-sim-deb-") as tmp:
        work = Path(tmp)
        staged: dict[str, str] = {}
        for k, (dest, content, mode) in enumerate(pkg.files):
            src = work / "files" / str(k) / os.path.basename(dest)
            src.parent.mkdir(parents=True)
            src.write_bytes(content)
            src.chmod(mode)
            staged[_staged_path(dest)] = str(src)
        scripts = {}
        for kind, body in pkg.scripts:
            path = work / kind
            path.write_text(body)
            scripts[kind] = str(path)
        ctl = work / "control"
        links = tuple((_staged_path(link), target) for link, target in pkg.links)
        ctl.write_text(StandIn(**{**pkg.__dict__, "links": links}).control(staged, scripts))
        build = work / "build"
        build.mkdir()
        _run(["equivs-build", str(ctl)], cwd=build)
        built = next(build.glob("*.deb"), None)
        if built is None:
            raise ProvisionError(f"equivs-build made no .deb for {pkg.name}")
        if any(d.startswith("/usr/local/") for d, _, _ in pkg.files):
            built = _relocate(built, work / "relocated")
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp_out = out_dir / f".{pkg.filename}.tmp"
        shutil.copyfile(built, tmp_out)
        tmp_out.replace(out)
    return out


# debhelper (which equivs drives) refuses files under /usr/local, where NVIDIA's CUDA packages
# put the toolkit; such files are built under this prefix and moved back into place after.
RELOCATE = "/usr/share/provision-sim-relocate"


def _staged_path(dest: str) -> str:
    return RELOCATE + dest if dest.startswith("/usr/local/") else dest


def _relocate(deb: Path, work: Path) -> Path:
    """Move the package's RELOCATE tree back to /usr/local (and its md5sums with it)."""
    _run(["dpkg-deb", "-R", str(deb), str(work)])
    moved = work / RELOCATE.lstrip("/") / "usr" / "local"
    target = work / "usr" / "local"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(moved), str(target))
    shutil.rmtree(work / RELOCATE.lstrip("/"))
    for empty in (work / "usr/share", work / "usr/share/doc"):
        if empty.is_dir() and not any(empty.iterdir()):
            empty.rmdir()
    md5 = work / "DEBIAN" / "md5sums"
    if md5.exists():
        md5.write_text(md5.read_text().replace(RELOCATE.lstrip("/") + "/", ""))
    out = deb.with_name(f"relocated-{deb.name}")
    _run(["dpkg-deb", "--root-owner-group", "-Zxz", "-b", str(work), str(out)])
    return out


def _gpg(root: Path, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    home = root / "gnupg"
    return _run(["gpg", "--homedir", str(home), "--batch", "--yes", "--pinentry-mode",
                 "loopback", "--passphrase", "", *args], **kw)


def signing_key(root: Path) -> tuple[bytes, bytes]:
    """(binary public key, armored public key) of the repository's own signing key.

    A throwaway key made on this machine: it proves nothing about NVIDIA, only that apt's
    signed-by checks run on simulated nodes exactly as with the real repositories."""
    home = root / "gnupg"
    if not (home / "provision-sim.fpr").exists():
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        home.chmod(0o700)
        _gpg(root, "--quick-gen-key", SIGNER, "ed25519", "sign", "never")
        listing = _gpg(root, "--with-colons", "--list-secret-keys", SIGNER).stdout
        fpr = next(line.split(":")[9] for line in listing.splitlines()
                   if line.startswith("fpr:"))
        (home / "provision-sim.fpr").write_text(fpr)
    fpr = (home / "provision-sim.fpr").read_text().strip()
    binary = subprocess.run(["gpg", "--homedir", str(home), "--batch", "--export", fpr],
                            capture_output=True, check=True).stdout
    armored = _gpg(root, "--armor", "--export", fpr).stdout.encode()
    return binary, armored


def _index(repo: Path, root: Path) -> None:
    """Packages, Packages.gz, Release and its signatures for a flat repository."""
    proc = _run(["dpkg-scanpackages", "--multiversion", "."], cwd=repo)
    packages = proc.stdout.encode()
    (repo / "Packages").write_bytes(packages)
    (repo / "Packages.gz").write_bytes(gzip.compress(packages, mtime=0))
    lines = ["Origin: provision-sim", "Label: SIMULATED stand-ins (provision-sim, not NVIDIA)",
             "Architectures: amd64 all",
             f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S UTC', time.gmtime())}"]
    for algo, name in (("md5", "MD5Sum"), ("sha256", "SHA256")):
        lines.append(f"{name}:")
        for f in ("Packages", "Packages.gz"):
            data = (repo / f).read_bytes()
            lines.append(f" {hashlib.new(algo, data).hexdigest()} {len(data)} {f}")
    (repo / "Release").write_text("\n".join(lines) + "\n")
    fpr = (root / "gnupg" / "provision-sim.fpr").read_text().strip()
    _gpg(root, "--local-user", fpr, "--clearsign", "-o", str(repo / "InRelease"),
         str(repo / "Release"))
    _gpg(root, "--local-user", fpr, "-abs", "-o", str(repo / "Release.gpg"),
         str(repo / "Release"))


def _busybox(root: Path) -> bytes:
    """Debian's static busybox (for the check image), fetched once with apt-get download."""
    cached = root / "src" / "busybox"
    if not cached.exists():
        cached.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="provision-sim-busybox-") as tmp:
            _run(["apt-get", "download", "busybox-static"], cwd=tmp)
            deb = next(Path(tmp).glob("busybox-static_*.deb"))
            _run(["dpkg-deb", "-x", str(deb), f"{tmp}/x"])
            shutil.copyfile(f"{tmp}/x/bin/busybox", cached)
    return cached.read_bytes()


def _tree(root: Path, debs: list[tuple[StandIn, Path]], extra: dict[str, bytes],
          key: tuple[bytes, bytes]) -> Path:
    h = hashlib.sha256()
    for pkg, deb in sorted(debs, key=lambda x: str(x[1])):
        h.update(f"{pkg.repo}/{deb.parent.name}/{deb.name}\0".encode())
    for name in sorted(extra):
        h.update(name.encode() + hashlib.sha256(extra[name]).digest())
    tree = root / "trees" / h.hexdigest()[:16]
    if (tree / ".complete").exists():
        return tree
    if tree.exists():
        shutil.rmtree(tree)
    repos: set[str] = set()
    for pkg, deb in debs:
        dest = tree / pkg.repo / deb.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(deb, dest)
        except OSError:
            shutil.copyfile(deb, dest)
        if not pkg.repo.startswith("apptainer/"):
            repos.add(pkg.repo)
    for name, data in extra.items():
        dest = tree / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
    for repo in sorted(repos):
        _index(tree / repo, root)
    (tree / "libnvidia-container" / "gpgkey").write_bytes(key[1])
    (tree / "public/repo/doca/GPG-KEY-Mellanox.pub").write_bytes(key[1])
    (tree / "README.SIMULATED").write_text(
        "SIMULATED stand-ins built by provision (provision/simulate/packages.py): not NVIDIA's "
        "software.\n")
    for path in tree.rglob("*"):  # apt's _apt user and every node read this tree
        path.chmod(0o755 if path.is_dir() else 0o644)
    tree.chmod(0o755)
    (tree / ".complete").write_text("")
    return tree


def _switch(root: Path, tree: Path) -> None:
    link = root / "current"
    tmp = root / ".current.tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(os.path.relpath(tree, root))
    tmp.replace(link)
    # Older trees go once unused for an hour (nodes read through `current`; an apt run that
    # started just before the switch may still be reading the previous tree).
    for old in (root / "trees").iterdir():
        if old != tree and old.is_dir() and old.stat().st_mtime < time.time() - 3600:
            shutil.rmtree(old, ignore_errors=True)


@dataclass
class _Lock:
    path: Path
    fh: Any = field(default=None)

    def __enter__(self) -> _Lock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(self.path, "w")  # held for the with-block
        fcntl.flock(self.fh, fcntl.LOCK_EX)
        return self

    def __exit__(self, *_: object) -> None:
        fcntl.flock(self.fh, fcntl.LOCK_UN)
        self.fh.close()


def _known_debs(root: Path, wanted: set[str]) -> dict[str, Path]:
    """Every .deb built so far, by cache digest (the tree is their union). Of two builds of
    the same package and version (the simulator changed in between) only the wanted one, or
    else the newest, is kept; the other is deleted."""
    debs = root / "debs"
    found = [(d.name, f) for d in debs.iterdir() if d.is_dir()
             for f in d.glob("*.deb")] if debs.is_dir() else []
    best: dict[str, tuple[str, Path]] = {}
    for digest, f in sorted(found, key=lambda x: (x[0] in wanted, x[1].stat().st_mtime)):
        if f.name in best:
            shutil.rmtree(best[f.name][1].parent, ignore_errors=True)
        best[f.name] = (digest, f)
    return dict(best.values())


def ensure_repo(needs: Needs, event: Event = lambda m: None) -> Path:
    """Build what is missing for ``needs`` and return the repository root (mount it at
    :data:`MOUNT`); ``<root>/current`` then holds every package built so far."""
    root = repo_root()
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    with _Lock(root / ".lock"):
        key = signing_key(root)
        wanted = standins(needs, key[0])
        debs_dir = root / "debs"
        missing = [p for p in wanted if not (debs_dir / p.digest() / p.filename).exists()]
        if missing:
            event(f"building {len(missing)} simulated stand-in package(s) with equivs "
                  f"(cached in {root})")
            workers = max(1, min(len(missing), (os.cpu_count() or 1) * 2))
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(lambda p: build_deb(p, debs_dir), missing))
        # the tree holds the union of all builds; the repo field comes from the definition
        by_digest = {p.digest(): p for p in wanted}
        known = _known_debs(root, set(by_digest))
        meta_file = root / "debs" / "repos.json"
        repos = json.loads(meta_file.read_text()) if meta_file.exists() else {}
        repos.update({d: p.repo for d, p in by_digest.items()})
        meta_file.write_text(json.dumps(repos, indent=1, sort_keys=True))
        all_debs = [(by_digest.get(d) or _Repo(repos[d]), f) for d, f in known.items()
                    if d in repos]
        jax_seen = set(json.loads((root / "jax.json").read_text())) \
            if (root / "jax.json").exists() else set()
        jax_seen |= set(needs.jax)
        (root / "jax.json").write_text(json.dumps(sorted(jax_seen)))
        extra = {f"nccl-tests/archive/refs/tags/v{NCCL_TESTS_VERSION}.tar.gz":
                 nccl_tests_tarball(),
                 BUSYBOX_ARCHIVE: busybox_image(_busybox(root)),
                 **{f"pypi/{n}": d for n, d in wheels(jax_seen).items()}}
        tree = _tree(root, all_debs, extra, key)  # type: ignore[arg-type]
        _switch(root, tree)
    return root


@dataclass(frozen=True)
class _Repo:
    """A cached .deb whose definition is not in this run's set: only its directory matters."""

    repo: str


def nccl_tests_checksum() -> str:
    return "sha256:" + hashlib.sha256(nccl_tests_tarball()).hexdigest()


def role_vars() -> dict[str, Any]:
    """The role variables that point simulated nodes at the local repository (and the few
    knobs a container-based node needs); group_vars for the local target's GPU/TPU nodes."""
    return {
        "cuda_repository_base_url": f"{URL}/compute/cuda/repos",
        "container_toolkit_repo_base_url": f"{URL}/libnvidia-container",
        "container_toolkit_gpgkey_url": f"{URL}/libnvidia-container/gpgkey",
        "container_toolkit_check_image": BUSYBOX_IMAGE,
        "container_toolkit_check_image_archive_url": f"{URL}/{BUSYBOX_ARCHIVE}",
        "apptainer_release_base_url": f"{URL}/apptainer/releases/download",
        "apptainer_version": APPTAINER_VERSION,
        "apptainer_check_image_archive_url": f"{URL}/{BUSYBOX_ARCHIVE}",
        "nccl_tests_version": NCCL_TESTS_VERSION,
        "nccl_tests_source_base_url": f"{URL}/nccl-tests/archive/refs/tags",
        "nccl_tests_source_checksum": nccl_tests_checksum(),
        # the stand-in nvcc needs no host compiler or MPI headers (77 MB of downloads)
        "nccl_tests_build_packages": ["make"],
        "rdma_doca_repo_base_url": f"{URL}/public/repo/doca",
        "rdma_doca_gpgkey_url": f"{URL}/public/repo/doca/GPG-KEY-Mellanox.pub",
        "rdma_doca_version": DOCA_VERSION,
        "rdma_doca_distro": DISTRO,
        "tpu_runtime_pip_find_links": f"{URL}/pypi",
        "tpu_runtime_pip_no_index": True,
        "nvidia_driver_kernel_log_command": "nvidia-sim-dmesg",
        "cuda_extra_packages": ["nvbandwidth"],
        "nvidia_driver_dcgm_packages": ["datacenter-gpu-manager-4-cuda12"],
    }


# ---- command line (Molecule's create step and people use it) -------------------------------
def _needs_for_skus(skus: list[str]) -> tuple[Needs, dict[str, dict[str, Any]]]:
    from provision.catalog.software import resolve
    from provision.profile import sku_hardware

    hardware = [sku_hardware(s) for s in skus]
    profiles = resolve(None, hardware, "local")
    return Needs.from_profiles(profiles.values()), {s: p.role_vars()
                                                    for s, p in profiles.items()}


def main(argv: list[str] | None = None) -> int:
    """``python -m provision.simulate.packages build|vars --sku SKU ...``"""
    parser = argparse.ArgumentParser(prog="python -m provision.simulate.packages",
                                     description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build the repository for these SKUs' default profiles")
    b.add_argument("--sku", action="append", default=[])
    v = sub.add_parser("vars", help="write the role variables for a simulated SKU (YAML)")
    v.add_argument("--sku", required=True)
    v.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if args.cmd == "build":
        needs, _ = _needs_for_skus(args.sku)
        print(ensure_repo(needs, lambda m: print(m, file=sys.stderr)))
        return 0
    import yaml

    _, per_sku = _needs_for_skus([args.sku])
    data = {**role_vars(), **per_sku[args.sku]}
    Path(args.out).write_text(
        "# Role variables for a simulated " + args.sku + " node (provision-sim):\n"
        "# the SKU's default software profile and the local stand-in repository.\n"
        + yaml.safe_dump(data, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
