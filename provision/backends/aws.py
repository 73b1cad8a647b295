"""AWS backend: the optimizer's AWS offering → stacks/aws_cluster.py through Pulumi.

Decisions made here, from the plan and the tables in stacks/aws_data.py:
  market            aws.market, or spot/on-demand as the plan chose
  EFA               on for EFA-capable types in multi-node plans (aws.efa overrides), with the
                    type's interface count (aws.efa_interfaces overrides)
  placement group   multi-node plans (aws.placement_group overrides)
  SSH               access.operator_cidr, else this machine's detected public IP
  hibernation       refused on instance types EC2 cannot hibernate (every GPU type)
  image             resolved once per region and pinned in the backend's notes
                    (<state>/aws.json): a new DLAMI release does not replace the nodes; `up
                    --refresh-image` (or a change of aws.image) resolves it again
  down              cancels the cluster's spot requests first (a persistent request outlives
                    its instance and can launch a new one), then destroys the stack, then
                    lists requests still open as leftovers
"""

from __future__ import annotations

from typing import Any, ClassVar

from provision.backends.base import ClusterSpec, DestroyReport, Event, NodeRecord
from provision.backends.operator import ssh_policy
from provision.backends.pulumi_backend import Builder, PulumiBackend
from provision.errors import InputError
from provision.plan.cloud import AwsTarget
from provision.state import now
from stacks.aws_data import EFA_INTERFACES, hibernation_refusal
from stacks.common import NodeArgs


class AwsBackend(PulumiBackend):
    name = "aws"
    project = "provision-aws"
    plugin_packages: ClassVar[dict[str, str]] = {"aws": "pulumi_aws"}
    capabilities: ClassVar[dict[str, bool]] = {
        "spot": True, "multi_node": True, "stop": False, "recreate": True,
        "capacity_block": True, "efa": True}

    def settings(self, spec: ClusterSpec) -> AwsTarget:
        if spec.offering is None or spec.offering.provider != "aws":
            got = spec.offering.provider if spec.offering is not None else "none"
            raise InputError(f"target aws needs an AWS offering from the plan, got {got}; "
                             "add constraints.clouds: [aws]")
        return spec.settings if isinstance(spec.settings, AwsTarget) else AwsTarget()

    def market(self, spec: ClusterSpec, s: AwsTarget) -> str:
        market = s.market if s.market != "auto" else ("spot" if spec.spot else "on-demand")
        o = spec.offering
        if market == "spot" and s.spot_interruption == "hibernate":
            why = hibernation_refusal(o.instance_type, o.gpu_count)
            if why:
                raise InputError(f"aws.spot_interruption: hibernate: {why}; use stop (keeps "
                                 "the disk) or terminate")
        if market == "spot" and s.capacity_reservation_id:
            raise InputError("aws.capacity_reservation_id: a capacity reservation serves "
                             "On-Demand launches, not spot; set resources.spot: false or "
                             "aws.market: on-demand")
        return market

    def args(self, spec: ClusterSpec, *, offline: bool = False, ami: str | None = None) -> Any:
        from stacks.aws_cluster import AwsClusterArgs

        s = self.settings(spec)
        o = spec.offering
        multi = len(spec.nodes) > 1
        table_efa = EFA_INTERFACES.get(o.instance_type, 0)
        use_efa = s.efa if s.efa is not None else (multi and table_efa > 0)
        if use_efa and not (s.efa_interfaces or table_efa):
            raise InputError(f"aws.efa: {o.instance_type} is not in provision's EFA table; "
                             "set aws.efa_interfaces if the type supports EFA")
        try:
            return AwsClusterArgs(
                cluster=spec.cluster,
                instance_type=o.instance_type,
                zone=o.zone or f"{o.region}a",
                nodes=tuple(NodeArgs(n.name, n.sku, n.role, dict(n.labels)) for n in spec.nodes),
                ssh=ssh_policy(spec.ssh, None if offline else self.detect_cidr),
                market=self.market(spec, s),
                spot_interruption=s.spot_interruption,
                spot_max_price=s.spot_max_price,
                capacity_reservation_id=s.capacity_reservation_id,
                efa_interfaces=(s.efa_interfaces or table_efa) if use_efa else 0,
                placement_group=s.placement_group if s.placement_group is not None else multi,
                public_ip=s.public_ip,
                vpc_id=s.vpc_id,
                subnet_id=s.subnet_id,
                vpc_cidr=s.vpc_cidr,
                image=s.image,
                ami=s.ami or ami,
                root_volume_gb=s.root_volume_gb,
                checkpoint_bucket=s.checkpoint_bucket,
                tags=dict(s.tags),
            )
        except ValueError as exc:
            raise InputError(f"aws: {exc}") from None

    def component(self, spec: ClusterSpec, *, offline: bool = False) -> Builder:
        from stacks.aws_cluster import AwsCluster

        args = self.args(spec, offline=offline, ami=None if offline else self.pinned_ami(spec))
        return lambda: AwsCluster(spec.cluster, args)

    def config(self, spec: ClusterSpec) -> dict[str, str]:
        return {"aws:region": spec.offering.region}

    # -- the image, resolved once ----------------------------------------------------------
    def pinned_ami(self, spec: ClusterSpec) -> str | None:
        """The AMI resolved by an earlier `up` for this region and image family, unless the
        plan names its own or asks for a fresh one."""
        s = self.settings(spec)
        if s.ami or spec.refresh_image:
            return None
        pin = self.notes().get("images", {}).get(spec.offering.region) or {}
        return pin.get("ami") if pin.get("image") == s.image else None

    def apply(self, spec: ClusterSpec, event: Event) -> list[NodeRecord]:
        records = super().apply(spec, event)
        s = self.settings(spec)
        outputs = self.runner.outputs(self.target(spec.cluster))
        notes = self.notes()
        notes["region"] = spec.offering.region
        notes["spot_requests"] = sorted(set(notes.get("spot_requests", []))
                                        | set(outputs.get("spot_requests") or []))
        image_id = outputs.get("image_id")
        images = notes.setdefault("images", {})
        if image_id and not s.ami and images.get(spec.offering.region, {}).get("ami") != image_id:
            images[spec.offering.region] = {"image": s.image, "ami": image_id, "at": now()}
            event(f"aws: image {s.image} in {spec.offering.region} is {image_id}; kept for "
                  "later runs (`provision up --refresh-image` looks again)")
        self.save_notes(notes)
        return records

    # -- down ------------------------------------------------------------------------------
    def destroy(self, cluster: str, event: Event) -> DestroyReport:
        from botocore.exceptions import BotoCoreError, ClientError

        from provision.backends.aws_api import (
            cancel_cluster_requests,
            ec2_client,
            leftover_requests,
        )

        notes = self.notes()
        region = notes.get("region")
        ids = notes.get("spot_requests", [])
        client, problem = None, None
        if region:
            try:
                client = ec2_client(region)
                cancelled = cancel_cluster_requests(client, cluster, ids)
                if cancelled:
                    event(f"aws: cancelled spot request(s) {', '.join(cancelled)}")
            except (BotoCoreError, ClientError) as exc:
                problem = f"aws spot requests of {cluster} in {region} (not checked: {exc})"
        report = super().destroy(cluster, event)
        if client is not None and problem is None:
            try:
                report.leftovers += leftover_requests(client, cluster, ids)
            except (BotoCoreError, ClientError) as exc:
                problem = f"aws spot requests of {cluster} in {region} (not checked: {exc})"
        if problem:
            report.leftovers.append(problem)
        if report.clean:
            self.notes_file.unlink(missing_ok=True)
        return report

    @staticmethod
    def host_keys(node: NodeRecord) -> list[str] | None:
        """The node's SSH host keys from its console output (provision.known_hosts)."""
        from provision.backends.host_keys import aws_console_host_keys

        if not node.instance_id or not node.zone:
            return None
        region = node.labels.get("region") or node.zone.rstrip("abcdefghijklmnopqrstuvwxyz")
        return aws_console_host_keys(node.instance_id, region)
