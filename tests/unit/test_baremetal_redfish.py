"""Redfish power and reinstall against the sushy-tools emulator (fake driver) on 127.0.0.1.

How the emulator's fake driver behaves (read from sushy_tools/emulator/resources/systems/
fakedriver.py): a reset is not applied at once. ``set_power_state`` stores a *pending* state
with an apply time 1-11 s (random) in the future, and the pending state is applied lazily on the
next read after that time; ForceRestart sets PowerState Off immediately and On when the pending
change applies. So PowerState right after a reset is still the old value (or Off after a
restart) — which is why the flow polls, with a bound. The fake driver also ignores
BootSourceOverrideEnabled ("Once" stays "Continuous"), which is why the flow puts disk boot back
itself after the install.

Each fake host is a TCP listener on 127.0.0.1 that sends an SSH banner only while its emulated
system reports PowerState On: SSH comes up exactly when the BMC has powered the machine on.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import bcrypt
import pytest
import requests

from provision.backends.bmc import BmcError, BmcRef, HostJob, connect, prepare_host
from stacks.baremetal import (
    BaremetalClusterArgs,
    BaremetalHostArgs,
    HostProvider,
    host_props,
)
from stacks.common import NodeArgs

PASSWORD = "correct-horse-4e1f9b"  # the emulator's BMC password in these tests
SYSTEMS = {
    "node-a": ("6d1c2a52-0000-4000-8000-00000000000a", "Off"),
    "node-b": ("6d1c2a52-0000-4000-8000-00000000000b", "On"),
    "node-c": ("6d1c2a52-0000-4000-8000-00000000000c", "Off"),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """sushy-emulator with the fake driver and basic auth, on an ephemeral 127.0.0.1 port."""
    d = tmp_path_factory.mktemp("sushy")
    port = free_port()
    (d / "htpasswd").write_text(
        "admin:" + bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode() + "\n")
    systems = [{"uuid": uuid, "name": name, "power_state": power, "external_notifier": False,
                "nics": [{"mac": f"52:54:00:00:00:0{i}", "ip": "127.0.0.1"}]}
               for i, (name, (uuid, power)) in enumerate(SYSTEMS.items())]
    (d / "emulator.conf").write_text(
        f"SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'\nSUSHY_EMULATOR_LISTEN_PORT = {port}\n"
        f"SUSHY_EMULATOR_FAKE_DRIVER = True\nSUSHY_EMULATOR_STATE_DIR = '{d / 'state'}'\n"
        f"SUSHY_EMULATOR_AUTH_FILE = '{d / 'htpasswd'}'\n"
        f"SUSHY_EMULATOR_FAKE_SYSTEMS = {systems!r}\n")
    exe = shutil.which("sushy-emulator", path=str(Path(sys.executable).parent)) or \
        shutil.which("sushy-emulator")
    assert exe, "sushy-emulator is not installed (pip install sushy-tools)"
    log = (d / "emulator.log").open("w")
    proc = subprocess.Popen([exe, "--config", str(d / "emulator.conf")], stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: _answers(url), 30, "sushy-emulator start")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def _answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/redfish/v1", timeout=1).status_code in (200, 401)
    except requests.RequestException:
        return False


def system_json(url: str, name: str) -> dict:
    uuid = SYSTEMS[name][0]
    return requests.get(f"{url}/redfish/v1/Systems/{uuid}", auth=("admin", PASSWORD),
                        timeout=5).json()


class FakeHost:
    """An 'OS' on 127.0.0.1 that answers SSH only while the emulated machine is powered on."""

    def __init__(self, url: str, name: str) -> None:
        self.url, self.name = url, name
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn, contextlib.suppress(requests.RequestException, ValueError):
                if system_json(self.url, self.name).get("PowerState") == "On":
                    conn.sendall(b"SSH-2.0-OpenSSH_9.2 fake\r\n")

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def hosts(emulator: str) -> Iterator[dict[str, FakeHost]]:
    made = {name: FakeHost(emulator, name) for name in SYSTEMS}
    yield made
    for h in made.values():
        h.close()


@pytest.fixture
def iso_server(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "installer.iso").write_bytes(b"\0" * 4096)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/installer.iso"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def ref(url: str, name: str, **kw) -> BmcRef:
    return BmcRef("redfish", url, "admin", password_env="TEST_BMC_PASSWORD",
                  system_id=SYSTEMS[name][0], **kw)


class Spy:
    """Wraps a real client; records each call and the emulator's view right after it."""

    def __init__(self, client, url: str, name: str, seen: list) -> None:
        self.client, self.url, self.name, self.seen = client, url, name, seen

    def __getattr__(self, attr):
        fn = getattr(self.client, attr)

        def call(*args):
            result = fn(*args)
            if attr not in ("power_state", "close"):
                s = system_json(self.url, self.name)
                self.seen.append((attr, args, s["Boot"]["BootSourceOverrideTarget"]))
            return result

        return call


def test_power_and_reinstall_through_the_dynamic_provider(emulator, hosts, iso_server,
                                                          monkeypatch, caplog):
    """node-a (off): PXE reinstall; node-b (on): virtual-media reinstall; node-c (off): power
    on only. Prepared in parallel, as Pulumi creates the host resources."""
    from provision.backends.bmc import ReinstallStep

    monkeypatch.setenv("TEST_BMC_PASSWORD", PASSWORD)
    caplog.set_level(logging.DEBUG)
    seen: dict[str, list] = {name: [] for name in SYSTEMS}

    def spying_connect(r: BmcRef):
        name = next(n for n, (uuid, _) in SYSTEMS.items() if uuid == r.system_id)
        return Spy(connect(r), emulator, name, seen[name])

    monkeypatch.setattr("stacks.baremetal.prepare_host",
                        functools.partial(prepare_host, connector=spying_connect))
    steps = {"node-a": ReinstallStep("pxe", None, 3),
             "node-b": ReinstallStep("virtual-media", iso_server, 3), "node-c": None}
    jobs = {}
    for name, step in steps.items():
        args = BaremetalClusterArgs(
            cluster="lab", ssh_user="ubuntu", ssh_wait_seconds=60, reinstall=step,
            power_on=step is None, power_off_on_destroy=step is not None,
            hosts=(BaremetalHostArgs(NodeArgs(name, "h100-sxm-80gb"), "127.0.0.1",
                                     ssh_port=hosts[name].port, bmc=ref(emulator, name)),))
        jobs[name] = host_props(args, args.hosts[0])
    provider = HostProvider()
    with ThreadPoolExecutor(len(jobs)) as pool:
        results = dict(zip(jobs, pool.map(provider.create, jobs.values()), strict=True))

    for name, result in results.items():
        assert result.id == name and result.outs["power_state"] == "on"
        assert system_json(emulator, name)["PowerState"] == "On"
    for name in ("node-a", "node-b"):
        assert results[name].outs["installed_generation"] == 3
        # one-time boot was set before the power action, disk boot restored at the end
        calls = [c[0] for c in seen[name]]
        assert calls.index("boot_once") < calls.index("set_power")
        assert seen[name][calls.index("boot_once")][2] == ("Pxe" if name == "node-a" else "Cd")
        assert calls[-1] == "boot_disk" and seen[name][-1][2] == "Hdd"
    # node-a was off: powered on; node-b was on: restarted; node-c: powered on, nothing else
    assert ("set_power", ("on",)) in [(c[0], c[1]) for c in seen["node-a"]]
    assert ("set_power", ("restart",)) in [(c[0], c[1]) for c in seen["node-b"]]
    assert [(c[0], c[1]) for c in seen["node-c"]] == [("set_power", ("on",))]
    assert results["node-c"].outs["installed_generation"] is None
    vm = requests.get(f"{emulator}/redfish/v1/Systems/{SYSTEMS['node-b'][0]}/VirtualMedia/Cd",
                      auth=("admin", PASSWORD), timeout=5).json()
    assert vm["Inserted"] is False  # the installer ISO was ejected after the install
    assert "insert_media" in [c[0] for c in seen["node-b"]]

    # release: power_off_on_destroy powers node-a and node-b off (the fake driver applies it
    # within ~11 s); node-c, without the flag, is left running
    for name, props in jobs.items():
        provider.delete(name, {**props, **results[name].outs})
    _wait(lambda: all(system_json(emulator, n)["PowerState"] == "Off"
                      for n in ("node-a", "node-b")), 20, "power off of both hosts")
    assert provider.read("node-a", results["node-a"].outs).outs["power_state"] == "off"
    assert provider.read("node-c", results["node-c"].outs).outs["power_state"] == "on"
    assert PASSWORD not in caplog.text  # sushy's debug logs and ours never show the password
    assert all(PASSWORD not in str(r.outs) for r in results.values())


def test_credentials_by_reference_and_errors_never_show_the_secret(emulator, tmp_path,
                                                                   monkeypatch):
    monkeypatch.delenv("TEST_BMC_PASSWORD", raising=False)
    with pytest.raises(BmcError, match="TEST_BMC_PASSWORD is not set"):
        connect(ref(emulator, "node-a"))
    secret_file = tmp_path / "bmc.pw"
    secret_file.write_text(PASSWORD + "\n")
    os.chmod(secret_file, 0o600)
    by_file = BmcRef("redfish", emulator, "admin", password_file=str(secret_file),
                     system_id=SYSTEMS["node-a"][0])
    client = connect(by_file)
    assert client.power_state() in ("on", "off")
    client.close()
    wrong = "wrong-pass-77d2"
    monkeypatch.setenv("TEST_BMC_PASSWORD", wrong)
    with pytest.raises(BmcError) as info:
        connect(ref(emulator, "node-a"))
    assert wrong not in str(info.value) and "Redfish" in str(info.value)
    assert by_file.to_json()["password_file"] == str(secret_file)
    assert PASSWORD not in str(by_file.to_json())


def test_ssh_wait_is_bounded(emulator, monkeypatch):
    closed = free_port()  # nothing listens here
    with pytest.raises(BmcError, match="did not answer within 1 s"):
        prepare_host(HostJob("gone", "127.0.0.1", closed, ssh_wait_seconds=1), lambda m: None)
