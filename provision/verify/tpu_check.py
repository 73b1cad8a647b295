"""TPU check: every chip visible, and a timed ``psum`` across them for the ICI bandwidth.

Runs on a TPU VM as ``python3 -m provision.verify.tpu_check --out tpu-check.json`` or as this
file copied alone (it imports nothing from provision: only the stdlib, numpy and jax). It writes
one JSON document that provision/verify/parsers/tpu.py reads and the judge compares with the
generation's ICI figure (reference.json ``tpu.ici_bandwidth``).

What it measures: an all-reduce (``jax.lax.psum`` inside ``shard_map``) of ``--size-mb`` MiB
per chip across this host's chips. busbw = bytes / time x 2(n-1)/n, the nccl-tests convention,
so the figure compares with per-chip link bandwidth. Multi-host slices are measured per host
(local chips only); slice-wide collectives need ``jax.distributed`` and are out of scope here.

Test it without a TPU: ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` makes the CPU
show 8 devices; the JSON then says ``"platform": "cpu"`` and the judge fails tpu.chips for it,
as it should on a machine that is not a TPU host.

Exit status: 0 when the chips match ``--expect-chips`` (if given) and the psum is correct,
1 otherwise, 2 when jax is not installed.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from typing import Any

FORMAT = "provision-tpu-check"


def _shard_map() -> Any:
    """shard_map across jax versions: jax.shard_map (0.6+) or jax.experimental.shard_map."""
    import jax

    if hasattr(jax, "shard_map"):
        return jax.shard_map
    from jax.experimental.shard_map import shard_map

    return shard_map


def measure(size_mb: float, iterations: int, warmup: int) -> dict[str, Any]:
    """Time a psum of ``size_mb`` MiB per chip over all local devices."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    devices = jax.local_devices()
    n = len(devices)
    per_chip = max(1, int(size_mb * 2**20) // 4)  # float32 elements
    mesh = Mesh(np.array(devices), ("chips",))
    reduce = jax.jit(_shard_map()(lambda x: jax.lax.psum(x, "chips"), mesh=mesh,
                                  in_specs=P("chips"), out_specs=P()))
    # Chip i holds i+1 everywhere, so the sum is n(n+1)/2 in every element.
    local = np.repeat(np.arange(1, n + 1, dtype=np.float32), per_chip)
    x = jax.device_put(jnp.asarray(local), NamedSharding(mesh, P("chips")))
    out = reduce(x)
    out.block_until_ready()
    correct = bool(np.allclose(np.asarray(out[:8]), n * (n + 1) / 2))
    for _ in range(warmup):
        reduce(x).block_until_ready()
    start = time.perf_counter()
    for _ in range(iterations):
        out = reduce(x)
    out.block_until_ready()
    seconds = (time.perf_counter() - start) / iterations
    nbytes = per_chip * 4
    algbw = nbytes / seconds / 1e9
    return {"bytes_per_chip": nbytes, "iterations": iterations, "seconds": seconds,
            "algbw_gbps": algbw, "busbw_gbps": algbw * 2 * (n - 1) / n if n > 1 else 0.0,
            "correct": correct}


def run(size_mb: float, iterations: int, warmup: int, expect: int | None) -> dict[str, Any]:
    import jax

    devices = jax.local_devices()
    doc: dict[str, Any] = {
        "format": FORMAT, "version": 1, "hostname": socket.gethostname(),
        "platform": devices[0].platform if devices else None,
        "device_kind": devices[0].device_kind if devices else None,
        "jax_version": jax.__version__, "local_chips": len(devices),
        "global_chips": jax.device_count(), "expected_chips": expect, "psum": None,
        "errors": [],
    }
    if expect is not None and len(devices) != expect:
        doc["errors"].append(f"{len(devices)} chips visible, {expect} expected")
    try:
        doc["psum"] = measure(size_mb, iterations, warmup)
        if not doc["psum"]["correct"]:
            doc["errors"].append("psum returned a wrong sum")
    except Exception as exc:  # a broken runtime is a finding to report, not a crash
        doc["errors"].append(f"psum failed: {type(exc).__name__}: {exc}")
    doc["ok"] = not doc["errors"]
    return doc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="write the JSON here (default: stdout)")
    parser.add_argument("--size-mb", type=float, default=64.0, help="MiB per chip (default 64)")
    parser.add_argument("--iters", type=int, default=20, help="timed iterations (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed iterations (default 3)")
    parser.add_argument("--expect-chips", type=int, default=None,
                        help="chips this host should have (the check fails otherwise)")
    args = parser.parse_args(argv)
    try:
        import jax  # noqa: F401
    except ImportError:
        print("tpu_check: jax is not installed: pip install 'jax[tpu]' on a TPU VM "
              "(or 'jax' for a CPU dry run)", file=sys.stderr)
        return 2
    doc = run(args.size_mb, args.iters, args.warmup, args.expect_chips)
    text = json.dumps(doc, indent=2) + "\n"
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    return 0 if doc["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
