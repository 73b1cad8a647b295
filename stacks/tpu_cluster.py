"""GCP TPU VM cluster: one ``gcp.tpu.V2Vm`` per slice, one node record per TPU VM worker host.

A multi-host slice (v5p-16: 8 chips on 2 hosts; v5litepod-16: 4 hosts) is one TPU resource
whose ``network_endpoints`` list its workers; each worker is an SSH host for the inventory.
Slices are created with ``delete_before_replace`` because a TPU name is fixed: recreating a
preempted slice (provision.backends.tpu_recovery) replaces it in place.

Resources: the cluster network and firewall rules (shared with GPU VMs), and the TPU VMs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_gcp as gcp

from stacks.common import NodeArgs, SshPolicy, child, field_of
from stacks.gcp_cluster import ClusterNetwork, GcpNetworkArgs, ssh_metadata
from stacks.gcp_data import TpuSlice

SCHEDULING: dict[str, dict[str, bool] | None] = {
    "standard": None,
    "spot": {"spot": True},
    "preemptible": {"preemptible": True},
}


@dataclass(frozen=True)
class TpuClusterArgs:
    """Inputs of :class:`TpuCluster`. ``slices`` holds, per slice, the node of each worker."""

    cluster: str
    shape: TpuSlice
    zone: str
    slices: tuple[tuple[NodeArgs, ...], ...]
    ssh: SshPolicy
    provisioning: str = "standard"  # standard | spot | preemptible
    runtime_version: str | None = None  # default: the generation's (shape.runtime_version)
    network: GcpNetworkArgs = field(default_factory=GcpNetworkArgs)
    service_account: str | None = None
    project: str | None = None
    reserved: bool = False  # consume the project's TPU reservation in the zone
    queued: bool = False  # obtain each slice through a queued resource (stacks/tpu_queued.py)
    queue_hours: float | None = None  # how long a queued request may wait for capacity
    labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.reserved and self.provisioning != "standard":
            raise ValueError("a reserved TPU is not spot or preemptible")
        if self.provisioning not in SCHEDULING:
            raise ValueError(f"provisioning must be one of {sorted(SCHEDULING)}")
        if not self.slices:
            raise ValueError("a TPU cluster needs at least one slice")
        for i, hosts in enumerate(self.slices):
            if len(hosts) != self.shape.hosts:
                raise ValueError(f"slice {i}: {self.shape.accelerator_type} has "
                                 f"{self.shape.hosts} hosts, {len(hosts)} nodes were given")

    @property
    def region(self) -> str:
        return self.zone.rsplit("-", 1)[0]

    def slice_name(self, index: int) -> str:
        return self.cluster if len(self.slices) == 1 else f"{self.cluster}-s{index}"


class TpuCluster(pulumi.ComponentResource):
    """TPU slices of one cluster; ``nodes`` has one NodeRecord-shaped dict per worker host,
    ``tpus`` one {name, urn, state} per slice (for recreate-on-preemption)."""

    nodes: pulumi.Output[list[dict[str, Any]]]

    def __init__(self, name: str, args: TpuClusterArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("provision:gcp:TpuCluster", name, None, opts)
        self.args = args
        shape = args.shape
        net = ClusterNetwork(f"{name}-net", args.cluster, args.network, args.region, args.ssh,
                             args.project, opts=child(self))
        labels = {"provision-cluster": args.cluster, **args.labels}
        self.vms: list[gcp.tpu.V2Vm] = []
        slice_nodes = []
        tpus = []
        for index, hosts in enumerate(args.slices):
            tpu_name = args.slice_name(index)
            if args.queued:
                vm = self._queued(tpu_name, net, labels)
                self.vms.append(vm)
                slice_nodes.append(vm.network_endpoints.apply(
                    lambda eps, hosts=hosts, tpu_name=tpu_name: self._records(eps, hosts,
                                                                              tpu_name)))
                tpus.append(pulumi.Output.all(urn=vm.urn, state=vm.state).apply(
                    lambda v, tpu_name=tpu_name: {"name": tpu_name, "urn": v["urn"],
                                                  "state": v["state"]}))
                continue
            vm = gcp.tpu.V2Vm(
                tpu_name,
                name=tpu_name,
                zone=args.zone,
                project=args.project,
                accelerator_type=shape.accelerator_type,
                runtime_version=args.runtime_version or shape.runtime_version,
                scheduling_config=({"reserved": True} if args.reserved
                                   else SCHEDULING[args.provisioning]),
                network_config={"network": net.network, "subnetwork": net.subnetwork,
                                "enable_external_ips": True},
                metadata=ssh_metadata(args.ssh),
                tags=[net.tag],
                labels={**labels, "provision-slice": tpu_name},
                service_account=({"email": args.service_account, "scopes": ["cloud-platform"]}
                                 if args.service_account else None),
                opts=child(self, depends_on=[net], delete_before_replace=True),
            )
            self.vms.append(vm)
            slice_nodes.append(vm.network_endpoints.apply(
                lambda eps, hosts=hosts, tpu_name=tpu_name: self._records(eps, hosts, tpu_name)))
            tpus.append(pulumi.Output.all(urn=vm.urn, state=vm.state).apply(
                lambda v, tpu_name=tpu_name: {"name": tpu_name, "urn": v["urn"],
                                              "state": v["state"]}))
        self.nodes = pulumi.Output.all(*slice_nodes).apply(
            lambda per_slice: [n for nodes in per_slice for n in nodes])
        self.tpus = pulumi.Output.all(*tpus)
        self.exports = {"tpus": self.tpus}  # stack outputs besides nodes
        self.register_outputs({"nodes": self.nodes, "tpus": self.tpus})

    def _queued(self, tpu_name: str, net: ClusterNetwork, labels: dict[str, str]) -> Any:
        from stacks.tpu_queued import QueuedTpu

        args = self.args
        if args.project is None:
            raise ValueError("a queued TPU needs the project (gcp.project)")
        return QueuedTpu(tpu_name, {
            "name": tpu_name, "project": args.project, "zone": args.zone,
            "accelerator_type": args.shape.accelerator_type,
            "runtime_version": args.runtime_version or args.shape.runtime_version,
            "network": net.network, "subnetwork": net.subnetwork,
            "metadata": ssh_metadata(args.ssh), "tags": [net.tag],
            "labels": {**labels, "provision-slice": tpu_name},
            "service_account": args.service_account,
            "spot": args.provisioning != "standard", "reserved": args.reserved,
            "valid_hours": args.queue_hours,
        }, opts=child(self, depends_on=[net], delete_before_replace=True))

    def _records(self, endpoints: list[Any] | None, hosts: tuple[NodeArgs, ...],
                 tpu_name: str) -> list[dict[str, Any]]:
        """One record per worker; TPU worker order (worker 0 first) is the endpoint order."""
        args = self.args
        endpoints = endpoints or []
        if len(endpoints) != len(hosts):
            raise ValueError(f"TPU {tpu_name}: {len(endpoints)} worker endpoint(s) for "
                             f"{args.shape.accelerator_type}, expected {len(hosts)}")
        out = []
        for worker, (node, ep) in enumerate(zip(hosts, endpoints, strict=True)):
            configs = field_of(ep, "access_configs") or []
            private = field_of(ep, "ip_address")
            out.append({
                "name": node.name,
                "address": (field_of(configs[0], "external_ip") if configs else None) or private,
                "private_address": private,
                "ssh_user": args.ssh.user,
                "ssh_port": 22,
                "sku": node.sku,
                "provider": "gcp",
                "role": node.role,
                "instance_id": f"{tpu_name}/worker-{worker}",
                "zone": args.zone,
                "spot": args.provisioning != "standard",
                "labels": {**node.labels, "tpu": tpu_name, "tpu_worker": str(worker),
                           "image_family": "tpu-vm",
                           "accelerator_type": args.shape.accelerator_type},
            })
        return out

