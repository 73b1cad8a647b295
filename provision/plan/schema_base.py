"""Shared pieces of the plan schema (kept apart so section modules can import them)."""

from __future__ import annotations

import difflib

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Unknown keys are errors, and so are infinities and NaN: every number in a plan must be a
    finite quantity (a `.inf` context would otherwise reach the sizing arithmetic)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, allow_inf_nan=False)


def close_matches(word: str, choices: list[str]) -> str:
    """' Did you mean X?' or '' — used by every unknown-name message."""
    hits = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not hits:
        lowered = {c.lower(): c for c in choices}
        hits = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
        hits = [lowered[h] for h in hits]
    return f"; did you mean {hits[0]!r}?" if hits else ""
