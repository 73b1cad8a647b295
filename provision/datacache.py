"""Parsed data kept as pickles keyed by content, so unchanged inputs are not parsed again.

PyYAML builds Python objects in Python even with its C parser, so the GPU table alone took
~40 ms of every `provision plan`, and the catalog CSVs far more. Parsed values are pickled
under ``$XDG_CACHE_HOME/provision/`` keyed by the SHA-256 of what they were parsed from: an
edited file is parsed again, an unchanged one is a single pickle load. The cache is only a
cache: any problem reading or writing it falls back to parsing.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
FORMAT = 1  # bump when the cached representation of the YAML tables changes


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(root) / "provision"


def cached(path: Path | None, build: Callable[[], T]) -> T:
    """``build()``'s result through the pickle at ``path`` (None: no caching)."""
    if path is not None:
        try:
            with path.open("rb") as fh:
                return pickle.load(fh)
        except Exception:  # missing, stale or truncated: build
            pass
    value = build()
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            with tmp.open("wb") as fh:
                pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)
        except OSError:
            pass
    return value


def load_yaml(source: Any) -> Any:
    """The parsed YAML of ``source`` (a Path or importlib.resources Traversable)."""
    data = source.read_bytes()
    digest = hashlib.sha256(b"%d\0" % FORMAT + data).hexdigest()[:32]

    def parse() -> Any:
        import yaml

        return yaml.load(data, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))

    return cached(cache_dir() / f"data-{digest}.pickle", parse)
