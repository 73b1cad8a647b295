"""Verify a cluster: judge the collected output of GPU/TPU/network tools against per-SKU
reference figures. Pure Python: files in, report out, so it runs offline and in tests.

Entry points::

    from provision.verify import analyze
    report = analyze("artifacts/run-1", default_sku="h100-sxm-80gb", level="standard",
                     overrides={"nccl.all_reduce": {"fail_below": 0.85, "warn_below": 0.9}},
                     expected_driver="550")
    report.status                  # "pass" | "warn" | "fail"
    report.to_json()               # {"status", "hosts": {HOST: {"status", "checks"}}, "cluster"}
    from provision.verify.report import render, to_markdown, render_table

Collector contract (the Ansible role that runs the tools follows it)
-------------------------------------------------------------------
The run's directory holds one directory per host (any name not starting with ``_`` or ``.``)
and ``_cluster/`` for cluster-wide results. Per host:

==========================  ==============================================================  =====
file                        command (stdout saved as the file)                              level
==========================  ==============================================================  =====
sku                         written by the collector: ``<sku-id> [gpus=N] [ib_ports=N]``    all
                            (TPU: ``tpu-v5e chips=4``); the SKU the plan expects
nvidia-smi-query.csv        ``nvidia-smi --query-gpu=index,name,uuid,memory.total,          quick
                            driver_version,pcie.link.gen.current,pcie.link.width.current,
                            ecc.errors.uncorrected.volatile.total
                            --format=csv,noheader,nounits``
nvidia-smi-topo.txt         ``nvidia-smi topo -m``                                          quick
nvidia-smi-nvlink.txt       ``nvidia-smi nvlink --status``                                  quick
remap.csv                   ``nvidia-smi --query-remapped-rows=gpu_bus_id,gpu_uuid,         quick
                            remapped_rows.correctable,remapped_rows.uncorrectable,
                            remapped_rows.pending,remapped_rows.failure --format=csv,noheader``
xid.txt                     ``journalctl -k --since -2h --no-pager | grep -F 'NVRM: Xid'``  quick
                            (``|| true``: no match is an empty file); on simulated nodes
                            ``nvidia-sim-dmesg | grep -F 'NVRM: Xid'``
dcgmi-diag.json             ``dcgmi diag -r 1 -j`` (quick), ``-r 2`` (standard),            quick
                            ``-r 3`` (full)
nvbandwidth.txt             ``nvbandwidth -t host_to_device_memcpy_ce                       standard
                            device_to_host_memcpy_ce
                            device_to_device_bidirectional_memcpy_read_sm``
nccl-all_reduce.txt         ``all_reduce_perf -b 8G -e 8G -f 2 -g <GPUs per node>``         standard
ibstat.txt                  ``ibstat``                                                      full
ib_write_bw.txt             per InfiniBand HCA, the client side of ``ib_write_bw -d mlx5_N  full
                            --report_gbits -F -D 10 <server>``, outputs appended
tpu-check.json              ``python3 -m provision.verify.tpu_check --out tpu-check.json``  quick
                            (TPU hosts; or the file copied alone: ``python3 tpu_check.py``)
==========================  ==============================================================  =====

``_cluster/nccl-all_reduce.txt`` (level full): ``mpirun --tag-output -np <nodes x GPUs>
-N <GPUs per node> all_reduce_perf -b 8G -e 8G -f 2 -g 1`` (``srun`` works as well).

Markers next to any file ``F`` (all optional):

- ``F.rc`` — the tool's exit status as text; 127 reads as "not installed"; any other non-zero
  status fails the checks ``F`` feeds even when ``F`` parsed (grep's 1 on an empty ``xid.txt``
  is the one benign status); text that is not a status fails them too;
- ``F.stderr`` — the tool's stderr, quoted when the output is unusable;
- ``F.timeout`` — written when the tool hung and the collector killed it (content: the timeout
  in seconds, or empty). The check then fails with "the tool hung", whatever ``F`` holds.

A file for a check inside the requested level that is missing fails that check; outside the
level a missing file is not an error, and a present one is judged anyway. Files are read only
when they are regular files of at most 16 MiB and 200,000 lines in UTF-8 (anything else fails
the checks it feeds, naming the file); the ``sku`` file's counts are bounded (1-64 GPUs or chips,
0-64 IB ports), beyond which the input is refused (exit 2). The same table is
available as data: ``provision.verify.artifacts.COMMANDS`` and ``files_for_level(level)``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from provision.verify.analyze import analyze
    from provision.verify.artifacts import COMMANDS, LEVELS, files_for_level
    from provision.verify.model import Check, ClusterReport, HostReport, Report

# Loaded on first use (PEP 562): `provision plan` reads provision.verify.reference for the
# local SKUs and must not pay for importing every parser and check.
_HOMES = {"analyze": "analyze", "COMMANDS": "artifacts", "LEVELS": "artifacts",
          "files_for_level": "artifacts", "Check": "model", "ClusterReport": "model",
          "HostReport": "model", "Report": "model"}
__all__ = ["COMMANDS", "LEVELS", "Check", "ClusterReport", "HostReport", "Report", "analyze",
           "files_for_level"]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'provision.verify' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"provision.verify.{home}"), name)
    # importing provision.verify.analyze has just bound the *module* to this package's
    # `analyze`; the function is what this name means
    globals()[name] = value
    return value
