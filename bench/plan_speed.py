"""Planner speed: optimizer on a synthetic 10,000-offering catalog, and cold `provision plan`.

Prints figures measured side by side in one run (this machine is shared and noisy, so ratios
matter more than absolute times, and CPU time — user + system of the child — is printed next
to wall time because it is far less sensitive to other load):
  - optimize() median time on 10,000 offerings (goal ≤ 20 ms), and its speed-up over the
    exhaustive brute_force() reference on the same catalog;
  - cold `provision plan -o json` and the table view (a new process each run; goal ≤ 0.3 s),
    next to a bare `python -c pass`, and to SkyPilot's `sky launch --dryrun` at ~5.3 s
    (issue 14's figure; SkyPilot is not installed here);
  - the first run on an empty cache (parsing the catalog CSVs and data tables).
Byte-code writing is forced on (PYTHONDONTWRITEBYTECODE unset) as on a normal install.

    python bench/plan_speed.py [--offerings 10000] [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
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
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    runs = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "provision plan -o json": [*cmd, "plan", plan, "-o", "json"],
        "provision plan (table)": [*cmd, "plan", plan],
    }
    with tempfile.TemporaryDirectory() as cache:
        first_env = {**env, "XDG_CACHE_HOME": cache}
        first = run_once(runs["provision plan -o json"], first_env)
        for argv in runs.values():  # byte code and caches written once, as after install
            run_once(argv, first_env)
        figures = {name: cold(argv, first_env, args.runs) for name, argv in runs.items()}
    wall0, cpu0 = figures["python -c pass"]
    print(f"first run on an empty cache: {first[0] * 1e3:6.0f} ms wall, "
          f"{first[1] * 1e3:6.0f} ms CPU")
    for name, (wall, cpu) in figures.items():
        print(f"{name:24s} {wall * 1e3:6.0f} ms wall ({wall / wall0:4.1f}x bare)  "
              f"{cpu * 1e3:6.0f} ms CPU ({cpu / cpu0:4.1f}x bare)  median of {args.runs}")
    wall = figures["provision plan -o json"][0]
    print(f"vs `sky launch --dryrun` ~5.3 s: {SKY_DRYRUN_S / wall:4.1f}x faster (wall)")


SKY_DRYRUN_S = 5.3  # issue 14: SkyPilot's dry run on this machine


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, child CPU seconds) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(argv, capture_output=True, check=True, env=env)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def cold(argv: list[str], env: dict[str, str], runs: int) -> tuple[float, float]:
    samples = [run_once(argv, env) for _ in range(runs)]
    return (statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples))


if __name__ == "__main__":
    main()
