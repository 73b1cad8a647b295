"""The catalog: accelerator specs plus the offerings that rent them.

``load_catalog()`` reads the shipped files (data/offerings/) and any user files or directories;
a user file replaces the shipped rows of the providers it contains, so pointing at a newer
SkyPilot catalog updates those prices instead of mixing old and new.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from provision import __version__
from provision.catalog.offerings import HOURS_PER_MONTH, Offering
from provision.catalog.rules import hardware_rules
from provision.catalog.skypilot import read_catalog_file
from provision.catalog.specs import GpuSpec, GpuTable, gpu_table
from provision.errors import InputError

__all__ = [
    "HOURS_PER_MONTH",
    "Catalog",
    "GpuSpec",
    "GpuTable",
    "Offering",
    "OfferingGroup",
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
    _groups: list[OfferingGroup] | None = field(default=None, repr=False, compare=False)

    @property
    def groups(self) -> list[OfferingGroup]:
        """Offerings grouped by identical hardware (built once, then reused)."""
        if self._groups is None:
            self._groups = group_offerings(self.offerings)
        return self._groups

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
    ) -> list[Offering]:
        """Offerings matching every given criterion (for `provision catalog`)."""
        spec = self.gpus.resolve(gpu) if gpu else None
        if gpu and spec is None:
            raise InputError(
                f"--gpu: unknown accelerator {gpu!r}; known: {', '.join(self.gpus.names())}"
            )
        out = []
        for o in self.offerings:
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


CACHE_FORMAT = 2  # bump when Offering or the parsing changes shape


def _cache_path(files: Sequence[Path]) -> Path | None:
    """A pickle of parsed rows, keyed by every input's path, size and mtime (and the data
    files that shape parsing), so a changed catalog is re-read and an unchanged one is not."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    data = Path(str(resources.files("provision.catalog") / "data"))
    key = hashlib.sha256(f"{__version__}:{CACHE_FORMAT}".encode())
    try:
        for f in (*files, data / "gpus.yaml", data / "hardware_rules.yaml"):
            st = f.stat()
            key.update(f"{f.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    except OSError:
        return None
    return Path(root) / "provision" / f"catalog-{key.hexdigest()[:24]}.pickle"


def _read(files: Sequence[Path], gpus: GpuTable) -> tuple[list[Offering], Counter[str]]:
    """Parse catalog files, through the cache when it is usable."""
    cache = _cache_path(files)
    if cache is not None and cache.exists():
        try:
            with cache.open("rb") as fh:
                return pickle.load(fh)
        except Exception:  # a stale or truncated cache is only a cache
            pass
    parsed = _parse(files, gpus)
    if cache is not None:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(f".{os.getpid()}.tmp")
            with tmp.open("wb") as fh:
                pickle.dump(parsed, fh, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, cache)
        except OSError:
            pass
    return parsed


def _parse(files: Iterable[Path], gpus: GpuTable) -> tuple[list[Offering], Counter[str]]:
    rules = hardware_rules()
    offerings: list[Offering] = []
    skipped: Counter[str] = Counter()
    for f in files:
        rows, skip = read_catalog_file(f, gpus, rules)
        offerings.extend(rows)
        skipped.update(skip)
    return offerings, skipped


def load_catalog(extra: Sequence[Path] = (), *, builtin: bool = True) -> Catalog:
    """Shipped offerings (unless ``builtin`` is False) overlaid with the user's files."""
    gpus = gpu_table()
    files: list[Path] = []
    offerings: list[Offering] = []
    skipped: Counter[str] = Counter()
    if builtin:
        builtin_files = _csv_files(builtin_catalog_dir())
        offerings, skipped = _read(builtin_files, gpus)
        files.extend(builtin_files)
    if extra:
        user_files = [f for p in extra for f in _csv_files(Path(p))]
        user_rows, user_skipped = _read(user_files, gpus)
        replaced = {o.provider for o in user_rows}
        offerings = [o for o in offerings if o.provider not in replaced] + user_rows
        skipped.update(user_skipped)
        files.extend(user_files)
    # Some source files repeat rows verbatim (GCP's TPU rows); keep the first of each.
    unique = list(dict.fromkeys(offerings))
    return Catalog(gpus=gpus, offerings=unique, files=files, skipped=skipped)


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
