"""Planner speed: optimizer on a synthetic 10,000-offering catalog, and cold `provision plan`.

Prints figures measured side by side in one run (this machine is noisy, so ratios matter more
than absolute times):
  - optimize() median time on 10,000 offerings (goal ≤ 20 ms), and its speed-up over the
    exhaustive brute_force() reference on the same catalog;
  - cold `provision plan` wall time (a new process each run; goal ≤ 0.5 s), next to a bare
    `python -c pass` so interpreter start-up is visible.

    python bench/plan_speed.py [--offerings 10000] [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from provision.catalog.synthetic import synthetic_catalog
from provision.optimizer import Criteria, brute_force, optimize
from provision.plan.schema import Workload
from provision.sizing import size

REPO = Path(__file__).resolve().parents[1]


def timed(fn, runs: int) -> float:
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--offerings", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()

    cat = synthetic_catalog(args.offerings, seed=1)
    _ = cat.groups  # grouping is part of loading a catalog, not of each optimization
    cases = {
        "serve 70B, cost": (dict(kind="inference", model="llama-3-70b", context=8192, batch=8,
                                 hours=100), Criteria(spot="allowed")),
        "train 8B, time+budget": (dict(kind="training", model="llama-3-8b", tokens_b=300),
                                  Criteria(objective="time", budget_usd=50_000.0,
                                           deadline_hours=720.0)),
    }
    print(f"catalog: {len(cat.offerings):,} synthetic offerings in {len(cat.groups):,} groups")
    for name, (w, crit) in cases.items():
        need = size(Workload.model_validate(w))
        fast = timed(lambda need=need, crit=crit: optimize(need, cat, crit), args.runs)
        slow = timed(lambda need=need, crit=crit: brute_force(need, cat, crit), 1)
        same = optimize(need, cat, crit).choice == brute_force(need, cat, crit)
        print(f"  {name:24s} optimize {fast * 1e3:7.2f} ms  brute force {slow * 1e3:8.1f} ms  "
              f"ratio {slow / fast:6.1f}x  same answer: {same}")

    script = Path(sys.executable).parent / "provision"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "provision"]
    plan = str(REPO / "examples" / "qwen3-235b-serve.yaml")
    subprocess.run([*cmd, "plan", plan, "-o", "json"], capture_output=True, check=True)  # cache
    cli = timed(lambda: subprocess.run([*cmd, "plan", plan, "-o", "json"], capture_output=True,
                                       check=True), args.runs)
    bare = timed(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), args.runs)
    print(f"cold `provision plan` {cli * 1e3:6.0f} ms (median of {args.runs}); "
          f"bare interpreter {bare * 1e3:5.0f} ms; ratio {cli / bare:4.1f}x")


if __name__ == "__main__":
    main()
