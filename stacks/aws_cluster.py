"""AWS GPU cluster: network, security group, key pair, launch template and one instance per node.

Every node is launched from one LaunchTemplate, because pulumi-aws v7 deprecates
``Instance.network_interfaces`` and only a template can describe EFA interfaces (one per network
card), spot or Capacity Block market options, the placement group and IMDSv2 in one place.

Resources (names prefixed with the cluster name):
  VPC, internet gateway, route table, subnet      unless an existing vpc_id/subnet_id is given
  security group                                  SSH from the operator's CIDRs only, all
                                                  traffic between members (EFA needs it)
  key pair                                        the cluster's public key
  placement group (strategy cluster)              multi-node plans
  launch template                                 image, market, EFA, root volume, IMDSv2
  instance per node (+ Elastic IP if asked)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from stacks.aws_data import AZ_ID, IMAGES, SPOT_REQUEST_TYPE, efa_layout
from stacks.common import NodeArgs, SshPolicy, child, node_record

MARKETS = ("on-demand", "spot", "capacity-block")


@dataclass(frozen=True)
class AwsClusterArgs:
    """Inputs of :class:`AwsCluster`, all plain values (the plan, resolved)."""

    cluster: str
    instance_type: str
    zone: str  # AZ id (use1-az2, as the catalog has it) or AZ name (us-east-1a)
    nodes: tuple[NodeArgs, ...]
    ssh: SshPolicy
    market: str = "on-demand"  # on-demand | spot | capacity-block
    spot_interruption: str = "terminate"  # terminate | stop | hibernate
    spot_max_price: float | None = None  # USD/h per node; None = up to the on-demand price
    capacity_reservation_id: str | None = None  # capacity-block market only
    efa_interfaces: int = 0  # EFA interfaces per node; 0 = plain ENA networking
    placement_group: bool = False  # cluster placement group (multi-node)
    public_ip: str = "auto"  # auto | elastic | none
    vpc_id: str | None = None  # existing network (with subnet_id)
    subnet_id: str | None = None
    vpc_cidr: str = "10.42.0.0/16"
    image: str = "dlami-base"  # key of stacks.aws_data.IMAGES
    ami: str | None = None  # exact AMI id; wins over image
    root_volume_gb: int = 200
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.market not in MARKETS:
            raise ValueError(f"market must be one of {MARKETS}, got {self.market!r}")
        if self.market == "capacity-block" and not self.capacity_reservation_id:
            raise ValueError("a capacity-block market needs capacity_reservation_id")
        if self.image not in IMAGES and not self.ami:
            raise ValueError(f"unknown image {self.image!r}; known: {sorted(IMAGES)}")
        if not self.nodes:
            raise ValueError("a cluster needs at least one node")

    @property
    def ssh_user(self) -> str:
        return self.ssh.user or IMAGES[self.image].ssh_user


class AwsCluster(pulumi.ComponentResource):
    """The AWS resources of one cluster; ``nodes`` is the NodeRecord-shaped output."""

    nodes: pulumi.Output[list[dict[str, Any]]]

    def __init__(self, name: str, args: AwsClusterArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("provision:aws:Cluster", name, None, opts)
        self.args = args
        tags = {"provision:cluster": args.cluster, **args.tags}
        cidrs = args.ssh.checked_cidrs()

        vpc_id, subnet_id = self._network(name, tags)
        self.security_group = self._security_group(name, vpc_id, cidrs, tags)
        key = aws.ec2.KeyPair(f"{name}-key", key_name=f"provision-{args.cluster}",
                              public_key=args.ssh.public_key, tags=tags, opts=child(self))
        group = None
        if args.placement_group:
            group = aws.ec2.PlacementGroup(f"{name}-pg", name=f"provision-{args.cluster}",
                                           strategy="cluster", tags=tags, opts=child(self))
        ami = self._image()
        template = aws.ec2.LaunchTemplate(
            f"{name}-lt",
            name_prefix=f"provision-{args.cluster}-",
            image_id=ami.id,
            instance_type=args.instance_type,
            key_name=key.key_name,
            network_interfaces=self._interfaces(subnet_id),
            instance_market_options=self._market(),
            capacity_reservation_specification=(
                {"capacity_reservation_target": {
                    "capacity_reservation_id": args.capacity_reservation_id}}
                if args.market == "capacity-block" else None),
            placement={"group_name": group.name} if group is not None else None,
            block_device_mappings=[{
                "device_name": ami.root_device_name,
                "ebs": {"volume_size": args.root_volume_gb, "volume_type": "gp3",
                        "encrypted": "true", "delete_on_termination": "true"},
            }],
            hibernation_options=({"configured": True}
                                 if args.market == "spot" and args.spot_interruption == "hibernate"
                                 else None),
            metadata_options={"http_tokens": "required", "http_endpoint": "enabled",
                              "http_put_response_hop_limit": 2},
            tag_specifications=[{"resource_type": kind, "tags": tags}
                                for kind in ("volume", "network-interface")],
            tags=tags,
            opts=child(self),
        )
        records = []
        self.instances: list[aws.ec2.Instance] = []
        for node in args.nodes:
            instance = aws.ec2.Instance(
                node.name,
                launch_template={"id": template.id,
                                 "version": template.latest_version.apply(str)},
                tags={**tags, "Name": node.name, "provision:role": node.role},
                opts=child(self, depends_on=[self.security_group]),
            )
            self.instances.append(instance)
            address: Any = instance.public_ip
            if args.public_ip == "elastic":
                eip = aws.ec2.Eip(f"{node.name}-eip", domain="vpc", instance=instance.id,
                                  tags={**tags, "Name": node.name}, opts=child(self))
                address = eip.public_ip
            elif args.public_ip == "none":
                address = None
            records.append(node_record(
                node, provider="aws", address=address, private_address=instance.private_ip,
                ssh_user=args.ssh_user, instance_id=instance.id,
                zone=instance.availability_zone, spot=args.market == "spot",
                labels={"instance_type": args.instance_type, "market": args.market,
                        "efa_interfaces": str(args.efa_interfaces)},
            ))
        self.nodes = pulumi.Output.all(*records)
        self.register_outputs({
            "nodes": self.nodes,
            "security_group_id": self.security_group.id,
            "launch_template_id": template.id,
            "placement_group": group.name if group is not None else None,
        })

    # -- pieces ----------------------------------------------------------------------------
    def _network(self, name: str, tags: dict[str, str]) -> tuple[Any, Any]:
        """An existing VPC/subnet, or a new VPC with one public subnet in the chosen zone."""
        args = self.args
        if args.vpc_id and args.subnet_id:
            return args.vpc_id, args.subnet_id
        vpc = aws.ec2.Vpc(f"{name}-vpc", cidr_block=args.vpc_cidr, enable_dns_hostnames=True,
                          enable_dns_support=True, tags={**tags, "Name": f"provision-{name}"},
                          opts=child(self))
        gateway = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags=tags,
                                          opts=child(self))
        routes = aws.ec2.RouteTable(f"{name}-rt", vpc_id=vpc.id,
                                    routes=[{"cidr_block": "0.0.0.0/0",
                                             "gateway_id": gateway.id}],
                                    tags=tags, opts=child(self))
        zone = ({"availability_zone_id": args.zone} if AZ_ID.match(args.zone)
                else {"availability_zone": args.zone})
        subnet = aws.ec2.Subnet(f"{name}-subnet", vpc_id=vpc.id, cidr_block=args.vpc_cidr,
                                map_public_ip_on_launch=False, tags=tags, opts=child(self),
                                **zone)
        aws.ec2.RouteTableAssociation(f"{name}-rta", subnet_id=subnet.id,
                                      route_table_id=routes.id, opts=child(self))
        return vpc.id, subnet.id

    def _security_group(self, name: str, vpc_id: Any, cidrs: list[str],
                        tags: dict[str, str]) -> aws.ec2.SecurityGroup:
        """SSH from the operator only; everything between members (EFA requires all traffic
        to and from the group itself); all egress (packages, images)."""
        group = aws.ec2.SecurityGroup(
            f"{name}-sg", vpc_id=vpc_id, description=f"provision cluster {self.args.cluster}",
            tags=tags, opts=child(self))
        for i, cidr in enumerate(cidrs):
            family = "cidr_ipv6" if ":" in cidr else "cidr_ipv4"
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-ssh-{i}", security_group_id=group.id, ip_protocol="tcp",
                from_port=22, to_port=22, description="SSH from the operator", tags=tags,
                opts=child(self), **{family: cidr})
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-intra", security_group_id=group.id, ip_protocol="-1",
            referenced_security_group_id=group.id, description="all traffic inside the cluster",
            tags=tags, opts=child(self))
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-intra-out", security_group_id=group.id, ip_protocol="-1",
            referenced_security_group_id=group.id, description="all traffic inside the cluster",
            tags=tags, opts=child(self))
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-egress", security_group_id=group.id, ip_protocol="-1",
            cidr_ipv4="0.0.0.0/0", description="outbound (packages, images)", tags=tags,
            opts=child(self))
        return group

    def _image(self) -> Any:
        """The AMI: an exact id, or the newest image of the chosen family in this region."""
        args = self.args
        opts = pulumi.InvokeOutputOptions(parent=self)
        if args.ami:
            return aws.ec2.get_ami_output(owners=["self", "amazon", "aws-marketplace"],
                                          filters=[{"name": "image-id", "values": [args.ami]}],
                                          opts=opts)
        image = IMAGES[args.image]
        return aws.ec2.get_ami_output(
            owners=list(image.owners), most_recent=True,
            filters=[{"name": "name", "values": [image.name]},
                     {"name": "architecture", "values": [image.architecture]},
                     {"name": "state", "values": ["available"]}],
            opts=opts)

    def _interfaces(self, subnet_id: Any) -> list[dict[str, Any]]:
        args = self.args
        out = []
        for card, device, kind in efa_layout(args.efa_interfaces):
            nic: dict[str, Any] = {
                "network_card_index": card, "device_index": device,
                "subnet_id": subnet_id, "security_groups": [self.security_group.id],
                "delete_on_termination": "true",
            }
            if kind != "interface":
                nic["interface_type"] = kind
            if card == 0 and device == 0:
                nic["associate_public_ip_address"] = (
                    "true" if args.public_ip == "auto" else "false")
            out.append(nic)
        return out

    def _market(self) -> dict[str, Any] | None:
        args = self.args
        if args.market == "spot":
            spot: dict[str, Any] = {
                "instance_interruption_behavior": args.spot_interruption,
                "spot_instance_type": SPOT_REQUEST_TYPE[args.spot_interruption],
            }
            if args.spot_max_price is not None:
                spot["max_price"] = f"{args.spot_max_price:.4f}"
            return {"market_type": "spot", "spot_options": spot}
        if args.market == "capacity-block":
            return {"market_type": "capacity-block"}
        return None
