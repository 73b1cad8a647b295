"""Converge speed on the local target, measured side by side in one run.

Prints:
  - first converge wall time (site.yml on fresh nodes) for 1, 4 and 8 nodes, and T8/T1
    (goal ≤ 1.3: forks = nodes, so more nodes should cost little more time);
  - the rerun time as a fraction of the first converge, with its changed-task count
    (goal ≤ 0.25 and zero changes);
  - the same playbook on fresh nodes with Ansible's stock settings versus provision's
    (goal: provision's ≥ 2× faster).

Needs root, podman and the node image (built on first use). Takes several minutes:

    python bench/converge_speed.py [--sizes 1,4,8] [--compare-nodes 8]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from provision.converge import stock_settings
from provision.orchestrator import Ui, converge, down, prepare
from provision.plan import load_plan
from provision.state import ClusterState

QUIET = Ui(step=lambda m: None)


def fresh(name: str, nodes: int, root: Path) -> tuple:
    plan = root / f"{name}.yaml"
    plan.write_text(f"name: {name}\ntarget: local\nlocal:\n  nodes: {nodes}\n")
    loaded = load_plan(plan)
    state = ClusterState.open(name, root / "state")
    prepared = prepare(loaded, state, QUIET, inventories=root / "inventories")
    return prepared


def teardown(name: str, root: Path) -> None:
    down(name, QUIET, state_root=root / "state", inventories=root / "inventories")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1,4,8")
    ap.add_argument("--compare-nodes", type=int, default=8)
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="provision-bench-") as tmp:
        root = Path(tmp)
        first: dict[int, float] = {}
        print("nodes  first converge  rerun   rerun/first  changed on rerun")
        for n in sizes:
            name = f"bench-{n}"
            prepared = fresh(name, n, root)
            try:
                a = converge(prepared, QUIET)
                b = converge(prepared, QUIET)
            finally:
                teardown(name, root)
            assert a.ok and b.ok, (a.failures, b.failures)
            first[n] = a.seconds
            changed = sum(h.changed for h in b.hosts.values())
            print(f"{n:5d}  {a.seconds:12.1f} s  {b.seconds:5.1f} s  {b.seconds / a.seconds:10.2f}"
                  f"  {changed:16d}")
        if len(sizes) > 1:
            lo, hi = min(sizes), max(sizes)
            print(f"T{hi}/T{lo} = {first[hi] / first[lo]:.2f}")

        n = args.compare_nodes
        timings = {}
        for label in ("stock", "provision"):
            name = f"bench-{label}"
            prepared = fresh(name, n, root)
            try:
                settings = (stock_settings(Path(f"/tmp/provision-cp-{label}"))
                            if label == "stock" else None)
                if settings:
                    Path(f"/tmp/provision-cp-{label}").mkdir(exist_ok=True, mode=0o700)
                result = converge(prepared, QUIET, settings=settings)
            finally:
                teardown(name, root)
            assert result.ok, result.failures
            timings[label] = result.seconds
        print(f"first converge of {n} fresh nodes: stock Ansible settings "
              f"{timings['stock']:.1f} s, provision's {timings['provision']:.1f} s, "
              f"speed-up {timings['stock'] / timings['provision']:.2f}x")


if __name__ == "__main__":
    main()
