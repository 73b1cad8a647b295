"""Render a plan outcome: a rich report for people, JSON for machines, Markdown for PRs."""

from __future__ import annotations

import json

from rich import box
from rich.table import Table
from rich.text import Text

from provision.cli.console import out_console
from provision.optimizer import Candidate
from provision.planner import PlanOutcome, lost_because


def _money(x: float | None, per_hour: bool = False) -> str:
    if x is None:
        return "—"
    if per_hour:
        return f"${x:,.2f}/h"
    return f"${x:,.0f}" if x >= 100 else f"${x:,.2f}"


def _hours(h: float | None) -> str:
    if h is None:
        return "—"
    if h >= 48:
        return f"{h:,.0f} h ({h / 24:,.1f} days)"
    return f"{h:,.1f} h"


def _hardware(c: Candidate) -> str:
    o = c.offering
    nodes = f" × {c.nodes} nodes" if c.nodes > 1 else ""
    unit = "chips" if o.interconnect == "ici" else ""
    return f"{o.gpu_count}{' ' + unit if unit else ''} × {o.gpu}{nodes}"


def _where(c: Candidate) -> str:
    o = c.offering
    return f"{o.provider} {o.instance_type}"


def _market(c: Candidate) -> str:
    return "spot" if c.spot else ("monthly" if c.offering.billing_period == "month" else
                                  "on-demand")


def render_outcome(outcome: PlanOutcome, output: str, n_alt: int = 5) -> None:
    if output == "json":
        out_console().print_json(json.dumps(outcome.to_json()))
        return
    if output == "markdown":
        out_console().print(to_markdown(outcome, n_alt), markup=False, highlight=False,
                            soft_wrap=True)
        return
    _render_rich(outcome, n_alt)


def _need_table(outcome: PlanOutcome) -> Table:
    need = outcome.need
    gpus = outcome.choice.gpus if outcome.choice else 1
    table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 2, 0, 2))
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_column(style="dim")
    for comp in need.components:
        total = comp.gb * gpus if comp.per_gpu else comp.gb
        how = comp.formula
        if comp.per_gpu:
            how = f"{comp.gb:.2f} GB per GPU × {gpus}: {how}"
        table.add_row(comp.name, f"{total:,.1f} GB", how)
    return table


def _render_rich(outcome: PlanOutcome, n_alt: int) -> None:
    con = out_console()
    plan, need, choice = outcome.loaded.plan, outcome.need, outcome.choice
    con.print(Text.assemble(("Plan ", "bold"), (plan.name, "bold cyan"),
                            f"  ({outcome.loaded.path})"))
    w = plan.workload
    if w is not None:
        gpus = choice.gpus if choice else 1
        active = (f", {need.active_params_b:g}B active"
                  if need.active_params_b != need.params_b else "")
        method = f" {w.method}" if w.kind == "finetune" else ""
        con.print(Text.assemble(
            ("\nNeed  ", "bold"),
            (f"{need.total_gb(gpus):,.1f} GB", "bold"),
            f" of GPU memory for {w.kind}{method} of {need.params_b:g}B params{active} "
            f"in {w.precision}, context {w.context:,} × batch {w.batch}",
        ))
        con.print(_need_table(outcome))
        if need.flops:
            con.print(f"  compute  {need.flops:.3g} FLOPs "
                      f"({'6' if w.kind == 'training' or w.method == 'full' else '4'}·N·D)",
                      style="dim")
    if choice is not None:
        o = choice.offering
        con.print(Text.assemble(
            ("\nChoice  ", "bold"), (_hardware(choice), "bold green"), "  ·  ",
            (_where(choice), "bold"), f"  ·  {o.zone or o.region}  ·  {_market(choice)}  ·  ",
            (_money(choice.price_per_hour, per_hour=True), "bold"),
        ))
        mem = outcome.catalog.gpus[o.gpu].memory_gb
        con.print(f"  {o.interconnect} inside a node, {o.network_gbps:g} Gb/s between nodes; "
                  f"{choice.load_per_gpu_gb:,.1f} GB per GPU of {mem:g} GB "
                  f"({choice.headroom:.0%} headroom)", style="dim")
        parts = []
        if choice.hours is not None:
            parts.append(_hours(choice.hours))
        if choice.cost_usd is not None:
            parts.append(f"total {_money(choice.cost_usd)}")
        if choice.tokens_per_s:
            parts.append(f"~{choice.tokens_per_s:,.0f} tokens/s decode (memory-bound estimate)")
        if parts:
            con.print(Text.assemble(("Estimate  ", "bold"), "  ·  ".join(parts)))
    alts = outcome.result.alternatives(n_alt)
    if alts:
        t = Table(title="\nNext best", title_justify="left", title_style="bold",
                  box=box.SIMPLE_HEAD)
        for col in ("hardware", "offering", "where", "market", "$/h", "total", "why it lost"):
            t.add_column(col, justify="right" if col in ("$/h", "total") else "left")
        for c in alts:
            t.add_row(_hardware(c), _where(c), c.offering.zone or c.offering.region, _market(c),
                      _money(c.price_per_hour, True), _money(c.cost_usd),
                      lost_because(c, choice, outcome.result.criteria))
        con.print(t)
    rejected = outcome.result.rejected_cheaper(n_alt)
    if rejected:
        title = "Rejected, though cheaper" if choice else "Closest near-misses"
        t = Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD)
        for col in ("hardware", "offering", "$/h", "rejected because"):
            t.add_column(col, justify="right" if col == "$/h" else "left")
        for c in rejected:
            t.add_row(_hardware(c), _where(c), _money(c.price_per_hour, True),
                      c.rejected_because or "")
        con.print(t)
    if outcome.warnings:
        con.print(Text("\nWarnings", style="bold yellow"))
        for warning in outcome.warnings:
            con.print(Text.assemble("  ", ("!", "yellow"), f" {warning}"))
    if choice is None:
        con.print(Text.assemble(("\nNothing fits.", "bold red"), " What to relax:"))
        for tip in outcome.relax:
            con.print(f"  • {tip}", highlight=False)
    con.print(Text(f"\n{outcome.result.considered} offering groups considered from "
                   f"{len(outcome.catalog.offerings):,} offerings.", style="dim"))


def to_markdown(outcome: PlanOutcome, n_alt: int = 5) -> str:
    """A pull-request comment: need, choice, estimate, alternatives, warnings."""
    plan, need, choice = outcome.loaded.plan, outcome.need, outcome.choice
    gpus = choice.gpus if choice else 1
    lines = [f"### provision plan: `{plan.name}`", ""]
    if plan.workload is not None:
        lines += [f"**Need:** {need.total_gb(gpus):,.1f} GB GPU memory", "",
                  "| component | GB |", "|---|---:|"]
        lines += [f"| {k} | {v:,.1f} |" for k, v in need.breakdown(gpus).items()]
        lines.append("")
    if choice is not None:
        lines.append(
            f"**Choice:** {_hardware(choice)} · {_where(choice)} · "
            f"{choice.offering.zone or choice.offering.region} · {_market(choice)} · "
            f"{_money(choice.price_per_hour, True)}")
        est = []
        if choice.hours is not None:
            est.append(_hours(choice.hours))
        if choice.cost_usd is not None:
            est.append(f"total {_money(choice.cost_usd)}")
        if est:
            lines.append(f"**Estimate:** {' · '.join(est)}")
        lines.append("")
    alts = outcome.result.alternatives(n_alt)
    rejected = outcome.result.rejected_cheaper(n_alt)
    if alts or rejected:
        lines += ["| option | $/h | outcome |", "|---|---:|---|"]
        for c in alts:
            lines.append(f"| {_hardware(c)} · {_where(c)} | {c.price_per_hour:,.2f} | "
                         f"{lost_because(c, choice, outcome.result.criteria)} |")
        for c in rejected:
            lines.append(f"| {_hardware(c)} · {_where(c)} | {c.price_per_hour:,.2f} | "
                         f"rejected: {c.rejected_because} |")
        lines.append("")
    if outcome.warnings:
        lines += ["**Warnings**", ""] + [f"- {w}" for w in outcome.warnings] + [""]
    if choice is None:
        lines += ["**Nothing fits.** What to relax:", ""] + [f"- {t}" for t in outcome.relax]
    return "\n".join(lines).rstrip() + "\n"
