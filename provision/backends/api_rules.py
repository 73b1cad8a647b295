"""What AWS and GCP refuse, as checks over the inputs a stack registers.

The Pulumi providers accept any well-typed arguments; the cloud APIs do not. Each rule here is
one documented refusal, with the error code the API answers and where the rule is stated, so
`provision preview --offline` reports a launch the cloud would refuse before anything is
created, and the test engine (tests/fixtures/cloud) fails the same calls a real account would.

A rule sees one registration: its resource type, its inputs (camelCase, as the provider gets
them), and a ``lookup`` from a resource id to the (type, inputs) it was registered with, for
rules that span resources (an Elastic IP names an instance, which names a launch template).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Lookup = Callable[[Any], tuple[str, dict[str, Any]] | None]

AWS_INSTANCE = "aws:ec2/instance:Instance"
AWS_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
AWS_EIP = "aws:ec2/eip:Eip"
GCP_INSTANCE = "gcp:compute/instance:Instance"
GCP_SUBNETWORK = "gcp:compute/subnetwork:Subnetwork"


class ApiRefusal(Exception):
    """The cloud API would answer this call with an error: code, message, and the source."""

    def __init__(self, code: str, message: str, source: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.source = source


@dataclass(frozen=True)
class Rule:
    token: str  # the resource type it applies to
    check: Callable[[dict[str, Any], Lookup], ApiRefusal | None]
    source: str


# -- AWS ---------------------------------------------------------------------------------------
PUBLIC_IP_SOURCE = (
    "EC2 API reference, InstanceNetworkInterfaceSpecification.AssociatePublicIpAddress: 'You "
    "cannot specify more than one network interface in the request'; error text from "
    "aws/karpenter-provider-aws#5666")
EIP_SOURCE = ("EC2 API reference, AssociateAddress.InstanceId: 'The instance must have exactly "
              "one attached network interface ... If the instance has more than one network "
              "interface, you must specify a network interface ID'")
SPOT_TYPE_SOURCE = ("EC2 API reference, SpotMarketOptions.SpotInstanceType: persistent Spot "
                    "Instance requests are only supported when the interruption behavior is "
                    "hibernate or stop")
HIBERNATE_SOURCE = ("EC2 API reference, HibernationOptionsRequest: with Configured true, "
                    "InstanceInterruptionBehavior must be omitted or hibernate")
CAPACITY_BLOCK_SOURCE = ("EC2 User Guide, 'Use Capacity Blocks': launch with MarketType "
                         "capacity-block and the Capacity Block's reservation id as target")


def _template_of(inputs: dict[str, Any], lookup: Lookup) -> dict[str, Any] | None:
    ref = (inputs.get("launchTemplate") or {}).get("id")
    found = lookup(ref) if ref else None
    return found[1] if found and found[0] == AWS_TEMPLATE else None


def launch_refusal(template: dict[str, Any]) -> ApiRefusal | None:
    """What RunInstances refuses about a launch from ``template``."""
    nics = template.get("networkInterfaces") or []
    if len(nics) > 1 and any("associatePublicIpAddress" in n for n in nics):
        return ApiRefusal("InvalidParameterCombination",
                          "The associatePublicIPAddress parameter cannot be specified when "
                          "launching with multiple network interfaces.", PUBLIC_IP_SOURCE)
    market = template.get("instanceMarketOptions") or {}
    spot = market.get("spotOptions") or {}
    if market.get("marketType") == "spot":
        behavior = spot.get("instanceInterruptionBehavior", "terminate")
        if spot.get("spotInstanceType") == "persistent" and behavior == "terminate":
            return ApiRefusal("InvalidParameterCombination",
                              "Persistent Spot requests need an interruption behavior of stop "
                              "or hibernate.", SPOT_TYPE_SOURCE)
        if behavior in ("stop", "hibernate") and spot.get("spotInstanceType") != "persistent":
            return ApiRefusal("InvalidParameterCombination",
                              f"Interruption behavior {behavior} needs a persistent Spot "
                              "request.", SPOT_TYPE_SOURCE)
    if (template.get("hibernationOptions") or {}).get("configured") and \
            market.get("marketType") == "spot" and \
            spot.get("instanceInterruptionBehavior", "hibernate") != "hibernate":
        return ApiRefusal("InvalidParameterCombination",
                          "Hibernation needs the Spot interruption behavior hibernate.",
                          HIBERNATE_SOURCE)
    target = (template.get("capacityReservationSpecification") or {}).get(
        "capacityReservationTarget") or {}
    if market.get("marketType") == "capacity-block" and not target.get("capacityReservationId"):
        return ApiRefusal("InvalidParameterValue",
                          "A capacity-block launch needs a Capacity Block reservation id.",
                          CAPACITY_BLOCK_SOURCE)
    return None


def _instance_launch(inputs: dict[str, Any], lookup: Lookup) -> ApiRefusal | None:
    template = _template_of(inputs, lookup)
    return launch_refusal(template) if template is not None else None


def _eip_on_multi_nic(inputs: dict[str, Any], lookup: Lookup) -> ApiRefusal | None:
    instance = inputs.get("instance")
    found = lookup(instance) if instance else None
    if not found or found[0] != AWS_INSTANCE:
        return None
    template = _template_of(found[1], lookup) or {}
    if len(template.get("networkInterfaces") or []) > 1:
        return ApiRefusal("InvalidInstanceID",
                          f"There are multiple interfaces attached to instance '{instance}'. "
                          "Please specify an interface ID for the operation instead.",
                          EIP_SOURCE)
    return None


# -- GCP ---------------------------------------------------------------------------------------
GVNIC_SOURCE = ("Compute Engine docs, GPU machine types: A3 machine types require the gVNIC "
                "network interface (nicType GVNIC)")
NIC_NETWORK_SOURCE = ("Compute Engine docs, 'Multiple network interfaces': each interface of a "
                      "VM must be attached to a different VPC network")
GPU_MAINTENANCE_SOURCE = ("Compute Engine docs, 'GPUs on Compute Engine: host maintenance': "
                          "VMs with GPUs cannot live migrate and must set onHostMaintenance "
                          "TERMINATE")
HYPERDISK_SOURCE = ("Compute Engine docs, A3 Ultra and A4 machine types: the boot disk must be "
                    "Hyperdisk (hyperdisk-balanced); Persistent Disk is not supported")
GPU_FAMILIES = ("a2-", "a3-", "a4-", "g2-")


def _gcp_instance(inputs: dict[str, Any], lookup: Lookup) -> ApiRefusal | None:
    machine = str(inputs.get("machineType") or "")
    nics = inputs.get("networkInterfaces") or []
    if machine.startswith("a3-") and any(n.get("nicType") != "GVNIC" for n in nics):
        return ApiRefusal("INVALID_FIELD_VALUE",
                          f"Machine type {machine} requires gVNIC on every network interface.",
                          GVNIC_SOURCE)
    networks = []
    for nic in nics:
        sub = lookup(nic.get("subnetwork")) if nic.get("subnetwork") else None
        network = (sub[1].get("network") if sub and sub[0] == GCP_SUBNETWORK
                   else nic.get("network"))
        if network is not None:
            networks.append(network)
    if len(networks) != len(set(networks)):
        return ApiRefusal("INVALID_USAGE", "Network interfaces must be attached to different "
                          "networks.", NIC_NETWORK_SOURCE)
    has_gpu = machine.startswith(GPU_FAMILIES) or bool(inputs.get("guestAccelerators"))
    if has_gpu and (inputs.get("scheduling") or {}).get("onHostMaintenance") != "TERMINATE":
        return ApiRefusal("INVALID_FIELD_VALUE", "Instances with guest accelerators do not "
                          "support live migration.", GPU_MAINTENANCE_SOURCE)
    disk_type = ((inputs.get("bootDisk") or {}).get("initializeParams") or {}).get("type")
    if machine.startswith(("a3-ultragpu", "a4-highgpu")) and disk_type and \
            not str(disk_type).startswith("hyperdisk"):
        return ApiRefusal("INVALID_FIELD_VALUE", f"Machine type {machine} does not support "
                          f"disk type {disk_type}.", HYPERDISK_SOURCE)
    return None


RULES: tuple[Rule, ...] = (
    Rule(AWS_INSTANCE, _instance_launch, PUBLIC_IP_SOURCE),
    Rule(AWS_EIP, _eip_on_multi_nic, EIP_SOURCE),
    Rule(GCP_INSTANCE, _gcp_instance, GVNIC_SOURCE),
)


def refusal(token: str, inputs: dict[str, Any], lookup: Lookup,
            *, templates_launch: bool = False) -> ApiRefusal | None:
    """The first rule ``inputs`` break, or None. ``templates_launch``: judge a launch template
    as the launches it will make (an offline preview has no instance ids to follow)."""
    if templates_launch and token == AWS_TEMPLATE:
        return launch_refusal(inputs)
    for rule in RULES:
        if rule.token == token:
            found = rule.check(inputs, lookup)
            if found is not None:
                return found
    return None
