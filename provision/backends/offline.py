"""Run a stack program under Pulumi's mock engine: no CLI, no plugins, no credentials.

Two uses share this one engine:

* ``provision preview --offline`` lists the resources a plan would create (type token, name,
  inputs) for a pull request. It runs in preview mode, where nothing has been created, so
  values a cloud assigns (ids, addresses) stay unknown and print as "(known after apply)";
  lookups such as the AMI search print what they would look for.
* Tests run the same programs in update mode with deterministic stand-in outputs
  (:data:`FAKE_OUTPUTS`) so node records resolve and can be checked.

Secret inputs arrive wrapped by the engine and are rendered as ``[secret]``; internal inputs
(``__provider``: a dynamic provider's pickled code) are dropped.

Every registration is checked against the cloud APIs' documented refusals
(:mod:`provision.backends.api_rules`): a call AWS or GCP would refuse raises
:class:`~provision.backends.api_rules.ApiRefusal` here, before any account is involved.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import rpc

from provision.backends.api_rules import refusal

UNKNOWN = "(known after apply)"
SECRET = "[secret]"


@dataclass(frozen=True)
class PlannedResource:
    """One resource the program registers."""

    type: str  # Pulumi type token, e.g. aws:ec2/instance:Instance
    name: str  # logical name
    inputs: dict[str, Any]  # as the provider receives them (camelCase keys)
    custom: bool = True  # False for component resources (groupings, no cloud object)

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "inputs": self.inputs}


@dataclass
class OfflineRun:
    resources: list[PlannedResource] = field(default_factory=list)
    invokes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)  # resolved component outputs

    def of_type(self, token: str) -> list[PlannedResource]:
        return [r for r in self.resources if r.type == token]

    def named(self, name: str, token: str | None = None) -> PlannedResource:
        """The custom resource (not component) called ``name`` (of type ``token``)."""
        hits = [r for r in self.resources if r.name == name and r.custom
                and token in (None, r.type)]
        if len(hits) != 1:
            raise KeyError(f"{len(hits)} resources named {name!r}")
        return hits[0]


def clean(value: Any) -> Any:
    """Inputs as plain JSON: secrets masked, unknowns named, floats that are ints as ints."""
    if rpc.is_rpc_secret(value):
        return SECRET
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items() if not k.startswith("__")}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return UNKNOWN  # pulumi.output.Unknown and other engine placeholders


def _tpu_endpoints(inputs: dict[str, Any], n: int) -> list[dict[str, Any]]:
    from stacks.gcp_data import tpu_slice

    hosts = tpu_slice(inputs.get("acceleratorType") or inputs["accelerator_type"]).hosts
    return [{"ipAddress": f"10.43.0.{10 + i}", "port": 8470,
             "accessConfigs": [{"externalIp": f"203.0.113.{n * 10 + i}"}]}
            for i in range(hosts)]


# Stand-in outputs per type for update-mode runs (tests): addresses from the documentation
# ranges (RFC 5737), so nothing here can be mistaken for or reach a real host.
FAKE_OUTPUTS: dict[str, Callable[[dict[str, Any], int], dict[str, Any]]] = {
    "aws:ec2/instance:Instance": lambda i, n: {
        "publicIp": f"203.0.113.{n}", "privateIp": f"10.42.0.{n}",
        "availabilityZone": "us-east-1a", "primaryNetworkInterfaceId": f"eni-{n:017x}",
        "instanceState": "running"},
    "aws:ec2/eip:Eip": lambda i, n: {"publicIp": f"198.51.100.{n}"},
    "aws:ec2/launchTemplate:LaunchTemplate": lambda i, n: {"latestVersion": 1},
    "aws:ec2/placementGroup:PlacementGroup": lambda i, n: {"name": i.get("name")},
    "aws:ec2/keyPair:KeyPair": lambda i, n: {"keyName": i.get("keyName")},
    "gcp:compute/instance:Instance": lambda i, n: {
        "instanceId": str(1000 + n),
        "networkInterfaces": [
            {**nic, "networkIp": f"10.43.0.{n}" if k == 0 else f"192.168.{k - 1}.{n}",
             "accessConfigs": [{"natIp": f"203.0.113.{n}"}] if k == 0 else []}
            for k, nic in enumerate(i.get("networkInterfaces") or [{}])]},
    "gcp:compute/resourcePolicy:ResourcePolicy": lambda i, n: {
        "selfLink": f"projects/demo/regions/r/resourcePolicies/{i.get('name')}"},
    "gcp:tpu/v2Vm:V2Vm": lambda i, n: {"state": "READY",
                                       "networkEndpoints": _tpu_endpoints(i, n)},
    # a queued TPU slice (stacks/tpu_queued.py); other dynamic resources get nothing extra
    "pulumi-python:dynamic:Resource": lambda i, n: (
        {"state": "READY", "queued_state": "ACTIVE", "kind": "tpu-queued-resource",
         "network_endpoints": [{"ip_address": e["ipAddress"],
                                "access_configs": [{"external_ip": e["accessConfigs"][0][
                                    "externalIp"]}]} for e in _tpu_endpoints(i, n)]}
        if "accelerator_type" in i else {}),
}
FAKE_AMI = "ami-0123456789abcdef0"


def _fake_ami(args: dict[str, Any]) -> dict[str, Any]:
    """The image asked for by id, or a stand-in for the newest match of a name filter."""
    by_id = [f["values"][0] for f in args.get("filters") or [] if f.get("name") == "image-id"]
    return {"id": by_id[0] if by_id else FAKE_AMI, "rootDeviceName": "/dev/sda1",
            "name": "offline stand-in image"}


FAKE_INVOKES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "aws:ec2/getAmi:getAmi": _fake_ami,
    "aws:ssm/getParameter:getParameter": lambda a: {"name": a.get("name"), "value": FAKE_AMI,
                                                    "type": "String"},
}


def _lookup_placeholder(token: str, args: dict[str, Any]) -> dict[str, Any]:
    """What a preview shows for a lookup it cannot make offline."""
    if token == "aws:ssm/getParameter:getParameter":
        return {"name": args.get("name"), "value": f"(lookup: SSM parameter {args.get('name')})"}
    filters = {f.get("name"): f.get("values") for f in args.get("filters") or []}
    what = (f"image {filters['image-id'][0]}" if "image-id" in filters else
            f"newest image named {filters.get('name', ['?'])[0]!r} owned by "
            f"{', '.join(args.get('owners') or [])}")
    return {"id": f"(lookup: {what})", "rootDeviceName": "(root device of that image)"}


class RecordingMocks(pulumi.runtime.Mocks):
    """Records every registration and invoke; answers with stand-ins or unknowns."""

    def __init__(self, fake_outputs: bool) -> None:
        self.fake_outputs = fake_outputs
        self.run = OfflineRun()
        self._n = itertools.count(1)
        self.registered: dict[str, tuple[str, dict[str, Any]]] = {}  # id → (type, inputs)

    def lookup(self, ref: Any) -> tuple[str, dict[str, Any]] | None:
        return self.registered.get(ref) if isinstance(ref, str) else None

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict]:
        inputs = clean(args.inputs)
        self.run.resources.append(PlannedResource(args.typ, args.name, inputs,
                                                  bool(args.custom)))
        refused = refusal(args.typ, inputs, self.lookup, templates_launch=not self.fake_outputs)
        if refused is not None:
            raise refused
        if not self.fake_outputs:
            # preview: inputs carry through, everything the cloud assigns stays unknown
            return None, dict(args.inputs)
        n = next(self._n)
        extra = FAKE_OUTPUTS.get(args.typ)
        state = {**args.inputs, **(extra(args.inputs, n) if extra else {})}
        self.registered[f"{args.name}-id"] = (args.typ, inputs)
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        self.run.invokes.append((args.token, clean(args.args)))
        if self.fake_outputs and args.token in FAKE_INVOKES:
            return FAKE_INVOKES[args.token](args.args)
        return _lookup_placeholder(args.token, args.args)


def run_offline(build: Callable[[], pulumi.ComponentResource], *, fake_outputs: bool = False,
                project: str = "provision", stack: str = "offline") -> OfflineRun:
    """Run ``build`` (which creates one component) under mocks; return what it registered and,
    with ``fake_outputs``, its resolved ``nodes`` output."""
    mocks = RecordingMocks(fake_outputs)
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=not fake_outputs)
    holder: dict[str, Any] = {}

    @pulumi.runtime.test
    def program() -> pulumi.Output[Any]:
        component = build()
        nodes = getattr(component, "nodes", None)
        if nodes is None:
            return pulumi.Output.from_input(None)
        return nodes.apply(lambda v: holder.__setitem__("nodes", v))

    program()
    mocks.run.outputs = holder
    return mocks.run
