"""Helpers shared by the text parsers: ANSI codes, line prefixes, numbers that can be trusted.

Every number a verdict rests on goes through :func:`read_number`: NaN, ±inf, a negative value
or a token that is not a number at all is recorded as an "unusable output" problem naming the
line, instead of flowing into a comparison where NaN would quietly pass (``nan < 0.9`` is
false). ``N/A``-style tokens are not problems: they mean "not reported" and become None.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# OpenMPI `mpirun --tag-output`: "[1,0]<stdout>:" (job,rank); newer: "[1,0]<stdout>: ".
MPI_TAG = re.compile(r"^\[\d+,\d+\]<(?:stdout|stderr)>:\s?")
# srun --label: "0: ", "12: ".
SRUN_LABEL = re.compile(r"^\s*\d+:\s")
# Log collectors: "2024-05-01T12:00:00.123Z ", "[2024-05-01 12:00:00,123] ",
# "Jan 12 10:11:12 host " is syslog style and handled by the XID parser, which needs the host.
ISO_STAMP = re.compile(
    r"^\[?\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?\]?\s+")
NA_VALUES = frozenset({"n/a", "[n/a]", "[not supported]", "not supported", "-", ""})
# Tool lines are short (a 72-GPU topology row is ~700 characters); anything longer is cut here
# so no regular expression ever scans a megabyte-long line.
MAX_LINE = 4096
_UINT = re.compile(r"[0-9]+")


class BadNumber(ValueError):
    """A token where a number belongs that no healthy tool prints (NaN, inf, negative, text)."""


def strip_ansi(text: str) -> str:
    return ANSI.sub("", text)


def lines(text: str) -> Iterator[tuple[int, str]]:
    """(1-based line number, line) with ANSI codes removed and each line capped at MAX_LINE."""
    for number, line in enumerate(strip_ansi(text).splitlines(), start=1):
        yield number, line[:MAX_LINE]


def strip_prefixes(line: str) -> str:
    """Remove launcher and log-collector prefixes, in whatever order they were stacked."""
    while True:
        if not line or not (line[0] == "[" or line[0].isdigit() or line[0].isspace()):
            return line  # no prefix starts otherwise: skip the three expressions
        before = line
        line = ISO_STAMP.sub("", line)
        line = MPI_TAG.sub("", line)
        line = SRUN_LABEL.sub("", line)
        if line == before:
            return line


def is_uint(token: str) -> bool:
    """ASCII digits only: ``"²".isdigit()`` is true but ``int("²")`` raises."""
    return bool(_UINT.fullmatch(token))


def is_na(token: str) -> bool:
    return token.strip().lower() in NA_VALUES


def number(token: str, *, integer: bool = False, signed: bool = False) -> float | None:
    """A number as a tool prints it; None for N/A; BadNumber for anything a tool cannot mean.

    ``integer`` requires an integral value ("7629394.0" is fine, "2.5" is not); ``signed``
    allows negative values (nccl-tests' ``root`` column prints -1).
    """
    t = token.strip()
    if t.lower() in NA_VALUES:
        return None
    try:
        value = float(t)
    except ValueError:
        raise BadNumber(f"{t[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise BadNumber(f"{t[:40]!r} is not a finite number")
    if value < 0 and not signed:
        raise BadNumber(f"{t[:40]!r} is negative")
    if integer and not value.is_integer():
        raise BadNumber(f"{t[:40]!r} is not a whole number")
    return value


def read_number(token: str, where: str, sink: list[str], *, integer: bool = False,
                signed: bool = False) -> float | None:
    """:func:`number`, recording a bad token in ``sink`` as "<where>: <problem>"."""
    try:
        return number(token, integer=integer, signed=signed)
    except BadNumber as exc:
        sink.append(f"{where}: {exc}")
        return None


def read_int(token: str, where: str, sink: list[str], *, signed: bool = False) -> int | None:
    value = read_number(token, where, sink, integer=True, signed=signed)
    return int(value) if value is not None else None


def to_float(token: str) -> float | None:
    """A number for figures nobody judges (sweep averages, SUM lines); None when unusable."""
    try:
        return number(token, signed=True)
    except BadNumber:
        return None


def to_int(token: str) -> int | None:
    try:
        value = number(token, integer=True, signed=True)
    except BadNumber:
        return None
    return int(value) if value is not None else None
