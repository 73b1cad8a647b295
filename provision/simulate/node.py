"""Make a podman container a simulated GPU (or TPU) node: its "hardware" and environment.

What a simulated node has that no package installs, because on a real node it is the machine
itself: ``/etc/provision-sim/node.json`` (the SKU, GPU/chip count, InfiniBand ports and the
injected faults: the simulated hardware every stand-in tool reads), and the settings a
container needs to run containers itself (podman nested inside the node: no cgroup or network
namespace of its own, vfs storage), which the container_toolkit role's check uses. The local
backend calls :func:`setup` right after creating a node; Molecule's create step for simulated
platforms runs ``python -m provision.simulate.node CONTAINER --sku ... --fault ...``.
The stand-in software arrives later, through the roles, from the local repository
(provision/simulate/packages.py) mounted read-only at packages.MOUNT.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any

from provision.simulate.packages import MOUNT

NESTED_CONTAINERS_CONF = """# provision-sim: this node is itself a container; containers inside it
# share its cgroup and network namespace (it cannot create its own) and skip sysctls it
# cannot set.
[containers]
default_sysctls = []
cgroups = "disabled"
netns = "host"
"""
NESTED_STORAGE_CONF = """# provision-sim: overlay on overlay needs a mount program; vfs needs
# nothing.
[storage]
driver = "vfs"
runroot = "/run/containers/storage"
graphroot = "/var/lib/containers/storage"
"""


def is_simulated(sku: str) -> bool:
    """True for the SKUs the simulator knows (verify reference table), GPU or TPU."""
    from provision.verify.reference import load_reference

    return load_reference().sku(sku) is not None


def node_config(sku: str, faults: list[str] | tuple[str, ...], hostname: str) -> dict[str, Any]:
    """node.json for a simulated node of ``sku`` (counts from the reference table)."""
    from provision.verify.reference import load_reference

    ref = load_reference().sku(sku)
    if ref is None:
        raise ValueError(f"no simulated SKU {sku!r}")
    config: dict[str, Any] = {"sku": sku, "faults": list(faults), "hostname": hostname}
    if ref.kind == "tpu":
        config["chips"] = ref.count
    else:
        config["gpus"] = ref.count
        config["ib_ports"] = ref.ib.ports if ref.ib else 0
    return config


def setup_script(config: dict[str, Any]) -> str:
    """Shell that writes the node's hardware description and nested-container settings."""
    return (
        "set -e\nmkdir -p /etc/provision-sim /etc/containers/containers.conf.d\n"
        f"cat > /etc/provision-sim/node.json <<'EOF'\n{json.dumps(config, indent=2)}\nEOF\n"
        "cat > /etc/containers/containers.conf.d/50-provision-sim-nested.conf <<'EOF'\n"
        f"{NESTED_CONTAINERS_CONF}EOF\n"
        "[ -e /etc/containers/storage.conf ] || cat > /etc/containers/storage.conf <<'EOF'\n"
        f"{NESTED_STORAGE_CONF}EOF\n")


def mount_args(root: str) -> list[str]:
    """podman run arguments that show the stand-in repository to the node, read-only."""
    return ["--volume", f"{root}:{MOUNT}:ro"]


def setup(container: str, sku: str, faults: list[str] | tuple[str, ...],
          hostname: str | None = None) -> None:
    """Write the simulated hardware into a running container (podman exec)."""
    from provision.backends import podman

    script = setup_script(node_config(sku, faults, hostname or container))
    proc = subprocess.run([podman.require(), "exec", "-i", container, "sh", "-s"], input=script,
                          capture_output=True, text=True, env=podman.env(), check=False)
    if proc.returncode != 0:
        from provision.errors import ProvisionError

        raise ProvisionError(f"could not set up simulated node {container}: "
                             f"{proc.stderr.strip()[-500:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m provision.simulate.node",
                                     description="Make a running container a simulated node.")
    parser.add_argument("container")
    parser.add_argument("--sku", required=True)
    parser.add_argument("--fault", action="append", default=[])
    parser.add_argument("--hostname")
    args = parser.parse_args(argv)
    setup(args.container, args.sku, args.fault, args.hostname)
    return 0


if __name__ == "__main__":
    sys.exit(main())
