"""`provision lab up N` / `lab down` / `lab status` / `lab image`: the virtual-server lab."""

from __future__ import annotations

import re
from typing import Annotated

import typer

from provision.cli.app import app
from provision.errors import InputError

lab_app = typer.Typer(help="Virtual servers behind Redfish BMCs, to try the bare-metal path "
                           "without hardware (needs root, libvirt and QEMU: ./install.sh).",
                      no_args_is_help=True)
app.add_typer(lab_app, name="lab")

Name = Annotated[str, typer.Option("--name", help="Lab name (domains provision-<name>-<i>).")]


def _mib(text: str) -> int:
    m = re.fullmatch(r"(\d+)\s*([MmGg])?i?[Bb]?", text.strip())
    if not m:
        raise InputError(f"--memory {text!r}: expected e.g. 2048M or 2G")
    value = int(m.group(1))
    return value * 1024 if (m.group(2) or "M").upper() == "G" else value


@lab_app.command("up")
def lab_up(
    count: Annotated[int, typer.Argument(help="How many servers.", min=1, max=8)],
    nvme: Annotated[int, typer.Option(help="Blank NVMe drives per server.", min=0,
                                      max=8)] = 2,
    memory: Annotated[str, typer.Option(help="Memory per server, e.g. 2048M or 2G.")] = "2G",
    port_base: Annotated[int, typer.Option(
        help="BMC i listens on 127.0.0.1:<base+i>, SSH of server i on <base+100+i>.",
        min=1024, max=65000)] = 16000,
    name: Name = "lab",
) -> None:
    """Define N powered-off servers with blank disks, each behind its own Redfish BMC on
    127.0.0.1 (HTTPS, password), and print a bare-metal plan for them."""
    from provision.cli.console import err_console, out_console
    from provision.lab import lab

    made = lab.up(name, count, nvme=nvme, memory_mib=_mib(memory), port_base=port_base,
                  event=lambda m: err_console().print(m, highlight=False, markup=False))
    out_console().print(lab.plan_yaml(made), highlight=False, markup=False, soft_wrap=True)


@lab_app.command("down")
def lab_down(name: Name = "lab") -> None:
    """Remove every domain, disk, network and process the lab made; exit 1 naming anything
    that is left."""
    from provision.cli.console import err_console, out_console
    from provision.lab import lab

    report = lab.down(name, event=lambda m: err_console().print(m, highlight=False,
                                                                 markup=False))
    if report.leftovers:
        out_console().print("left behind:\n  " + "\n  ".join(report.leftovers), markup=False)
        raise typer.Exit(1)
    out_console().print(f"lab {name}: nothing left", markup=False)


@lab_app.command("plan")
def lab_plan(name: Name = "lab") -> None:
    """Print the bare-metal plan for an existing lab."""
    from provision.cli.console import out_console
    from provision.lab import lab

    made = lab.Lab.load(name)
    if made is None:
        raise InputError(f"no lab named {name!r} (provision lab up N makes one)")
    out_console().print(lab.plan_yaml(made), highlight=False, markup=False, soft_wrap=True)


@lab_app.command("image")
def lab_image(force: Annotated[bool, typer.Option(help="Rebuild even if cached.")] = False
              ) -> None:
    """Build the OS image and deploy ramdisk of image installs (cached by recipe hash)."""
    from provision.backends.baremetal_image import ensure_images
    from provision.cli.console import err_console, out_console

    built = ensure_images(lambda m: err_console().print(m, highlight=False, markup=False),
                          force=force)
    out_console().print(str(built.directory), markup=False)
