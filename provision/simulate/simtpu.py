"""SIMULATED libtpu (provision-sim): the TPU chips of a simulated TPU VM.

Shipped as ``libtpu/__init__.py`` in the stand-in ``libtpu`` wheel of provision's local
package index; the stand-in ``jax`` wheel asks it for devices, as real JAX asks the real libtpu.
The chips come from the node's description, ``/etc/provision-sim/node.json`` (or
``$PROVISION_SIM_CONFIG``): ``{"sku": "tpu-v5e", "chips": 8, "faults": ["chip-missing"]}``;
the fault ``chip-missing`` hides the last chip. Stdlib only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

TAG = "SIMULATED by provision-sim"
__version__ = "0.0.0"  # the wheel build writes the stand-in's version here
CONFIG_DEFAULT = "/etc/provision-sim/node.json"
DEVICE_KIND = {"tpu-v2": "TPU v2", "tpu-v3": "TPU v3", "tpu-v4": "TPU v4",
               "tpu-v5e": "TPU v5 lite", "tpu-v5p": "TPU v5", "tpu-v6e": "TPU v6 lite"}
FAULTS = frozenset({"chip-missing"})


class TpuError(RuntimeError):
    """No TPU on this machine (what JAX reports as a backend initialization failure)."""


def node() -> dict[str, Any]:
    path = Path(os.environ.get("PROVISION_SIM_CONFIG") or CONFIG_DEFAULT)
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TpuError(f"TPU initialization failed: no TPU found ({path}: {exc})") from None
    sku = str(config.get("sku", ""))
    if sku not in DEVICE_KIND:
        raise TpuError(f"TPU initialization failed: {sku or 'this node'} is not a TPU VM")
    bad = set(config.get("faults") or []) - FAULTS
    if bad:
        raise TpuError(f"{TAG}: unknown fault(s) {', '.join(sorted(bad))}")
    return config


def chips() -> list[dict[str, Any]]:
    """One entry per visible chip: id, device_kind, coords."""
    config = node()
    count = int(config.get("chips") or 4)
    if "chip-missing" in (config.get("faults") or []):
        count -= 1
    kind = DEVICE_KIND[config["sku"]]
    side = 2 if count > 1 else 1
    return [{"id": i, "device_kind": kind, "coords": (i % side, i // side, 0)}
            for i in range(count)]
