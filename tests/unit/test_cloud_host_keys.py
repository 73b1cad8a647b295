"""The clouds' trusted channels for host keys, against what they really print and return:
a recorded cloud-init console (fingerprints computed by ssh-keygen on the VM are the
reference for ours), EC2 GetConsoleOutput through moto, and Compute's getGuestAttributes
response shape served over HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import boto3
import pytest
from moto import mock_aws

from provision.backends.host_keys import (
    aws_console_host_keys,
    gcp_guest_attribute_host_keys,
    keys_from_console,
)
from provision.known_hosts import parse_keys

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hostkeys"
CONSOLE = (FIXTURES / "cloud-init-21.4-ubuntu-20.04-console.txt").read_text()


def test_console_block_keys_match_the_fingerprints_the_vm_printed() -> None:
    keys = parse_keys(keys_from_console(CONSOLE))
    assert [k.keytype for k in keys] == ["ecdsa-sha2-nistp256", "ssh-ed25519"]  # rsa: cut
    printed = {"ecdsa-sha2-nistp256": "SHA256:8KKnft4X6/5ANZjy4c9Pf8nLPghM25r2h7KQCcmMWJQ",
               "ssh-ed25519": "SHA256:BOyEUuM4iXqSIlaoCcp+wOsLB3w+ZBZLPxxNdEY7WkQ"}
    assert {k.keytype: k.fingerprint for k in keys} == printed


def test_no_block_means_no_keys() -> None:
    assert keys_from_console("[    0.000000] Linux version 6.1\n") == []
    assert keys_from_console(CONSOLE.split("-----BEGIN SSH HOST KEY KEYS")[0]) == []


@mock_aws
def test_aws_console_output_through_boto3() -> None:
    """moto's EC2 answers GetConsoleOutput with a fixed boot log without a key block: the
    call path works and says "nothing yet" (None), so the node is trusted on first use."""
    ec2 = boto3.client("ec2", region_name="us-east-1")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instance = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1,
                                 InstanceType="t3.micro")["Instances"][0]["InstanceId"]
    assert aws_console_host_keys(instance, "us-east-1") is None

    class Recorded:  # the same call answered with the recorded console
        def get_console_output(self, **kwargs):
            assert kwargs == {"InstanceId": instance, "Latest": True}
            return {"Output": CONSOLE}

    assert len(aws_console_host_keys(instance, "us-east-1", client=Recorded())) == 2


class _GuestAttributes(BaseHTTPRequestHandler):
    body: ClassVar[dict] = {}
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:  # http.server's naming
        type(self).seen.append(self.path)
        data = json.dumps(self.body).encode()
        self.send_response(200 if self.body else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def compute_api():
    server = HTTPServer(("127.0.0.1", 0), _GuestAttributes)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/compute/v1"
    server.shutdown()


def test_gcp_guest_attributes(compute_api: str) -> None:
    import requests

    ed = parse_keys(keys_from_console(CONSOLE))[1]
    _GuestAttributes.body = {
        "kind": "compute#guestAttributes", "queryPath": "hostkeys/",
        "queryValue": {"items": [
            {"namespace": "hostkeys", "key": ed.keytype, "value": ed.blob},
            {"namespace": "other", "key": "ssh-rsa", "value": "AAAA"},
            {"namespace": "hostkeys", "key": "ssh-rsa", "value": "not-base64!"}]}}
    keys = gcp_guest_attribute_host_keys("proj", "us-central1-a", "vm-1",
                                         session=requests.Session(), base_url=compute_api)
    assert keys == [ed.line()]
    assert _GuestAttributes.seen[-1] == ("/compute/v1/projects/proj/zones/us-central1-a/"
                                         "instances/vm-1/getGuestAttributes?queryPath=hostkeys%2F")
    _GuestAttributes.body = {}
    assert gcp_guest_attribute_host_keys("proj", "z", "vm-2", session=requests.Session(),
                                         base_url=compute_api) is None
