"""The catalog: accelerator specs plus the offerings that rent them.

``load_catalog()`` reads the shipped files (data/offerings/) and any user files or directories;
a user file replaces the shipped rows of the providers it contains, so pointing at a newer
SkyPilot catalog updates those prices instead of mixing old and new. Rows are then checked
(catalog.validate): suspect ones are set aside and listed, and each provider's prices carry
their date (catalog.dates).

Parsing the CSV files is most of `provision plan`'s work, so the checked result is cached in
``$XDG_CACHE_HOME/provision/`` under a key made of the files' SHA-256 hashes (plus the GPU and
hardware tables the parsing uses): an unchanged catalog is loaded from one pickle.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from provision import __version__
from provision.catalog.dates import CatalogDate, file_date, shipped_dates
from provision.catalog.offerings import HOURS_PER_MONTH, Offering
from provision.catalog.specs import GpuSpec, GpuTable, gpu_table
from provision.catalog.validate import Suspect, check
from provision.datacache import cache_dir, cached
from provision.errors import InputError

__all__ = [
    "HOURS_PER_MONTH",
    "Catalog",
    "CatalogDate",
    "GpuSpec",
    "GpuTable",
    "Offering",
    "OfferingGroup",
    "Suspect",
    "builtin_catalog_dir",
    "load_catalog",
]


def builtin_catalog_dir() -> Path:
    return Path(str(resources.files("provision.catalog") / "data" / "offerings"))


@dataclass
class Catalog:
    """Offerings plus the GPU table they refer to."""

    gpus: GpuTable
    offerings: list[Offering]
    files: list[Path] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    suspect: list[Suspect] = field(default_factory=list)  # rows set aside (or kept: trusted)
    dates: dict[str, CatalogDate] = field(default_factory=dict)  # per provider
    _groups: list[OfferingGroup] | None = field(default=None, repr=False, compare=False)

    @property
    def groups(self) -> list[OfferingGroup]:
        """Offerings grouped by identical hardware (built once, then reused)."""
        if self._groups is None:
            self._groups = group_offerings(self.offerings)
        return self._groups

    def suspect_reason(self, o: Offering) -> str | None:
        for s in self.suspect:
            if s.offering == o:
                return s.reason
        return None

    def providers(self) -> list[str]:
        return sorted({o.provider for o in self.offerings})

    def filter(
        self,
        *,
        gpu: str | None = None,
        provider: str | None = None,
        spot: bool = False,
        region: str | None = None,
        min_count: int | None = None,
        suspect: bool = False,
    ) -> list[Offering]:
        """Offerings matching every given criterion (for `provision catalog`); ``suspect``:
        among the rows set aside by the checks instead of the usable ones."""
        spec = self.gpus.resolve(gpu) if gpu else None
        if gpu and spec is None:
            raise InputError(
                f"--gpu: unknown accelerator {gpu!r}; known: {', '.join(self.gpus.names())}"
            )
        out = []
        pool = [s.offering for s in self.suspect] if suspect else self.offerings
        for o in pool:
            if spec and o.gpu != spec.name:
                continue
            if provider and o.provider != provider:
                continue
            if spot and o.spot_price is None:
                continue
            if region and region not in (o.region, o.zone):
                continue
            if min_count and o.gpu_count < min_count:
                continue
            out.append(o)
        return out


def _csv_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(path.glob("*.csv")) + sorted(path.glob("*/vms.csv"))
        if not files:
            raise InputError(f"{path}: catalog directory holds no *.csv or */vms.csv files")
        return files
    if path.is_file():
        return [path]
    if path.exists():
        raise InputError(f"{path}: not a regular file or directory; a catalog is CSV files")
    raise InputError(f"{path}: catalog path does not exist")


CACHE_FORMAT = 4  # bump when Offering, the parsing or the checks change shape


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _cache_path(parts: Sequence[tuple[str, Sequence[Path]]]) -> Path | None:
    """Where the checked catalog for these inputs is cached: keyed by the SHA-256 of every
    input file (and their roles), of the data files that shape parsing, and the version."""
    data = Path(str(resources.files("provision.catalog") / "data"))
    key = hashlib.sha256(f"{__version__}:{CACHE_FORMAT}".encode())
    try:
        for role, files in (*parts, ("data", (data / "gpus.yaml",
                                              data / "hardware_rules.yaml",
                                              data / "catalog_dates.yaml"))):
            for f in files:
                # user files are dated by their mtime when they carry no stamps
                stamp = f.stat().st_mtime_ns if role != "builtin" else 0
                key.update(f"{role}\0{f.name}\0{_digest(f)}\0{stamp}\n".encode())
    except OSError:
        return None
    return cache_dir() / f"catalog-{key.hexdigest()[:32]}.pickle"


def _parse(files: Iterable[Path], gpus: GpuTable) -> tuple[list[Offering], Counter[str],
                                                            dict[str, CatalogDate]]:
    from provision.catalog.rules import hardware_rules
    from provision.catalog.skypilot import read_catalog_file

    rules = hardware_rules()
    offerings: list[Offering] = []
    skipped: Counter[str] = Counter()
    dates: dict[str, CatalogDate] = {}
    for f in files:
        rows, skip = read_catalog_file(f, gpus, rules)
        offerings.extend(rows)
        skipped.update(skip)
        for provider in sorted({o.provider for o in rows}):
            dates[provider] = file_date(f, [o.source for o in rows if o.provider == provider])
    return offerings, skipped, dates


def load_catalog(extra: Sequence[Path] = (), *, builtin: bool = True,
                 trust: Sequence[Path] = ()) -> Catalog:
    """Shipped offerings (unless ``builtin`` is False) overlaid with the user's files, checked.

    Suspect rows (catalog.validate) are kept out of ``offerings`` and listed in ``suspect``,
    except those from files in ``trust`` (files the user named and said to trust)."""
    gpus = gpu_table()
    builtin_files = _csv_files(builtin_catalog_dir()) if builtin else []
    user_files = [f for p in extra for f in _csv_files(Path(p))]
    trusted = {f.resolve() for p in trust for f in _csv_files(Path(p))}
    roles = [("builtin", builtin_files),
             *((("trusted" if f.resolve() in trusted else "user"), [f]) for f in user_files)]

    def build() -> tuple[list[Offering], Counter[str], list[Suspect], dict[str, CatalogDate],
                         list[OfferingGroup]]:
        offerings: list[Offering] = []
        skipped: Counter[str] = Counter()
        dates: dict[str, CatalogDate] = {}
        if builtin_files:
            offerings, skipped, _ = _parse(builtin_files, gpus)
            known = shipped_dates()
            for provider in {o.provider for o in offerings}:
                dates[provider] = known.get(provider, CatalogDate(None, "no date recorded"))
        trusted_rows: set[Offering] = set()
        if user_files:
            user_rows, user_skipped, user_dates = _parse(user_files, gpus)
            replaced = {o.provider for o in user_rows}
            offerings = [o for o in offerings if o.provider not in replaced] + user_rows
            skipped.update(user_skipped)
            dates.update(user_dates)
            if trusted:
                trusted_rows = set(_parse([f for f in user_files if f.resolve() in trusted],
                                          gpus)[0])
        # Some source files repeat rows verbatim (GCP's TPU rows); keep the first of each.
        unique = list(dict.fromkeys(offerings))
        usable, suspect = check(unique, frozenset(trusted_rows))
        return usable, skipped, suspect, dates, group_offerings(usable)

    usable, skipped, suspect, dates, groups = cached(_cache_path(roles), build)
    return Catalog(gpus=gpus, offerings=usable, files=[*builtin_files, *user_files],
                   skipped=skipped, suspect=suspect, dates=dates, _groups=groups)


@dataclass(frozen=True)
class OfferingGroup:
    """One instance type of one provider across its locations: identical hardware, so every
    member sizes and times the same; only price and location differ. The optimizer evaluates
    the hardware once per group and then walks members cheapest first."""

    offerings: tuple[Offering, ...]
    by_price: tuple[Offering, ...]  # on-demand offerings, cheapest first
    by_spot_price: tuple[Offering, ...]  # spot offerings, cheapest first

    @property
    def head(self) -> Offering:
        return self.offerings[0]


def group_offerings(offerings: Sequence[Offering]) -> list[OfferingGroup]:
    """Group offerings by (provider, instance type, hardware, billing)."""
    buckets: dict[tuple, list[Offering]] = {}
    for o in offerings:
        key = (o.provider, o.instance_type, o.gpu, o.gpu_count, o.interconnect, o.network_gbps,
               o.multi_node, o.hosts, o.billing_period)
        buckets.setdefault(key, []).append(o)
    groups = []
    for members in buckets.values():
        on_demand = sorted((o for o in members if o.price is not None),
                           key=lambda o: (o.price, o.region, o.zone))
        spot = sorted((o for o in members if o.spot_price is not None),
                      key=lambda o: (o.spot_price, o.region, o.zone))
        groups.append(OfferingGroup(tuple(members), tuple(on_demand), tuple(spot)))
    return groups
