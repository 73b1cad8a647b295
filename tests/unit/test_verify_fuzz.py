"""The verify analyzer under a few hundred mutations of a healthy simulated 2-node 8 x H100 run
(fixed seed; tests/unit/verify_fuzz.py): no internal error, no hang, and every mutation that
corrupts a judged figure or a required output is a failure, never a pass or a warning.

`PYTHONPATH=. python3 -m tests.unit.verify_fuzz` prints the same counts for any checkout."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit import verify_fuzz


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory) -> tuple[Path, list[verify_fuzz.Outcome]]:
    run = verify_fuzz.make_healthy_run(tmp_path_factory.mktemp("fuzz"))
    assert verify_fuzz.judge(run) == ("pass", "")  # the baseline every mutation departs from
    return run, verify_fuzz.run_fuzz(run, verify_fuzz.all_mutations(run))


@pytest.fixture(scope="module")
def outcomes(fuzzed) -> list[verify_fuzz.Outcome]:
    return fuzzed[1]


def test_each_mutation_was_undone_and_the_run_passes_again(fuzzed):
    assert verify_fuzz.judge(fuzzed[0]) == ("pass", "")


def test_no_internal_error_no_hang_and_no_corruption_passes(outcomes):
    summary = verify_fuzz.summarize(outcomes)
    bad = [f"{o.result}: {o.mutation.label()}: {o.detail[:200]}" for o in outcomes
           if o.violation]
    assert bad == [], summary
    assert summary["internal_errors"] == 0 and summary["hangs"] == 0
    assert summary["mutations"] >= 300 and summary["must_fail"] >= 200


def test_every_corruption_class_is_exercised(outcomes):
    kinds = {o.mutation.kind for o in outcomes}
    for kind in ("number:nan", "number:inf", "number:-inf", "number:negative", "number:huge",
                 "number:in-integer-column", "rc:139", "identity:duplicate-gpu",
                 "identity:gpu-missing", "identity:matrix-4-gpus", "identity:uuid-mismatch",
                 "identity:cut-after-gpu3", "dcgm:all-skip", "dcgm:unknown-status",
                 "dcgm:zero-tests", "file:fifo", "file:dev-zero", "file:oversize",
                 "file:million-lines", "sku", "ibstat:no-rate", "ib_write_bw:float-iterations"):
        assert kind in kinds, kind
    assert sum(o.mutation.kind.startswith("random:") for o in outcomes) >= 50
