"""GCP price refresh through the Cloud Billing Catalog API (``services.skus.list``).

Three kinds of row in SkyPilot's GCP catalog are repriced, each from SKUs matched by the
description patterns below (the same conventions SkyPilot's fetcher relies on):

  machine rows (a2-/a3-/g2-...)  vCPUs × "<series> Instance Core" + GiB × "<series> Instance Ram"
  GPU rows (no InstanceType)     count × the GPU's SKU ("Nvidia H100 80GB GPU ...")
  TPU rows (tpu-...)             chips (or 8-core units) × the generation's SKU

usageType OnDemand → Price, Preemptible → SpotPrice (TPU spot SKUs are told apart by
"Preemptible" in the description). A row whose SKU is not found keeps its shipped price.

Credentials: an API key in ``$PROVISION_GCP_API_KEY`` / ``$GOOGLE_API_KEY`` (the catalog is
public data; any key with the Cloud Billing API enabled works), else an OAuth token from
``gcloud auth print-access-token``. ``$PROVISION_GCP_BILLING_API`` points at another endpoint
serving the same API (a proxy or mirror; the tests serve recorded pages on 127.0.0.1).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from provision.catalog.refresh import (
    RefreshFailed,
    RefreshReport,
    read_rows,
    shipped,
    user_catalog_dir,
    write_rows,
)

API = "https://cloudbilling.googleapis.com/v1"
API_ENV = "PROVISION_GCP_BILLING_API"  # another endpoint (a proxy or mirror), like AWS_ENDPOINT_URL
SERVICES = {"compute": "6F81-5844-456A", "tpu": "E000-3F24-B8AA"}  # cloud.google.com/skus

# Machine series → the words its CPU/RAM SKUs carry ("A3 Instance Core running in Americas").
SERIES: dict[str, str] = {"a2": "A2 Instance", "a3": "A3 Instance", "a4": "A4 Instance",
                          "g2": "G2 Instance", "n1": "N1 Predefined Instance"}
# Catalog GPU name → substrings of its SKU description (any matches).
GPU_SKUS: dict[str, tuple[str, ...]] = {
    "A100": ("A100 GPU",),
    "A100-80GB": ("A100 80GB GPU",),
    "H100": ("H100 80GB GPU",),
    "H100-MEGA": ("H100 80GB Mega GPU", "H100 Mega 80GB GPU", "H100 80GB Plus GPU"),
    "H200": ("H200 141GB GPU",),
    "B200": ("B200",),
    "L4": ("L4 GPU",),
    "T4": ("T4 GPU",),
    "V100": ("V100 GPU",),
    "P100": ("P100 GPU",),
    "P4": ("P4 GPU",),
}


@dataclass(frozen=True)
class TpuSku:
    words: str  # description key: TpuV5p, TpuV5e, TpuV6e, Tpu-v4
    cores_per_unit: int  # the SKU prices this many of the slice name's units (cores or chips)
    pod: bool | None = None  # v2/v3/v4 price pods and devices apart; None: no distinction


TPU_SKUS: dict[str, TpuSku] = {
    "v5p": TpuSku("TpuV5p", 2),  # per chip = 2 cores (the v5p-N suffix counts cores)
    "v5litepod": TpuSku("TpuV5e", 1),  # per chip (the suffix counts chips)
    "v6e": TpuSku("TpuV6e", 1),
    "v4": TpuSku("Tpu-v4", 8, pod=True),
    "v3": TpuSku("Tpu-v3", 8),
    "v2": TpuSku("Tpu-v2", 8),
}
_TPU_ROW = re.compile(r"^tpu-(v[0-9]+[a-z]*(?:litepod|pod)?)-([0-9]+)$")

Fetch = Callable[[str, dict[str, str]], dict[str, Any]]


def _http_fetch(url: str, headers: dict[str, str]) -> dict[str, Any]:
    req = urllib.request.Request(url, headers=headers)  # a fixed https API URL
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


def _auth() -> tuple[dict[str, str], dict[str, str]]:
    """(query params, headers) for the API; never logged."""
    key = os.environ.get("PROVISION_GCP_API_KEY") or os.environ.get("GOOGLE_API_KEY")
    if key:
        return {"key": key}, {}
    gcloud = shutil.which("gcloud")
    if gcloud:
        proc = subprocess.run([gcloud, "auth", "print-access-token"], capture_output=True,
                              text=True, timeout=30, check=False)
        if proc.returncode == 0 and proc.stdout.strip():
            return {}, {"Authorization": f"Bearer {proc.stdout.strip()}"}
    raise RefreshFailed("no GCP credentials for the Cloud Billing Catalog API: set "
                        "PROVISION_GCP_API_KEY to an API key (Cloud Billing API enabled), or "
                        "run `gcloud auth login`")


def list_skus(service: str, fetch: Fetch | None = None) -> list[dict[str, Any]]:
    """Every SKU of a billing service, following nextPageToken."""
    params, headers = ({}, {}) if fetch else _auth()
    fetch = fetch or _http_fetch
    skus: list[dict[str, Any]] = []
    token = ""
    for _ in range(1000):  # bounded: the compute service has a few dozen pages
        query = {**params, "pageSize": "5000", **({"pageToken": token} if token else {})}
        base = os.environ.get(API_ENV, API).rstrip("/")
        url = f"{base}/services/{SERVICES[service]}/skus?{urllib.parse.urlencode(query)}"
        try:
            page = fetch(url, headers)
        except OSError as exc:
            raise RefreshFailed(f"Cloud Billing Catalog API: {exc}") from None
        skus += page.get("skus", [])
        token = page.get("nextPageToken", "")
        if not token:
            return skus
    raise RefreshFailed("Cloud Billing Catalog API: too many pages")


def unit_price(sku: dict[str, Any]) -> float:
    rate = sku["pricingInfo"][0]["pricingExpression"]["tieredRates"][-1]["unitPrice"]
    return int(rate.get("units") or 0) + rate.get("nanos", 0) / 1e9


def _usable(sku: dict[str, Any]) -> bool:
    cat = sku.get("category", {})
    text = sku.get("description", "").lower()
    return (cat.get("resourceFamily") == "Compute"
            and cat.get("usageType") in ("OnDemand", "Preemptible")
            and not any(w in text for w in ("custom", "premium", "reserved", "sole tenancy",
                                            "commitment", "dws", "calendar mode")))


class Prices:
    """SKU lookups by region, kind (on demand or spot) and description words."""

    def __init__(self, skus: Iterable[dict[str, Any]]) -> None:
        self.skus = [s for s in skus if _usable(s)]

    def find(self, region: str, spot: bool, words: Iterable[str], *,
             group: str | None = None, tpu: bool = False,
             pod: bool | None = None) -> float | None:
        for sku in self.skus:
            if region not in sku.get("serviceRegions", []):
                continue
            text = sku["description"]
            usage = sku["category"]["usageType"]
            is_spot = "Preemptible" in text if tpu else usage == "Preemptible"
            if is_spot != spot or not any(w in text for w in words):
                continue
            if group and sku["category"].get("resourceGroup") != group:
                continue
            if pod is not None and ("Pod" in text) != pod:
                continue
            return unit_price(sku)
        return None


def _num(value: str) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def price_row(row: dict[str, str], prices: Prices, spot: bool) -> float | None:
    """The row's hourly price (whole row: machine, GPUs or slice), or None if not found."""
    region = row["Region"]
    instance = (row.get("InstanceType") or "").strip()
    accel = (row.get("AcceleratorName") or "").strip()
    tpu = _TPU_ROW.match(accel)
    if tpu and not instance:
        sku = TPU_SKUS.get(tpu.group(1))
        if sku is None:
            return None
        units = int(tpu.group(2))
        pod = sku.pod if sku.pod is not None else (units > 8 if sku.cores_per_unit == 8 else None)
        per = prices.find(region, spot, (sku.words,), tpu=True, pod=pod)
        return None if per is None else per * units / sku.cores_per_unit
    if not instance and accel in GPU_SKUS:
        per = prices.find(region, spot, GPU_SKUS[accel], group="GPU")
        count = _num(row.get("AcceleratorCount", ""))
        return None if per is None or not count else per * count
    series = SERIES.get(instance.split("-")[0]) if instance else None
    if series:
        cpus, mem = _num(row.get("vCPUs", "")), _num(row.get("MemoryGiB", ""))
        core = prices.find(region, spot, (f"{series} Core",))
        ram = prices.find(region, spot, (f"{series} Ram",))
        if core is None or ram is None or cpus is None or mem is None:
            return None
        return core * cpus + ram * mem
    return None


def refresh_gcp(out: Path | None = None, *, regions: list[str] | None = None,
                fetch: Fetch | None = None, now: datetime | None = None) -> RefreshReport:
    """Reprice the shipped GCP rows (machines, GPUs, TPUs) and write the file."""
    header, rows = read_rows(shipped("gcp"))
    if "Source" not in header:
        header.append("Source")
    prices = Prices(list_skus("compute", fetch) + list_skus("tpu", fetch))
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%MZ")
    report = RefreshReport("gcp", out or user_catalog_dir() / "gcp_vms.csv", rows=len(rows),
                           regions=sorted(set(regions) if regions
                                          else {r["Region"] for r in rows}))
    for row in rows:
        if regions and row["Region"] not in regions:
            continue
        on_demand, spot = price_row(row, prices, False), price_row(row, prices, True)
        if on_demand is None and spot is None:
            report.missing += 1
            continue
        if on_demand is not None:
            row["Price"] = f"{on_demand:.5f}"
        if spot is not None:
            row["SpotPrice"] = f"{spot:.5f}"
        row["Source"] = f"gcp cloudbilling skus {stamp}"
        report.updated += 1
    write_rows(report.path, header, rows)
    return report
