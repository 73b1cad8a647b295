"""Run playbooks through ansible-runner, with tuned settings, live progress and a summary.

Tuning (each is a stock Ansible setting, chosen for clusters):
- forks = the node count (up to 64): every node converges at once instead of five at a time;
- pipelining: one SSH round trip per task instead of three (needs no `requiretty`, true on
  the images we use);
- SSH multiplexing (ControlMaster/ControlPersist) with a short control path;
- smart gathering with a JSON fact cache in the cluster's state, and a minimal fact subset;
- Mitogen's strategy when it is installed (it works with the pinned ansible-core 2.19).
:func:`stock_settings` gives Ansible's defaults, for the side-by-side benchmark.

Artifacts of every run stay under ``runs/<timestamp>-<kind>/`` in the cluster's state.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provision.state import scrub

Progress = Callable[[dict[str, Any]], None]


def playbooks_dir() -> Path:
    """The playbooks/ tree: $PROVISION_PLAYBOOKS, or the one beside this package."""
    env = os.environ.get("PROVISION_PLAYBOOKS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / "playbooks"


def mitogen_strategy_dir() -> str | None:
    """Mitogen's strategy plugins, when mitogen is installed and not switched off
    (PROVISION_ANSIBLE_STRATEGY=linear). Mitogen keeps one Python interpreter per node alive
    and sends modules over it, which roughly halves a converge here."""
    if os.environ.get("PROVISION_ANSIBLE_STRATEGY", "mitogen") != "mitogen":
        return None
    spec = importlib.util.find_spec("ansible_mitogen")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "plugins" / "strategy"
    return str(path) if path.is_dir() else None


def tuned_settings(forks: int, fact_cache: Path, control_dir: Path) -> dict[str, str]:
    strategy = mitogen_strategy_dir()
    extra = ({"ANSIBLE_STRATEGY_PLUGINS": strategy, "ANSIBLE_STRATEGY": "mitogen_linear"}
             if strategy else {})
    return {
        **extra,
        "ANSIBLE_FORKS": str(max(5, min(64, forks))),
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_SSH_ARGS": (f"-o ControlMaster=auto -o ControlPersist=120s "
                             f"-o ControlPath={control_dir}/%C -o ServerAliveInterval=15 "
                             "-o ServerAliveCountMax=4"),
        "ANSIBLE_GATHERING": "smart",
        "ANSIBLE_GATHER_SUBSET": "!all,!min,distribution,virtual,network,hardware",
        "ANSIBLE_FACT_CACHING": "jsonfile",
        "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(fact_cache),
        "ANSIBLE_CACHE_PLUGIN_TIMEOUT": "7200",
        "ANSIBLE_TIMEOUT": "20",
    }


def stock_settings(control_dir: Path) -> dict[str, str]:
    """Ansible's defaults (forks 5, no pipelining, implicit gathering, no fact cache)."""
    return {
        "ANSIBLE_FORKS": "5",
        "ANSIBLE_PIPELINING": "False",
        "ANSIBLE_SSH_ARGS": (f"-o ControlMaster=auto -o ControlPersist=60s "
                             f"-o ControlPath={control_dir}/%C"),
        "ANSIBLE_GATHERING": "implicit",
    }


def base_env(playbooks: Path, local_tmp: Path) -> dict[str, str]:
    return {
        "ANSIBLE_ROLES_PATH": str(playbooks / "roles"),
        "ANSIBLE_HOST_KEY_CHECKING": "True",  # against the cluster's known_hosts only
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_LOCAL_TEMP": str(local_tmp),
        "ANSIBLE_NOCOLOR": "True",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
        "ANSIBLE_PYTHON_INTERPRETER": "auto_silent",
        "ANSIBLE_FORCE_COLOR": "False",
    }


@dataclass
class HostSummary:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0

    @property
    def status(self) -> str:
        if self.unreachable:
            return "unreachable"
        if self.failed:
            return "failed"
        return "changed" if self.changed else "ok"


@dataclass
class Failure:
    host: str
    task: str
    message: str
    unreachable: bool = False


@dataclass
class ConvergeResult:
    """What a playbook run did, per host; the CLI's summary table reads this."""

    playbook: str
    rc: int
    status: str
    hosts: dict[str, HostSummary] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    artifacts: Path | None = None
    changed_tasks: list[tuple[str, str]] = field(default_factory=list)  # (host, task)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not self.failures

    @property
    def failed_hosts(self) -> list[str]:
        return sorted({f.host for f in self.failures})

    def to_json(self) -> dict[str, Any]:
        return {
            "playbook": self.playbook,
            "rc": self.rc,
            "status": self.status,
            "hosts": {h: {**vars(s), "status": s.status} for h, s in self.hosts.items()},
            "failures": [vars(f) for f in self.failures],
            "changed": sum(s.changed for s in self.hosts.values()),
            "seconds": round(self.seconds, 1),
            "artifacts": str(self.artifacts) if self.artifacts else None,
        }


class _Collector:
    """Turns ansible-runner events into per-host counts and progress callbacks."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.hosts: dict[str, HostSummary] = defaultdict(HostSummary)
        self.failures: list[Failure] = []
        self.changed: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        host = data.get("host") or data.get("remote_addr")
        task = data.get("task", "")
        role = data.get("role")
        label = f"{role} | {task}" if role and not task.lower().startswith(role.lower()) else task
        with self.lock:
            if kind == "runner_on_ok" and host:
                self.hosts[host].ok += 1
                if (data.get("res") or {}).get("changed"):
                    self.hosts[host].changed += 1
                    self.changed.append((host, label))
            elif kind == "runner_on_failed" and host and not data.get("ignore_errors"):
                self.hosts[host].failed += 1
                self.failures.append(Failure(host, label, _message(data.get("res") or {})))
            elif kind == "runner_on_unreachable" and host:
                self.hosts[host].unreachable += 1
                self.failures.append(Failure(host, label, _message(data.get("res") or {}),
                                             unreachable=True))
            elif kind == "runner_on_skipped" and host:
                self.hosts[host].skipped += 1
        if self.progress and kind in ("playbook_on_task_start", "runner_on_ok",
                                      "runner_on_failed", "runner_on_unreachable",
                                      "playbook_on_play_start"):
            self.progress({"event": kind, "host": host, "task": label,
                           "changed": bool((data.get("res") or {}).get("changed")),
                           "play": data.get("play", "")})
        return True  # keep the event in the run's artifacts (job_events/) for later reading


def _message(res: dict[str, Any]) -> str:
    """The useful part of a failure: Ansible's message plus the command's last stderr lines."""
    msg = str(res.get("msg") or res.get("reason") or "")
    if not msg and res.get("results"):
        msg = "; ".join(str(r.get("msg", "")) for r in res["results"] if r.get("failed"))
    detail = str(res.get("stderr") or res.get("stdout") or "").strip().splitlines()[-3:]
    if detail:
        msg = f"{msg}: {' / '.join(detail)}" if msg else " / ".join(detail)
    return scrub(msg).strip()[:800]


# What a playbook run may inherit from the operator's environment. Everything else (cloud
# credentials, BMC passwords, the Pulumi passphrase, tokens) stays out of the run: ansible-runner
# would otherwise copy the whole environment into artifacts/<uuid>/command.
_INHERIT = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "LANGUAGE", "TZ", "TMPDIR",
    "SSH_AUTH_SOCK", "PYTHONPATH", "VIRTUAL_ENV", "PYENV_ROOT", "PYENV_VERSION",
    "XDG_RUNTIME_DIR", "CONTAINERS_CONF", "NO_COLOR",
})
_INHERIT_PREFIXES = ("LC_", "ANSIBLE_")
_SECRET_WORDS = ("PASS", "SECRET", "TOKEN", "CREDENTIAL", "PRIVATE", "AUTH_KEY", "APIKEY",
                 "API_KEY")


def inheritable(name: str) -> bool:
    """May the operator's variable ``name`` reach ansible-playbook? (allow-list, and never a
    name that says it holds a secret, whatever its prefix)."""
    if any(word in name.upper() for word in _SECRET_WORDS) and name != "SSH_AUTH_SOCK":
        return False
    return name in _INHERIT or name.startswith(_INHERIT_PREFIXES)


def run_environment(prepared: dict[str, str], ours: dict[str, str],
                    operator: dict[str, str] | os._Environ[str] = os.environ) -> dict[str, str]:
    """The environment of the playbook process: what provision and ansible-runner set, plus
    the allow-listed part of the operator's environment."""
    return {k: v for k, v in prepared.items()
            if k in ours or k not in operator or inheritable(k)}


def run_playbook(
    playbook: str,
    inventory: Path,
    run_dir: Path,
    *,
    nodes: int,
    fact_cache: Path,
    limit: Sequence[str] | None = None,
    extravars: dict[str, Any] | None = None,
    progress: Progress | None = None,
    settings: dict[str, str] | None = None,
    playbooks: Path | None = None,
    cmdline: str | None = None,
) -> ConvergeResult:
    """Run ``playbook`` (relative to playbooks/) against ``inventory``; artifacts in run_dir.

    Extra variables travel in a 0600 file that is removed when the run ends (never on the
    command line, where `ps` shows them, nor in the run's artifacts); the process gets only
    the allow-listed environment (:func:`run_environment`) and ends with this process
    (provision.child_guard)."""
    from ansible_runner.interface import init_runner  # heavy, and only `up`/`verify` need it

    playbooks = playbooks or playbooks_dir()
    control_dir = Path(f"/tmp/provision-cp-{os.getuid()}")
    control_dir.mkdir(mode=0o700, exist_ok=True)
    local_tmp = run_dir / "tmp"
    local_tmp.mkdir(parents=True, exist_ok=True, mode=0o700)
    envvars = base_env(playbooks, local_tmp)
    envvars.update(settings if settings is not None
                   else tuned_settings(nodes, fact_cache, control_dir))
    collector = _Collector(progress)
    vars_file = _private_vars_file(local_tmp, extravars) if extravars else None
    args = " ".join(a for a in (cmdline, f"-e @{vars_file}" if vars_file else None) if a)
    started = time.monotonic()
    try:
        runner = init_runner(
            private_data_dir=str(run_dir),
            project_dir=str(playbooks),
            playbook=playbook,
            inventory=str(inventory),
            envvars=envvars,
            limit=",".join(limit) if limit else None,
            forks=int(envvars["ANSIBLE_FORKS"]),
            event_handler=collector,
            quiet=True,
            suppress_env_files=True,
            artifact_dir=str(run_dir / "artifacts"),
            timeout=None,
            cmdline=args or None,
        )
        runner.config.env = run_environment(runner.config.env, envvars)
        runner.config.command = [sys.executable, "-m", "provision.child_guard",
                                 str(os.getpid()), "--", *runner.config.command]
        runner.run()
    finally:
        if vars_file is not None:
            vars_file.unlink(missing_ok=True)
        reap_orphans(inventory)
    if runner.status == "canceled":  # ansible-runner took the Ctrl-C; pass it on
        raise KeyboardInterrupt
    stats = runner.stats or {}
    hosts = dict(collector.hosts)
    for host in set().union(*[set(stats.get(k) or {}) for k in
                              ("ok", "changed", "failures", "dark", "skipped")]):
        hosts.setdefault(host, HostSummary())
    return ConvergeResult(
        playbook=playbook,
        rc=runner.rc,
        status=runner.status,
        hosts=hosts,
        failures=collector.failures,
        artifacts=run_dir,
        changed_tasks=collector.changed,
        seconds=time.monotonic() - started,
    )


def _private_vars_file(directory: Path, extravars: dict[str, Any]) -> Path:
    """Write ``extravars`` as JSON to a new 0600 file in ``directory`` (0700)."""
    fd, name = tempfile.mkstemp(prefix="extravars-", suffix=".json", dir=directory)
    with os.fdopen(fd, "w") as fh:
        json.dump(extravars, fh)
    return Path(name)


def reap_orphans(inventory: Path) -> int:
    """End ansible-playbook helper processes a run left behind (Mitogen's connection
    multiplexer outlives an interrupted or killed playbook, reparented to init and holding
    SSH connections open). Only orphans whose command line names this run's inventory are
    touched. Returns how many were signalled."""
    needle = str(inventory).encode()
    ended = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == 1 and b"ansible-playbook" in cmdline and needle in cmdline:
            try:
                os.kill(int(proc.name), signal.SIGTERM)
                ended += 1
            except OSError:
                pass
    return ended


def plain_progress(stream=sys.stderr) -> Progress:
    """Progress as plain lines (CI logs, pipes): task starts, changes and failures."""
    def emit(ev: dict[str, Any]) -> None:
        kind = ev["event"]
        if kind == "playbook_on_play_start":
            print(f"PLAY {ev['play']}", file=stream, flush=True)
        elif kind == "playbook_on_task_start":
            print(f"  TASK {ev['task']}", file=stream, flush=True)
        elif kind == "runner_on_ok" and ev["changed"]:
            print(f"    changed: {ev['host']}", file=stream, flush=True)
        elif kind in ("runner_on_failed", "runner_on_unreachable"):
            what = "UNREACHABLE" if kind == "runner_on_unreachable" else "FAILED"
            print(f"    {what}: {ev['host']}", file=stream, flush=True)
    return emit
