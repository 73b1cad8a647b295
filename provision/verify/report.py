"""Render a verify Report: JSON for machines, a rich table for people, Markdown for PR comments
and CI job summaries. rich is imported only by the table renderer."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from provision.verify.model import Check, Report

if TYPE_CHECKING:
    from rich.console import Console

_STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}


def to_json(report: Report) -> dict[str, Any]:
    """The stable JSON document (see provision/verify/model.py for its shape)."""
    return report.to_json()


def to_json_text(report: Report) -> str:
    return json.dumps(to_json(report), indent=2) + "\n"


def _value(value: Any, unit: str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    elif isinstance(value, int):
        text = f"{value:,}"
    else:
        text = str(value)
    return f"{text} {unit}" if unit and not isinstance(value, str) else text


def _ratio(check: Check) -> str:
    return f"{check.ratio:.2f}" if check.ratio is not None else ""


def _counts(checks: list[Check]) -> str:
    n = {s: sum(1 for c in checks if c.status == s) for s in ("pass", "warn", "fail", "skip")}
    return ", ".join(f"{v} {k}" for k, v in n.items() if v)


DETAIL_ALL_UP_TO = 4  # hosts; above this only hosts with warnings or failures get a table


def render_table(report: Report, console: Console) -> None:
    """A per-host summary, then the checks of every host with a problem (of every host on
    small clusters) and the cluster-wide checks."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    console.print(Text.assemble(
        ("provision verify", "bold"), f"  level {report.level}  ·  {report.directory}  ·  ",
        (report.status.upper(), _STYLE[report.status])))
    hosts = sorted(report.hosts.values(), key=lambda h: h.name)
    summary = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("host", "SKU", "status", "checks"):
        summary.add_column(col)
    for h in hosts:
        summary.add_row(Text(h.name), Text(h.sku or ""), Text(h.status.upper(), _STYLE[h.status]),
                        Text(_counts(h.checks)))
    if report.cluster.checks:
        summary.add_row(Text("_cluster"), Text(""), Text(report.cluster.status.upper(),
                                                         _STYLE[report.cluster.status]),
                        Text(_counts(report.cluster.checks)))
    console.print(summary)
    shown = [h for h in hosts if len(hosts) <= DETAIL_ALL_UP_TO or h.status != "pass"]
    sections = [(f"{h.name}  ({h.sku})", h.status, h.checks) for h in shown]
    if report.cluster.checks:
        sections.append(("cluster", report.cluster.status, report.cluster.checks))
    for title, status, checks in sections:
        table = Table(title=Text.assemble((title, "bold"), "  ", (status.upper(), _STYLE[status]),
                                          f"  ({_counts(checks)})"),
                      title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
        for col in ("status", "check", "measured", "expected", "ratio", "detail"):
            table.add_column(col, justify="right" if col in ("measured", "expected", "ratio")
                             else "left", overflow="fold")
        for c in checks:
            # Text cells: details quote tool output ("[N/A]"), which is not rich markup.
            table.add_row(Text(c.status, _STYLE[c.status]), Text(c.name),
                          Text(_value(c.measured, c.unit)), Text(_value(c.expected, c.unit)),
                          Text(_ratio(c)), Text(c.detail))
        console.print(table)
    hidden = len(hosts) - len(shown)
    if hidden:
        console.print(Text(f"{hidden} passing host(s) not shown; -o json or -o markdown lists "
                           "every check.", style="dim"))


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(report: Report) -> str:
    """A pull-request comment or CI job summary: verdict, per-host line, problems, all checks."""
    lines = [f"### provision verify: {report.status.upper()} (level {report.level})", "",
             "| host | SKU | status | checks |", "|---|---|---|---|"]
    for h in sorted(report.hosts.values(), key=lambda h: h.name):
        lines.append(f"| {h.name} | {h.sku} | {h.status.upper()} | {_counts(h.checks)} |")
    if report.cluster.checks:
        lines.append(f"| _cluster | | {report.cluster.status.upper()} | "
                     f"{_counts(report.cluster.checks)} |")
    problems = report.problems()
    if problems:
        lines += ["", "**Problems**", "",
                  "| host | check | status | measured | expected | detail |",
                  "|---|---|---|---:|---:|---|"]
        for where, c in problems:
            lines.append(f"| {where} | `{c.name}` | {c.status.upper()} | "
                         f"{_md_cell(_value(c.measured, c.unit))} | "
                         f"{_md_cell(_value(c.expected, c.unit))} | {_md_cell(c.detail)} |")
    lines += ["", "<details><summary>All checks</summary>", ""]
    sections = [(h.name, h.checks) for h in sorted(report.hosts.values(), key=lambda h: h.name)]
    if report.cluster.checks:
        sections.append(("_cluster", report.cluster.checks))
    for name, checks in sections:
        lines += [f"**{name}**", "", "| check | status | measured | expected | ratio | detail |",
                  "|---|---|---:|---:|---:|---|"]
        lines += [f"| `{c.name}` | {c.status} | {_md_cell(_value(c.measured, c.unit))} | "
                  f"{_md_cell(_value(c.expected, c.unit))} | {_ratio(c)} | {_md_cell(c.detail)} |"
                  for c in checks]
        lines.append("")
    lines.append("</details>")
    return "\n".join(lines) + "\n"


def render(report: Report, output: str, console: Console) -> None:
    """Print the report in ``output`` format (table | json | markdown) on ``console``."""
    if output == "json":
        console.print(to_json_text(report), end="", markup=False, highlight=False,
                      emoji=False, soft_wrap=True)
    elif output == "markdown":
        console.print(to_markdown(report), end="", markup=False, highlight=False,
                      emoji=False, soft_wrap=True)
    else:
        render_table(report, console)
