"""SSH host keys as the clouds publish them: channels that do not pass through the network
the keys are meant to authenticate (provision.known_hosts trusts what these return).

- AWS: cloud-init prints the keys on the instance's console between
  ``-----BEGIN SSH HOST KEY KEYS-----`` and ``-----END SSH HOST KEY KEYS-----``
  (cloud-init's keys-to-console module); EC2's GetConsoleOutput returns it.
- GCP: the guest agent publishes them as guest attributes in the ``hostkeys/`` namespace
  (key: the key type, value: the base64 blob); Compute's ``instances.getGuestAttributes``
  returns ``{"queryValue": {"items": [{"namespace", "key", "value"}]}}``.
  https://cloud.google.com/compute/docs/reference/rest/v1/instances/getGuestAttributes

Each function returns key lines (``"<type> <base64>"``), or None when the channel has
nothing yet (console output lags boot by minutes) — the caller then trusts on first use.
"""

from __future__ import annotations

import re
from typing import Any

_BLOCK = re.compile(r"-----BEGIN SSH HOST KEY KEYS-----\r?\n(.*?)\r?\n?"
                    r"-----END SSH HOST KEY KEYS-----", re.DOTALL)
GCE_API = "https://compute.googleapis.com/compute/v1"


def keys_from_console(text: str) -> list[str]:
    """Key lines of the last host-key block in a console log (a reboot prints it again)."""
    from provision.known_hosts import parse_keys

    blocks = _BLOCK.findall(text or "")
    if not blocks:
        return []
    return [k.line() for k in parse_keys(blocks[-1].splitlines())]


def aws_console_host_keys(instance_id: str, region: str, client: Any = None
                          ) -> list[str] | None:
    """The keys cloud-init printed on ``instance_id``'s console (EC2 GetConsoleOutput)."""
    if client is None:
        import boto3

        client = boto3.client("ec2", region_name=region)
    output = client.get_console_output(InstanceId=instance_id, Latest=True).get("Output")
    keys = keys_from_console(output or "")
    return keys or None


def keys_from_guest_attributes(response: dict[str, Any]) -> list[str]:
    """Key lines from a getGuestAttributes response for ``queryPath=hostkeys/``."""
    from provision.known_hosts import parse_keys

    items = ((response or {}).get("queryValue") or {}).get("items") or []
    lines = [f"{i.get('key', '')} {i.get('value', '')}" for i in items
             if isinstance(i, dict) and i.get("namespace") == "hostkeys"]
    return [k.line() for k in parse_keys(lines)]


def gcp_guest_attribute_host_keys(project: str, zone: str, instance: str, *,
                                  session: Any = None, base_url: str = GCE_API,
                                  timeout: float = 20.0) -> list[str] | None:
    """The keys GCP's guest agent published for ``instance`` (needs google-auth, part of
    the cloud extra, and application-default credentials)."""
    if session is None:
        import google.auth
        from google.auth.transport.requests import AuthorizedSession

        credentials, _ = google.auth.default(
            scopes=["https://www.googleapis.com/auth/compute.readonly"])
        session = AuthorizedSession(credentials)
    url = f"{base_url}/projects/{project}/zones/{zone}/instances/{instance}/getGuestAttributes"
    response = session.get(url, params={"queryPath": "hostkeys/"}, timeout=timeout)
    if response.status_code == 404:  # no attributes yet (the agent has not written them)
        return None
    response.raise_for_status()
    return keys_from_guest_attributes(response.json()) or None
