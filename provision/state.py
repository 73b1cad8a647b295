"""Per-cluster state: what exists, what ran, and what happened, in one directory.

Layout of ``<state root>/<cluster>/`` (root: ``--state-dir``, ``$PROVISION_STATE_DIR``, or
``$XDG_STATE_HOME/provision``, default ``~/.local/state/provision``):

    plan.yaml        the plan as last applied
    state.json       nodes, stage results, timestamps (atomic writes, 0600)
    events.log       one line per step of every command (0600)
    ssh/id_ed25519   the cluster's SSH key pair when the plan gives none (0600)
    runs/<id>/       ansible-runner artifacts of each converge or verify run
    lock             held by the command that is changing the cluster

Every write goes to a temporary file in the same directory and is renamed over the target, so a
crash leaves either the old or the new file, never half of one; a rerun reads what is there.
Secrets never enter these files: keys are paths, and event text is scrubbed of key material.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from provision.backends.base import NodeRecord
from provision.errors import InputError, LockHeld

STATE_VERSION = 1
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----",
                          re.DOTALL)


CLUSTER_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")  # plan.yaml's `name` rule


def check_cluster_name(name: str) -> str:
    """``name`` when it is a valid cluster name (plan.yaml's rule), else InputError (exit 2).
    Names become directory names under the state root: nothing else may reach the disk."""
    if not isinstance(name, str) or not CLUSTER_NAME.fullmatch(name):
        raise InputError(
            f"{name!r} is not a cluster name: use lower-case letters, digits and dashes, "
            "starting and ending with a letter or digit, at most 40 characters "
            "(see `provision status` for the clusters that exist)")
    return name


def cluster_dir(name: str, root: str | Path | None = None) -> Path:
    """``<state root>/<name>``, for a valid cluster name only."""
    return state_root(root) / check_cluster_name(name)


def state_root(override: str | Path | None = None) -> Path:
    if override:
        return Path(override).expanduser()
    env = os.environ.get("PROVISION_STATE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "provision"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_private(path: Path, data: str | bytes) -> None:
    """Atomically replace ``path`` with ``data``, mode 0600 from the first byte."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def scrub(text: str) -> str:
    """Remove anything that looks like private key material from text bound for logs."""
    return _PRIVATE_KEY.sub("[private key removed]", text)


@dataclass
class ClusterState:
    """The persisted record of one cluster. Load with :meth:`load`, change, :meth:`save`."""

    name: str
    directory: Path
    target: str = "local"
    nodes: list[NodeRecord] = field(default_factory=list)
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)  # stage → result summary
    created: str = field(default_factory=now)
    updated: str = field(default_factory=now)
    extra: dict[str, Any] = field(default_factory=dict)  # backend-specific, never secrets

    # -- paths -----------------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.directory / "state.json"

    @property
    def runs_dir(self) -> Path:
        return self.directory / "runs"

    @property
    def ssh_dir(self) -> Path:
        return self.directory / "ssh"

    @property
    def plan_file(self) -> Path:
        return self.directory / "plan.yaml"

    # -- persistence -------------------------------------------------------------------------
    @classmethod
    def open(cls, name: str, root: str | Path | None = None) -> ClusterState:
        """The cluster's state, or a fresh one (not yet saved) when none exists."""
        directory = cluster_dir(name, root)
        existing = cls.load(name, root)
        return existing or cls(name=name, directory=directory)

    @classmethod
    def load(cls, name: str, root: str | Path | None = None) -> ClusterState | None:
        directory = cluster_dir(name, root)
        path = directory / "state.json"
        if not path.exists():
            return None
        try:
            raw = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"{path}: unreadable state file ({exc}); move it aside to start "
                             "over, or restore it") from None
        return cls(
            name=raw["name"],
            directory=directory,
            target=raw.get("target", "local"),
            nodes=[NodeRecord.from_json(n) for n in raw.get("nodes", [])],
            stages=raw.get("stages", {}),
            created=raw.get("created", now()),
            updated=raw.get("updated", now()),
            extra=raw.get("extra", {}),
        )

    def save(self) -> None:
        self.updated = now()
        data = {
            "version": STATE_VERSION,
            "name": self.name,
            "target": self.target,
            "created": self.created,
            "updated": self.updated,
            "nodes": [n.to_json() for n in self.nodes],
            "stages": self.stages,
            "extra": self.extra,
        }
        write_private(self.state_file, json.dumps(data, indent=2, sort_keys=True) + "\n")

    def exists(self) -> bool:
        return self.state_file.exists()

    # -- events ------------------------------------------------------------------------------
    def log(self, message: str) -> None:
        """Append one scrubbed line to events.log (created 0600)."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.directory / "events.log"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as fh:
            fh.write(f"{now()} {scrub(message).rstrip()}\n")

    @property
    def stopped(self) -> bool:
        """True after `provision stop` (or a guard's stop) until `up` brings the nodes back."""
        at = self.stages.get("stopped", {}).get("at")
        return at is not None and at > self.stages.get("nodes", {}).get("at", "")

    def record_stage(self, stage: str, **result: Any) -> None:
        self.stages[stage] = {"at": now(), **result}
        self.save()

    def new_run_dir(self, kind: str) -> Path:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        path = self.runs_dir / f"{stamp}-{kind}"
        n = 1
        while path.exists():
            n += 1
            path = self.runs_dir / f"{stamp}-{kind}-{n}"
        path.mkdir(parents=True, mode=0o700)
        return path

    # -- locking -----------------------------------------------------------------------------
    @classmethod
    @contextlib.contextmanager
    def locked(cls, name: str, command: str, root: str | Path | None = None, *,
               create: bool = False) -> Iterator[ClusterState]:
        """Hold the cluster's lock and yield its state, read *after* the lock is taken.

        Every command that changes a cluster goes through here, so no command acts on (and then
        saves) a copy read before another command's last write. ``create`` gives a fresh state
        when none exists (``up``); otherwise a missing cluster is an InputError (exit 2) —
        checked before the lock file is made, and again once the lock is held (a ``down``
        that held the lock meanwhile may have removed it). A second run fails at once naming
        the holder (exit 4)."""
        directory = cluster_dir(name, root)
        if not create and not (directory / "state.json").exists():
            raise InputError(f"no cluster named {name!r} (see `provision status`)")
        with hold_lock(directory, name, command):
            state = cls.load(name, root)
            if state is None:
                if not create:
                    raise InputError(f"no cluster named {name!r} (see `provision status`)")
                state = cls(name=name, directory=directory)
            yield state

    def remove_files(self) -> None:
        """Delete everything of the cluster's state except its lock file (call with the lock
        held). The lock file stays: a process waiting on it must contend for the same inode
        as any later one, or two runs could each believe they hold the cluster."""
        if not self.directory.is_dir():
            return
        for child in self.directory.iterdir():
            if child.name == LOCK_FILE:
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)


LOCK_FILE = "lock"


@contextlib.contextmanager
def hold_lock(directory: Path, name: str, command: str) -> Iterator[None]:
    """flock ``directory/lock`` for the duration; refuse at once when another process holds it.

    The holder records itself in the file (pid, host, command, time) after it has the lock; a
    refused contender only reads that record, never writes it. The file descriptor is not
    inherited by child processes (Ansible, Pulumi): they are ended with the holder instead
    (see provision.converge), so they can never run on after the lock is released."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd) or "another provision run"
            raise LockHeld(f"cluster {name!r} is locked by {holder}; wait for it to finish "
                           "(the lock frees itself when that process ends)") from None
        record = (f"`provision {command}` (pid {os.getpid()} on {socket.gethostname()}, "
                  f"since {now()})\n").encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, record, 0)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # still held: nobody can read a half-cleared record
    finally:
        os.close(fd)


def _read_holder(fd: int) -> str:
    try:
        return os.pread(fd, 4096, 0).decode(errors="replace").strip()
    except OSError:
        return ""


def list_clusters(root: str | Path | None = None) -> list[str]:
    base = state_root(root)
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if (p / "state.json").exists())


def wait_for(predicate, timeout: float, interval: float = 0.5) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass (bounded loop)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
