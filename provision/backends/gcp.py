"""GCP backend: GPU VMs (stacks/gcp_cluster.py) and TPU slices (stacks/tpu_cluster.py).

The optimizer's offering decides which: a TPU generation (gpus.yaml `tpu:`) becomes TPU VMs,
anything else GPU VMs. For TPUs the ClusterSpec has one node per TPU VM host (slices × hosts,
slice-major); the stack checks the count against the slice's topology.

Also decided here: the project (provision.backends.gcp_project: plan, environment, gcloud's
active configuration, service-account key), the GPU boot image (a GPU-ready Deep Learning VM
family for the GPU's architecture unless gcp.image names one), and, on `up`/`recover` of an
existing TPU cluster, which slices to recreate (provision.backends.tpu_recovery: a preempted
slice never comes back by itself).
"""

from __future__ import annotations

from typing import Any, ClassVar

from provision.backends.base import ClusterSpec, Event, NodeRecord
from provision.backends.gcp_project import Project, resolve_project
from provision.backends.operator import ssh_policy
from provision.backends.pulumi_backend import Builder, PulumiBackend
from provision.catalog.specs import gpu_table
from provision.errors import InputError
from provision.plan.cloud import GcpTarget
from stacks.common import NodeArgs
from stacks.gcp_data import GUEST_ACCELERATORS, gpu_image, tpu_slice


def is_tpu(offering: Any) -> bool:
    spec = gpu_table().resolve(offering.gpu)
    return bool(spec and spec.is_tpu)


class GcpBackend(PulumiBackend):
    name = "gcp"
    project = "provision-gcp"
    plugin_packages: ClassVar[dict[str, str]] = {"gcp": "pulumi_gcp"}
    capabilities: ClassVar[dict[str, bool]] = {
        "spot": True, "multi_node": True, "stop": False, "recreate": True,
        "tpu": True, "compact_placement": True}

    def settings(self, spec: ClusterSpec) -> GcpTarget:
        if spec.offering is None or spec.offering.provider != "gcp":
            got = spec.offering.provider if spec.offering is not None else "none"
            raise InputError(f"target gcp needs a GCP offering from the plan, got {got}; "
                             "add constraints.clouds: [gcp]")
        if not spec.offering.zone:
            raise InputError(f"{spec.offering.instance_type} in {spec.offering.region}: the "
                             "catalog row has no zone; GCP needs one")
        return spec.settings if isinstance(spec.settings, GcpTarget) else GcpTarget()

    @staticmethod
    def provisioning(s: GcpTarget, spot: bool) -> str:
        return s.provisioning if s.provisioning != "auto" else ("spot" if spot else "standard")

    def gcp_project(self, spec: ClusterSpec) -> Project:
        return resolve_project(self.settings(spec).project)

    def network(self, s: GcpTarget) -> Any:
        from stacks.gcp_cluster import GcpNetworkArgs

        return GcpNetworkArgs(s.network, s.subnetwork, s.subnet_cidr)

    def gpu_args(self, spec: ClusterSpec, *, offline: bool = False) -> Any:
        from stacks.gcp_cluster import GcpClusterArgs

        s = self.settings(spec)
        o = spec.offering
        multi = len(spec.nodes) > 1
        guest = None
        if o.instance_type.startswith("n1-"):
            kind = GUEST_ACCELERATORS.get(o.gpu)
            if kind is None:
                raise InputError(f"{o.gpu} cannot be attached to N1 machines "
                                 f"(known: {', '.join(GUEST_ACCELERATORS)})")
            guest = (kind, o.gpu_count)
        image = gpu_image(o.gpu)
        return GcpClusterArgs(
            cluster=spec.cluster,
            machine_type=o.instance_type,
            zone=o.zone,
            nodes=tuple(NodeArgs(n.name, n.sku, n.role, dict(n.labels)) for n in spec.nodes),
            ssh=ssh_policy(spec.ssh, None if offline else self.detect_cidr),
            provisioning=self.provisioning(s, spec.spot),
            termination_action=s.termination_action,
            guest_accelerator=guest,
            placement=s.placement if s.placement is not None else multi,
            gpudirect=s.gpudirect if s.gpudirect is not None else multi,
            network=self.network(s),
            image=s.image or image.image,
            image_family="custom" if s.image else image.family,
            image_driver=None if s.image else image.driver_branch,
            reservation=s.reservation,
            boot_disk_gb=s.boot_disk_gb,
            boot_disk_type=s.boot_disk_type,
            service_account=s.service_account,
            project=self.gcp_project(spec).id,
            labels=dict(s.labels),
        )

    def tpu_args(self, spec: ClusterSpec, *, offline: bool = False) -> Any:
        from stacks.tpu_cluster import TpuClusterArgs

        s = self.settings(spec)
        shape = tpu_slice(spec.offering.instance_type)
        nodes = [NodeArgs(n.name, n.sku, n.role, dict(n.labels)) for n in spec.nodes]
        if len(nodes) % shape.hosts:
            raise InputError(f"{shape.accelerator_type} has {shape.hosts} hosts per slice; "
                             f"{len(nodes)} nodes is not a whole number of slices")
        slices = tuple(tuple(nodes[i:i + shape.hosts])
                       for i in range(0, len(nodes), shape.hosts))
        return TpuClusterArgs(
            cluster=spec.cluster,
            shape=shape,
            zone=spec.offering.zone,
            slices=slices,
            ssh=ssh_policy(spec.ssh, None if offline else self.detect_cidr),
            provisioning=self.provisioning(s, spec.spot),
            runtime_version=s.tpu_runtime_version,
            network=self.network(s),
            service_account=s.service_account,
            project=self.gcp_project(spec).id,
            reserved=s.reservation is not None,
            queued=s.tpu_queued,
            queue_hours=s.tpu_queue_hours,
            labels=dict(s.labels),
        )

    def component(self, spec: ClusterSpec, *, offline: bool = False) -> Builder:
        if is_tpu(self._offering(spec)):
            from stacks.tpu_cluster import TpuCluster

            tpu = self.tpu_args(spec, offline=offline)
            return lambda: TpuCluster(spec.cluster, tpu)
        from stacks.gcp_cluster import GcpCluster

        gpu = self.gpu_args(spec, offline=offline)
        return lambda: GcpCluster(spec.cluster, gpu)

    def _offering(self, spec: ClusterSpec) -> Any:
        self.settings(spec)  # validates the offering
        return spec.offering

    def config(self, spec: ClusterSpec) -> dict[str, str]:
        zone = spec.offering.zone
        return {"gcp:zone": zone, "gcp:region": zone.rsplit("-", 1)[0],
                "gcp:project": self.gcp_project(spec).id}

    def apply(self, spec: ClusterSpec, event: Event) -> list[NodeRecord]:
        """A TPU cluster that exists already is refreshed and its preempted slices recreated
        (delete, create again under the same name) before the stack is brought to the plan."""
        if not is_tpu(self._offering(spec)):
            return super().apply(spec, event)
        self.check(spec)
        self.runner.cli()
        program = self.stack_program(spec)
        if self.runner.resources(program):
            from provision.backends.tpu_recovery import Action, recreate_preempted

            notes = self.notes()
            attempts: dict[str, int] = notes.get("tpu_recreates", {})
            decisions = recreate_preempted(self.runner, program, event, attempts)
            settled = all(d.action is Action.KEEP for d in decisions)
            notes["tpu_recreates"] = {} if settled else attempts
            self.save_notes(notes)
        event(f"{self.name}: pulumi up {self.project}/{spec.cluster} "
              f"({len(spec.nodes)} TPU VM host(s))")
        return self.records(self.runner.up(program, event))

    def host_keys(self, node: NodeRecord) -> list[str] | None:
        """A GPU VM's SSH host keys as its guest agent published them (guest attributes,
        provision.known_hosts); TPU VMs have none there: they are trusted on first use."""
        from provision.backends.host_keys import gcp_guest_attribute_host_keys
        from provision.plan.load import load_plan

        if node.sku.startswith("tpu-") or not node.zone:
            return None
        plan = load_plan(self.state_dir / "plan.yaml").plan
        project = resolve_project(plan.gcp.project if plan.gcp else None).id
        return gcp_guest_attribute_host_keys(project, node.zone, node.name)
