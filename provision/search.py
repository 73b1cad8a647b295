"""Binary searches over node counts, for properties that flip once as the count grows (a fit,
a deadline, a price limit): O(log n) checks instead of one per count."""

from __future__ import annotations

from collections.abc import Callable


def first_true(lo: int, hi: int, pred: Callable[[int], bool]) -> int:
    """Smallest n in [lo, hi] with pred(n), for pred false…true; pred(hi) must hold."""
    while lo < hi:
        mid = (lo + hi) // 2
        if pred(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def last_true(lo: int, hi: int, pred: Callable[[int], bool]) -> int:
    """Largest n in [lo, hi] with pred(n), for pred true…false; pred(lo) must hold."""
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if pred(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo
