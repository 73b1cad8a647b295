"""`provision catalog refresh`: current prices into a SkyPilot-format CSV the planner overlays.

A refreshed file holds *every* shipped row of its provider (a user catalog file replaces the
built-in rows of the providers it lists), with the prices that could be refreshed replaced and
the rest kept, plus a ``Source`` column saying where each row's price came from.

Default location: ``$XDG_CONFIG_HOME/provision/catalog/<provider>_vms.csv`` (usually
``~/.config/provision/catalog/``); :func:`user_catalog_files` lists what is there so catalog
loading can overlay it automatically.

AWS: ``ec2:DescribeSpotPriceHistory`` for the current spot price per instance type and zone (the
catalog names zones by AZ id, so ``ec2:DescribeAvailabilityZones`` maps names to ids per region).
On-demand prices are left as shipped (they change rarely; the Pricing API is a separate, large
download). GCP: provision.catalog.refresh_gcp (Cloud Billing Catalog API).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from provision.catalog import builtin_catalog_dir
from provision.errors import InputError, ProvisionError

SPOT_PRODUCTS = ("Linux/UNIX", "Linux/UNIX (Amazon VPC)")
TYPES_PER_CALL = 100  # keep each DescribeSpotPriceHistory filter list modest


class RefreshFailed(ProvisionError):
    """A price API refused or failed; the message says which and how to fix access."""

    exit_code = 1


@dataclass
class RefreshReport:
    provider: str
    path: Path
    rows: int = 0
    updated: int = 0
    regions: list[str] = field(default_factory=list)
    missing: int = 0  # rows in refreshed regions without a current quote (kept as shipped)

    def summary(self) -> str:
        return (f"{self.provider}: {self.updated} of {self.rows} rows repriced in "
                f"{len(self.regions)} region(s); {self.missing} without a current quote kept "
                f"as shipped; wrote {self.path}")


def user_catalog_dir() -> Path:
    root = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(root) / "provision" / "catalog"


def user_catalog_files() -> list[Path]:
    """Refreshed catalogs to overlay on the shipped ones (one per provider)."""
    d = user_catalog_dir()
    return sorted(d.glob("*_vms.csv")) if d.is_dir() else []


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def write_rows(path: Path, header: list[str], rows: Iterable[dict[str, str]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in header})
    from provision.state import write_private

    path.parent.mkdir(parents=True, exist_ok=True)
    write_private(path, buf.getvalue())
    path.chmod(0o644)  # prices are not secret; other tools may read the file


def shipped(provider: str) -> Path:
    return builtin_catalog_dir() / f"{provider}_vms.csv"


# -- AWS ----------------------------------------------------------------------------------------
def _chunks(items: Sequence[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield list(items[i:i + size])


def aws_spot_quotes(client: Any, instance_types: Sequence[str],
                    now: datetime) -> dict[tuple[str, str], float]:
    """(instance type, AZ id) → the latest Linux spot price in one region."""
    zone_ids = {z["ZoneName"]: z["ZoneId"]
                for z in client.describe_availability_zones()["AvailabilityZones"]}
    latest: dict[tuple[str, str], tuple[datetime, float]] = {}
    paginator = client.get_paginator("describe_spot_price_history")
    for chunk in _chunks(sorted(instance_types), TYPES_PER_CALL):
        for page in paginator.paginate(InstanceTypes=chunk, StartTime=now,
                                       ProductDescriptions=list(SPOT_PRODUCTS)):
            for quote in page.get("SpotPriceHistory", []):
                zone = zone_ids.get(quote["AvailabilityZone"], quote["AvailabilityZone"])
                key = (quote["InstanceType"], zone)
                stamp = quote["Timestamp"]
                if key not in latest or stamp > latest[key][0]:
                    latest[key] = (stamp, float(quote["SpotPrice"]))
    return {k: v[1] for k, v in latest.items()}


def refresh_aws(regions: Sequence[str] | None = None, out: Path | None = None, *,
                session: Any = None, now: datetime | None = None) -> RefreshReport:
    """Reprice the shipped AWS rows' SpotPrice from the live spot market and write the file."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    header, rows = read_rows(shipped("aws"))
    if "Source" not in header:
        header.append("Source")
    known = sorted({r["Region"] for r in rows})
    chosen = list(regions) if regions else known
    unknown = [r for r in chosen if r not in known]
    if unknown:
        raise InputError(f"--regions: no AWS catalog rows in {', '.join(unknown)} "
                         f"(catalog regions: {', '.join(known)})")
    session = session or boto3.session.Session()
    now = now or datetime.now(UTC)
    stamp = now.strftime("%Y-%m-%dT%H:%MZ")
    report = RefreshReport("aws", out or user_catalog_dir() / "aws_vms.csv", rows=len(rows),
                           regions=chosen)
    for region in chosen:
        in_region = [r for r in rows if r["Region"] == region]
        try:
            quotes = aws_spot_quotes(session.client("ec2", region_name=region),
                                     {r["InstanceType"] for r in in_region}, now)
        except NoCredentialsError:
            raise RefreshFailed("AWS credentials not found: run `aws configure` or set "
                                "AWS_PROFILE (read-only ec2:DescribeSpotPriceHistory and "
                                "ec2:DescribeAvailabilityZones are enough)") from None
        except (ClientError, BotoCoreError) as exc:
            raise RefreshFailed(f"AWS {region}: {exc}") from None
        for row in in_region:
            price = quotes.get((row["InstanceType"], row["AvailabilityZone"]))
            if price is None:
                report.missing += 1
                continue
            row["SpotPrice"] = f"{price:.6f}"
            row["Source"] = f"aws describe-spot-price-history {stamp}"
            report.updated += 1
    write_rows(report.path, header, rows)
    return report
