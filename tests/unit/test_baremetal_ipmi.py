"""IPMI power and PXE reinstall against pyghmi's server-side BMC on 127.0.0.1 (UDP)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from provision.backends.bmc import BmcError, BmcRef, HostJob, ReinstallStep, connect, prepare_host

FAKE_BMC = Path(__file__).resolve().parents[1] / "fixtures" / "cloud" / "fake_ipmi_bmc.py"
PASSWORD = "ipmi-pass-0a7e"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ipmi_bmc(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port, log = free_udp_port(), tmp_path / "bmc.log"
    log.touch()
    proc = subprocess.Popen([sys.executable, str(FAKE_BMC), str(port), str(log)],
                            env={"FAKE_BMC_PASSWORD": PASSWORD, "PATH": ""},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)  # the socket is bound at start; pyghmi retries its first packet anyway
        assert proc.poll() is None, "fake IPMI BMC exited"
        yield f"127.0.0.1:{port}", log
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def ssh_banner() -> Iterator[int]:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(b"SSH-2.0-OpenSSH_9.2 fake\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(timeout=5)
    server.close()


def test_pxe_reinstall_over_ipmi(ipmi_bmc, ssh_banner, monkeypatch):
    endpoint, log = ipmi_bmc
    monkeypatch.setenv("IPMI_PW", PASSWORD)
    ref = BmcRef("ipmi", endpoint, "admin", password_env="IPMI_PW")
    events: list[str] = []
    outcome = prepare_host(HostJob("node-i", "127.0.0.1", ssh_banner, bmc=ref,
                                   reinstall=ReinstallStep("pxe", generation=1),
                                   ssh_wait_seconds=10), events.append)
    assert outcome.reinstalled and outcome.ssh_ready and outcome.power_state == "on"
    # one-time network boot before the power action, disk (default) boot after the install
    assert log.read_text().splitlines() == ["boot network", "power on", "boot default"]
    assert PASSWORD not in "\n".join(events)


def test_ipmi_refuses_virtual_media_and_wrong_passwords(ipmi_bmc, monkeypatch):
    endpoint, _ = ipmi_bmc
    monkeypatch.setenv("IPMI_PW", PASSWORD)
    client = connect(BmcRef("ipmi", endpoint, "admin", password_env="IPMI_PW"))
    try:
        with pytest.raises(BmcError, match="no virtual media"):
            client.insert_media("http://127.0.0.1/installer.iso")
    finally:
        client.close()
    monkeypatch.setenv("IPMI_PW", "not-the-password-91")
    with pytest.raises(BmcError) as info:
        connect(BmcRef("ipmi", endpoint, "admin", password_env="IPMI_PW"))
    assert "not-the-password-91" not in str(info.value)
