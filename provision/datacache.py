"""Shipped data tables (YAML) parsed once per content, not once per process.

PyYAML builds Python objects in Python even with its C parser, so the GPU table alone took
~40 ms of every `provision plan`. A table's parsed value is pickled under
``$XDG_CACHE_HOME/provision/`` keyed by the SHA-256 of the file's bytes: an edited table is
parsed again, an unchanged one is a single pickle load. The cache is only a cache: any
problem reading or writing it falls back to parsing.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path
from typing import Any

FORMAT = 1  # bump when the cached representation changes


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(root) / "provision"


def load_yaml(source: Any) -> Any:
    """The parsed YAML of ``source`` (a Path or importlib.resources Traversable)."""
    data = source.read_bytes()
    digest = hashlib.sha256(b"%d\0" % FORMAT + data).hexdigest()[:32]
    path = cache_dir() / f"data-{digest}.pickle"
    try:
        with path.open("rb") as fh:
            return pickle.load(fh)
    except Exception:  # missing, stale or unreadable: parse
        pass
    import yaml

    value = yaml.load(data, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with tmp.open("wb") as fh:
            pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError:
        pass
    return value
