"""The image install's and the lab's pieces, each checked against a reader we did not write:
cloud-init's own schema for the seed, GNU cpio for the ramdisk archive, libvirt's XML parser
conventions and QEMU's option syntax for the domain, the plan schema for the lab's plan block,
and a real HTTP client for the media server."""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import requests
import yaml

from provision.backends.baremetal_image import _newc
from provision.backends.baremetal_media import (
    MediaServer,
    NodeIdentity,
    marker_text,
    new_host_key,
    seed,
)
from provision.lab.domain import ServerSpec, domain_xml
from provision.lab.lab import Lab, Server, plan_block
from provision.plan import load_plan

IDENTITY = NodeIdentity("c1", "lab-1", "debian", "ssh-ed25519 AAAAC3Nza test@op", 3,
                        "abc123", "10.77.0.11/24", "52:54:00:aa:02:01")


def test_seed_is_valid_cloud_config_with_pinned_host_key_and_marker():
    key = new_host_key()
    files = seed(IDENTITY, key)
    assert files["user-data"].startswith("#cloud-config\n")
    user = yaml.safe_load(files["user-data"])
    assert user["ssh_keys"]["ed25519_public"] == key.public
    assert key.public.startswith("ssh-ed25519 ") and len(key.public.split()) == 2
    assert user["ssh_genkeytypes"] == ["ed25519"] and user["ssh_deletekeys"] is True
    assert user["users"][0]["ssh_authorized_keys"] == [IDENTITY.authorized_key]
    assert marker_text(IDENTITY) in user["runcmd"][0][2]
    net = yaml.safe_load(files["network-config"])
    assert net["ethernets"]["cluster"] == {"match": {"macaddress": "52:54:00:aa:02:01"},
                                           "addresses": ["10.77.0.11/24"], "dhcp4": False}
    assert "PRIVATE KEY" not in repr(key)  # never printed
    try:  # cloud-init's own schema, where cloud-init is installed
        from cloudinit.config.schema import get_schema, validate_cloudconfig_schema
    except ImportError:
        return
    validate_cloudconfig_schema(user, get_schema(), strict=True)


@pytest.mark.skipif(shutil.which("cpio") is None, reason="GNU cpio not installed")
def test_ramdisk_archive_reads_back_with_gnu_cpio(tmp_path: Path):
    data = _newc({"init": (b"#!/bin/sh\necho hi\n", 0o755), "usr/bin/tool": (b"x" * 5, 0o755)})
    proc = subprocess.run(["cpio", "-idm", "--quiet"], input=data, cwd=tmp_path,
                          capture_output=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "init").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert (tmp_path / "init").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "usr/bin/tool").read_bytes() == b"xxxxx"


def _server(tmp: Path) -> ServerSpec:
    return ServerSpec("provision-t-1", "59043b48-992c-5df2-8c26-8697e1040f01", 1024, 1,
                      tmp / "root.img", (tmp / "n0.img", tmp / "n1.img"), 16101,
                      "52:54:00:00:01:01", "52:54:00:00:02:01", tmp / "switch",
                      tmp / "vars.fd", tmp / "console.log")


def test_domain_is_isolated_uefi_with_nvme_and_root_serial(tmp_path: Path):
    root = ET.fromstring(domain_xml(_server(tmp_path)))
    assert root.get("type") == "qemu"  # TCG: KVM hangs on these machines
    assert root.find("os/loader").get("type") == "pflash"
    assert root.find("devices/disk/serial").text == "provision-root"
    assert root.find("devices/interface") is None  # no libvirt network (firewall rules)
    args = [a.get("value") for a in root.iter(
        "{http://libvirt.org/schemas/domain/qemu/1.0}arg")]
    user = args[args.index("-netdev") + 1]
    assert user.startswith("user,") and "restrict=on" in user
    assert "hostfwd=tcp:127.0.0.1:16101-:22" in user  # only loopback is forwarded
    assert f"vde,id=cluster,sock={tmp_path / 'switch'}" in args
    assert sum(a.startswith("nvme,") for a in args) == 2


def test_lab_plan_block_is_a_valid_plan(tmp_path: Path):
    lab = Lab("t", tmp_path, 16000, 1024, 1, 2, servers=[Server(
        1, "t-1", "provision-t-1", "u", 16101, 16001, "52:54:00:00:01:01",
        "52:54:00:00:02:01", "10.77.0.11", "r", ["a", "b"])])
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan_block(lab)))
    plan = load_plan(path).plan
    host = plan.baremetal.hosts[0]
    assert host.bmc.endpoint == "https://127.0.0.1:16001" and host.bmc.verify_tls
    assert host.bmc.password_file and not host.bmc.password_env
    assert plan.baremetal.reinstall.image == "debian-12"
    assert plan.access.operator_cidr == "10.0.2.2/32"


def test_media_server_serves_only_the_token_path(tmp_path: Path):
    with MediaServer(directory=tmp_path / "m") as server:
        (server.directory / "n.iso").write_bytes(b"iso")
        assert requests.get(server.url("n.iso"), timeout=5).content == b"iso"
        base = server.url("n.iso").rsplit("/", 2)[0]
        assert requests.get(f"{base}/n.iso", timeout=5).status_code == 404
        assert requests.get(server.url(""), timeout=5).status_code == 404
        assert requests.get(server.url("../m/n.iso"), timeout=5).status_code == 404
    assert not (tmp_path / "m").exists()  # the medium (with its seed) is gone afterwards
