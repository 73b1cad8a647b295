"""Bare-metal cluster: one dynamic-provider resource per existing host.

Nothing is rented, so the "resource" is the host's membership in the cluster. Keeping it in
Pulumi state buys three things: `up` knows which hosts it already powered on or reinstalled (a
reinstall runs once per ``reinstall.generation``, not on every run), `refresh` reads the BMC's
power state, and `down` can power hosts off (``power_off_on_destroy``). The work itself is
provision.backends.bmc's flow (Redfish or IPMI), run by the provider's create/update.

State holds only references: BMC endpoint, user name, and the *name* of the password variable or
the password file's path; never the password.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import pulumi
from pulumi.dynamic import (
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)

from provision.backends.bmc import (
    BmcError,
    BmcRef,
    HostJob,
    Login,
    ReinstallStep,
    connect,
    prepare_host,
)
from provision.state import wait_for
from stacks.common import NodeArgs, child, node_record

LOG = logging.getLogger("provision.baremetal")

# Inputs whose change re-runs the host flow (power/reinstall/SSH wait) on update.
FLOW_INPUTS = ("address", "ssh_port", "bmc", "power_on", "reinstall", "ssh_wait_seconds")
# Outputs the provider computes (never a reason for an update by themselves).
COMPUTED = ("power_state", "installed_generation", "host_keys", "install_id")
POWER_OFF_WAIT_SECONDS = 120


@dataclass(frozen=True)
class BaremetalHostArgs:
    node: NodeArgs
    address: str
    private_address: str | None = None
    ssh_port: int = 22
    ssh_user: str | None = None  # default: the cluster's
    bmc: BmcRef | None = None
    private_mac: str | None = None  # image installs: the cluster interface
    private_prefix: int = 24


@dataclass(frozen=True)
class BaremetalClusterArgs:
    cluster: str
    hosts: tuple[BaremetalHostArgs, ...]
    ssh_user: str
    power_on: bool = False
    reinstall: ReinstallStep | None = None
    ssh_wait_seconds: int = 900
    power_off_on_destroy: bool = False
    public_key: str | None = None  # the cluster's SSH key (image installs put it on hosts)
    private_key_path: str | None = None  # a path, for checking the install over SSH

    def __post_init__(self) -> None:
        if not self.hosts:
            raise ValueError("a bare-metal cluster needs at least one host")
        if (self.power_on or self.reinstall) and any(h.bmc is None for h in self.hosts):
            raise ValueError("power_on/reinstall need a BMC on every host")


def _step(data: dict[str, Any]) -> ReinstallStep:
    """The step from resource inputs: Pulumi carries numbers as floats (protobuf Struct), and
    a generation of 1.0 must not become the marker text "generation=1.0"."""
    ints = ("generation", "boot_timeout_seconds", "attempts")
    return ReinstallStep(**{k: int(v) if k in ints and v is not None else v
                            for k, v in data.items()})


def _job(props: dict[str, Any], reinstall: bool) -> HostJob:
    step = props.get("reinstall")
    login = props.get("login")
    return HostJob(
        name=props["name"],
        address=props["address"],
        ssh_port=int(props["ssh_port"]),
        bmc=BmcRef.from_json(props["bmc"]) if props.get("bmc") else None,
        power_on=bool(props.get("power_on")),
        reinstall=_step(step) if reinstall and step else None,
        ssh_wait_seconds=int(props.get("ssh_wait_seconds") or 0),
        login=Login(**login) if login else None,
    )


def _generation(props: dict[str, Any]) -> int | None:
    step = props.get("reinstall")
    return int(step["generation"]) if step else None


def _bmc_identity(host: BaremetalHostArgs) -> str:
    """What identifies the machine: its BMC system, or its name when it has no BMC."""
    if host.bmc is None:
        return host.node.name
    return host.bmc.endpoint + (f"#{host.bmc.system_id}" if host.bmc.system_id else "")


def host_props(args: BaremetalClusterArgs, host: BaremetalHostArgs) -> dict[str, Any]:
    """The dynamic resource's inputs: everything the provider needs, no secret values."""
    return {
        "name": host.node.name,
        "cluster": args.cluster,
        "address": host.address,
        "private_address": host.private_address,
        "ssh_port": host.ssh_port,
        "ssh_user": host.ssh_user or args.ssh_user,
        "sku": host.node.sku,
        "role": host.node.role,
        "bmc": host.bmc.to_json() if host.bmc else None,
        "power_on": args.power_on,
        "reinstall": asdict(args.reinstall) if args.reinstall else None,
        "ssh_wait_seconds": args.ssh_wait_seconds,
        "power_off_on_destroy": args.power_off_on_destroy,
        "login": _login(args, host),
    }


def _login(args: BaremetalClusterArgs, host: BaremetalHostArgs) -> dict[str, Any] | None:
    """What an image install needs to make and check the node (references and public keys
    only: the private key is a path)."""
    if not (args.reinstall and args.reinstall.image and args.public_key
            and args.private_key_path):
        return None
    address = (f"{host.private_address}/{host.private_prefix}"
               if host.private_address and host.private_mac else None)
    return asdict(Login(args.cluster, host.ssh_user or args.ssh_user, args.public_key,
                        args.private_key_path, address, host.private_mac))


class HostProvider(ResourceProvider):
    """Create = make the host ready (power on / reinstall / wait for SSH); delete = release it
    (power off if asked). Runs in Pulumi's dynamic-provider host process."""

    def _run(self, props: dict[str, Any], reinstall: bool) -> dict[str, Any]:
        outcome = prepare_host(_job(props, reinstall), LOG.info)
        if outcome.reinstalled:
            return {**props, "power_state": outcome.power_state,
                    "installed_generation": _generation(props),
                    "host_keys": list(outcome.host_keys), "install_id": outcome.install_id}
        return {**dict.fromkeys(COMPUTED), **props, "power_state": outcome.power_state}

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=props["name"], outs=self._run(props, reinstall=True))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in news if not k.startswith("__") and k not in COMPUTED
                   and olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(changed), replaces=[], stables=["name"],
                          delete_before_replace=False)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        props = {**news, **{k: olds.get(k) for k in COMPUTED}}
        again = _generation(news) is not None and \
            _generation(news) != olds.get("installed_generation")
        if any(olds.get(k) != news.get(k) for k in FLOW_INPUTS):
            return UpdateResult(outs=self._run(props, reinstall=again))
        return UpdateResult(outs=props)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """Release the host; with power_off_on_destroy, power it off and wait until the BMC
        says it is off (otherwise fail, so the host stays in state and `down` names it)."""
        if props.get("power_off_on_destroy") and props.get("bmc"):
            client = connect(BmcRef.from_json(props["bmc"]))
            try:
                if client.power_state() != "off":
                    LOG.info("%s: powering off", props["name"])
                    client.set_power("off")
                    if not wait_for(lambda: client.power_state() == "off",
                                    POWER_OFF_WAIT_SECONDS, 1.0):
                        raise BmcError(f"{props['name']}: still {client.power_state()} "
                                       f"{POWER_OFF_WAIT_SECONDS} s after power off")
            finally:
                client.close()

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        state = props.get("power_state")
        if props.get("bmc"):
            client = connect(BmcRef.from_json(props["bmc"]))
            try:
                state = client.power_state()
            finally:
                client.close()
        return ReadResult(id_=id_, outs={**props, "power_state": state})


def _with_host_keys(values: list[Any]) -> dict[str, Any]:
    """The record with the host keys an image install made (``labels["ssh_host_keys"]``: a
    list of "<type> <base64>"), which the cluster's known_hosts trusts."""
    record, keys = values
    if keys:
        record = {**record, "labels": {**record["labels"], "ssh_host_keys": list(keys)}}
    return record


class BaremetalHost(Resource):
    """One host's membership in the cluster (see :class:`HostProvider`)."""

    address: pulumi.Output[str]
    private_address: pulumi.Output[str | None]
    power_state: pulumi.Output[str | None]
    installed_generation: pulumi.Output[int | None]
    host_keys: pulumi.Output[list[str] | None]

    def __init__(self, name: str, props: dict[str, Any],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(HostProvider(), name, {**props, **dict.fromkeys(COMPUTED)}, opts)


class BaremetalCluster(pulumi.ComponentResource):
    """The hosts of one bare-metal cluster; ``nodes`` is the NodeRecord-shaped output."""

    nodes: pulumi.Output[list[dict[str, Any]]]

    def __init__(self, name: str, args: BaremetalClusterArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("provision:baremetal:Cluster", name, None, opts)
        records = []
        self.hosts: list[BaremetalHost] = []
        for host in args.hosts:
            user = host.ssh_user or args.ssh_user
            resource = BaremetalHost(host.node.name, host_props(args, host), opts=child(self))
            self.hosts.append(resource)
            record = node_record(
                host.node, provider="baremetal", address=resource.address,
                private_address=resource.private_address, ssh_user=user,
                instance_id=_bmc_identity(host), zone=None, spot=False, ssh_port=host.ssh_port,
                labels={"bmc": host.bmc.protocol if host.bmc else "none"},
            )
            records.append(pulumi.Output.all(record, resource.host_keys).apply(_with_host_keys))
        self.nodes = pulumi.Output.all(*records)
        self.register_outputs({"nodes": self.nodes})
