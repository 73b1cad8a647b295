"""SIMULATED cloud instance-metadata service (provision-sim) for testing interruption handling.

Serves, on a loopback address only, the parts of two real metadata services that the spot
watcher (playbooks/roles/spot_watcher) reads, with the real protocol rules:

AWS IMDSv2 (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/spot-instance-termination-notices.html)
  PUT /latest/api/token            needs ``X-aws-ec2-metadata-token-ttl-seconds`` (1-21600),
                                   else 400; answers a session token
  GET /latest/meta-data/...        needs ``X-aws-ec2-metadata-token`` with a live token, else 401
  GET /latest/meta-data/spot/instance-action
                                   404 while there is no notice; then 200
                                   ``{"action": "terminate"|"stop"|"hibernate", "time": ISO8601Z}``
  GET /latest/meta-data/instance-id, /latest/meta-data/instance-life-cycle

GCP (https://cloud.google.com/compute/docs/metadata/querying-metadata)
  GET /computeMetadata/v1/instance/preempted           "FALSE" | "TRUE"
  GET /computeMetadata/v1/instance/maintenance-event   "NONE" | "MIGRATE_ON_HOST_MAINTENANCE"
                                                       | "TERMINATE_ON_HOST_MAINTENANCE"
  GET /computeMetadata/v1/instance/id
  every request needs ``Metadata-Flavor: Google`` (else 403) and every answer carries it and an
  ``ETag``; ``?wait_for_change=true`` blocks until the value's ETag differs from
  ``last_etag`` (or from the value at request time) or ``timeout_sec`` passes (capped at 60 s).

Control endpoints for tests (not part of any cloud):
  POST /_emulator/aws/spot-action   {"action": "terminate", "time": "2030-01-01T00:00:00Z"}
                                    or {"action": "stop", "in_seconds": 120}; DELETE clears it
  POST /_emulator/gcp/preempted     {"preempted": true}
  POST /_emulator/gcp/maintenance-event  {"value": "TERMINATE_ON_HOST_MAINTENANCE"}
  POST /_emulator/hang              {"seconds": 30}: every metadata answer is delayed that long
  POST /_emulator/malformed         {"on": true}: notices come back as unparseable bodies
  POST /_emulator/reset             back to no notice, no hang, no malformed answers
  GET  /_emulator/state             the state and per-path request counters (JSON)

Stdlib only, one file, so a test can copy it into a node container and run it there:

    python3 metadata_server.py [--host 127.0.0.1] [--port 0] [--port-file FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import json
import secrets
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TAG = "SIMULATED by provision-sim"
AWS_TOKEN_TTL_MAX = 21600
GCP_WAIT_CAP = 60.0  # longest a wait_for_change request is held here
MAINTENANCE_VALUES = ("NONE", "MIGRATE_ON_HOST_MAINTENANCE", "TERMINATE_ON_HOST_MAINTENANCE")
AWS_ACTIONS = ("terminate", "stop", "hibernate")


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def etag(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16]


class State:
    """What the emulated instance's metadata says right now (thread-safe)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.reset()

    def reset(self) -> None:
        with self.cond:
            self.aws_action: dict[str, str] | None = None
            self.gcp_preempted = False
            self.gcp_maintenance = "NONE"
            self.hang_seconds = 0.0
            self.malformed = False
            self.tokens: dict[str, float] = {}
            self.requests: dict[str, int] = {}
            self.cond.notify_all()

    def count(self, key: str) -> None:
        with self.cond:
            self.requests[key] = self.requests.get(key, 0) + 1

    def gcp_value(self, name: str) -> str | None:
        with self.cond:
            if name == "preempted":
                return "TRUE" if self.gcp_preempted else "FALSE"
            if name == "maintenance-event":
                return self.gcp_maintenance
            if name == "id":
                return "4520031799277581759"
        return None

    def snapshot(self) -> dict[str, Any]:
        with self.cond:
            return {"aws_action": self.aws_action, "gcp_preempted": self.gcp_preempted,
                    "gcp_maintenance": self.gcp_maintenance, "hang_seconds": self.hang_seconds,
                    "malformed": self.malformed, "live_tokens": len(self.tokens),
                    "requests": dict(self.requests), "simulated": TAG}


class Handler(BaseHTTPRequestHandler):
    server_version = "provision-sim-metadata/1"
    protocol_version = "HTTP/1.1"

    @property
    def state(self) -> State:
        return self.server.state  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        if getattr(self.server, "verbose", False):
            sys.stderr.write("metadata-emulator: " + (format % args) + "\n")

    # ---- plumbing -----------------------------------------------------------------------
    def _send(self, status: int, body: str | bytes, content_type: str = "text/plain",
              headers: dict[str, str] | None = None) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _json_body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0:
            return {}
        raw = self.rfile.read(min(length, 65536))
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def _hang(self) -> None:
        seconds = self.state.hang_seconds
        if seconds > 0:
            time.sleep(seconds)

    # ---- verbs --------------------------------------------------------------------------
    def do_PUT(self) -> None:
        path = urlsplit(self.path).path
        if path == "/latest/api/token":
            self.state.count("aws:token")
            self._hang()
            ttl_text = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
            try:
                ttl = int(ttl_text or "")
            except ValueError:
                ttl = 0
            if not 1 <= ttl <= AWS_TOKEN_TTL_MAX:
                self._send(400, "Bad Request: X-aws-ec2-metadata-token-ttl-seconds 1-21600\n")
                return
            token = "AQAEA" + secrets.token_urlsafe(32)
            with self.state.cond:
                self.state.tokens[token] = time.monotonic() + ttl
            self._send(200, token, headers={"X-aws-ec2-metadata-token-ttl-seconds": str(ttl)})
            return
        self._send(404, "Not Found\n")

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path.startswith("/latest/"):
            self._aws_get(parts.path)
        elif parts.path.startswith("/computeMetadata/v1/"):
            self._gcp_get(parts.path, parse_qs(parts.query))
        elif parts.path == "/_emulator/state":
            self._send(200, json.dumps(self.state.snapshot()), "application/json")
        else:
            self._send(404, "Not Found\n")

    def do_POST(self) -> None:
        self._control(urlsplit(self.path).path, self._json_body(), delete=False)

    def do_DELETE(self) -> None:
        self._control(urlsplit(self.path).path, {}, delete=True)

    # ---- AWS ----------------------------------------------------------------------------
    def _aws_get(self, path: str) -> None:
        self.state.count("aws:" + path)
        self._hang()
        token = self.headers.get("X-aws-ec2-metadata-token", "")
        with self.state.cond:
            expiry = self.state.tokens.get(token)
            action = dict(self.state.aws_action) if self.state.aws_action else None
            malformed = self.state.malformed
        if expiry is None or expiry < time.monotonic():
            self._send(401, "Unauthorized\n")
            return
        if path == "/latest/meta-data/spot/instance-action":
            if action is None:
                self._send(404, "Not Found\n", "text/html")
            elif malformed:
                self._send(200, '{"action": "terminate", "time": ', "text/plain")
            else:
                self._send(200, json.dumps(action), "text/plain")
        elif path == "/latest/meta-data/instance-id":
            self._send(200, "i-0123456789abcdef0")
        elif path == "/latest/meta-data/instance-life-cycle":
            self._send(200, "spot")
        elif path in ("/latest/meta-data", "/latest/meta-data/"):
            self._send(200, "instance-id\ninstance-life-cycle\nspot/\n")
        else:
            self._send(404, "Not Found\n", "text/html")

    # ---- GCP ----------------------------------------------------------------------------
    def _gcp_get(self, path: str, query: dict[str, list[str]]) -> None:
        name = path.removeprefix("/computeMetadata/v1/instance/")
        self.state.count("gcp:" + name)
        self._hang()
        if self.headers.get("Metadata-Flavor") != "Google":
            self._send(403, "Missing required header: Metadata-Flavor\n", "text/html")
            return
        value = self.state.gcp_value(name) if path.startswith("/computeMetadata/v1/instance/") \
            else None
        if value is None:
            self._send(404, "Not Found\n", "text/html", headers={"Metadata-Flavor": "Google"})
            return
        if (query.get("wait_for_change") or ["false"])[0].lower() == "true":
            value = self._gcp_wait(name, value, query)
        if self.state.malformed and name in ("preempted", "maintenance-event"):
            value = "\x00garbage\xff"
        self._send(200, value, "application/text",
                   headers={"Metadata-Flavor": "Google", "ETag": etag(value)})

    def _gcp_wait(self, name: str, value: str, query: dict[str, list[str]]) -> str:
        last = (query.get("last_etag") or [etag(value)])[0]
        try:
            timeout = float((query.get("timeout_sec") or [GCP_WAIT_CAP])[0])
        except ValueError:
            timeout = GCP_WAIT_CAP
        deadline = time.monotonic() + max(0.0, min(timeout, GCP_WAIT_CAP))
        with self.state.cond:
            while True:
                current = self.state.gcp_value(name) or ""
                left = deadline - time.monotonic()
                if etag(current) != last or left <= 0:
                    return current
                self.state.cond.wait(left)

    # ---- control ------------------------------------------------------------------------
    def _control(self, path: str, body: dict[str, Any], *, delete: bool) -> None:
        st = self.state
        with st.cond:
            if path == "/_emulator/aws/spot-action":
                if delete:
                    st.aws_action = None
                else:
                    action = str(body.get("action", "terminate"))
                    if action not in AWS_ACTIONS:
                        self._send(400, f"action must be one of {AWS_ACTIONS}\n")
                        return
                    when = body.get("time") or _iso(
                        datetime.now(UTC) + timedelta(seconds=float(body.get("in_seconds", 120))))
                    st.aws_action = {"action": action, "time": str(when)}
            elif path == "/_emulator/gcp/preempted":
                st.gcp_preempted = False if delete else bool(body.get("preempted", True))
            elif path == "/_emulator/gcp/maintenance-event":
                value = "NONE" if delete else str(body.get("value", MAINTENANCE_VALUES[2]))
                if value not in MAINTENANCE_VALUES:
                    self._send(400, f"value must be one of {MAINTENANCE_VALUES}\n")
                    return
                st.gcp_maintenance = value
            elif path == "/_emulator/hang":
                st.hang_seconds = 0.0 if delete else max(0.0, float(body.get("seconds", 30)))
            elif path == "/_emulator/malformed":
                st.malformed = False if delete else bool(body.get("on", True))
            elif path == "/_emulator/reset":
                pass
            else:
                self._send(404, "Not Found\n")
                return
            st.cond.notify_all()
        if path == "/_emulator/reset":
            st.reset()
        self._send(200, json.dumps(st.snapshot()), "application/json")


class MetadataServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str = "127.0.0.1", port: int = 0, verbose: bool = False) -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"the metadata emulator only listens on loopback, not {host}")
        self.state = State()
        self.verbose = verbose
        super().__init__((host, port), Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


def serve_in_thread(host: str = "127.0.0.1", port: int = 0) -> MetadataServer:
    """Start an emulator in a daemon thread; stop it with ``server.shutdown()``."""
    server = MetadataServer(host, port)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                     daemon=True, name="metadata-emulator").start()
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=f"Instance-metadata emulator ({TAG}).")
    parser.add_argument("--host", default="127.0.0.1", help="a loopback address")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", help="write the chosen port here once listening")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    server = MetadataServer(args.host, args.port, args.verbose)
    if args.port_file:
        with open(args.port_file, "w", encoding="utf-8") as fh:
            fh.write(f"{server.server_address[1]}\n")
    print(f"metadata emulator ({TAG}) on {server.url}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
