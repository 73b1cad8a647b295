"""The bare-metal stack through the real Pulumi engine (CLI + file:// backend + the Python
dynamic provider host), against sushy-tools' Redfish emulator (fake driver) on 127.0.0.1.

No mocks between provision and the engine: `pulumi up` serializes HostProvider, starts it in
`pulumi-resource-pulumi-python`, and the provider powers the emulated systems on; `refresh`
reads the BMC's power state back into state; a failing delete (the BMC refuses the
credentials) leaves the host in state and `destroy` names it; a second destroy with the right
credentials powers it off and removes the stack. The VM end to end (tests/e2e/
test_baremetal_lab.py) runs the same engine path against real virtual servers.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import requests

from provision.backends.base import SshAccess
from provision.backends.specs import cluster_spec
from provision.plan import load_plan
from tests.pulumi_cli import pulumi_path
from tests.unit.test_baremetal_redfish import (  # noqa: F401  (fixtures)
    PASSWORD,
    SYSTEMS,
    _wait,
    emulator,
    hosts,
    system_json,
)

pytestmark = pytest.mark.skipif(pulumi_path() is None, reason="no pulumi CLI (./install.sh "
                                "builds it from its Go module)")


def _plan(tmp_path: Path, url: str, hosts_: dict) -> Path:
    rows = "".join(textwrap.dedent(f"""\
        - name: {name}
          address: 127.0.0.1
          ssh_port: {hosts_[name].port}
          bmc: {{endpoint: "{url}", system_id: {SYSTEMS[name][0]}, username: admin,
                password_env: TEST_BMC_PASSWORD}}
        """) for name in ("node-a", "node-c"))
    path = tmp_path / "plan.yaml"
    path.write_text("name: engine-bm\ntarget: baremetal\nbaremetal:\n  power_on: true\n"
                    "  power_off_on_destroy: true\n  ssh_wait_seconds: 90\n  hosts:\n"
                    + textwrap.indent(rows, "    "))
    return path


def _power(url: str, name: str, reset: str) -> None:
    uuid = SYSTEMS[name][0]
    rsp = requests.post(f"{url}/redfish/v1/Systems/{uuid}/Actions/ComputerSystem.Reset",
                        json={"ResetType": reset}, auth=("admin", PASSWORD), timeout=10)
    assert rsp.status_code in (200, 204), rsp.text


def test_up_refresh_destroy_through_the_real_engine(tmp_path, monkeypatch, emulator,  # noqa: F811
                                                    hosts):  # noqa: F811
    from provision.backends.baremetal import BaremetalBackend

    monkeypatch.setenv("PATH", f"{pulumi_path()}:{__import__('os').environ['PATH']}")
    monkeypatch.setenv("TEST_BMC_PASSWORD", PASSWORD)
    _power(emulator, "node-a", "ForceOff")
    _power(emulator, "node-c", "ForceOff")
    loaded = load_plan(_plan(tmp_path, emulator, hosts))
    spec = cluster_spec(loaded, SshAccess("root", "ssh-ed25519 AAAA test", "/nonexistent"))
    backend = BaremetalBackend(tmp_path / "state")
    events: list[str] = []
    records = backend.apply(spec, events.append)
    assert sorted(r.name for r in records) == ["node-a", "node-c"]
    assert all(r.provider == "baremetal" and r.address == "127.0.0.1" for r in records)
    assert {system_json(emulator, n)["PowerState"] for n in ("node-a", "node-c")} == {"On"}
    assert any("create" in e and "node-a" in e for e in events), events
    checkpoint = tmp_path / "state/pulumi/backend/.pulumi/stacks/provision-baremetal"
    assert any(checkpoint.glob("engine-bm.json*")), "the file backend holds the stack"
    assert PASSWORD not in "".join(p.read_text() for p in checkpoint.glob("engine-bm.json*"))

    # rerun: same inputs, nothing to do
    again: list[str] = []
    backend.apply(spec, again.append)
    assert not [e for e in again if e.startswith(("create ", "update ", "delete "))], again

    # refresh reads the BMC: a host switched off behind our back shows as off in state
    _power(emulator, "node-c", "ForceOff")
    _wait(lambda: system_json(emulator, "node-c")["PowerState"] == "Off", 30,
          "the fake driver applying the power-off")
    backend.runner.refresh(backend.target("engine-bm"), events.append)
    states = {r["urn"].rsplit("::", 1)[-1]: r.get("outputs", {}).get("power_state")
              for r in backend.runner.resources(backend.target("engine-bm"))
              if r.get("type", "").startswith("pulumi-python:dynamic")}
    assert states == {"node-a": "on", "node-c": "off"}, states

    # the BMC refuses the credentials: delete fails, the host stays and is named
    monkeypatch.setenv("TEST_BMC_PASSWORD", "wrong-password")
    report = backend.destroy("engine-bm", events.append)
    assert report.leftovers and all("node-a" in left or "node-c" in left
                                    for left in report.leftovers), report
    assert any("node-a" in left for left in report.leftovers)
    assert system_json(emulator, "node-a")["PowerState"] == "On"

    monkeypatch.setenv("TEST_BMC_PASSWORD", PASSWORD)
    report = backend.destroy("engine-bm", events.append)
    assert report.clean, report.leftovers
    assert system_json(emulator, "node-a")["PowerState"] == "Off"
    assert not any(checkpoint.glob("engine-bm.json")), "the stack is removed"
