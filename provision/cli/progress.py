"""Progress for long runs: a live per-host view on a terminal, plain lines elsewhere (CI)."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import Any

from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from provision.cli.console import _plain, err_console
from provision.converge import ConvergeResult, plain_progress
from provision.orchestrator import Ui


class _LiveView:
    """Current task per host, with running counts, redrawn a few times a second."""

    def __init__(self) -> None:
        self.task = ""
        self.play = ""
        self.hosts: dict[str, dict[str, Any]] = {}
        self.started = time.monotonic()
        self.steps: list[str] = []

    def step(self, message: str) -> None:
        self.steps = [*self.steps[-4:], message]

    def event(self, ev: dict[str, Any]) -> None:
        kind, host = ev["event"], ev.get("host")
        if kind == "playbook_on_play_start":
            self.play = ev["play"]
        elif kind == "playbook_on_task_start":
            self.task = ev["task"]
            for h in self.hosts.values():
                h["task"] = ev["task"]
        elif host:
            h = self.hosts.setdefault(host, {"ok": 0, "changed": 0, "failed": 0, "task": ""})
            h["task"] = ev.get("task", "")
            if kind == "runner_on_ok":
                h["ok"] += 1
                h["changed"] += int(ev["changed"])
            else:
                h["failed"] += 1

    def render(self) -> Group:
        head = Text(f"{self.play or 'preparing'} · {time.monotonic() - self.started:,.0f} s",
                    style="bold")
        table = Table(box=None, pad_edge=False)
        for col in ("host", "ok", "changed", "failed", "task"):
            table.add_column(col)
        for name, h in sorted(self.hosts.items()):
            table.add_row(name, str(h["ok"]), str(h["changed"]),
                          Text(str(h["failed"]), style="red" if h["failed"] else ""),
                          h["task"][:70])
        steps = Text("\n".join(self.steps), style="dim")
        return Group(steps, head, table)


@contextlib.contextmanager
def ui() -> Iterator[Ui]:
    """A Ui for the orchestrator: live on a terminal, plain lines in CI and pipes. Ctrl-C is
    acknowledged here (the CLI framework would end the process silently)."""
    try:
        with _ui() as u:
            yield u
    except KeyboardInterrupt:
        print("interrupted; state is saved, rerun the command to resume", file=sys.stderr,
              flush=True)
        raise


@contextlib.contextmanager
def _ui() -> Iterator[Ui]:
    con = err_console()
    if _plain() or not sys.stderr.isatty():
        yield Ui(step=lambda m: print(f"• {m}", file=sys.stderr, flush=True),
                 progress=plain_progress())
        return
    view = _LiveView()
    with Live(view.render(), console=con, refresh_per_second=4, transient=True) as live:
        def step(m: str) -> None:
            view.step(m)
            live.update(view.render())

        def progress(ev: dict[str, Any]) -> None:
            view.event(ev)
            live.update(view.render())

        yield Ui(step=step, progress=progress)


def summary_table(result: ConvergeResult) -> Table:
    table = Table(title=f"{result.playbook}: {result.status}", title_justify="left")
    for col in ("host", "ok", "changed", "failed", "unreachable", "skipped", "result"):
        table.add_column(col, justify="left" if col in ("host", "result") else "right")
    for host, s in sorted(result.hosts.items()):
        style = {"ok": "green", "changed": "yellow"}.get(s.status, "red")
        table.add_row(host, str(s.ok), str(s.changed), str(s.failed), str(s.unreachable),
                      str(s.skipped), Text(s.status, style=style))
    return table
