"""Consoles: stdout for results, stderr for messages; plain when not a terminal or in CI.

Both consoles have Rich markup switched off: what they print is full of text the user wrote
(plan keys and values, cluster and node names, file paths) or a node reported, and ``[word]``
in such text must print as written rather than be taken for a style (or fail to parse).
Style is given explicitly with ``rich.text.Text`` where wanted."""

from __future__ import annotations

import os
import sys
from functools import cache

from rich.console import Console


def _plain() -> bool:
    return bool(os.environ.get("CI")) or bool(os.environ.get("NO_COLOR"))


def _width(stream) -> int | None:
    """Terminals keep their width; logs (CI, pipes) get 140 columns instead of rich's 80."""
    try:
        return None if stream.isatty() else 140
    except (AttributeError, ValueError):
        return 140


@cache
def out_console() -> Console:
    return Console(no_color=_plain() or None, highlight=False, soft_wrap=False, markup=False,
                   width=_width(sys.stdout))


@cache
def err_console() -> Console:
    return Console(stderr=True, no_color=_plain() or None, highlight=False, markup=False,
                   width=_width(sys.stderr))
