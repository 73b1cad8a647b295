"""Render catalog listings (`provision catalog`)."""

from __future__ import annotations

import csv
import json
import sys

from rich.table import Table
from rich.text import Text

from provision.catalog import Catalog, Offering
from provision.cli.console import out_console


def _p(x: float | None) -> str:
    return "—" if x is None else f"{x:,.2f}"


def render_catalog(cat: Catalog, rows: list[Offering], output: str, limit: int) -> None:
    shown = rows if limit <= 0 else rows[:limit]
    if output == "json":
        out_console().print_json(json.dumps([o._asdict() for o in shown]))
        return
    if output == "markdown":
        writer = csv.writer(sys.stdout)
        writer.writerow(["provider", "instance_type", "gpu", "count", "region", "zone",
                         "price", "spot_price", "interconnect"])
        for o in shown:
            writer.writerow([o.provider, o.instance_type, o.gpu, o.gpu_count, o.region, o.zone,
                             o.price, o.spot_price, o.interconnect])
        return
    table = Table(title=f"{len(rows):,} offerings" + (f" (cheapest {len(shown)} shown)"
                                                      if len(shown) < len(rows) else ""),
                  title_justify="left")
    for col in ("provider", "instance type", "GPUs", "GPU mem", "region/zone", "$/h",
                "spot $/h", "interconnect", "multi-node"):
        table.add_column(col, justify="right" if "$" in col or col in ("GPUs", "GPU mem")
                         else "left")
    for o in shown:
        spec = cat.gpus[o.gpu]
        price = _p(o.price) + (" (monthly)" if o.billing_period == "month" else "")
        table.add_row(o.provider, o.instance_type, f"{o.gpu_count} × {o.gpu}",
                      f"{spec.memory_gb:g} GB", o.zone or o.region, price, _p(o.spot_price),
                      o.interconnect, "yes" if o.multi_node else "no")
    out_console().print(table)
    if cat.skipped:
        unsupported = sorted((k for k in cat.skipped if not k.startswith("(")
                              and "(" not in k), key=str)
        if unsupported:
            out_console().print(
                Text("Rows skipped for accelerators provision does not drive: "
                     f"{', '.join(unsupported)}", style="dim"))
