"""The spot watcher agent (playbooks/roles/spot_watcher/files/provision_spot_watcher.py) against
provision's instance-metadata emulator on 127.0.0.1: it notices an AWS spot notice and a GCP
preemption within one poll interval, runs the checkpoint hook once, records the marker, tells a
webhook, and survives hung, trickling and malformed metadata servers. The agent runs as the
real process it is on a node; nothing here reaches any address but the loopback."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from provision import interruption
from provision.simulate.metadata_server import MetadataServer, serve_in_thread
from tests.conftest import REPO

AGENT = REPO / "playbooks" / "roles" / "spot_watcher" / "files" / "provision_spot_watcher.py"


# ---- helpers ---------------------------------------------------------------------------------
def control(server: MetadataServer, path: str, body: dict | None = None,
            method: str = "POST") -> dict:
    req = urllib.request.Request(server.url + path, method=method,
                                 data=json.dumps(body or {}).encode())
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def requests_to(server: MetadataServer, key: str) -> int:
    return server.state.snapshot()["requests"].get(key, 0)


def wait_until(predicate, timeout: float, step: float = 0.02) -> float | None:
    """Seconds until ``predicate()`` held, or None after ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(step)
    return None


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@pytest.fixture
def emulator() -> Iterator[MetadataServer]:
    server = serve_in_thread()
    yield server
    server.shutdown()
    server.server_close()


class Agent:
    def __init__(self, tmp: Path, server_url: str, **options: object) -> None:
        self.marker = tmp / "interruption.json"
        self.hook_out = tmp / "hook.out"
        self.log = tmp / "watcher.log"
        opts: dict[str, object] = {
            "aws-url": server_url, "gcp-url": server_url, "marker": self.marker,
            "log-file": self.log, "interval": 1, "request-timeout": 1,
            "hook": f'echo "$PROVISION_INTERRUPTION_PROVIDER $PROVISION_INTERRUPTION_ACTION '
                    f'$PROVISION_SECONDS_LEFT" >> {self.hook_out}',
        }
        opts.update({k.replace("_", "-"): v for k, v in options.items()})
        self.argv = [sys.executable, str(AGENT)]
        for key, value in opts.items():
            if value is True:
                self.argv.append(f"--{key}")
            elif value is not None:
                self.argv += [f"--{key}", str(value)]
        self.proc: subprocess.Popen | None = None

    def start(self) -> Agent:
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        return self

    def run(self, timeout: float = 30) -> tuple[int, float]:
        started = time.monotonic()
        proc = subprocess.run(self.argv, capture_output=True, text=True, timeout=timeout)
        assert "Traceback" not in proc.stderr + self.log_text(), proc.stderr
        return proc.returncode, time.monotonic() - started

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def hook_lines(self) -> list[str]:
        return self.hook_out.read_text().splitlines() if self.hook_out.exists() else []

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


@pytest.fixture
def agents() -> Iterator[list[Agent]]:
    started: list[Agent] = []
    yield started
    for a in started:
        a.stop()


# ---- reacting to notices -------------------------------------------------------------------
def test_aws_spot_notice_runs_the_hook_within_one_interval(emulator, agents, tmp_path):
    interval = 1.0
    agent = Agent(tmp_path, emulator.url, provider="aws", interval=interval).start()
    agents.append(agent)
    action = "aws:/latest/meta-data/spot/instance-action"
    assert wait_until(lambda: requests_to(emulator, action) >= 2, 10) is not None
    assert not agent.marker.exists()  # 404: no notice, nothing recorded

    control(emulator, "/_emulator/aws/spot-action", {"action": "terminate", "in_seconds": 120})
    took = wait_until(lambda: agent.hook_lines(), interval + 3)
    assert took is not None, agent.log_text()
    assert took <= interval + 0.5, f"reacted after {took:.2f} s; the interval is {interval} s"

    provider, action_name, left = agent.hook_lines()[0].split()
    assert (provider, action_name) == ("aws", "terminate")
    assert 110 <= int(left) <= 120  # PROVISION_SECONDS_LEFT from the notice's time
    assert wait_until(lambda: (read_json(agent.marker) or {}).get("hook_status") == "ok", 5)
    record = read_json(agent.marker)
    assert record["provider"] == "aws" and record["action"] == "terminate"
    assert record["hook_exit_code"] == 0 and 110 <= record["seconds_left"] <= 120
    assert record["noticed_at"] < record["deadline"]
    # what the orchestrator reads over SSH parses into the same facts
    notice = interruption.parse(agent.marker.read_text())
    assert notice is not None and notice.checkpointed
    assert (notice.provider, notice.action, notice.hook_exit_code) == ("aws", "terminate", 0)
    assert 100 < notice.seconds_left() <= 120

    time.sleep(2.5 * interval)  # the notice stays up; more polls see it again
    assert len(agent.hook_lines()) == 1, "the hook ran twice for one notice"
    # IMDSv2: one session token, reused by every poll
    assert requests_to(emulator, "aws:token") == 1
    assert requests_to(emulator, action) >= 4


def test_gcp_preemption_runs_the_hook_within_one_interval(emulator, agents, tmp_path):
    interval = 2.0
    agent = Agent(tmp_path, emulator.url, provider="gcp", interval=interval).start()
    agents.append(agent)
    # from the second poll on the agent holds a wait_for_change request open
    assert wait_until(lambda: requests_to(emulator, "gcp:preempted") >= 3, 15) is not None

    control(emulator, "/_emulator/gcp/preempted", {"preempted": True})
    took = wait_until(lambda: agent.hook_lines(), interval + 3)
    assert took is not None, agent.log_text()
    assert took <= interval, f"reacted after {took:.2f} s; the interval is {interval} s"
    provider, action_name, left = agent.hook_lines()[0].split()
    assert (provider, action_name) == ("gcp", "preempted")
    assert 25 <= int(left) <= 30  # GCP gives about 30 s
    assert wait_until(lambda: (read_json(agent.marker) or {}).get("hook_status") == "ok", 5)
    time.sleep(interval + 0.5)  # at least one more poll sees the notice again
    assert len(agent.hook_lines()) == 1


def test_gcp_maintenance_terminate_is_a_notice_and_migrate_is_not(emulator, tmp_path):
    control(emulator, "/_emulator/gcp/maintenance-event",
            {"value": "MIGRATE_ON_HOST_MAINTENANCE"})
    agent = Agent(tmp_path, emulator.url, provider="gcp", once=True)
    assert agent.run()[0] == 0
    assert agent.hook_lines() == [] and not agent.marker.exists()
    assert "maintenance-event is MIGRATE_ON_HOST_MAINTENANCE" in agent.log_text()

    control(emulator, "/_emulator/gcp/maintenance-event",
            {"value": "TERMINATE_ON_HOST_MAINTENANCE"})
    assert agent.run()[0] == 0
    assert agent.hook_lines()[0].startswith("gcp terminate-on-host-maintenance ")
    assert read_json(agent.marker)["seconds_left"] > 3000  # an hour for GPU VMs


def test_auto_settles_on_the_service_that_answers(emulator, tmp_path):
    control(emulator, "/_emulator/gcp/preempted", {"preempted": True})
    bogus = "http://127.0.0.1:9"  # nothing listens on the discard port: AWS is absent
    agent = Agent(tmp_path, emulator.url, provider="auto", aws_url=bogus, once=True)
    assert agent.run()[0] == 0
    assert "metadata service found: gcp" in agent.log_text()
    assert [line.split()[0] for line in agent.hook_lines()] == ["gcp"]


def test_a_restarted_watcher_does_not_rerun_the_hook(emulator, tmp_path):
    control(emulator, "/_emulator/aws/spot-action", {"action": "stop", "in_seconds": 100})
    agent = Agent(tmp_path, emulator.url, provider="aws", once=True)
    assert agent.run()[0] == 0
    assert agent.run()[0] == 0  # a service restart: same notice, same boot
    assert len(agent.hook_lines()) == 1
    assert read_json(agent.marker)["action"] == "stop"


def test_a_marker_from_an_earlier_boot_is_moved_aside(emulator, tmp_path):
    agent = Agent(tmp_path, emulator.url, provider="aws", once=True)
    agent.marker.write_text(json.dumps({"provider": "aws", "boot_id": "an-earlier-boot",
                                        "handled": ["aws:terminate:x:an-earlier-boot"]}))
    assert agent.run()[0] == 0
    assert not agent.marker.exists()
    assert read_json(agent.marker.with_name("interruption.json.previous"))["boot_id"] \
        == "an-earlier-boot"


def test_the_hook_is_time_bounded_with_its_children(emulator, tmp_path):
    pidfile = tmp_path / "child.pid"
    control(emulator, "/_emulator/aws/spot-action", {"action": "terminate", "in_seconds": 90})
    agent = Agent(tmp_path, emulator.url, provider="aws", once=True, hook_timeout=1,
                  hook=f"sleep 300 & echo $! > {pidfile}; wait")
    rc, took = agent.run()
    assert rc == 0 and took < 10
    record = read_json(agent.marker)
    assert record["hook_status"] == "timed_out" and record["hook_exit_code"] is None
    child = int(pidfile.read_text())
    # the hook's background child died with it (gone, or a zombie waiting for its reaper)
    assert wait_until(lambda: not alive(child), 5) is not None


def test_a_failing_hook_is_recorded(emulator, tmp_path):
    control(emulator, "/_emulator/aws/spot-action", {"action": "terminate", "in_seconds": 90})
    agent = Agent(tmp_path, emulator.url, provider="aws", once=True, hook="exit 7")
    assert agent.run()[0] == 0
    record = read_json(agent.marker)
    assert (record["hook_status"], record["hook_exit_code"]) == ("failed", 7)


class _Collector(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_the_webhook_gets_the_notice_and_the_hook_result(emulator, tmp_path):
    _Collector.received = []
    hook_server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=hook_server.serve_forever, daemon=True).start()
    try:
        control(emulator, "/_emulator/gcp/preempted", {"preempted": True})
        url = f"http://127.0.0.1:{hook_server.server_address[1]}/spot"
        agent = Agent(tmp_path, emulator.url, provider="gcp", once=True, notify_url=url)
        assert agent.run()[0] == 0
        assert wait_until(lambda: len(_Collector.received) == 2, 5) is not None
        stages = sorted(r["hook_status"] for r in _Collector.received)
        assert stages == ["ok", "running"]
        assert all(r["provider"] == "gcp" and r["action"] == "preempted"
                   for r in _Collector.received)
    finally:
        hook_server.shutdown()
        hook_server.server_close()


# ---- misbehaving metadata servers ------------------------------------------------------------
def test_a_hung_metadata_server_does_not_hang_the_agent(emulator, agents, tmp_path):
    control(emulator, "/_emulator/hang", {"seconds": 60})
    agent = Agent(tmp_path, emulator.url, provider="auto", once=True, request_timeout=1)
    rc, took = agent.run(timeout=20)
    assert rc == 0
    assert took < 6, f"one round against a hung server took {took:.1f} s"
    assert "no complete answer within 1 s" in agent.log_text()

    # a watcher that kept polling through the hang notices once the server recovers
    looping = Agent(tmp_path / "loop", emulator.url, provider="aws", request_timeout=0.5)
    (tmp_path / "loop").mkdir()
    agents.append(looping.start())
    time.sleep(2)
    control(emulator, "/_emulator/hang", method="DELETE")
    control(emulator, "/_emulator/aws/spot-action", {"action": "terminate", "in_seconds": 120})
    assert wait_until(lambda: looping.hook_lines(), 6) is not None, looping.log_text()
    assert looping.proc is not None and looping.proc.poll() is None  # still running


def _serve_badly(behaviour: str) -> tuple[socket.socket, threading.Event]:
    """A TCP server on 127.0.0.1 that answers every connection badly."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    def answer(conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(4096)
                if behaviour == "trickle":  # one byte of a never-ending header every 0.2 s
                    conn.sendall(b"HTTP/1.1 200 OK\r\n")
                    for _ in range(150):
                        if done.is_set():
                            return
                        conn.sendall(b"X")
                        time.sleep(0.2)
                elif behaviour == "garbage":
                    conn.sendall(b"\x00\xffnot http at all\r\n\r\n\x00")
                elif behaviour == "huge":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nMetadata-Flavor: Google\r\n\r\n")
                    for _ in range(200):
                        conn.sendall(b"A" * 8192)
            except OSError:
                pass

    threading.Thread(target=serve, daemon=True).start()
    return listener, done


@pytest.mark.parametrize("behaviour", ["trickle", "garbage", "huge"])
def test_bad_servers_never_crash_or_stall_the_agent(behaviour, tmp_path):
    listener, done = _serve_badly(behaviour)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        agent = Agent(tmp_path, url, provider="auto", once=True, request_timeout=1)
        rc, took = agent.run(timeout=20)
        assert rc == 0 and took < 6, f"{behaviour}: {took:.1f} s"
        assert "metadata:" in agent.log_text()  # the failure is logged, not raised
        assert not agent.marker.exists()
    finally:
        done.set()
        listener.close()


def test_malformed_notices_are_ignored_not_fatal(emulator, tmp_path):
    control(emulator, "/_emulator/aws/spot-action", {"action": "terminate", "in_seconds": 120})
    control(emulator, "/_emulator/gcp/preempted", {"preempted": True})
    control(emulator, "/_emulator/malformed", {"on": True})
    for provider in ("aws", "gcp"):
        agent = Agent(tmp_path / provider, emulator.url, provider=provider, once=True)
        (tmp_path / provider).mkdir()
        assert agent.run()[0] == 0
        assert not agent.marker.exists() and agent.hook_lines() == []
        assert "unparseable" in agent.log_text()
    control(emulator, "/_emulator/malformed", method="DELETE")
    agent = Agent(tmp_path / "aws", emulator.url, provider="aws", once=True)
    assert agent.run()[0] == 0 and len(agent.hook_lines()) == 1


def test_configuration_is_validated(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"provider": "gcp", "interval": 5, "hook": "true",
                                "gcp_url": "http://127.0.0.1:1"}))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"provider": "azure", "intervall": 5}))
    check = [sys.executable, str(AGENT), "--check-config"]
    assert subprocess.run([*check, str(good)], capture_output=True).returncode == 0
    proc = subprocess.run([*check, str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown keys intervall" in proc.stderr


# ---- the emulator keeps the real protocols' rules ----------------------------------------------
def test_emulator_enforces_imdsv2_and_the_google_header(emulator):
    def call(method: str, path: str, headers: dict[str, str]) -> int:
        req = urllib.request.Request(emulator.url + path, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code

    assert call("PUT", "/latest/api/token", {}) == 400
    assert call("GET", "/latest/meta-data/spot/instance-action", {}) == 401
    assert call("GET", "/computeMetadata/v1/instance/preempted", {}) == 403
    req = urllib.request.Request(emulator.url + "/latest/api/token", method="PUT",
                                 headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    token = urllib.request.urlopen(req, timeout=5).read().decode()
    assert call("GET", "/latest/meta-data/spot/instance-action",
                {"X-aws-ec2-metadata-token": token}) == 404
    assert call("GET", "/latest/meta-data/spot/instance-action",
                {"X-aws-ec2-metadata-token": "forged"}) == 401


def test_emulator_wait_for_change_returns_on_change(emulator):
    flavor = {"Metadata-Flavor": "Google"}
    first = urllib.request.urlopen(urllib.request.Request(
        emulator.url + "/computeMetadata/v1/instance/preempted", headers=flavor), timeout=5)
    assert first.read() == b"FALSE"
    tag = first.headers["ETag"]
    threading.Timer(0.5, control, (emulator, "/_emulator/gcp/preempted",
                                   {"preempted": True})).start()
    started = time.monotonic()
    waited = urllib.request.urlopen(urllib.request.Request(
        emulator.url + f"/computeMetadata/v1/instance/preempted?wait_for_change=true"
        f"&last_etag={tag}&timeout_sec=20", headers=flavor), timeout=25)
    assert waited.read() == b"TRUE"
    assert 0.3 < time.monotonic() - started < 5
    assert waited.headers["ETag"] != tag


def test_emulator_refuses_non_loopback_addresses():
    with pytest.raises(ValueError, match="loopback"):
        MetadataServer("0.0.0.0", 0)


def test_agent_source_is_ruff_clean():
    """The agent lives in the role (not in provision/), so lint it here."""
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", str(AGENT)],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_orchestrator_side_parser_tolerates_no_or_broken_markers():
    assert interruption.parse("") is None  # READ_COMMAND prints nothing: no notice
    assert interruption.parse('{"provider": "aws", "action": "termin') is None  # half-written
    assert interruption.parse("[]") is None
    assert interruption.parse('{"provider": "gcp", "action": "preempted"}') is None
    notice = interruption.parse(json.dumps({
        "provider": "gcp", "action": "preempted", "noticed_at": "2030-01-01T00:00:00Z",
        "deadline": "2030-01-01T00:00:30Z", "hook_status": "weird", "hook_exit_code": True}))
    assert notice is not None
    assert (notice.hook_status, notice.hook_exit_code, notice.checkpointed) == ("none", None,
                                                                                 False)
    assert notice.seconds_left(notice.noticed_at) == 30
    assert interruption.READ_COMMAND.startswith("cat /var/lib/provision/interruption.json")
