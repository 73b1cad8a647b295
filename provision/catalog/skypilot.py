"""Read price catalogs in SkyPilot's CSV format, as published in skypilot-org/skypilot-catalog.

The header is ``InstanceType,vCPUs,MemoryGiB,AcceleratorName,AcceleratorCount,GpuInfo,Region,
AvailabilityZone,Price,SpotPrice`` in any column order (the providers' files differ), fields may
be quoted, line ends may be CRLF. Our own catalog files use the same header plus optional
``Provider``, ``BillingPeriod`` (hour|month; Price is then per month), ``Interconnect``,
``NetworkGbps``, ``MultiNode`` and ``Source`` columns, so one reader serves both.

Provider-specific shapes handled here:
- GCP prices A2/A3/G2 machine types without their GPUs and lists the GPUs as separate rows with
  an empty InstanceType; a node's price is the machine's plus its GPUs' in the same zone.
- TPU rows (``tpu-v5litepod-8``) price a whole slice; the count of chips comes from the name.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections import Counter
from pathlib import Path

from provision.catalog.offerings import HOURS_PER_MONTH, Offering
from provision.catalog.rules import HardwareFacts, HardwareRules
from provision.catalog.specs import GpuTable
from provision.errors import InputError

INTERCONNECTS = ("nvswitch", "nvlink", "nvlink-pairs", "pcie", "ici")
REQUIRED = ("InstanceType", "AcceleratorName", "AcceleratorCount", "Region", "Price", "SpotPrice")

_TOTAL_MIB = re.compile(r"'TotalGpuMemoryInMiB':\s*([0-9.]+)")
_SIZE_MIB = re.compile(r"'SizeInMiB':\s*([0-9.]+)")
_TPU = re.compile(r"^tpu-(v[0-9]+[a-z]*(?:litepod|pod)?)-([0-9]+)$", re.IGNORECASE)
_GCP_COUNT = re.compile(r"-(\d+)g(?:-|$)")
# G2 machine types carry 1 L4 up to g2-standard-32, then 2/4/8 (GCP GPU machine types page).
_G2_GPUS = {"g2-standard-24": 2, "g2-standard-48": 4, "g2-standard-96": 8}
_GCP_GPU_ROW_NAME = {
    "a2-highgpu": "A100",
    "a2-megagpu": "A100",
    "a2-ultragpu": "A100-80GB",
    "a3-highgpu": "H100",
    "a3-edgegpu": "H100",
    "a3-megagpu": "H100-MEGA",
    "a3-ultragpu": "H200",
    "a4-highgpu": "B200",
    "g2-standard": "L4",
}


_LETTERS = str.maketrans({"ð": "d", "þ": "th", "æ": "ae", "ø": "o", "ß": "ss", "ł": "l"})
_VAST_PLACE = re.compile(r"^([^,]+),\s*([A-Za-z]{2}),\s*([A-Za-z]{2})$")


def vast_region(text: str) -> str:
    """Vast lists a machine's place as "State or country, CC, continent" ("California, US,
    NA"); as a region that is "us-california", so `regions: ["us-*"]` patterns match it. A place
    that does not parse (Vast also lists ", US, NA") is returned as is, and the catalog checks
    set such rows aside (catalog.validate)."""
    m = _VAST_PLACE.match(text.strip())
    if not m or not m.group(1).strip():
        return text
    ascii_place = unicodedata.normalize("NFKD", m.group(1).strip().lower().translate(_LETTERS))
    place = re.sub(r"[^a-z0-9]+", "-", ascii_place.encode("ascii", "ignore").decode()).strip("-")
    return f"{m.group(2).lower()}-{place}" if place else text


def provider_of(path: Path, header: list[str], first_row: dict[str, str] | None) -> str:
    """Provider of a catalog file: its Provider column, else SkyPilot's ``<provider>/vms.csv``
    layout, else the file name's prefix (``aws_vms.csv``, ``coreweave.csv``)."""
    if first_row and first_row.get("Provider"):
        return first_row["Provider"].strip().lower()
    if path.name == "vms.csv":
        return path.parent.name.lower()
    return re.split(r"[_.]", path.name, maxsplit=1)[0].lower()


def _num(value: str | None, path: Path, line: int, column: str) -> float | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise InputError(
            f"{path}:{line}: column {column}: expected a number, got {value!r}"
        ) from None


def _price(value: float | None) -> float | None:
    """Empty or non-positive prices mean 'not offered' (Vast lists 0.00 for no spot)."""
    return value if value and value > 0 else None


MAX_CATALOG_BYTES = 64 * 1024 * 1024  # SkyPilot's largest vms.csv (AWS) is ~15 MB


class _Reader:
    def __init__(self, gpus: GpuTable, rules: HardwareRules) -> None:
        self.gpus = gpus
        self.rules = rules
        self.skipped: Counter[str] = Counter()

    def read(self, path: Path) -> list[Offering]:
        try:
            if not path.is_file():  # a FIFO or /dev/zero would never end
                raise InputError(f"{path}: not a regular file")
            if path.stat().st_size > MAX_CATALOG_BYTES:
                raise InputError(f"{path}: {path.stat().st_size:,} bytes is more than a catalog "
                                 f"file may hold ({MAX_CATALOG_BYTES:,})")
            fh = path.open(newline="", encoding="utf-8")
        except OSError as exc:
            raise InputError(f"{path}: cannot read catalog file: {exc.strerror}") from None
        with fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                raise InputError(  # the header is not quoted: the file may be anything
                    f"{path}:1: not a SkyPilot-format catalog: missing column(s) "
                    f"{', '.join(missing)} (its first line has {len(header)} column(s))"
                )
            rows = list(reader)
        provider = provider_of(path, header, rows[0] if rows else None)
        if provider == "gcp":
            return self._gcp(path, rows)
        out: list[Offering] = []
        for line, row in enumerate(rows, start=2):
            offering = self._row(path, line, row, provider)
            if offering is not None:
                out.append(offering)
        return out

    # -- one row -----------------------------------------------------------------------------
    def _row(
        self,
        path: Path,
        line: int,
        row: dict[str, str],
        provider: str,
        *,
        gpu_name: str | None = None,
        count: float | None = None,
        prices: tuple[float | None, float | None] | None = None,
    ) -> Offering | None:
        """One offering from one row; ``prices`` (on-demand, spot) overrides the row's."""
        instance = (row.get("InstanceType") or "").strip()
        accel = gpu_name or (row.get("AcceleratorName") or "").strip()
        if not accel:
            self.skipped["(no accelerator)"] += 1
            return None
        if count is None:
            count = _num(row.get("AcceleratorCount"), path, line, "AcceleratorCount")
        if prices is None:
            price = _num(row.get("Price"), path, line, "Price")
            spot = _num(row.get("SpotPrice"), path, line, "SpotPrice")
        else:
            price, spot = prices
        tpu = _TPU.match(accel)
        spec = self.gpus.resolve(f"tpu-{tpu.group(1)}") if tpu else self.gpus.resolve(accel)
        if spec is None:
            self.skipped[accel] += 1
            return None
        mem = self._mem_per_gpu(row.get("GpuInfo") or "", count)
        facts = self.rules.facts(provider, instance or accel, accel, mem)
        if facts.gpu:
            spec = self.gpus.resolve(facts.gpu) or spec
        hosts = 1
        if tpu and spec.tpu:
            count = spec.tpu.chips(int(tpu.group(2)))
            hosts = spec.tpu.hosts(int(count))
        if not count or count <= 0:
            self.skipped[f"{accel} (no count)"] += 1
            return None
        interconnect, network, multi = self._own_facts(path, line, row, facts)
        period = (row.get("BillingPeriod") or "hour").strip().lower() or "hour"
        if period not in ("hour", "month"):
            raise InputError(
                f"{path}:{line}: column BillingPeriod: expected 'hour' or 'month', got {period!r}"
            )
        period_price = _price(price)
        if period == "month":
            price = period_price / HOURS_PER_MONTH if period_price else None
            spot = None
        price, spot = _price(price), _price(spot)
        if price is None and spot is None:
            self.skipped[f"{accel} (unpriced)"] += 1
            return None
        region = (row.get("Region") or "").strip()
        if provider == "vast":
            region = vast_region(region)
        return Offering(
            provider=provider,
            instance_type=instance or accel,
            region=region,
            zone=(row.get("AvailabilityZone") or "").strip(),
            gpu=spec.name,
            gpu_count=int(count),
            vcpus=_num(row.get("vCPUs"), path, line, "vCPUs"),
            memory_gib=_num(row.get("MemoryGiB"), path, line, "MemoryGiB"),
            price=price,
            spot_price=spot,
            interconnect=interconnect,
            network_gbps=network,
            multi_node=multi,
            hosts=hosts,
            billing_period=period,
            period_price=period_price,
            source=(row.get("Source") or "").strip() or path.name,
        )

    @staticmethod
    def _own_facts(
        path: Path, line: int, row: dict[str, str], facts: HardwareFacts
    ) -> tuple[str, float, bool]:
        """A row's own Interconnect / NetworkGbps / MultiNode columns win over the rules."""
        interconnect = (row.get("Interconnect") or "").strip().lower() or facts.interconnect
        if interconnect not in INTERCONNECTS:
            raise InputError(
                f"{path}:{line}: column Interconnect: expected one of "
                f"{', '.join(INTERCONNECTS)}, got {interconnect!r}"
            )
        network = _num(row.get("NetworkGbps"), path, line, "NetworkGbps")
        multi_raw = (row.get("MultiNode") or "").strip().lower()
        if multi_raw and multi_raw not in ("true", "false", "yes", "no", "1", "0"):
            raise InputError(
                f"{path}:{line}: column MultiNode: expected true or false, got {multi_raw!r}"
            )
        multi = multi_raw in ("true", "yes", "1") if multi_raw else facts.multi_node
        return interconnect, network if network is not None else facts.network_gbps, multi

    @staticmethod
    def _mem_per_gpu(info: str, count: float | None) -> float | None:
        """Per-GPU memory in GiB from GpuInfo. Files disagree on whether MemoryInfo is per GPU
        (AWS, GCP) or per node (Vast), so the node total divided by the count is preferred."""
        total = _TOTAL_MIB.search(info)
        if total and count:
            return float(total.group(1)) / count / 1024
        size = _SIZE_MIB.search(info)
        return float(size.group(1)) / 1024 if size else None

    # -- GCP ---------------------------------------------------------------------------------
    def _gcp(self, path: Path, rows: list[dict[str, str]]) -> list[Offering]:
        """Join GCP machine rows with the GPU rows of the same zone; TPUs stand alone."""
        gpu_rows: dict[tuple[str, int, str], dict[str, str]] = {}
        machines: list[tuple[int, dict[str, str]]] = []
        out: list[Offering] = []
        for line, row in enumerate(rows, start=2):
            instance = (row.get("InstanceType") or "").strip()
            accel = (row.get("AcceleratorName") or "").strip()
            if not instance and accel.lower().startswith("tpu-"):
                offering = self._row(path, line, row, "gcp")
                if offering:
                    out.append(offering)
            elif not instance and accel:
                count = int(_num(row.get("AcceleratorCount"), path, line, "AcceleratorCount") or 0)
                zone = (row.get("AvailabilityZone") or "").strip()
                gpu_rows[(accel, count, zone)] = row
            elif instance and accel:
                offering = self._row(path, line, row, "gcp")
                if offering:
                    out.append(offering)
            elif instance:
                machines.append((line, row))
        for line, row in machines:
            instance = row["InstanceType"].strip()
            family = "-".join(instance.split("-")[:2])
            gpu_row_name = _GCP_GPU_ROW_NAME.get(family)
            if gpu_row_name is None:
                self.skipped["(no accelerator)"] += 1
                continue
            if family == "g2-standard":
                count = _G2_GPUS.get(instance, 1)
            else:
                m = _GCP_COUNT.search(instance)
                count = int(m.group(1)) if m else 1
            zone = (row.get("AvailabilityZone") or "").strip()
            gpu_row = gpu_rows.get((gpu_row_name, count, zone))
            if gpu_row is None:
                self.skipped[f"{instance} (no GPU price in zone)"] += 1
                continue
            vm_price = _num(row.get("Price"), path, line, "Price")
            vm_spot = _num(row.get("SpotPrice"), path, line, "SpotPrice")
            g_price = _num(gpu_row.get("Price"), path, line, "Price")
            g_spot = _num(gpu_row.get("SpotPrice"), path, line, "SpotPrice")
            offering = self._row(
                path,
                line,
                {**row, "GpuInfo": gpu_row.get("GpuInfo", "")},
                "gcp",
                gpu_name=gpu_row_name,
                count=count,
                prices=(
                    vm_price + g_price if vm_price and g_price else None,
                    vm_spot + g_spot if vm_spot and g_spot else None,
                ),
            )
            if offering:
                out.append(offering)
        return out


def read_catalog_file(
    path: Path, gpus: GpuTable, rules: HardwareRules
) -> tuple[list[Offering], Counter[str]]:
    """Offerings in one CSV file, and the count of rows skipped per reason/accelerator."""
    reader = _Reader(gpus, rules)
    return reader.read(path), reader.skipped
