"""`provision catalog refresh`: AWS spot prices against moto, GCP against SKU page fixtures."""

from __future__ import annotations

import csv
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
import requests
from moto import mock_aws

from provision.catalog import load_catalog
from provision.catalog.refresh import RefreshFailed, refresh_aws, shipped, user_catalog_files
from provision.catalog.refresh_gcp import SERVICES, list_skus, refresh_gcp
from provision.errors import InputError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cloud"
FAKE_CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
              "AWS_DEFAULT_REGION": "us-east-1"}


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def aws_creds(monkeypatch):
    for k, v in FAKE_CREDS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def test_aws_spot_prices_from_the_spot_market(tmp_path, aws_creds):
    out = tmp_path / "aws_vms.csv"
    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        zone_ids = {z["ZoneId"] for z in session.client("ec2").describe_availability_zones()[
            "AvailabilityZones"]}
        report = refresh_aws(["us-east-1"], out, session=session,
                             now=datetime(2026, 11, 23, tzinfo=UTC))
    before, after = rows(shipped("aws")), rows(out)
    assert len(after) == len(before) == report.rows  # every shipped AWS row is kept
    assert report.updated > 0 and report.updated + report.missing == sum(
        r["Region"] == "us-east-1" for r in before)
    changed = [a for a in after if a["Source"].startswith("aws describe-spot-price-history")]
    assert len(changed) == report.updated
    assert all(a["Region"] == "us-east-1" and a["AvailabilityZone"] in zone_ids
               and a["SpotPrice"] == "0.000010" for a in changed)  # moto quotes 0.00001
    untouched = [(b, a) for b, a in zip(before, after, strict=True) if b["Region"] != "us-east-1"]
    assert all(b["SpotPrice"] == a["SpotPrice"] and not a["Source"] for b, a in untouched)
    # the file overlays the shipped AWS rows when loaded, with the refreshed prices
    cat = load_catalog([out])
    aws = [o for o in cat.offerings if o.provider == "aws"]
    assert aws and any(o.spot_price == pytest.approx(1e-5) and o.region == "us-east-1"
                       for o in aws)
    assert not any(o.spot_price == pytest.approx(1e-5) for o in aws if o.region != "us-east-1")


def test_aws_refresh_input_and_credential_errors(tmp_path, aws_creds, monkeypatch):
    with pytest.raises(InputError, match="no AWS catalog rows in mars-north-1"):
        refresh_aws(["mars-north-1"], tmp_path / "x.csv")
    for k in FAKE_CREDS:
        monkeypatch.delenv(k)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-metadata lookup
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing could leave anyway
    with pytest.raises(RefreshFailed, match="aws configure"):
        # botocore refuses to sign without credentials, before sending anything
        refresh_aws(["us-east-1"], tmp_path / "x.csv",
                    session=boto3.session.Session(region_name="us-east-1"))
    assert not (tmp_path / "x.csv").exists()


def _fixture_fetch(seen: list[str]):
    pages = {(SERVICES["compute"], ""): "gcp_skus_compute_1.json",
             (SERVICES["compute"], "page-2"): "gcp_skus_compute_2.json",
             (SERVICES["tpu"], ""): "gcp_skus_tpu_1.json"}

    def fetch(url: str, headers: dict[str, str]) -> dict:
        seen.append(url)
        parsed = urllib.parse.urlparse(url)
        service = parsed.path.split("/")[3]
        token = urllib.parse.parse_qs(parsed.query).get("pageToken", [""])[0]
        return json.loads((FIXTURES / pages[(service, token)]).read_text())

    return fetch


def test_gcp_sku_pages_are_followed():
    seen: list[str] = []
    skus = list_skus("compute", _fixture_fetch(seen))
    assert len(skus) == 11 and len(seen) == 2 and "pageToken=page-2" in seen[1]
    assert all(u.startswith("https://cloudbilling.googleapis.com/v1/services/6F81-5844-456A/")
               for u in seen)


def test_gcp_machines_gpus_and_tpus_are_repriced(tmp_path):
    out = tmp_path / "gcp_vms.csv"
    report = refresh_gcp(out, fetch=_fixture_fetch([]), regions=["us-central1", "us-east5"])
    got = rows(out)
    assert len(got) == len(rows(shipped("gcp"))) == report.rows

    def row(**match: str) -> dict[str, str]:
        return next(r for r in got if all(r[k] == v for k, v in match.items()))

    a3 = row(InstanceType="a3-highgpu-8g", AvailabilityZone="us-central1-a")
    assert float(a3["Price"]) == pytest.approx(208 * 0.02 + 1872 * 0.00283, abs=1e-4)
    assert float(a3["SpotPrice"]) == pytest.approx(208 * 0.006 + 1872 * 0.0008, abs=1e-4)
    h100 = row(AcceleratorName="H100", AcceleratorCount="8", AvailabilityZone="us-central1-a")
    assert (float(h100["Price"]), float(h100["SpotPrice"])) == (36.0, 16.0)
    v5p = row(AcceleratorName="tpu-v5p-16", AvailabilityZone="us-east5-a")
    assert (float(v5p["Price"]), float(v5p["SpotPrice"])) == (33.6, 12.8)  # 8 chips
    g2 = row(InstanceType="g2-standard-8", AvailabilityZone="us-central1-a")
    assert g2["Price"] == "0.29358" and not g2["Source"]  # no G2 SKU in the pages: kept
    assert report.updated > 0 and report.missing > 0
    offerings = [o for o in load_catalog([out]).offerings
                 if o.provider == "gcp" and o.instance_type == "a3-highgpu-8g"
                 and o.zone == "us-central1-a"]
    (a3_offer,) = offerings
    assert a3_offer.price == pytest.approx(float(a3["Price"]) + 36.0, abs=1e-3)  # machine + GPUs


def test_gcp_without_credentials_says_how_to_get_them(monkeypatch, tmp_path):
    for var in ("PROVISION_GCP_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no gcloud either
    with pytest.raises(RefreshFailed, match="PROVISION_GCP_API_KEY"):
        list_skus("compute")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_refresh_against_moto_server_then_listing_uses_it(run_cli, tmp_path):
    exe = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or \
        shutil.which("moto_server")
    assert exe, "moto_server is not installed (pip install 'moto[server]')"
    port = _free_port()
    server = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(url, timeout=1)
                break
            except requests.RequestException:
                assert time.monotonic() < deadline, "moto_server did not start"
                time.sleep(0.2)
        env = {**FAKE_CREDS, "AWS_ENDPOINT_URL": url, "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
               "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
               "AWS_CONFIG_FILE": str(tmp_path / "none")}
        proc = run_cli("catalog", "refresh", "--provider", "aws", "--regions", "us-east-1",
                       env=env, check=True)
        assert "rows repriced in 1 region(s)" in proc.stderr
        written = tmp_path / "cfg" / "provision" / "catalog" / "aws_vms.csv"
        assert written.is_file()
        listing = run_cli("catalog", "--provider", "aws", "--spot", "--region", "us-east-1",
                          "-o", "json", "--limit", "0", env=env, check=True)
        prices = {r["spot_price"] for r in json.loads(listing.stdout)["offerings"]}
        assert 1e-05 in prices  # the refreshed file is overlaid automatically
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_user_catalog_dir_follows_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert user_catalog_files() == []
    d = tmp_path / "provision" / "catalog"
    d.mkdir(parents=True)
    (d / "aws_vms.csv").write_text("x")
    (d / "notes.txt").write_text("x")
    assert user_catalog_files() == [d / "aws_vms.csv"]


def test_cli_gcp_refresh_against_recorded_pages_then_plan_dates_it(run_cli, tmp_path):
    """`provision catalog refresh --provider gcp` end to end: the Cloud Billing Catalog API's
    pages (tests/fixtures/cloud/gcp_skus_*.json, in the API's response format) served on
    127.0.0.1, the API key sent as the `key` query parameter, nextPageToken followed; the
    written file is overlaid on the catalog and dates GCP's prices by its stamps."""
    import http.server
    import threading

    pages = {(SERVICES["compute"], ""): "gcp_skus_compute_1.json",
             (SERVICES["compute"], "page-2"): "gcp_skus_compute_2.json",
             (SERVICES["tpu"], ""): "gcp_skus_tpu_1.json"}
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            parsed = urllib.parse.urlparse(self.path)
            query = urllib.parse.parse_qs(parsed.query)
            page = pages.get((parsed.path.split("/")[-2],
                              query.get("pageToken", [""])[0]))
            if query.get("key") != ["test-key"] or page is None:
                self.send_response(403)
                self.end_headers()
                return
            body = (FIXTURES / page).read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        env = {"PROVISION_GCP_BILLING_API": f"http://127.0.0.1:{server.server_port}/v1",
               "PROVISION_GCP_API_KEY": "test-key", "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
        proc = run_cli("catalog", "refresh", "--provider", "gcp", "--regions", "us-central1",
                       env=env, check=True)
    finally:
        server.shutdown()
        server.server_close()
    assert "gcp:" in proc.stderr and "rows repriced in 1 region(s)" in proc.stderr
    assert len(seen) == 3 and any("pageToken=page-2" in p for p in seen)
    written = tmp_path / "cfg" / "provision" / "catalog" / "gcp_vms.csv"
    h100 = next(r for r in rows(written) if r["AcceleratorName"] == "H100"
                and r["AcceleratorCount"] == "8" and r["AvailabilityZone"] == "us-central1-a")
    assert (float(h100["Price"]), float(h100["SpotPrice"])) == (36.0, 16.0)
    assert h100["Source"].startswith("gcp cloudbilling skus 20")
    listing = run_cli("catalog", "--provider", "gcp", "--gpu", "H100", "-o", "json",
                      "--limit", "0", env=env, check=True)
    out = json.loads(listing.stdout)
    assert out["ages"]["gcp"]["age_days"] == 0  # dated by the refresh's own stamp
