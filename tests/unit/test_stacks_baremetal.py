"""The bare-metal stack program under Pulumi's mock engine, from a plan file."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from provision.backends.baremetal import BaremetalBackend
from provision.backends.base import SshAccess
from provision.backends.offline import run_offline
from provision.backends.specs import cluster_spec
from provision.errors import InputError
from provision.plan import load_plan
from stacks.baremetal import HostProvider

DYNAMIC = "pulumi-python:dynamic:Resource"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests provision-test"
PLAN = """\
name: lab
target: baremetal
baremetal:
  power_on: true
  reinstall: {method: pxe, generation: 2}
  ssh_wait_seconds: 300
  power_off_on_destroy: true
  hosts:
    - address: 10.0.0.11
      sku: h100-sxm-80gb
      gpus: 8
      bmc: {endpoint: "https://10.0.1.11", username: admin, password_env: LAB_BMC_PW}
    - name: spare
      address: 10.0.0.12
      ssh_port: 2222
      ssh_user: root
      role: head
      bmc: {protocol: ipmi, endpoint: "10.0.1.12:623", username: admin,
            password_file: secrets/bmc.pw}
"""


def plan(tmp_path: Path, text: str = PLAN):
    path = tmp_path / "plan.yaml"
    path.write_text(textwrap.dedent(text))
    return load_plan(path)


def test_hosts_become_dynamic_resources_and_node_records(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_BMC_PW", "never-in-state-31337")
    loaded = plan(tmp_path)
    spec = cluster_spec(loaded, SshAccess("ubuntu", KEY, "/nonexistent/key"))
    assert [(n.name, n.role) for n in spec.nodes] == [("lab-1", "worker"), ("spare", "head")]
    run = run_offline(BaremetalBackend("/x").component(spec), fake_outputs=True)
    hosts = run.of_type(DYNAMIC)
    assert [h.name for h in hosts] == ["lab-1", "spare"]
    first, second = (h.inputs for h in hosts)
    assert {k: v for k, v in first["reinstall"].items() if v is not None} == {
        "method": "pxe", "generation": 2, "media_address": "127.0.0.1",
        "boot_timeout_seconds": 1800, "attempts": 2}
    assert first["power_on"] is True and first["power_off_on_destroy"] is True
    assert first["bmc"] == {"protocol": "redfish", "endpoint": "https://10.0.1.11",
                            "username": "admin", "password_env": "LAB_BMC_PW",
                            "verify_tls": True}
    # a relative password file is made absolute against the plan (the provider runs elsewhere)
    assert second["bmc"]["password_file"] == str((tmp_path / "secrets/bmc.pw").resolve())
    assert second["ssh_user"] == "root" and second["ssh_port"] == 2222
    assert "never-in-state-31337" not in str(run.resources)
    nodes = run.outputs["nodes"]
    assert [(n["name"], n["address"], n["ssh_port"], n["provider"]) for n in nodes] == [
        ("lab-1", "10.0.0.11", 22, "baremetal"), ("spare", "10.0.0.12", 2222, "baremetal")]
    assert nodes[0]["instance_id"] == "https://10.0.1.11" and nodes[0]["spot"] is False


def test_provider_reinstalls_only_when_the_generation_changes():
    provider = HostProvider()
    olds = {"name": "lab-1", "address": "10.0.0.11", "reinstall": {"method": "pxe",
            "generation": 2}, "installed_generation": 2, "power_state": "on", "ssh_port": 22}
    same = dict(olds, power_state=None, installed_generation=None)
    assert provider.diff("lab-1", olds, same).changes is False
    bumped = dict(same, reinstall={"method": "pxe", "generation": 3})
    diff = provider.diff("lab-1", olds, bumped)
    assert diff.changes is True and diff.replaces == []  # never delete a machine to reinstall
    labels_only = dict(same, sku="h100-sxm-80gb")
    result = provider.update("lab-1", olds, labels_only)  # no flow input changed: no BMC call
    assert result.outs["installed_generation"] == 2 and result.outs["power_state"] == "on"


def test_schema_rejects_inline_secrets_and_missing_bmcs(tmp_path):
    bad = PLAN.replace("password_env: LAB_BMC_PW", "password: hunter2")
    with pytest.raises(InputError) as info:
        plan(tmp_path, bad)
    assert "unknown key" in str(info.value) and "plan.yaml:" in str(info.value)
    assert "hunter2" not in str(info.value)
    no_bmc = """\
    name: lab
    target: baremetal
    baremetal:
      power_on: true
      hosts: [{address: 10.0.0.11}]
    """
    with pytest.raises(InputError, match="need a bmc on every host"):
        plan(tmp_path, no_bmc)
    media_ipmi = PLAN.replace("reinstall: {method: pxe, generation: 2}",
                              "reinstall: {method: virtual-media, image_url: 'http://x/i.iso'}")
    with pytest.raises(InputError, match="virtual-media reinstall needs Redfish"):
        plan(tmp_path, media_ipmi)
    with pytest.raises(InputError, match="needs a `baremetal:` section"):
        plan(tmp_path, "name: lab\ntarget: baremetal\n")


def test_image_install_inputs_carry_references_and_public_keys_only(tmp_path):
    """An image install's resource inputs: the reinstall step, the login (user, the cluster's
    public key, the private key's *path*, the cluster address on the interface's MAC) and a
    CA path — never a password or private key contents."""
    loaded = plan(tmp_path, """\
        name: imaged
        target: baremetal
        baremetal:
          power_on: true
          reinstall: {method: virtual-media, image: debian-12, generation: 4,
                      root_device: {serial: disk-0}, media_address: 192.0.2.1}
          hosts:
            - name: n1
              address: 192.0.2.10
              private_address: 10.1.0.5
              private_mac: "52:54:00:12:34:56"
              private_prefix: 16
              bmc: {endpoint: "https://192.0.2.110", username: admin, password_env: PW,
                    ca_file: ca.pem}
        access: {ssh_user: ops}
        """)
    spec = cluster_spec(loaded, SshAccess("ops", KEY, "/state/ssh/id_ed25519"))
    run = run_offline(BaremetalBackend("/x").component(spec), fake_outputs=True)
    (host,) = run.of_type(DYNAMIC)
    step = host.inputs["reinstall"]
    assert (step["image"], step["generation"], step["root_serial"], step["media_address"]) == (
        "debian-12", 4, "disk-0", "192.0.2.1")
    assert host.inputs["login"] == {
        "cluster": "imaged", "user": "ops", "public_key": KEY,
        "private_key_path": "/state/ssh/id_ed25519", "private_address": "10.1.0.5/16",
        "private_mac": "52:54:00:12:34:56"}
    assert host.inputs["bmc"]["ca_file"] == str((tmp_path / "ca.pem").resolve())
    assert "PRIVATE KEY" not in str(run.resources)


@pytest.mark.parametrize(("reinstall", "says"), [
    ("{method: pxe, image: debian-12}", "use method: virtual-media"),
    ("{method: virtual-media}", "needs image: debian-12"),
    ("{method: virtual-media, image: debian-12, image_url: 'http://x/i.iso'}", "not both"),
    ("{method: virtual-media, image: debian-12, root_device: {}}", "exactly one of serial"),
])
def test_reinstall_settings_are_checked(tmp_path, reinstall, says):
    path = tmp_path / "plan.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: bad
        target: baremetal
        baremetal:
          reinstall: {reinstall}
          hosts:
            - address: 192.0.2.10
              bmc: {{endpoint: "https://192.0.2.110", username: a, password_env: PW}}
        """))
    with pytest.raises(InputError) as err:
        load_plan(path)
    assert says in str(err.value) and "plan.yaml" in str(err.value)
