"""Collect a simulated node's artifacts on this machine, the way the collector role does on a
node: run each tool, save stdout as the file, and write the ``.rc``, ``.stderr`` and
``.timeout`` markers of the contract in provision/verify/__init__.py.

The Ansible role is the real collector; this is its reference implementation for simulated
nodes, used by the tests and by anyone who wants an artifacts directory without containers.
The command lines are exactly the documented ones (tests/unit/test_verify_roundtrip.py keeps
them in step with provision.verify.artifacts.COMMANDS).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from provision.simulate import BIN_DIR
from provision.verify.artifacts import (
    DCGM_LEVEL,
    NVBANDWIDTH_TESTS,
    QUERY_GPU_FIELDS,
    REMAP_FIELDS,
    files_for_level,
)
from provision.verify.reference import load_reference

NCCL_ARGS = ("-b", "8G", "-e", "8G", "-f", "2")


def host_commands(level: str, gpus: int) -> dict[str, list[str]]:
    """File name -> argv (tool name first) for one GPU host at ``level``."""
    every = {
        "nvidia-smi-query.csv": ["nvidia-smi", f"--query-gpu={QUERY_GPU_FIELDS}",
                                 "--format=csv,noheader,nounits"],
        "nvidia-smi-topo.txt": ["nvidia-smi", "topo", "-m"],
        "nvidia-smi-nvlink.txt": ["nvidia-smi", "nvlink", "--status"],
        "remap.csv": ["nvidia-smi", f"--query-remapped-rows={REMAP_FIELDS}",
                      "--format=csv,noheader"],
        "xid.txt": ["nvidia-sim-dmesg"],
        "dcgmi-diag.json": ["dcgmi", "diag", "-r", str(DCGM_LEVEL[level]), "-j"],
        "nvbandwidth.txt": ["nvbandwidth", "-t", *NVBANDWIDTH_TESTS],
        "nccl-all_reduce.txt": ["all_reduce_perf", *NCCL_ARGS, "-g", str(gpus)],
        "ibstat.txt": ["ibstat"],
        "ib_write_bw.txt": ["ib_write_bw"],
    }
    wanted = {c.file for c in files_for_level(level, "gpu")}
    return {f: argv for f, argv in every.items() if f in wanted}


def _run(argv: Sequence[str], env: dict[str, str], timeout: float
         ) -> tuple[str, str, int | None]:
    """(stdout, stderr, exit status or None when it timed out and was killed)."""
    cmd = [str(BIN_DIR / argv[0]), *argv[1:]]  # through its shebang, as a node runs it
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return out, err, None
    return proc.stdout, proc.stderr, proc.returncode


def _save(directory: Path, name: str, out: str, err: str, rc: int | None,
          timeout: float) -> None:
    (directory / name).write_text(out, encoding="utf-8")
    if err:
        (directory / f"{name}.stderr").write_text(err, encoding="utf-8")
    if rc is None:
        (directory / f"{name}.timeout").write_text(f"{timeout:g}\n", encoding="utf-8")
    else:
        (directory / f"{name}.rc").write_text(f"{rc}\n", encoding="utf-8")


def _sim_env(config: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    # The tools' `#!/usr/bin/env python3` finds this interpreter first (not a pyenv shim).
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    return {**os.environ, "PATH": path, "PROVISION_SIM_CONFIG": str(config), **(extra or {})}


def collect_host(host_dir: Path, config: Path, level: str = "standard", timeout: float = 60.0,
                 sku_line: str | None = None) -> None:
    """Run the simulated tools for ``level`` with node config ``config`` into ``host_dir``.

    ``sku_line`` is written as the host's ``sku`` file (default: the config's SKU, plus
    ``gpus=N`` when the config sets a GPU count).
    """
    node = json.loads(config.read_text(encoding="utf-8"))
    ref = load_reference().sku(node["sku"])
    if ref is None:
        raise ValueError(f"unknown SKU in {config}: {node['sku']!r}")
    gpus = int(node.get("gpus") or ref.count)
    host_dir.mkdir(parents=True, exist_ok=True)
    extra = f" gpus={gpus}" if node.get("gpus") else ""
    extra += f" ib_ports={node['ib_ports']}" if node.get("ib_ports") is not None else ""
    (host_dir / "sku").write_text((sku_line or node["sku"] + extra) + "\n", encoding="utf-8")
    env = _sim_env(config)
    for name, argv in host_commands(level, gpus).items():
        if name == "ib_write_bw.txt":
            _collect_ib_bw(host_dir, env, timeout)
            continue
        out, err, rc = _run(argv, env, timeout)
        if name == "xid.txt":  # the documented `... | grep -F 'NVRM: Xid' || true`
            out = "".join(ln for ln in out.splitlines(keepends=True) if "NVRM: Xid" in ln)
            rc = 0 if rc is not None else None
        _save(host_dir, name, out, err, rc, timeout)


def _collect_ib_bw(host_dir: Path, env: dict[str, str], timeout: float) -> None:
    """The client side of one ib_write_bw run per InfiniBand HCA, outputs appended."""
    listing, err, rc = _run(["ibstat", "-l"], env, timeout)
    devices = listing.split() if rc == 0 else []
    outs, errs, status = [], [err] if rc not in (0, None) else [], 0
    timed_out = rc is None
    for dev in devices:
        out, err, rc = _run(["ib_write_bw", "-d", dev, "--report_gbits", "-F", "-D", "10",
                             "localhost"], env, timeout)
        outs.append(out)
        errs.append(err)
        timed_out |= rc is None
        status = status or (rc or 0)
    _save(host_dir, "ib_write_bw.txt", "".join(outs), "".join(errs),
          None if timed_out else status, timeout)


def collect_cluster(run_dir: Path, config: Path, hosts: list[str], gpus_per_node: int,
                    timeout: float = 60.0) -> None:
    """The multi-node all_reduce into ``_cluster/``, as rank 0 on the first host prints it."""
    cluster = run_dir / "_cluster"
    cluster.mkdir(parents=True, exist_ok=True)
    env = _sim_env(config, {"PROVISION_SIM_NODES": str(len(hosts)),
                            "PROVISION_SIM_HOSTS": ",".join(hosts),
                            "OMPI_COMM_WORLD_SIZE": str(len(hosts) * gpus_per_node),
                            "OMPI_COMM_WORLD_RANK": "0"})
    out, err, rc = _run(["all_reduce_perf", *NCCL_ARGS, "-g", "1"], env, timeout)
    _save(cluster, "nccl-all_reduce.txt", out, err, rc, timeout)
