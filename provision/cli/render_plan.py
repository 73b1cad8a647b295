"""Render a plan outcome: a rich report for people, JSON for machines, Markdown for PRs.

JSON and Markdown are plain text written to stdout: only the table view loads rich.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

from provision.explain import lost_because
from provision.optimizer import Candidate
from provision.planner import PlanOutcome, creatable_providers

if TYPE_CHECKING:
    from rich.table import Table

    from provision.catalog import CatalogDate


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


def _where(c: Candidate, creatable: frozenset[str] = frozenset()) -> str:
    o = c.offering
    mark = " (catalog only)" if creatable and o.provider not in creatable else ""
    return f"{o.provider} {o.instance_type}{mark}"


def _market(c: Candidate) -> str:
    return "spot" if c.spot else ("monthly" if c.offering.billing_period == "month" else
                                  "on-demand")


def plan_json(data: dict) -> str:
    """Strict JSON: NaN and Infinity are not JSON, so a non-finite number is a bug to raise,
    never text a machine reader would choke on (the planner reports such figures as null)."""
    return json.dumps(data, indent=2, allow_nan=False)


def render_outcome(outcome: PlanOutcome, output: str, n_alt: int = 5) -> None:
    if output == "json":
        sys.stdout.write(plan_json(outcome.to_json()) + "\n")
        return
    if output == "markdown":
        sys.stdout.write(to_markdown(outcome, n_alt))
        return
    _render_rich(outcome, n_alt)


def _need_table(outcome: PlanOutcome) -> Table:
    from rich.table import Table
    from rich.text import Text

    need = outcome.need
    layout = outcome.layout()
    placed = need.placed(layout)
    table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 2, 0, 2))
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_column(justify="right")
    table.add_column(style="dim")
    for comp in need.components:
        each = placed.get(comp.name, 0.0)
        total = each * layout.gpus
        how = comp.formula
        if comp.per_gpu:
            how = f"per GPU × {layout.gpus}: {how}"
        table.add_row(comp.name, f"{total:,.1f} GB", f"{each:,.2f} GB/GPU", Text(how))
    return table


def _headline(outcome: PlanOutcome) -> str:
    """Total need, with the model state and the per-GPU part told apart."""
    state, each, gpus = outcome.need_parts()
    total = state + each * gpus
    text = f"{total:,.1f} GB"
    if gpus > 1 and each > 0:
        text += f" = {state:,.1f} GB model state + {each:,.2f} GB per GPU × {gpus}"
        if each * gpus > state:
            text += " (mostly per-GPU activations and overhead)"
    return text


def _render_rich(outcome: PlanOutcome, n_alt: int) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from provision.cli.console import out_console

    con = out_console()
    plan, need, choice = outcome.loaded.plan, outcome.need, outcome.choice
    creatable = creatable_providers()
    con.print(Text.assemble(("Plan ", "bold"), (plan.name, "bold cyan"),
                            f"  ({outcome.loaded.path})"))
    w = plan.workload
    if w is not None:
        active = (f", {need.active_params_b:g}B active"
                  if need.active_params_b != need.params_b else "")
        method = f" {w.method}" if w.kind == "finetune" else ""
        con.print(Text.assemble(
            ("\nNeed  ", "bold"), (_headline(outcome), "bold"),
            f" of GPU memory for {w.kind}{method} of {need.params_b:g}B params{active} "
            f"in {w.precision}, context {w.context:,} × batch {w.batch}",
        ))
        con.print(_need_table(outcome))
        if need.flops:
            con.print(f"  compute  {need.flops:.3g} FLOPs "
                      f"({'6' if w.kind == 'training' or w.method == 'full' else '4'}·N·D)",
                      style="dim", markup=False)
        if w.kind == "inference":
            con.print(f"  decode reads {need.weight_bytes_per_step / 1e9:,.1f} GB of weights "
                      "per step plus the KV cache", style="dim", markup=False)
    if choice is not None:
        o = choice.offering
        layout = outcome.layout()
        con.print(Text.assemble(
            ("\nChoice  ", "bold"), (_hardware(choice), "bold green"), "  ·  ",
            (_where(choice, creatable), "bold"),
            f"  ·  {o.zone or o.region}  ·  {_market(choice)}  ·  ",
            (_money(choice.price_per_hour, per_hour=True), "bold"),
        ))
        mem = outcome.catalog.gpus[o.gpu].memory_gb
        split = (f"tensor parallel {layout.tp}" + (f" × {layout.pp} pipeline stages"
                                                   if layout.pp > 1 else "")
                 if need.kind == "inference" else
                 f"FSDP over {layout.gpus} GPU{'s' if layout.gpus > 1 else ''}"
                 + (f", tensor parallel {layout.tp}" if layout.tp > 1 else ""))
        con.print(Text(f"  {o.interconnect} inside a node, {o.network_gbps:g} Gb/s between "
                       f"nodes; {split}; {choice.load_per_gpu_gb:,.1f} GB on the busiest GPU "
                       f"of {mem:g} GB ({choice.headroom:.0%} headroom)", style="dim"))
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
            t.add_row(_hardware(c), _where(c, creatable), c.offering.zone or c.offering.region,
                      _market(c), _money(c.price_per_hour, True), _money(c.cost_usd),
                      Text(lost_because(c, choice, outcome.result.criteria)))
        con.print(t)
    rejected = outcome.result.rejected_cheaper(n_alt)
    if rejected:
        title = "Rejected, though cheaper" if choice else "Closest near-misses"
        t = Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD)
        for col in ("hardware", "offering", "$/h", "total", "rejected because"):
            t.add_column(col, justify="right" if col in ("$/h", "total") else "left")
        for c in rejected:
            t.add_row(_hardware(c), _where(c, creatable), _money(c.price_per_hour, True),
                      _money(c.cost_usd), Text(c.rejected_because or ""))
        con.print(t)
    if outcome.warnings:
        con.print(Text("\nWarnings", style="bold yellow"))
        for warning in outcome.warnings:
            con.print(Text.assemble(("  ! ", "yellow"), warning))
    if choice is None:
        con.print(Text.assemble(("\nNothing fits.", "bold red"), " What to relax:"))
        for tip in outcome.relax:
            con.print(Text(f"  • {tip}"))
    ages = "; ".join(f"{p} {_age(d, outcome)}" for p, d in sorted(outcome.catalog.dates.items())
                     if outcome.result.criteria.providers is None
                     or p in outcome.result.criteria.providers)
    con.print(Text(f"\n{outcome.result.considered} offering groups considered from "
                   f"{len(outcome.catalog.offerings):,} offerings"
                   f" ({len(outcome.catalog.suspect)} suspect rows set aside). "
                   f"Prices: {ages or '—'}.", style="dim"))


def _age(d: CatalogDate, outcome: PlanOutcome) -> str:
    age = d.age_days(outcome.today)
    return "date unknown" if age is None else f"{age:,} days old"


def to_markdown(outcome: PlanOutcome, n_alt: int = 5) -> str:
    """A pull-request comment: need, choice, estimate, alternatives, warnings."""
    plan, need, choice = outcome.loaded.plan, outcome.need, outcome.choice
    layout = outcome.layout()
    creatable = creatable_providers()
    lines = [f"### provision plan: `{plan.name}`", ""]
    if plan.workload is not None:
        placed = need.placed(layout)
        lines += [f"**Need:** {_headline(outcome)} of GPU memory; "
                  f"{need.peak_gb(layout):,.1f} GB on the busiest GPU", "",
                  "| component | GB | GB per GPU |", "|---|---:|---:|"]
        lines += [f"| {k} | {v * layout.gpus:,.1f} | {v:,.2f} |" for k, v in placed.items()]
        lines.append("")
    if choice is not None:
        lines.append(
            f"**Choice:** {_hardware(choice)} · {_where(choice, creatable)} · "
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
        lines += ["| option | $/h | total | outcome |", "|---|---:|---:|---|"]
        for c in alts:
            lines.append(f"| {_hardware(c)} · {_where(c, creatable)} | "
                         f"{c.price_per_hour:,.2f} | {_money(c.cost_usd)} | "
                         f"{lost_because(c, choice, outcome.result.criteria)} |")
        for c in rejected:
            lines.append(f"| {_hardware(c)} · {_where(c, creatable)} | "
                         f"{c.price_per_hour:,.2f} | {_money(c.cost_usd)} | "
                         f"rejected: {c.rejected_because} |")
        lines.append("")
    if outcome.warnings:
        lines += ["**Warnings**", ""] + [f"- {w}" for w in outcome.warnings] + [""]
    if choice is None:
        lines += ["**Nothing fits.** What to relax:", ""] + [f"- {t}" for t in outcome.relax]
    return "\n".join(lines).rstrip() + "\n"
