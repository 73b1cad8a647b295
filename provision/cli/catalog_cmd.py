"""`provision catalog` (list offerings) and `provision catalog refresh` (update prices).

A group whose bare invocation lists, so `provision catalog --gpu H100 --spot` keeps working.
Refreshed files (`~/.config/provision/catalog/<provider>_vms.csv`) are overlaid automatically
on the shipped catalog here, so the listing shows the prices `refresh` fetched.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from provision.cli.app import CatalogOpt, Output, app

catalog_app = typer.Typer(
    help="List offerings (cheapest first), or refresh prices with `provision catalog refresh`.",
    no_args_is_help=False,
    rich_markup_mode="markdown",
)
app.add_typer(catalog_app, name="catalog")


class Provider(StrEnum):
    aws = "aws"
    gcp = "gcp"


@catalog_app.callback(invoke_without_command=True)
def catalog_cmd(
    ctx: typer.Context,
    gpu: Annotated[str | None, typer.Option(help="Only this GPU/TPU (any alias: h100, v5e).")]
    = None,
    provider: Annotated[str | None, typer.Option(help="Only this provider.")] = None,
    spot: Annotated[bool, typer.Option("--spot", help="Only offerings with a spot price.")]
    = False,
    region: Annotated[str | None, typer.Option(help="Only this region or zone.")] = None,
    min_gpus: Annotated[int | None, typer.Option(help="At least this many GPUs per node.")]
    = None,
    catalog: CatalogOpt = None,
    output: Annotated[Output, typer.Option("--output", "--format", "-o")] = Output.table,
    limit: Annotated[int, typer.Option(help="Rows to show (cheapest first); 0 for all.",
                                       min=0)] = 40,
    suspect: Annotated[bool, typer.Option(
        "--suspect", help="List the rows set aside as suspect (spot above on-demand, "
        "placeholder or outlier prices, unparseable regions) instead of the usable ones.")]
    = False,
    trust_catalog: Annotated[bool, typer.Option(
        "--trust-catalog", help="Keep suspect rows of the files given with --catalog.")]
    = False,
) -> None:
    """List offerings (cheapest per hour first), e.g. `provision catalog --gpu H100 --spot`.

    Prices refreshed with `provision catalog refresh` are used automatically. The footer
    gives each provider's price date; rows that fail the catalog checks are set aside
    (`--suspect` lists them with the reason).
    """
    if ctx.invoked_subcommand is not None:
        return
    from provision.catalog import load_catalog
    from provision.catalog.refresh import user_catalog_files
    from provision.cli.render_catalog import render_catalog

    cat = load_catalog([*user_catalog_files(), *(catalog or ())],
                       trust=(catalog or ()) if trust_catalog else ())
    rows = cat.filter(gpu=gpu, provider=provider, spot=spot, region=region, min_count=min_gpus,
                      suspect=suspect)
    key = (lambda o: (o.spot_price, o.provider, o.instance_type)) if spot else (
        lambda o: (o.price if o.price is not None else float("inf"), o.provider, o.instance_type)
    )
    rows.sort(key=key)
    render_catalog(cat, rows, output.value, limit, suspect=suspect)


@catalog_app.command()
def refresh(
    provider: Annotated[Provider, typer.Option(help="Whose prices to refresh.")] = Provider.aws,
    regions: Annotated[
        list[str] | None,
        typer.Option("--regions", help="Only these regions (repeatable; default: every region "
                     "in the catalog)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write here instead of ~/.config/provision/catalog/"
                     "<provider>_vms.csv (which plans and listings overlay automatically)."),
    ] = None,
) -> None:
    """Fetch current prices and write a SkyPilot-format catalog with every shipped row of the
    provider, repriced where a current price exists.

    AWS: spot prices from `ec2:DescribeSpotPriceHistory` (credentials as for the AWS CLI).
    GCP: on-demand and spot prices from the Cloud Billing Catalog API (PROVISION_GCP_API_KEY,
    or `gcloud auth login`).
    """
    from provision.cli.console import err_console

    regions = [r for item in regions or [] for r in item.split(",") if r]
    if provider is Provider.aws:
        from provision.catalog.refresh import refresh_aws

        report = refresh_aws(regions or None, out)
    else:
        from provision.catalog.refresh_gcp import refresh_gcp

        report = refresh_gcp(out, regions=regions or None)
    err_console().print(report.summary(), highlight=False)
