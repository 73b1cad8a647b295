"""Render catalog listings (`provision catalog`): the rows, each provider's price date, and
the rows the checks set aside."""

from __future__ import annotations

import csv
import json
import sys
from datetime import date

from provision.catalog import Catalog, Offering

STALE_DAYS = 30


def _p(x: float | None) -> str:
    return "—" if x is None else f"{x:,.2f}"


def ages(cat: Catalog, today: date) -> dict[str, dict]:
    """Each listed provider's price date and age in days (None: the data carries no date)."""
    return {p: {"as_of": d.as_of.isoformat() if d.as_of else None,
                "age_days": d.age_days(today), "basis": d.basis}
            for p, d in sorted(cat.dates.items())}


def render_catalog(cat: Catalog, rows: list[Offering], output: str, limit: int, *,
                   suspect: bool = False, today: date | None = None) -> None:
    today = today or date.today()
    shown = rows if limit <= 0 else rows[:limit]
    if output == "json":
        listed = []
        for o in shown:
            item = o._asdict()
            if suspect:
                item["suspect_because"] = cat.suspect_reason(o)
            listed.append(item)
        sys.stdout.write(json.dumps({"offerings": listed, "ages": ages(cat, today),
                                     "suspect_rows": len(cat.suspect)},
                                    indent=2, allow_nan=False) + "\n")
        return
    if output == "markdown":
        writer = csv.writer(sys.stdout)
        writer.writerow(["provider", "instance_type", "gpu", "count", "region", "zone",
                         "price", "spot_price", "interconnect"])
        for o in shown:
            writer.writerow([o.provider, o.instance_type, o.gpu, o.gpu_count, o.region, o.zone,
                             o.price, o.spot_price, o.interconnect])
        return
    _table(cat, rows, shown, suspect, today)


def _table(cat: Catalog, rows: list[Offering], shown: list[Offering], suspect: bool,
           today: date) -> None:
    from rich.table import Table
    from rich.text import Text

    from provision.cli.console import out_console

    what = "suspect rows set aside" if suspect else "offerings"
    table = Table(title=f"{len(rows):,} {what}" + (f" (cheapest {len(shown)} shown)"
                                                  if len(shown) < len(rows) else ""),
                  title_justify="left")
    cols = ["provider", "instance type", "GPUs", "GPU mem", "region/zone", "$/h", "spot $/h",
            "interconnect", "multi-node"] + (["why suspect"] if suspect else [])
    for col in cols:
        table.add_column(col, justify="right" if "$" in col or col in ("GPUs", "GPU mem")
                         else "left")
    for o in shown:
        spec = cat.gpus[o.gpu]
        price = _p(o.price) + (" (monthly)" if o.billing_period == "month" else "")
        cells = [o.provider, o.instance_type, f"{o.gpu_count} × {o.gpu}",
                 f"{spec.memory_gb:g} GB", o.zone or o.region, price, _p(o.spot_price),
                 o.interconnect, "yes" if o.multi_node else "no"]
        if suspect:
            cells.append(cat.suspect_reason(o) or "")
        table.add_row(*(Text(c) for c in cells))
    con = out_console()
    con.print(table)
    dated = []
    for provider, info in ages(cat, today).items():
        age = info["age_days"]
        stale = age is None or age > STALE_DAYS
        dated.append(f"{provider} {'date unknown' if age is None else f'{age:,} days'}"
                     + (" (old)" if stale else ""))
    con.print(Text(f"Prices: {'; '.join(dated)}. Older than {STALE_DAYS} days: run "
                   "`provision catalog refresh` or pass a newer SkyPilot catalog with "
                   "--catalog.", style="dim"))
    if cat.suspect and not suspect:
        con.print(Text(f"{len(cat.suspect)} suspect rows set aside (`provision catalog "
                       "--suspect` lists them with the reason).", style="dim"))
    if cat.skipped:
        unsupported = sorted((k for k in cat.skipped if not k.startswith("(")
                              and "(" not in k), key=str)
        if unsupported:
            con.print(Text("Rows skipped for accelerators provision does not drive: "
                           f"{', '.join(unsupported)}", style="dim"))
