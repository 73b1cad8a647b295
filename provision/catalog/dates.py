"""How old each provider's prices are: the data's date, not the file's copy date.

Shipped rows take their dates from data/catalog_dates.yaml (SOURCE.md says where each file
came from). A refreshed or user-supplied file is dated by the newest ``YYYY-MM-DD`` stamp in
its Source column (`provision catalog refresh` writes one per repriced row), else by the file's
modification time (a SkyPilot download is written when it is fetched).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from importlib import resources
from pathlib import Path

from provision.datacache import load_yaml

_STAMP = re.compile(r"\b(20\d\d-[01]\d-[0-3]\d)")


@dataclass(frozen=True, slots=True)
class CatalogDate:
    as_of: date | None  # None: the data carries no date
    basis: str

    def age_days(self, today: date) -> int | None:
        return None if self.as_of is None else (today - self.as_of).days

    def describe(self, today: date) -> str:
        age = self.age_days(today)
        if age is None:
            return f"date unknown ({self.basis})"
        return f"{age:,} days old (as of {self.as_of}; {self.basis})"


@cache
def shipped_dates() -> dict[str, CatalogDate]:
    raw = load_yaml(resources.files("provision.catalog") / "data" / "catalog_dates.yaml")
    out = {}
    for provider, d in raw.items():
        as_of = d.get("as_of")
        basis = d["basis"]
        if as_of is None and d.get("copied"):
            basis += f"; copied into provision {d['copied']}, so the prices are older"
        out[provider] = CatalogDate(as_of if isinstance(as_of, date) else None, basis)
    return out


def file_date(path: Path, sources: list[str]) -> CatalogDate:
    """The date of a user-supplied catalog file (see the module docstring)."""
    stamps = sorted({m.group(1) for s in sources for m in _STAMP.finditer(s)})
    if stamps:
        try:
            return CatalogDate(date.fromisoformat(stamps[-1]),
                               f"newest price stamp in {path.name}")
        except ValueError:
            pass
    try:
        mtime = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC).date()
    except OSError:
        return CatalogDate(None, f"{path.name}: no date")
    return CatalogDate(mtime, f"{path.name} modified")
