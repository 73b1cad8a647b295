"""AWS backend: the optimizer's AWS offering → stacks/aws_cluster.py through Pulumi.

Decisions made here, from the plan and the tables in stacks/aws_data.py:
  market            aws.market, or spot/on-demand as the plan chose
  EFA               on for EFA-capable types in multi-node plans (aws.efa overrides), with the
                    type's interface count (aws.efa_interfaces overrides)
  placement group   multi-node plans (aws.placement_group overrides)
  SSH               access.operator_cidr, else this machine's detected public IP
"""

from __future__ import annotations

from typing import Any, ClassVar

from provision.backends.base import ClusterSpec, NodeRecord
from provision.backends.operator import ssh_policy
from provision.backends.pulumi_backend import Builder, PulumiBackend
from provision.errors import InputError
from provision.plan.cloud import AwsTarget
from stacks.aws_data import EFA_INTERFACES
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

    def args(self, spec: ClusterSpec, *, offline: bool = False) -> Any:
        from stacks.aws_cluster import AwsClusterArgs

        s = self.settings(spec)
        o = spec.offering
        multi = len(spec.nodes) > 1
        table_efa = EFA_INTERFACES.get(o.instance_type, 0)
        use_efa = s.efa if s.efa is not None else (multi and table_efa > 0)
        if use_efa and not (s.efa_interfaces or table_efa):
            raise InputError(f"aws.efa: {o.instance_type} is not in provision's EFA table; "
                             "set aws.efa_interfaces if the type supports EFA")
        market = s.market if s.market != "auto" else ("spot" if spec.spot else "on-demand")
        return AwsClusterArgs(
            cluster=spec.cluster,
            instance_type=o.instance_type,
            zone=o.zone or f"{o.region}a",
            nodes=tuple(NodeArgs(n.name, n.sku, n.role, dict(n.labels)) for n in spec.nodes),
            ssh=ssh_policy(spec.ssh, None if offline else self.detect_cidr),
            market=market,
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
            ami=s.ami,
            root_volume_gb=s.root_volume_gb,
            tags=dict(s.tags),
        )

    def component(self, spec: ClusterSpec, *, offline: bool = False) -> Builder:
        from stacks.aws_cluster import AwsCluster

        args = self.args(spec, offline=offline)
        return lambda: AwsCluster(spec.cluster, args)

    def config(self, spec: ClusterSpec) -> dict[str, str]:
        return {"aws:region": spec.offering.region}

    @staticmethod
    def host_keys(node: NodeRecord) -> list[str] | None:
        """The node's SSH host keys from its console output (provision.known_hosts)."""
        from provision.backends.host_keys import aws_console_host_keys

        if not node.instance_id or not node.zone:
            return None
        region = node.labels.get("region") or node.zone.rstrip("abcdefghijklmnopqrstuvwxyz")
        return aws_console_host_keys(node.instance_id, region)
