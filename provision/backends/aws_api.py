"""The few AWS calls provision makes with boto3 rather than through the stack: spot requests.

A spot instance launched with interruption behavior ``stop`` or ``hibernate`` comes from a
*persistent* spot request (EC2 refuses anything else), and a persistent request outlives its
instance: after `pulumi destroy` terminates the instance, an open request can launch a new one
that no stack knows about and that keeps billing. So `provision down` cancels the cluster's
requests before destroying (EC2 User Guide, "Cancel a Spot Instance request": cancelling does
not terminate the instance; terminating the instance does not cancel a persistent request),
and lists any that are still open afterwards as leftovers.

Requests are found by the ``provision:cluster`` tag the launch template puts on them (resource
type ``spot-instances-request``) and by the request ids the stack recorded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

TAG = "provision:cluster"
# Request states that can still (re)launch an instance (DescribeSpotInstanceRequests).
LIVE_STATES = ("open", "active", "disabled")


@dataclass
class SpotCleanup:
    cancelled: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)


def ec2_client(region: str) -> Any:
    import boto3

    return boto3.client("ec2", region_name=region)


def cluster_requests(client: Any, cluster: str, ids: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The cluster's spot requests: tagged with its name, or among ``ids``."""
    found: dict[str, dict[str, Any]] = {}
    pages = client.get_paginator("describe_spot_instance_requests").paginate(
        Filters=[{"Name": f"tag:{TAG}", "Values": [cluster]}])
    for page in pages:
        for r in page.get("SpotInstanceRequests", []):
            found[r["SpotInstanceRequestId"]] = r
    for request_id in [i for i in ids if i and i not in found]:
        try:
            resp = client.describe_spot_instance_requests(SpotInstanceRequestIds=[request_id])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "InvalidSpotInstanceRequestID.NotFound":
                continue  # expired from EC2's records: nothing left to cancel
            raise
        for r in resp.get("SpotInstanceRequests", []):
            found[r["SpotInstanceRequestId"]] = r
    return list(found.values())


def _live(request: dict[str, Any]) -> bool:
    if request.get("State") in LIVE_STATES:
        return True
    # a cancelled request whose instance still runs is not gone yet
    return (request.get("Status") or {}).get("Code") == "request-canceled-and-instance-running"


def cancel_cluster_requests(client: Any, cluster: str, ids: Iterable[str] = ()) -> list[str]:
    """Cancel every live spot request of the cluster; returns the ids cancelled."""
    live = [r["SpotInstanceRequestId"] for r in cluster_requests(client, cluster, ids)
            if r.get("State") in LIVE_STATES]
    if live:
        client.cancel_spot_instance_requests(SpotInstanceRequestIds=live)
    return live


def leftover_requests(client: Any, cluster: str, ids: Iterable[str] = ()) -> list[str]:
    """What `down` must report: requests that could still launch or still hold an instance."""
    return [f"aws spot request {r['SpotInstanceRequestId']} ({r.get('State')}"
            f"{', ' + r['InstanceId'] if r.get('InstanceId') else ''})"
            for r in cluster_requests(client, cluster, ids) if _live(r)]
