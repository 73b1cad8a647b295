"""Consoles: stdout for results, stderr for messages; plain when not a terminal or in CI."""

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
    return Console(no_color=_plain() or None, highlight=False, soft_wrap=False,
                   width=_width(sys.stdout))


@cache
def err_console() -> Console:
    return Console(stderr=True, no_color=_plain() or None, highlight=False,
                   width=_width(sys.stderr))
