"""TPU slices through queued resources: how v5e, v5p and v6e capacity is obtained in practice.

A queued resource asks the Cloud TPU service for a slice and waits in its queue until capacity
frees up, until a deadline (``queueingPolicy.validUntilDuration``), optionally on spot capacity
(``spot: {}``). pulumi-gcp 10's ``gcp.tpu.V2QueuedResource`` has no spot tier, no queueing
policy and no node metadata (so no SSH keys), so this is a Pulumi dynamic resource over the TPU
API v2 REST interface (Cloud TPU API reference, ``projects.locations.queuedResources``:
create with ``queuedResourceId``, get, delete with ``force``; ``projects.locations.nodes.get``).

The resource is created when the queued resource is ACTIVE (its node exists) and fails when it
ends FAILED or the deadline passes; the failure text carries RESOURCE_EXHAUSTED, so `provision
up` fails over to the next zone (provision.backends.failover). Outputs mirror ``V2Vm``'s
(``name``, ``state``, ``network_endpoints``) so TpuCluster reads either the same way.

``$PROVISION_TPU_API`` points the client at a TPU API stand-in (tests); credentials then are not
used. Otherwise the client uses Application Default Credentials (google-auth).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider

API = "https://tpu.googleapis.com/v2"
API_ENV = "PROVISION_TPU_API"
POLL_SECONDS = 30.0
# QueuedResourceState.State values (TPU API v2)
ACTIVE = "ACTIVE"
ENDED = ("FAILED", "SUSPENDED")


class TpuApiError(Exception):
    """An error answer of the TPU API, with its status (RESOURCE_EXHAUSTED, INVALID_ARGUMENT)."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


class TpuApi:
    """The four calls a queued slice needs."""

    def __init__(self, base: str | None = None, session: Any = None) -> None:
        self.base = (base or os.environ.get(API_ENV) or API).rstrip("/")
        self.session = session or self._session()

    def _session(self) -> Any:
        if self.base != API:  # a stand-in: no credentials go anywhere but Google
            import requests

            return requests.Session()
        import google.auth
        from google.auth.transport.requests import AuthorizedSession

        credentials, _ = google.auth.default(
            scopes=["https://www.googleapis.com/auth/cloud-platform"])
        return AuthorizedSession(credentials)

    def _call(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        resp = self.session.request(method, f"{self.base}/{path}", timeout=60, **kw)
        data = resp.json() if resp.content else {}
        if resp.status_code >= 400:
            err = data.get("error") or {}
            raise TpuApiError(err.get("status") or str(resp.status_code),
                              err.get("message") or resp.text[:300])
        return data

    def create(self, parent: str, qr_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", f"{parent}/queuedResources",
                          params={"queuedResourceId": qr_id}, json=body)

    def get(self, parent: str, qr_id: str) -> dict[str, Any]:
        return self._call("GET", f"{parent}/queuedResources/{qr_id}")

    def delete(self, parent: str, qr_id: str) -> dict[str, Any]:
        return self._call("DELETE", f"{parent}/queuedResources/{qr_id}", params={"force": "true"})

    def node(self, parent: str, node_id: str) -> dict[str, Any]:
        return self._call("GET", f"{parent}/nodes/{node_id}")


def parent_of(props: dict[str, Any]) -> str:
    return f"projects/{props['project']}/locations/{props['zone']}"


def queued_body(props: dict[str, Any]) -> dict[str, Any]:
    """The QueuedResource the API is sent for ``props`` (the dynamic resource's inputs)."""
    node: dict[str, Any] = {
        "acceleratorType": props["accelerator_type"],
        "runtimeVersion": props["runtime_version"],
        "networkConfig": {"network": props["network"], "subnetwork": props["subnetwork"],
                          "enableExternalIps": True},
        "metadata": props.get("metadata") or {},
        "tags": props.get("tags") or [],
        "labels": props.get("labels") or {},
    }
    if props.get("service_account"):
        node["serviceAccount"] = {"email": props["service_account"],
                                  "scope": ["https://www.googleapis.com/auth/cloud-platform"]}
    body: dict[str, Any] = {"tpu": {"nodeSpec": [{
        "parent": parent_of(props), "nodeId": props["name"], "node": node}]}}
    if props.get("spot"):
        body["spot"] = {}  # the tier; guaranteed (reserved) and spot are alternatives
    elif props.get("reserved"):
        body["guaranteed"] = {"reserved": True}
    if props.get("valid_hours"):
        body["queueingPolicy"] = {"validUntilDuration": f"{int(props['valid_hours'] * 3600)}s"}
    return body


def endpoints(node: dict[str, Any]) -> list[dict[str, Any]]:
    """The node's workers in V2Vm's output shape (ip_address, access_configs)."""
    out = []
    for ep in node.get("networkEndpoints") or []:
        external = (ep.get("accessConfig") or {}).get("externalIp")
        out.append({"ip_address": ep.get("ipAddress"), "port": ep.get("port"),
                    "access_configs": [{"external_ip": external}] if external else []})
    return out


class QueuedTpuProvider(ResourceProvider):
    """Create waits in the queue (bounded by the deadline); delete forces the node away."""

    def __init__(self, api: Callable[[], TpuApi] = TpuApi, poll_seconds: float = POLL_SECONDS,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.api = api
        self.poll_seconds = poll_seconds
        self.sleep = sleep

    def create(self, props: dict[str, Any]) -> CreateResult:
        api, parent = self.api(), parent_of(props)
        api.create(parent, props["name"], queued_body(props))
        deadline = time.monotonic() + float(props.get("valid_hours") or 24) * 3600
        while True:
            qr = api.get(parent, props["name"])
            state = (qr.get("state") or {}).get("state")
            if state == ACTIVE:
                node = api.node(parent, props["name"])
                return CreateResult(id_=f"{parent}/queuedResources/{props['name']}",
                                    outs={**props, **self._outs(node, state)})
            if state in ENDED or time.monotonic() >= deadline:
                detail = (qr.get("state") or {}).get("failedData") or {}
                message = (detail.get("error") or {}).get("message") or f"state {state}"
                # leave nothing behind: the failover rolls back and tries elsewhere
                api.delete(parent, props["name"])
                raise TpuApiError("RESOURCE_EXHAUSTED",
                                  f"queued resource {props['name']} in {props['zone']} ended "
                                  f"{state or 'waiting'} before its slice was ready: {message}")
            self.sleep(self.poll_seconds)

    @staticmethod
    def _outs(node: dict[str, Any], qr_state: str | None) -> dict[str, Any]:
        return {"state": node.get("state"), "queued_state": qr_state,
                "network_endpoints": endpoints(node), "kind": "tpu-queued-resource"}

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        api, parent = self.api(), parent_of(props)
        try:
            qr = api.get(parent, props["name"])
            node = api.node(parent, props["name"])
        except TpuApiError as exc:
            if exc.status in ("NOT_FOUND", "404"):
                return ReadResult(None, {})  # gone: refresh drops it from the stack
            raise
        return ReadResult(id_, {**props, **self._outs(node, (qr.get("state") or {}).get(
            "state"))})

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in news if k not in self._outs({}, None) and olds.get(k) != news[k]]
        return DiffResult(changes=bool(changed), replaces=changed, delete_before_replace=True)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        try:
            self.api().delete(parent_of(props), props["name"])
        except TpuApiError as exc:
            if exc.status not in ("NOT_FOUND", "404"):
                raise


class QueuedTpu(Resource):
    """One TPU slice obtained through a queued resource (module docstring)."""

    name: pulumi.Output[str]
    state: pulumi.Output[str]
    network_endpoints: pulumi.Output[list[dict[str, Any]]]

    def __init__(self, resource_name: str, props: dict[str, Any],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(QueuedTpuProvider(), resource_name,
                         {**props, "state": None, "queued_state": None,
                          "network_endpoints": None, "kind": None}, opts)
