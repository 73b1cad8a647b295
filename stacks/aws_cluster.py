"""AWS GPU cluster: network, security group, key pair, launch template and one instance per node.

Every node is launched from one LaunchTemplate, because pulumi-aws v7 deprecates
``Instance.network_interfaces`` and only a template can describe EFA interfaces (one per network
card), spot or Capacity Block market options, the placement group and IMDSv2 in one place.

How nodes are reached (``public_ip``), since EC2 refuses a public IP at launch for an instance
with several network interfaces (every EFA type in a multi-node plan):
  launch    single-interface nodes: a public IPv4 at launch on each node
  eip       an Elastic IP bound to the node's primary network interface
  private   no public address: reached through the head (ProxyJump, as ParallelCluster reaches
            its compute nodes) or from inside the VPC (SSM)
``auto`` picks launch for single-interface nodes and, with several interfaces, an Elastic IP
for the head and private workers; ``head`` always does the latter; ``elastic`` gives every node
an Elastic IP; ``none`` keeps every node private.

Resources (names prefixed with the cluster name):
  VPC, internet gateway, route table, subnet      unless an existing vpc_id/subnet_id is given
  NAT gateway (+ its subnet, route table, EIP)    when provision makes the VPC and a node is
                                                  private (packages reach the nodes through it)
  security group                                  SSH from the operator's CIDRs only, all
                                                  traffic between members (EFA needs it)
  key pair                                        the cluster's public key
  IAM role + instance profile                     only when needed: SSM for private nodes,
                                                  read access to a checkpoint bucket
  placement group (strategy cluster)              multi-node plans
  launch template                                 image, market, EFA, root volume, IMDSv2
  instance per node (+ Elastic IP on the primary interface where the layout says eip)
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from stacks.aws_data import AZ_ID, IMAGES, SPOT_REQUEST_TYPE, efa_layout
from stacks.common import NodeArgs, SshPolicy, child, node_record

MARKETS = ("on-demand", "spot", "capacity-block")
PUBLIC_IP = ("auto", "head", "elastic", "none")
SSM_POLICY = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"


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
    capacity_reservation_id: str | None = None  # Capacity Block, or an On-Demand reservation
    efa_interfaces: int = 0  # EFA interfaces per node; 0 = plain ENA networking
    placement_group: bool = False  # cluster placement group (multi-node)
    public_ip: str = "auto"  # auto | head | elastic | none (module docstring)
    vpc_id: str | None = None  # existing network (with subnet_id)
    subnet_id: str | None = None
    vpc_cidr: str = "10.42.0.0/16"
    image: str = "dlami-base"  # key of stacks.aws_data.IMAGES
    ami: str | None = None  # exact AMI id (the plan's, or the one pinned in state); wins
    root_volume_gb: int = 200
    checkpoint_bucket: str | None = None  # S3 bucket the nodes may read
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.market not in MARKETS:
            raise ValueError(f"market must be one of {MARKETS}, got {self.market!r}")
        if self.public_ip not in PUBLIC_IP:
            raise ValueError(f"public_ip must be one of {PUBLIC_IP}, got {self.public_ip!r}")
        if self.market == "capacity-block" and not self.capacity_reservation_id:
            raise ValueError("a capacity-block market needs capacity_reservation_id")
        if self.market == "spot" and self.capacity_reservation_id:
            raise ValueError("capacity reservations serve On-Demand launches (and Capacity "
                             "Blocks); a spot market cannot target one")
        if self.image not in IMAGES and not self.ami:
            raise ValueError(f"unknown image {self.image!r}; known: {sorted(IMAGES)}")
        if not self.nodes:
            raise ValueError("a cluster needs at least one node")

    @property
    def ssh_user(self) -> str:
        return self.ssh.user or IMAGES[self.image].ssh_user

    @property
    def interfaces(self) -> int:
        return len(efa_layout(self.efa_interfaces))

    @property
    def head(self) -> NodeArgs:
        return next((n for n in self.nodes if n.role == "head"), self.nodes[0])

    def access(self, node: NodeArgs) -> str:
        """launch | eip | private for ``node`` (see the module docstring)."""
        mode = self.public_ip
        if mode == "auto":
            mode = "head" if self.interfaces > 1 else "launch"
        if mode == "launch":
            return "launch"
        if mode == "elastic":
            return "eip"
        if mode == "head":
            return "eip" if node.name == self.head.name else "private"
        return "private"

    @property
    def creates_network(self) -> bool:
        return not (self.vpc_id and self.subnet_id)

    @property
    def needs_nat(self) -> bool:
        """Private nodes in a VPC provision makes get outbound access through a NAT gateway."""
        return self.creates_network and any(self.access(n) == "private" for n in self.nodes)

    @property
    def ssm(self) -> bool:
        """Private nodes with no public head to jump through are reached with SSM."""
        return all(self.access(n) == "private" for n in self.nodes)


class AwsCluster(pulumi.ComponentResource):
    """The AWS resources of one cluster; ``nodes`` is the NodeRecord-shaped output."""

    nodes: pulumi.Output[list[dict[str, Any]]]

    def __init__(self, name: str, args: AwsClusterArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("provision:aws:Cluster", name, None, opts)
        self.args = args
        tags = {"provision:cluster": args.cluster, **args.tags}
        cidrs = args.ssh.checked_cidrs()
        self.gateway: aws.ec2.InternetGateway | None = None

        vpc_id, subnet_id = self._network(name, tags, cidrs)
        self.security_group = self._security_group(name, vpc_id, cidrs, tags)
        key = aws.ec2.KeyPair(f"{name}-key", key_name=f"provision-{args.cluster}",
                              public_key=args.ssh.public_key, tags=tags, opts=child(self))
        group = None
        if args.placement_group:
            group = aws.ec2.PlacementGroup(f"{name}-pg", name=f"provision-{args.cluster}",
                                           strategy="cluster", tags=tags, opts=child(self))
        profile = self._instance_profile(name, tags)
        ami = self._image()
        spot = args.market == "spot"
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
                if args.capacity_reservation_id else None),
            placement={"group_name": group.name} if group is not None else None,
            iam_instance_profile={"arn": profile.arn} if profile is not None else None,
            block_device_mappings=[{
                "device_name": ami.root_device_name,
                "ebs": {"volume_size": args.root_volume_gb, "volume_type": "gp3",
                        "encrypted": "true", "delete_on_termination": "true"},
            }],
            hibernation_options=({"configured": True}
                                 if spot and args.spot_interruption == "hibernate" else None),
            metadata_options={"http_tokens": "required", "http_endpoint": "enabled",
                              "http_put_response_hop_limit": 2},
            # tagged spot requests are how `down` finds persistent ones to cancel
            tag_specifications=[{"resource_type": kind, "tags": tags} for kind in (
                "volume", "network-interface", *(("spot-instances-request",) if spot else ()))],
            tags=tags,
            opts=child(self),
        )
        records: dict[str, Any] = {}
        self.instances: list[aws.ec2.Instance] = []
        head_address: Any = None
        # the head first: private workers record it as the node SSH jumps through
        for node in sorted(args.nodes, key=lambda n: n.name != args.head.name):
            instance = aws.ec2.Instance(
                node.name,
                launch_template={"id": template.id,
                                 "version": template.latest_version.apply(str)},
                tags={**tags, "Name": node.name, "provision:role": node.role},
                opts=child(self, depends_on=[self.security_group]),
            )
            self.instances.append(instance)
            access = args.access(node)
            address: Any = instance.public_ip if access == "launch" else None
            if access == "eip":
                eip = aws.ec2.Eip(
                    f"{node.name}-eip", domain="vpc",
                    network_interface=instance.primary_network_interface_id,
                    tags={**tags, "Name": node.name},
                    opts=child(self, depends_on=[self.gateway] if self.gateway else None))
                address = eip.public_ip
            if node.name == args.head.name:
                head_address = address
            via = (args.head.name if access == "private" and node.name != args.head.name
                   and head_address is not None else None)
            records[node.name] = node_record(
                node, provider="aws", address=address, private_address=instance.private_ip,
                ssh_user=args.ssh_user, instance_id=instance.id,
                zone=instance.availability_zone, spot=spot, via=via,
                labels={"instance_type": args.instance_type, "market": args.market,
                        "efa_interfaces": str(args.efa_interfaces), "access": access,
                        **self._image_labels()},
            )
        self.nodes = pulumi.Output.all(*(records[n.name] for n in args.nodes))
        self.exports = {
            "image_id": ami.id,
            "spot_requests": pulumi.Output.all(
                *[i.spot_instance_request_id for i in self.instances]).apply(
                    lambda ids: [x for x in ids if x]),
        }
        self.register_outputs({
            "nodes": self.nodes,
            "security_group_id": self.security_group.id,
            "launch_template_id": template.id,
            "placement_group": group.name if group is not None else None,
            **self.exports,
        })

    # -- pieces ----------------------------------------------------------------------------
    def _network(self, name: str, tags: dict[str, str], cidrs: list[str]) -> tuple[Any, Any]:
        """An existing VPC/subnet, or a new VPC with the cluster's subnet in the chosen zone
        (and, for private nodes, a NAT gateway in a small public subnet of its own)."""
        args = self.args
        if not args.creates_network:
            return args.vpc_id, args.subnet_id
        vpc = aws.ec2.Vpc(f"{name}-vpc", cidr_block=args.vpc_cidr, enable_dns_hostnames=True,
                          enable_dns_support=True, tags={**tags, "Name": f"provision-{name}"},
                          opts=child(self))
        self.gateway = gateway = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id,
                                                         tags=tags, opts=child(self))
        zone = ({"availability_zone_id": args.zone} if AZ_ID.match(args.zone)
                else {"availability_zone": args.zone})
        net = ipaddress.ip_network(args.vpc_cidr)
        cluster_cidr = str(next(net.subnets(prefixlen_diff=1))) if args.needs_nat else str(net)
        subnet = aws.ec2.Subnet(f"{name}-subnet", vpc_id=vpc.id, cidr_block=cluster_cidr,
                                map_public_ip_on_launch=False, tags=tags, opts=child(self),
                                **zone)
        if args.needs_nat:
            routes = self._nat_routes(name, vpc, gateway, zone, tags, cidrs)
        else:
            routes = [{"cidr_block": "0.0.0.0/0", "gateway_id": gateway.id}]
        table = aws.ec2.RouteTable(f"{name}-rt", vpc_id=vpc.id, routes=routes, tags=tags,
                                   opts=child(self))
        aws.ec2.RouteTableAssociation(f"{name}-rta", subnet_id=subnet.id,
                                      route_table_id=table.id, opts=child(self))
        return vpc.id, subnet.id

    def _nat_routes(self, name: str, vpc: Any, gateway: Any, zone: dict[str, str],
                    tags: dict[str, str], cidrs: list[str]) -> list[dict[str, Any]]:
        """A NAT gateway for the private nodes' outbound traffic. A node with an Elastic IP in
        the same subnet answers the operator through the internet gateway: routes for the
        operator's CIDRs go there, everything else through the NAT gateway."""
        args = self.args
        public_ip_nodes = any(args.access(n) == "eip" for n in args.nodes)
        ipv4 = [c for c in cidrs if ":" not in c]
        if public_ip_nodes and any(ipaddress.ip_network(c).prefixlen == 0 for c in ipv4):
            raise ValueError("SSH open to 0.0.0.0/0 leaves no route for private nodes' "
                             "outbound traffic; give access.operator_cidr a narrower block, or "
                             "set aws.public_ip: elastic")
        last = list(ipaddress.ip_network(args.vpc_cidr).subnets(new_prefix=28))[-1]
        public = aws.ec2.Subnet(f"{name}-nat-subnet", vpc_id=vpc.id, cidr_block=str(last),
                                map_public_ip_on_launch=False, tags=tags, opts=child(self),
                                **zone)
        table = aws.ec2.RouteTable(f"{name}-nat-rt", vpc_id=vpc.id,
                                   routes=[{"cidr_block": "0.0.0.0/0",
                                            "gateway_id": gateway.id}],
                                   tags=tags, opts=child(self))
        aws.ec2.RouteTableAssociation(f"{name}-nat-rta", subnet_id=public.id,
                                      route_table_id=table.id, opts=child(self))
        address = aws.ec2.Eip(f"{name}-nat-eip", domain="vpc", tags=tags,
                              opts=child(self, depends_on=[gateway]))
        nat = aws.ec2.NatGateway(f"{name}-nat", subnet_id=public.id,
                                 allocation_id=address.allocation_id, tags=tags,
                                 opts=child(self, depends_on=[gateway]))
        operator = ([{"cidr_block": c, "gateway_id": gateway.id} for c in ipv4]
                    if public_ip_nodes else [])
        return [*operator, {"cidr_block": "0.0.0.0/0", "nat_gateway_id": nat.id}]

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

    def _instance_profile(self, name: str, tags: dict[str, str]) -> Any:
        """A role with only what the nodes need, or none: SSM for nodes without a public way
        in, read access to the plan's checkpoint bucket."""
        args = self.args
        if not (args.ssm or args.checkpoint_bucket):
            return None
        role = aws.iam.Role(
            f"{name}-role", name_prefix=f"provision-{args.cluster}-"[:38],
            assume_role_policy=json.dumps({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Action": "sts:AssumeRole",
                "Principal": {"Service": "ec2.amazonaws.com"}}]}),
            tags=tags, opts=child(self))
        if args.ssm:
            aws.iam.RolePolicyAttachment(f"{name}-ssm", role=role.name, policy_arn=SSM_POLICY,
                                         opts=child(self))
        if args.checkpoint_bucket:
            bucket = f"arn:aws:s3:::{args.checkpoint_bucket}"
            aws.iam.RolePolicy(
                f"{name}-checkpoints", role=role.id,
                policy=json.dumps({"Version": "2012-10-17", "Statement": [
                    {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": bucket},
                    {"Effect": "Allow", "Action": ["s3:GetObject"],
                     "Resource": f"{bucket}/*"}]}),
                opts=child(self))
        return aws.iam.InstanceProfile(f"{name}-profile", role=role.name,
                                       name_prefix=f"provision-{args.cluster}-"[:38],
                                       tags=tags, opts=child(self))

    def _image(self) -> Any:
        """The AMI: an exact id (the plan's, or the one resolved before and pinned in the
        cluster's state), else the image's current release: its publisher's SSM parameter
        (the DLAMI) or the newest image of the family."""
        args = self.args
        opts = pulumi.InvokeOutputOptions(parent=self)
        image = IMAGES.get(args.image)
        if args.ami is None and image is not None and image.ssm_parameter:
            ami_id: Any = aws.ssm.get_parameter_output(name=image.ssm_parameter,
                                                       opts=opts).value
        elif args.ami is None and image is not None:
            return aws.ec2.get_ami_output(
                owners=list(image.owners), most_recent=True,
                filters=[{"name": "name", "values": [image.name]},
                         {"name": "architecture", "values": [image.architecture]},
                         {"name": "state", "values": ["available"]}],
                opts=opts)
        else:
            ami_id = args.ami
        return aws.ec2.get_ami_output(owners=["self", "amazon", "aws-marketplace"],
                                      filters=[{"name": "image-id", "values": [ami_id]}],
                                      opts=opts)

    def _image_labels(self) -> dict[str, str]:
        image = IMAGES.get(self.args.image)
        if self.args.ami is not None and image is None:
            return {"image_family": "custom", "image_driver": "unknown"}
        assert image is not None
        return {"image_family": image.family,
                "image_driver": "preinstalled" if image.driver_preinstalled else "none"}

    def _interfaces(self, subnet_id: Any) -> list[dict[str, Any]]:
        args = self.args
        layout = efa_layout(args.efa_interfaces)
        out = []
        for card, device, kind in layout:
            nic: dict[str, Any] = {
                "network_card_index": card, "device_index": device,
                "subnet_id": subnet_id, "security_groups": [self.security_group.id],
                "delete_on_termination": "true",
            }
            if kind != "interface":
                nic["interface_type"] = kind
            if card == 0 and device == 0 and len(layout) == 1:
                # only a single-interface launch may say anything about a public IP
                launch = any(args.access(n) == "launch" for n in args.nodes)
                nic["associate_public_ip_address"] = "true" if launch else "false"
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
