#!/usr/bin/env python3
"""provision spot watcher: notice a spot/preemptible interruption, checkpoint, tell the world.

Installed by the spot_watcher role as /usr/local/sbin/provision-spot-watcher and run as a
service on spot and preemptible nodes. Stdlib only (the node's python3).

Every ``interval`` seconds it asks the instance metadata service whether the node is about to
go away:

- AWS (IMDSv2): ``PUT /latest/api/token`` with ``X-aws-ec2-metadata-token-ttl-seconds``, then
  ``GET /latest/meta-data/spot/instance-action`` with ``X-aws-ec2-metadata-token``; 404 means
  no notice, 200 carries ``{"action": "terminate"|"stop"|"hibernate", "time": "...Z"}``
  (about two minutes ahead).
- GCP: ``GET /computeMetadata/v1/instance/preempted`` (``Metadata-Flavor: Google``), held
  open with ``?wait_for_change=true&last_etag=...&timeout_sec=<interval>`` so a preemption is
  seen the moment it happens (GCP gives about 30 s); and
  ``instance/maintenance-event``: ``TERMINATE_ON_HOST_MAINTENANCE`` is a notice too
  (``MIGRATE_ON_HOST_MAINTENANCE`` is only logged: the node stays).

On a notice, once per notice (per boot, remembered in the marker across restarts):

1. writes the marker file (JSON, atomically): provider, action, noticed_at, deadline,
   seconds_left, hook_status "running" — the orchestrator reads it over SSH;
2. POSTs the same JSON to ``notify_url`` if set (background, bounded);
3. runs the checkpoint hook (``/bin/sh -c``) with PROVISION_SECONDS_LEFT and friends in its
   environment, killed (its whole process group) at min(hook_timeout, deadline);
4. rewrites the marker with the hook's exit code and status, and POSTs it again.

Robustness: every metadata request has a hard deadline (connect, send, every read; DNS runs in
a bounded helper thread), answers are size-capped and parsed defensively, and nothing a
metadata server says can raise out of the loop. The loop ends on SIGTERM/SIGINT, or after
``--max-seconds`` / ``--once`` (tests).

Config: a JSON file (``--config``) whose keys are the long option names with underscores;
command-line options win. ``--check-config FILE`` validates a file and exits (0 ok, 2 bad).
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

VERSION = 1
MAX_BODY = 64 * 1024
DEFAULTS: dict[str, Any] = {
    "provider": "auto",  # aws | gcp | auto (poll both until one answers like a real service)
    "aws_url": "http://169.254.169.254",
    "gcp_url": "http://metadata.google.internal",
    "interval": 5.0,
    "request_timeout": 2.0,
    "hook": "",
    "hook_timeout": 110.0,
    "hook_user": "",
    "marker": "/var/lib/provision/interruption.json",
    "notify_url": "",
    "notify_timeout": 5.0,
    "log_file": "",
    "aws_default_seconds": 120.0,  # if an AWS notice has no parseable time
    "gcp_preempt_seconds": 30.0,  # GCP's preemption notice
    "gcp_maintenance_seconds": 3600.0,  # GPU VMs get an hour before host maintenance
    "aws_token_ttl": 21600,
}
CHOICES = {"provider": ("aws", "gcp", "auto")}


# ---- logging ---------------------------------------------------------------------------------
class Log:
    def __init__(self, path: str = "") -> None:
        self.path = path
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def __call__(self, message: str) -> None:
        line = f"{datetime.now(UTC).isoformat(timespec='seconds')} spot-watcher: {message}\n"
        with self._lock:
            try:
                if self.path:
                    with open(self.path, "a", encoding="utf-8") as fh:
                        fh.write(line)
                else:
                    sys.stderr.write(line)
                    sys.stderr.flush()
            except OSError:
                pass

    def limited(self, key: str, message: str, every: float = 300.0) -> None:
        """Log a recurring problem at most once per ``every`` seconds."""
        now = time.monotonic()
        if now - self._last.get(key, -every) >= every:
            self._last[key] = now
            self(message)


# ---- a small HTTP client with a hard deadline ---------------------------------------------
class HttpError(Exception):
    pass


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def text(self) -> str:
        return self.body.decode("utf-8", "replace").strip()


class Resolver:
    """Name resolution with a deadline: getaddrinfo runs in a helper thread, at most one per
    name at a time, and answers are cached (metadata addresses do not move)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, int], tuple[Any, ...]] = {}
        self._pending: dict[tuple[str, int], threading.Thread] = {}
        self._lock = threading.Lock()

    def resolve(self, host: str, port: int, timeout: float) -> tuple[Any, ...]:
        try:
            ip = ipaddress.ip_address(host)
            family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
            return (family, (host, port))
        except ValueError:
            pass
        key = (host, port)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
            worker = self._pending.get(key)
            if worker is None:
                worker = threading.Thread(target=self._work, args=(key,), daemon=True)
                self._pending[key] = worker
                worker.start()
        worker.join(timeout)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        raise HttpError(f"cannot resolve {host} within {timeout:g} s")

    def _work(self, key: tuple[str, int]) -> None:
        try:
            infos = socket.getaddrinfo(key[0], key[1], type=socket.SOCK_STREAM)
            if infos:
                family, _, _, _, addr = infos[0]
                with self._lock:
                    self._cache[key] = (family, addr)
        except OSError:
            pass
        finally:
            with self._lock:
                self._pending.pop(key, None)


RESOLVER = Resolver()


def http_request(method: str, url: str, headers: dict[str, str] | None = None,
                 timeout: float = 2.0, body: bytes = b"") -> Response:
    """One HTTP/1.1 exchange (Connection: close) that never outlives ``timeout`` seconds."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise HttpError(f"only http:// URLs are supported here: {url}")
    deadline = time.monotonic() + timeout

    def left() -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise HttpError(f"{method} {url}: no complete answer within {timeout:g} s")
        return remaining

    port = parts.port or 80
    family, addr = RESOLVER.resolve(parts.hostname, port, left())
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    host_header = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host_header}", "Connection: close",
             "User-Agent: provision-spot-watcher", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(left())
            sock.connect(addr)
            sock.settimeout(left())
            sock.sendall(request)
            buf = b""
            while True:
                sock.settimeout(left())
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
                if len(buf) > MAX_BODY + 16384:
                    raise HttpError(f"{method} {url}: answer larger than {MAX_BODY} bytes")
                done = _complete(buf)
                if done is not None:
                    return done
    except TimeoutError:
        raise HttpError(f"{method} {url}: no complete answer within {timeout:g} s") from None
    except (OSError, ValueError) as exc:
        raise HttpError(f"{method} {url}: {exc}") from None
    done = _complete(buf, closed=True)
    if done is None:
        raise HttpError(f"{method} {url}: truncated or malformed answer")
    return done


def _complete(buf: bytes, closed: bool = False) -> Response | None:
    """The response in ``buf`` once it is whole (None while more is expected)."""
    head, sep, rest = buf.partition(b"\r\n\r\n")
    if not sep:
        return None
    header_lines = head.decode("latin-1").split("\r\n")
    status_line = header_lines[0].split(" ", 2)
    if len(status_line) < 2 or not status_line[0].startswith("HTTP/"):
        raise ValueError(f"not an HTTP status line: {header_lines[0][:80]!r}")
    status = int(status_line[1])
    headers: dict[str, str] = {}
    for line in header_lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _dechunk(rest)
        return Response(status, headers, body) if body is not None else None
    if "content-length" in headers:
        length = int(headers["content-length"])
        if len(rest) >= length:
            return Response(status, headers, rest[:length])
        return None
    return Response(status, headers, rest) if closed else None


def _dechunk(data: bytes) -> bytes | None:
    out = b""
    while True:
        size_line, sep, data = data.partition(b"\r\n")
        if not sep:
            return None
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            return out
        if len(data) < size + 2:
            return None
        out, data = out + data[:size], data[size + 2:]


# ---- notices ---------------------------------------------------------------------------------
class Notice:
    """The node is going away: who said so, how, and by when."""

    def __init__(self, provider: str, action: str, seconds_left: float, detail: str,
                 deadline: datetime | None = None, key: str = "") -> None:
        now = datetime.now(UTC)
        self.provider, self.action, self.detail = provider, action, detail
        self.noticed_at = now
        self.deadline = deadline or now + timedelta(seconds=seconds_left)
        self.key = key or f"{provider}:{action}:{detail}"

    @property
    def seconds_left(self) -> float:
        return max(0.0, (self.deadline - datetime.now(UTC)).total_seconds())


def parse_aws_time(text: str) -> datetime | None:
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


class AwsSource:
    """IMDSv2 spot instance-action."""

    name = "aws"

    def __init__(self, cfg: dict[str, Any], log: Log) -> None:
        self.base = str(cfg["aws_url"]).rstrip("/")
        self.timeout = float(cfg["request_timeout"])
        self.ttl = int(cfg["aws_token_ttl"])
        self.default_seconds = float(cfg["aws_default_seconds"])
        self.log = log
        self.token = ""
        self.token_expires = 0.0
        self.answered = False  # the service behaved like IMDS at least once

    def _token(self, refresh: bool = False) -> str:
        if refresh or not self.token or time.monotonic() >= self.token_expires:
            r = http_request("PUT", f"{self.base}/latest/api/token",
                             {"X-aws-ec2-metadata-token-ttl-seconds": str(self.ttl)},
                             self.timeout)
            if r.status != 200 or not r.body or len(r.body) > 4096:
                raise HttpError(f"IMDSv2 token request answered {r.status}")
            self.token = r.text()
            self.token_expires = time.monotonic() + max(1, self.ttl - 60)
        return self.token

    def poll(self, wait: float) -> Notice | None:
        url = f"{self.base}/latest/meta-data/spot/instance-action"
        r = http_request("GET", url, {"X-aws-ec2-metadata-token": self._token()}, self.timeout)
        if r.status == 401:  # token expired or the service restarted: one fresh token
            r = http_request("GET", url, {"X-aws-ec2-metadata-token": self._token(True)},
                             self.timeout)
        if r.status == 404:
            self.answered = True
            return None
        if r.status != 200:
            raise HttpError(f"spot/instance-action answered {r.status}")
        self.answered = True
        try:
            doc = json.loads(r.body)
            action = str(doc["action"])
            when = str(doc.get("time", ""))
        except (ValueError, KeyError, TypeError):
            self.log.limited("aws-malformed", "ignoring an unparseable spot/instance-action "
                             f"answer: {r.body[:200]!r}", 60)
            return None
        deadline = parse_aws_time(when)
        seconds = self.default_seconds if deadline is None else None
        return Notice("aws", action, seconds or 0.0, f"instance-action {action} at {when}",
                      deadline=deadline, key=f"aws:{action}:{when}")


class GcpSource:
    """GCP preemption (waited on) and host maintenance events."""

    name = "gcp"

    def __init__(self, cfg: dict[str, Any], log: Log) -> None:
        self.base = str(cfg["gcp_url"]).rstrip("/") + "/computeMetadata/v1/instance"
        self.timeout = float(cfg["request_timeout"])
        self.preempt_seconds = float(cfg["gcp_preempt_seconds"])
        self.maintenance_seconds = float(cfg["gcp_maintenance_seconds"])
        self.log = log
        self.etag = ""
        self.answered = False
        self.last_maintenance = "NONE"

    def _get(self, name: str, wait: float = 0.0) -> Response:
        url = f"{self.base}/{name}"
        timeout = self.timeout
        if wait >= 1 and self.etag:
            url += f"?wait_for_change=true&last_etag={quote(self.etag)}&timeout_sec={int(wait)}"
            timeout += int(wait)
        r = http_request("GET", url, {"Metadata-Flavor": "Google"}, timeout)
        if r.status != 200 or r.headers.get("metadata-flavor") != "Google":
            raise HttpError(f"instance/{name} answered {r.status}")
        return r

    def poll(self, wait: float) -> Notice | None:
        r = self._get("preempted", wait)
        self.answered = True
        value = r.text().upper()
        if value not in ("TRUE", "FALSE"):
            self.etag = ""  # never wait on a value we could not read
            self.log.limited("gcp-malformed", f"ignoring an unparseable preempted answer: "
                             f"{r.body[:100]!r}", 60)
        else:
            self.etag = r.headers.get("etag", "")
            if value == "TRUE":
                return Notice("gcp", "preempted", self.preempt_seconds, "instance/preempted TRUE",
                              key="gcp:preempted")
        m = self._get("maintenance-event").text().upper()
        if m != self.last_maintenance:
            self.log(f"GCP maintenance-event is {m[:60]}")
            self.last_maintenance = m
        if m == "TERMINATE_ON_HOST_MAINTENANCE":
            return Notice("gcp", "terminate-on-host-maintenance", self.maintenance_seconds,
                          "instance/maintenance-event TERMINATE_ON_HOST_MAINTENANCE",
                          key="gcp:terminate-on-host-maintenance")
        return None


# ---- the watcher -----------------------------------------------------------------------------
def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


class Watcher:
    def __init__(self, cfg: dict[str, Any], log: Log) -> None:
        self.cfg = cfg
        self.log = log
        self.interval = float(cfg["interval"])
        self.marker = Path(cfg["marker"])
        self.boot = boot_id()
        self.stop = threading.Event()
        provider = cfg["provider"]
        self.sources: list[Any] = []
        if provider in ("aws", "auto"):
            self.sources.append(AwsSource(cfg, log))
        if provider in ("gcp", "auto"):
            self.sources.append(GcpSource(cfg, log))
        self.handled: set[str] = set()
        self._notify_threads: list[threading.Thread] = []
        previous = self._read_marker()
        if previous.get("boot_id") == self.boot:
            self.handled.update(previous.get("handled") or [])
        elif previous:  # a notice from an earlier boot: the node came back, it is not leaving
            try:
                os.replace(self.marker, self.marker.with_name(self.marker.name + ".previous"))
                log(f"moved {self.marker} from an earlier boot aside (.previous)")
            except OSError as exc:
                log(f"cannot move the stale marker {self.marker} aside: {exc}")

    def _read_marker(self) -> dict[str, Any]:
        try:
            data = json.loads(self.marker.read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    # one round: ask every source, handle what they say
    def poll_once(self) -> list[Notice]:
        notices = []
        for index, source in enumerate(list(self.sources)):
            # only the last source may hold a request open (GCP's wait_for_change)
            wait = self.interval if index == len(self.sources) - 1 else 0.0
            try:
                notice = source.poll(wait)
            except (HttpError, OSError, ValueError) as exc:
                self.log.limited(f"{source.name}-error", f"{source.name} metadata: {exc}")
                continue
            except Exception as exc:  # a defect must not end the watch: log it, carry on
                self.log.limited(f"{source.name}-bug", f"{source.name} poll failed: {exc!r}")
                continue
            if notice is not None:
                notices.append(notice)
            if len(self.sources) > 1 and source.answered:
                self.log(f"metadata service found: {source.name}; watching it only")
                self.sources = [source]
                break
        for notice in notices:
            self.handle(notice)
        return notices

    def handle(self, notice: Notice) -> None:
        key = f"{notice.key}:{self.boot}"
        if key in self.handled:
            return
        self.handled.add(key)
        record = {
            "version": VERSION,
            "provider": notice.provider,
            "action": notice.action,
            "detail": notice.detail,
            "noticed_at": notice.noticed_at.isoformat(timespec="seconds"),
            "deadline": notice.deadline.isoformat(timespec="seconds"),
            "seconds_left": round(notice.seconds_left),
            "hostname": socket.gethostname(),
            "boot_id": self.boot,
            "hook_status": "running" if self.cfg["hook"] else "none",
            "hook_exit_code": None,
            "hook_seconds": None,
            "handled": sorted(self.handled),
        }
        self.log(f"INTERRUPTION NOTICE from {notice.provider}: {notice.detail}; "
                 f"{record['seconds_left']} s left (deadline {record['deadline']})")
        self._write(record)
        self._notify(record)
        if self.cfg["hook"]:
            code, status, seconds = self.run_hook(notice)
            record.update(hook_status=status, hook_exit_code=code, hook_seconds=seconds)
            self._write(record)
            self._notify(record)

    def _write(self, record: dict[str, Any]) -> None:
        try:
            write_json_atomic(self.marker, record)
        except OSError as exc:
            self.log(f"cannot write the marker {self.marker}: {exc}")

    def _notify(self, record: dict[str, Any]) -> None:
        url = self.cfg["notify_url"]
        if not url:
            return
        data = json.dumps(record).encode()
        timeout = float(self.cfg["notify_timeout"])

        def post() -> None:
            req = urllib.request.Request(url, data=data, method="POST",
                                         headers={"Content-Type": "application/json",
                                                  "User-Agent": "provision-spot-watcher"})
            try:
                with urllib.request.urlopen(req, timeout=timeout) as resp:
                    resp.read(1024)
                self.log(f"notified {url} (hook_status {record['hook_status']})")
            except Exception as exc:
                self.log(f"could not notify {url}: {exc}")

        thread = threading.Thread(target=post, daemon=True, name="notify")
        thread.start()
        self._notify_threads.append(thread)

    def run_hook(self, notice: Notice) -> tuple[int | None, str, float]:
        """Run the hook once, bounded; (exit code or None, status, seconds it ran)."""
        left = notice.seconds_left
        limit = max(1.0, min(float(self.cfg["hook_timeout"]), left if left > 0 else 1.0))
        env = {**os.environ,
               "PROVISION_SECONDS_LEFT": str(int(left)),
               "PROVISION_INTERRUPTION_PROVIDER": notice.provider,
               "PROVISION_INTERRUPTION_ACTION": notice.action,
               "PROVISION_INTERRUPTION_DEADLINE": notice.deadline.isoformat(timespec="seconds"),
               "PROVISION_INTERRUPTION_MARKER": str(self.marker)}
        self.log(f"running the checkpoint hook (limit {limit:.0f} s)")
        started = time.monotonic()
        out = open(self.log.path, "ab") if self.log.path else None  # noqa: SIM115
        try:
            kwargs: dict[str, Any] = {}
            if self.cfg["hook_user"] and os.geteuid() == 0:
                kwargs["user"] = self.cfg["hook_user"]
            proc = subprocess.Popen(["/bin/sh", "-c", self.cfg["hook"]], env=env,
                                    stdin=subprocess.DEVNULL, stdout=out or sys.stderr,
                                    stderr=subprocess.STDOUT, start_new_session=True, **kwargs)
        except (OSError, ValueError, KeyError) as exc:
            self.log(f"checkpoint hook could not start: {exc}")
            if out:
                out.close()
            return None, "failed", 0.0
        try:
            code = proc.wait(timeout=limit)
            status = "ok" if code == 0 else "failed"
        except subprocess.TimeoutExpired:
            self._kill(proc)
            code, status = None, "timed_out"
        finally:
            if out:
                out.close()
        seconds = round(time.monotonic() - started, 1)
        self.log(f"checkpoint hook {status} (exit {code}) after {seconds} s")
        return code, status, seconds

    @staticmethod
    def _kill(proc: subprocess.Popen) -> None:
        for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=grace)
                return
            except subprocess.TimeoutExpired:
                continue

    def run(self, once: bool = False, max_seconds: float | None = None) -> int:
        names = ", ".join(s.name for s in self.sources)
        self.log(f"watching {names} every {self.interval:g} s; marker {self.marker}")
        end = None if max_seconds is None else time.monotonic() + max_seconds
        while not self.stop.is_set():
            started = time.monotonic()
            self.poll_once()
            if once or (end is not None and time.monotonic() >= end):
                break
            self.stop.wait(max(0.0, self.interval - (time.monotonic() - started)))
        for thread in self._notify_threads:
            thread.join(float(self.cfg["notify_timeout"]) + 1)
        self.log("stopped")
        return 0


# ---- configuration ---------------------------------------------------------------------------
def load_config(path: str | None, overrides: dict[str, Any]) -> dict[str, Any]:
    cfg = dict(DEFAULTS)
    if path:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object")
        unknown = sorted(set(data) - set(DEFAULTS))
        if unknown:
            raise ValueError(f"{path}: unknown keys {', '.join(unknown)}")
        cfg.update({k: v for k, v in data.items() if v is not None})
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    for key, choices in CHOICES.items():
        if cfg[key] not in choices:
            raise ValueError(f"{key} must be one of {', '.join(choices)}, not {cfg[key]!r}")
    for key in ("interval", "request_timeout", "hook_timeout", "notify_timeout"):
        if float(cfg[key]) <= 0:
            raise ValueError(f"{key} must be positive")
    for key in ("aws_url", "gcp_url"):
        if urlsplit(str(cfg[key])).scheme != "http":
            raise ValueError(f"{key} must be an http:// URL, not {cfg[key]!r}")
    if cfg["notify_url"] and urlsplit(str(cfg["notify_url"])).scheme not in ("http", "https"):
        raise ValueError(f"notify_url must be http(s), not {cfg['notify_url']!r}")
    return cfg


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="provision-spot-watcher", description=__doc__.split("\n")[0])
    p.add_argument("--config", help="JSON configuration file")
    p.add_argument("--check-config", metavar="FILE", help="validate FILE and exit")
    for key, value in DEFAULTS.items():
        kind = type(value) if not isinstance(value, bool) else str
        p.add_argument("--" + key.replace("_", "-"), dest=key, type=kind, default=None,
                       choices=CHOICES.get(key))
    p.add_argument("--once", action="store_true", help="one polling round, then exit")
    p.add_argument("--max-seconds", type=float, help="exit after this long")
    args = vars(p.parse_args(argv))
    once, max_seconds = args.pop("once"), args.pop("max_seconds")
    check = args.pop("check_config")
    try:
        cfg = load_config(check or args.pop("config"), {} if check else args)
    except (OSError, ValueError, TypeError) as exc:
        print(f"provision-spot-watcher: bad configuration: {exc}", file=sys.stderr)
        return 2
    if check:
        return 0
    log = Log(cfg["log_file"])
    watcher = Watcher(cfg, log)

    def stop(signum: int, _frame: Any) -> None:
        log(f"signal {signum}: stopping")
        watcher.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return watcher.run(once=once, max_seconds=max_seconds)


if __name__ == "__main__":
    sys.exit(main())
