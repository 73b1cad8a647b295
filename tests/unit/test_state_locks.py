"""The cluster lock under real contention: two (or three) real processes, no mocks of flock.

Each test stages the race the review found (state read before the lock, the lock file deleted
by `down`, a refused contender erasing the holder's record, `watch` saving without the lock)
and checks the outcome a user relies on: one holder at a time, and no newer record lost.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from provision.errors import InputError, LockHeld
from provision.state import ClusterState, hold_lock

REPO = Path(__file__).resolve().parents[2]


def _wait_file(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"timed out waiting for {path}"
        time.sleep(0.05)


def _python(script: str, tmp_path: Path, **env: str) -> subprocess.Popen[str]:
    """Start ``script`` in a new interpreter with this checkout importable."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1", **env}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], cwd=tmp_path,
                            env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _make_cluster(root: Path, name: str = "race") -> ClusterState:
    state = ClusterState(name=name, directory=root / name, target="local")
    state.plan_file.parent.mkdir(parents=True, exist_ok=True)
    state.plan_file.write_text(f"name: {name}\ntarget: local\nlocal: {{nodes: 1}}\n")
    state.save()
    return state


# A process that takes the real lock only after the test says "go": it stands for a command
# that started (and, before the fix, read the state) while another one held the lock.
_SLOW_LOCKER = """
    import sys, time
    from pathlib import Path
    import provision.state as st

    real = st.hold_lock
    def slow(directory, name, command):
        Path("waiting").write_text("x")
        while not Path("go").exists():
            time.sleep(0.05)
        return real(directory, name, command)
    st.hold_lock = slow
    from provision.orchestrator import Ui
    ui = Ui(step=lambda m: None)
    {call}
    Path("done").write_text("x")
"""


def test_stop_keeps_a_record_written_while_it_waited(tmp_path: Path) -> None:
    """`stop` must read the state once it holds the lock: a change another command saved
    meanwhile survives (before the fix, stop saved the copy it read first)."""
    root = tmp_path / "state"
    _make_cluster(root)
    proc = _python(_SLOW_LOCKER.format(
        call=f"from provision.orchestrator import stop; stop('race', ui, "
             f"state_root=Path({str(root)!r}))"), tmp_path)
    _wait_file(tmp_path / "waiting")
    with ClusterState.locked("race", "test", root) as state:  # the other command's write
        state.extra["written_meanwhile"] = "newer record"
        state.save()
    (tmp_path / "go").write_text("x")
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    final = json.loads((root / "race" / "state.json").read_text())
    assert final["extra"]["written_meanwhile"] == "newer record"
    assert "stopped" in final["stages"]


def test_watch_saves_only_under_the_lock(tmp_path: Path) -> None:
    """One watch pass reads and saves the state while holding the lock: here its TTL guard
    fires and stops the cluster (a save), after another command wrote a newer record."""
    root = tmp_path / "state"
    state = _make_cluster(root)
    plan = state.plan_file.read_text() + "lifecycle: {ttl: 1m, on_ttl: stop}\n"
    state.plan_file.write_text(plan)
    state.created = "2020-01-01T00:00:00+00:00"
    state.save()
    proc = _python(_SLOW_LOCKER.format(
        call=f"from provision.watch import watch; watch('race', ui, duration=0, "
             f"state_root=Path({str(root)!r}), inventories=Path('inv'))"), tmp_path)
    _wait_file(tmp_path / "waiting")
    with ClusterState.locked("race", "test", root) as locked:
        locked.extra["written_meanwhile"] = "newer record"
        locked.save()
    (tmp_path / "go").write_text("x")
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    final = json.loads((root / "race" / "state.json").read_text())
    assert final["extra"]["written_meanwhile"] == "newer record"
    assert "stopped" in final["stages"]


_HOLDER = """
    import time
    from pathlib import Path
    from provision.state import hold_lock
    with hold_lock(Path({directory!r}), "race", "up plan.yaml"):
        Path("held").write_text("x")
        while not Path("release").exists():
            time.sleep(0.05)
"""


def test_refused_contender_leaves_the_holders_record(tmp_path: Path) -> None:
    root = tmp_path / "state"
    _make_cluster(root)
    holder = _python(_HOLDER.format(directory=str(root / "race")), tmp_path)
    try:
        _wait_file(tmp_path / "held")
        record = (root / "race" / "lock").read_text()
        assert f"pid {holder.pid}" in record
        with pytest.raises(LockHeld) as refused, ClusterState.locked("race", "down", root):
            pass
        assert f"pid {holder.pid}" in str(refused.value)
        assert (root / "race" / "lock").read_text() == record  # not truncated
    finally:
        (tmp_path / "release").write_text("x")
        holder.communicate(timeout=30)
    assert (root / "race" / "lock").read_text() == ""  # the holder cleared it on release


_EARLY_OPENER = """
    import fcntl, os, time
    from pathlib import Path
    fd = os.open({lock!r}, os.O_RDWR)          # opened before `down` ran
    Path("opened").write_text("x")
    while not Path("go").exists():
        time.sleep(0.05)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        print("acquired")
    except BlockingIOError:
        print("refused")
"""


def test_down_keeps_the_lock_file_so_there_is_one_holder(tmp_path: Path, run_cli) -> None:
    """A process that opened the lock file before `down` and one that comes after contend for
    the same file: exactly one of them holds the cluster (before the fix both did)."""
    root = tmp_path / "state"
    _make_cluster(root, "gone")
    lock = root / "gone" / "lock"
    with hold_lock(root / "gone", "gone", "setup"):
        pass
    inode = lock.stat().st_ino
    early = _python(_EARLY_OPENER.format(lock=str(lock)), tmp_path)
    _wait_file(tmp_path / "opened")
    down = run_cli("down", "gone", "--yes", "--state-dir", str(root), "--inventories",
                   str(tmp_path / "inv"))
    assert down.returncode == 0, down.stderr
    assert not (root / "gone" / "state.json").exists()
    assert lock.exists() and lock.stat().st_ino == inode
    with hold_lock(root / "gone", "gone", "up"):  # a later run holds the cluster ...
        (tmp_path / "go").write_text("x")
        out, err = early.communicate(timeout=30)
    assert out.strip() == "refused", err  # ... so the early opener must not


def test_status_and_down_refuse_names_outside_the_state_root(tmp_path: Path, run_cli) -> None:
    root = tmp_path / "state"
    victim = tmp_path / "outside" / "victim"
    victim.mkdir(parents=True)
    (victim / "state.json").write_text(json.dumps({"name": "victim", "target": "local"}))
    for args in (["status", "../outside/victim"], ["down", "../outside/victim", "--yes"],
                 ["recover", "../outside/victim"], ["verify", "../outside/victim"],
                 ["stop", "../outside/victim"]):
        proc = run_cli(*args, "--state-dir", str(root))
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert "not a cluster name" in proc.stderr
        assert "Traceback" not in proc.stderr
    assert (victim / "state.json").exists()
    with pytest.raises(InputError):
        ClusterState.load("a/../../b", root)
