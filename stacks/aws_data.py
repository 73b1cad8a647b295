"""AWS facts the stack needs and no price catalog carries: EFA layout, images, spot options.

Kept as data so a new instance type or image is one line, not a new branch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Elastic Fabric Adapter interfaces per instance type: one EFA per network card, as AWS
# recommends for the most bandwidth ("Maximize network bandwidth on instances with multiple
# network cards", EC2 User Guide; `aws ec2 describe-instance-types --query
# 'InstanceTypes[].[InstanceType,NetworkInfo.EfaInfo.MaximumEfaInterfaces]'` confirms a type).
# P5/P5e: 32 cards (3,200 Gb/s); P5en: 16 × 200 Gb/s; P4d/P4de: 4 × 100 Gb/s; G6e.48xlarge:
# 4 cards (400 Gb/s); types with one card get one EFA.
EFA_INTERFACES: dict[str, int] = {
    "p5.48xlarge": 32,
    "p5e.48xlarge": 32,
    "p5en.48xlarge": 16,
    "p4d.24xlarge": 4,
    "p4de.24xlarge": 4,
    "p3dn.24xlarge": 1,
    "g6e.48xlarge": 4,
    "g6e.24xlarge": 2,
    "g6e.12xlarge": 1,
    "g6.48xlarge": 1,
    "g5.48xlarge": 1,
    "g4dn.metal": 1,
}


@dataclass(frozen=True)
class AmiLookup:
    """How to find an image in any region: the publisher's SSM parameter when there is one,
    else an ``ec2:DescribeImages`` owner/name filter (newest match)."""

    owners: tuple[str, ...]
    name: str  # name filter with * wildcards; the newest match wins
    ssh_user: str  # the login user the image creates for the key pair
    family: str  # provision_image_family for the roles: dlami | ubuntu
    driver_preinstalled: bool  # the image ships an NVIDIA driver (the roles check, not install)
    ssm_parameter: str | None = None  # public parameter holding the current AMI id
    architecture: str = "x86_64"


IMAGES: dict[str, AmiLookup] = {
    # NVIDIA driver, CUDA, EFA installer and NCCL preinstalled; published by AWS per region. The
    # DLAMI developer guide gives the SSM parameter as the way to find the current release.
    "dlami-base": AmiLookup(
        owners=("amazon",),
        name="Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) *",
        ssh_user="ubuntu",
        family="dlami",
        driver_preinstalled=True,
        ssm_parameter="/aws/service/deeplearning/ami/x86_64/"
                      "base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id",
    ),
    # Canonical's plain image (owner 099720109477); the playbooks install the NVIDIA stack.
    "ubuntu-22.04": AmiLookup(
        owners=("099720109477",),
        name="ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-*",
        ssh_user="ubuntu",
        family="ubuntu",
        driver_preinstalled=False,
    ),
}

# Hibernation (EC2 User Guide, "Prerequisites for EC2 instance hibernation"): no accelerated
# (GPU) type is among the supported families; `describe-instance-types` reports
# HibernationSupported false for every type with GpuInfo (tests/unit/test_aws_rules.py checks
# this against AWS's instance-type data as moto ships it).


def hibernation_refusal(instance_type: str, gpus: int) -> str | None:
    """Why ``instance_type`` cannot hibernate, or None when nothing known forbids it."""
    if gpus > 0:
        return (f"{instance_type} cannot hibernate: EC2 supports hibernation on no GPU "
                "instance type (describe-instance-types: HibernationSupported false)")
    return None


# Spot requests that stop or hibernate must be persistent, or EC2 rejects the launch.
SPOT_REQUEST_TYPE: dict[str, str] = {
    "terminate": "one-time",
    "stop": "persistent",
    "hibernate": "persistent",
}

# The catalog (SkyPilot's) names zones by AZ id ("use1-az2"), which is the same physical zone in
# every account; AZ names ("us-east-1a") are shuffled per account. Subnets accept either.
AZ_ID = re.compile(r"^[a-z]{2,5}[0-9]+-az[0-9]+$")


def efa_layout(count: int) -> list[tuple[int, int, str]]:
    """(network card index, device index, interface type) for ``count`` EFA interfaces.

    The primary interface (card 0, device 0) is an EFA with ENA, which carries the node's IP
    traffic; every further card gets one EFA-only interface at device index 1 (EC2 User Guide,
    EFA configuration for P5 instances). EFA-only interfaces take no IP address, but the
    launch still has several network interfaces, so EC2 refuses a public IP at launch
    (provision.backends.api_rules): such nodes get an Elastic IP on their primary interface or
    stay private.
    """
    if count <= 0:
        return [(0, 0, "interface")]
    return [(0, 0, "efa")] + [(card, 1, "efa-only") for card in range(1, count)]
