"""Helpers shared by the text parsers: ANSI codes, line prefixes, numbers."""

from __future__ import annotations

import re

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


def strip_ansi(text: str) -> str:
    return ANSI.sub("", text)


def strip_prefixes(line: str) -> str:
    """Remove launcher and log-collector prefixes, in whatever order they were stacked."""
    while True:
        before = line
        line = ISO_STAMP.sub("", line)
        line = MPI_TAG.sub("", line)
        line = SRUN_LABEL.sub("", line)
        if line == before:
            return line


def to_float(token: str) -> float | None:
    """A number as tools print it ("478.05", "1e+06", "N/A", "[N/A]"); None when not a number."""
    t = token.strip()
    if t.lower() in NA_VALUES:
        return None
    try:
        return float(t)
    except ValueError:
        return None


def to_int(token: str) -> int | None:
    value = to_float(token)
    return int(value) if value is not None else None


def is_na(token: str) -> bool:
    return token.strip().lower() in NA_VALUES
