"""Inventories are data, not text: what a plan or a stack output says can only ever be a
value, never a new Ansible variable. Checked with Ansible's own inventory parser."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from provision.backends.base import NodeRecord
from provision.errors import InputError
from provision.inventory import render_inventory
from provision.plan import load_plan

REPO = Path(__file__).resolve().parents[2]
INJECTION = "192.0.2.10\n      ansible_ssh_common_args: -o ProxyCommand='touch /tmp/pwned'"


def _baremetal_plan(tmp_path: Path, value: str, field: str = "address") -> Path:
    """examples/baremetal.yaml with its first host's ``field`` set to ``value``."""
    text = (REPO / "examples" / "baremetal.yaml").read_text()
    line = "address: 192.0.2.10\n"
    assert line in text
    new = (f"address: {json.dumps(value)}\n" if field == "address" else
           f"{line}      {field}: {json.dumps(value)}\n")
    plan = tmp_path / "plan.yaml"
    plan.write_text(text.replace(line, new, 1))
    return plan


@pytest.mark.parametrize("field", ["address", "private_address"])
@pytest.mark.parametrize("bad", [INJECTION, "host name", "-oProxyCommand=id", "a..b", ""])
def test_plan_refuses_addresses_that_are_not_hosts(tmp_path: Path, field: str, bad: str,
                                                   run_cli) -> None:
    plan = _baremetal_plan(tmp_path, bad, field)
    with pytest.raises(InputError) as err:
        load_plan(plan)
    assert f"baremetal.hosts[0].{field}" in str(err.value)
    assert "not an IP address or DNS host name" in str(err.value)
    proc = run_cli("plan", str(plan))
    assert proc.returncode == 2
    assert f"baremetal.hosts[0].{field}" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("good", ["192.0.2.10", "2001:db8::5", "gpu-a.example.com",
                                  "GPU-A", "node7."])
def test_plan_accepts_ips_and_dns_names(tmp_path: Path, good: str) -> None:
    loaded = load_plan(_baremetal_plan(tmp_path, good))
    assert loaded.plan.baremetal.hosts[0].address in (good, "2001:db8::5")


def test_inventory_values_cannot_become_variables(tmp_path: Path) -> None:
    """Node records come from stack outputs too (not only from the plan): whatever their
    strings hold, hosts.yml carries them as values. Ansible's parser is the judge."""
    nodes = [
        NodeRecord(name="evil-1", address=INJECTION, ssh_user="ubuntu\nansible_become: true",
                   sku="h100-sxm-80gb", provider="aws", role="head",
                   zone="us-east-1a\n  injected: yes", instance_id="i-1: {x: 1}"),
        NodeRecord(name="evil-2", address="10.0.0.2", ssh_user="ubuntu", sku="cpu",
                   provider="aws", private_address="[1, 2]"),
    ]
    inv = render_inventory(tmp_path / "inv", "evil", "aws", nodes,
                           {"ansible_ssh_private_key_file": "/k"}, {"h100-sxm-80gb": "H100"})
    data = yaml.safe_load(inv.hosts_file.read_text())
    host = data["all"]["hosts"]["evil-1"]
    assert host["ansible_host"] == INJECTION
    assert host["ansible_user"] == "ubuntu\nansible_become: true"
    assert "ansible_ssh_common_args" not in host and "ansible_become" not in host
    assert data["all"]["hosts"]["evil-2"]["provision_private_address"] == "[1, 2]"
    listed = subprocess.run(["ansible-inventory", "-i", str(inv.hosts_file), "--list"],
                            capture_output=True, text=True, check=True, timeout=120)
    hostvars = json.loads(listed.stdout)["_meta"]["hostvars"]
    assert "ansible_ssh_common_args" not in hostvars["evil-1"]
    assert "ansible_become" not in hostvars["evil-1"]
    assert "injected" not in hostvars["evil-1"]
    assert hostvars["evil-1"]["provision_zone"] == "us-east-1a\n  injected: yes"
    assert sorted(json.loads(listed.stdout)["head"]["hosts"]) == ["evil-1"]
