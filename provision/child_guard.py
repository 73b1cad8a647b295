"""Run a command so that it cannot outlive the provision process that started it.

ansible-runner starts ``ansible-playbook`` under a pseudo-terminal; if provision is killed
(SIGKILL, OOM, a closed laptop lid), the playbook and its workers would run on against the
nodes while the cluster's lock is already free — a second ``provision`` run could then change
the same nodes at the same time. This guard sits between the two:

    provision ─ guard ─ ansible-playbook ─ workers, ssh, Mitogen's multiplexer

- ``PR_SET_PDEATHSIG`` makes the kernel send the guard SIGTERM the moment provision dies;
- ``PR_SET_CHILD_SUBREAPER`` makes the guard the parent of every orphaned descendant (Mitogen's
  multiplexer detaches from ansible-playbook), so it can still find and end them;
- on SIGTERM/SIGINT/SIGHUP the signal is passed to ansible-playbook, which stops its workers;
  whatever is left after a grace period is killed.

The guard exits with the command's exit status. It is Linux-only by design (prctl); elsewhere
it simply runs the command. Usage: ``python -m provision.child_guard PARENT_PID -- CMD...``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
GRACE_SECONDS = 10.0


def _prctl(option: int, value: int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def descendants(root: int) -> list[int]:
    """Every live process below ``root`` (children first found, then theirs), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        parents.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.append(child)
                todo.append(child)
    return found


def ssh_master(pid: int) -> bool:
    """An OpenSSH connection master (``ControlPersist``) renames itself ``ssh: PATH [mux]``; it
    only keeps a connection warm for the next run and acts on nothing by itself."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return cmdline.startswith(b"ssh: ") and b"[mux]" in cmdline


def end_all(root: int, grace: float = GRACE_SECONDS, *, spare_ssh_masters: bool = False) -> None:
    """SIGTERM every descendant of ``root``, then SIGKILL what is still there after ``grace``.
    With ``spare_ssh_masters`` (a run that ended normally), warm SSH connections are kept."""
    def targets() -> list[int]:
        found = descendants(root)
        return [p for p in found if not ssh_master(p)] if spare_ssh_masters else found

    for pid in targets():
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while targets() and time.monotonic() < deadline:
        _reap()
        time.sleep(0.1)
    for pid in targets():
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    _reap()


def _reap() -> None:
    """Collect exited children (orphans re-parented to us included): no zombies stay."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m provision.child_guard PARENT_PID -- COMMAND...", file=sys.stderr)
        return 2
    parent, command = int(argv[0]), argv[2:]
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # provision died before the kernel could tell us
        return 143
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    # the command also gets SIGTERM should the guard itself be killed outright
    child = subprocess.Popen(command, preexec_fn=lambda: _prctl(PR_SET_PDEATHSIG,
                                                                 signal.SIGTERM))
    stopping: list[int] = []

    def forward(signum: int, _frame) -> None:
        stopping.append(signum)
        with contextlib.suppress(OSError):
            child.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    while True:
        try:
            rc = child.wait(timeout=0.5)
            break
        except subprocess.TimeoutExpired:
            if stopping and os.getppid() != parent:
                # provision is gone: give ansible-playbook its grace period, then end it all
                try:
                    rc = child.wait(timeout=GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    child.kill()
                    rc = child.wait()
                break
    if stopping:
        end_all(os.getpid())
    else:  # a normal end: only stragglers (Mitogen's multiplexer) are left to end
        end_all(os.getpid(), grace=2.0, spare_ssh_masters=True)
    return rc if rc >= 0 else 128 - rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
