"""Hostile plans never crash, hang or mislead: a fixed-seed fuzz of the example plans.

A few hundred mutants of examples/*.yaml (hostile values in every field, deleted and unknown
keys, truncated text, stray YAML syntax, an alias bomb) each run `provision plan` through the
CLI's real entry point, isolated in a forked child with a 5 s limit (tests/fuzz_plans.py).
More cases: ``python -m tests.fuzz_plans --cases 3000``.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.fuzz_plans import fuzz, summary

CASES = int(os.environ.get("PROVISION_FUZZ_CASES", "200"))


def test_mutated_plans_end_in_a_clear_answer(tmp_path: Path) -> None:
    outcomes = fuzz(CASES, seed=20261202, workdir=tmp_path)
    report = summary(outcomes)
    print(report)
    assert len(outcomes) == CASES
    assert not [o for o in outcomes if o.problems], report
    # the mutants reach every outcome a plan can have, not only parse errors
    assert {0, 2} <= {o.rc for o in outcomes}
