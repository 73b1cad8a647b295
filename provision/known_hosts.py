"""Who is on the other end of SSH: one known_hosts file per cluster, in its state.

Every connection provision makes to a node (Ansible, the watch loop's probes) checks the
node's host key against ``<state>/ssh/known_hosts`` and nothing else. Keys get there in one of
two ways, recorded per node in the state (``extra.host_keys``):

- **from the platform** (a trusted channel): the backend reports the keys the node was made
  with — the local target reads them inside the container, bare-metal installs generate them
  and write them into the install seed, AWS prints them on the instance's console output, GCP
  publishes them as guest attributes;
- **trust on first use**, where the platform offers nothing: the key the node presents the
  first time is recorded — by a scan before converge for nodes provision reaches directly, and
  by OpenSSH itself (``StrictHostKeyChecking accept-new``) for nodes behind the head node,
  which no scan from here can reach.

Afterwards a node that presents another key is refused with a message naming the node, both
fingerprints and what to do — unless the platform vouches for the new key (a reinstall), or
provision itself replaced the node in this run (a new instance id). Nodes provision replaces
lose their old entry; `provision known-hosts forget CLUSTER NODE` drops one by hand.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import shlex
import shutil
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from provision.backends.base import NodeRecord
from provision.errors import ProvisionError
from provision.state import ClusterState, now, write_private

KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
             "ssh-rsa")
SCAN_TIMEOUT = 5  # seconds per host, ssh-keyscan -T


class HostKeyChanged(ProvisionError):
    """A node presents an SSH host key other than the one recorded for it (exit 1)."""

    exit_code = 1


@dataclass(frozen=True)
class HostKey:
    """One public host key: its type and base64 blob (as in known_hosts)."""

    keytype: str
    blob: str

    @classmethod
    def parse(cls, line: str) -> HostKey | None:
        """``'<type> <base64> [comment]'`` → HostKey, or None when it is not one."""
        parts = line.strip().split()
        if len(parts) < 2 or parts[0] not in KEY_TYPES:
            return None
        try:
            raw = base64.b64decode(parts[1], validate=True)
        except ValueError:
            return None
        if len(raw) < 4 + len(parts[0]) or raw[4:4 + len(parts[0])] != parts[0].encode():
            return None
        return cls(parts[0], parts[1])

    @property
    def fingerprint(self) -> str:
        """OpenSSH's SHA256 fingerprint (what `ssh-keygen -lf` and ssh's warnings print)."""
        digest = hashlib.sha256(base64.b64decode(self.blob)).digest()
        return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")

    def line(self) -> str:
        return f"{self.keytype} {self.blob}"


def parse_keys(lines: Iterable[str]) -> list[HostKey]:
    return [k for k in (HostKey.parse(line) for line in lines) if k is not None]


def host_pattern(node: NodeRecord) -> str:
    """How ssh looks the node up in known_hosts: ``addr`` on port 22, ``[addr]:port`` else."""
    return node.address if node.ssh_port == 22 else f"[{node.address}]:{node.ssh_port}"


class KnownHosts:
    """The cluster's known_hosts file (OpenSSH format, 0600), read and rewritten whole."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def entries(self) -> dict[str, list[HostKey]]:
        out: dict[str, list[HostKey]] = {}
        if not self.path.is_file():
            return out
        for line in self.path.read_text().splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            host, _, rest = line.partition(" ")
            key = HostKey.parse(rest)
            if key is not None:
                out.setdefault(host, []).append(key)
        return out

    def keys_for(self, node: NodeRecord) -> list[HostKey]:
        return self.entries().get(host_pattern(node), [])

    def write(self, entries: dict[str, list[HostKey]]) -> None:
        lines = ["# SSH host keys of this cluster's nodes, kept by provision "
                 "(`provision known-hosts CLUSTER`)."]
        for host in sorted(entries):
            lines += [f"{host} {k.line()}" for k in entries[host]]
        write_private(self.path, "\n".join(lines) + "\n")

    def ssh_options(self) -> list[str]:
        """ssh -o options that make a connection check this file and nothing else: a new
        node's key is added (trust on first use, plain host names so this module can read
        them), a changed key is refused."""
        return ["-o", "StrictHostKeyChecking=accept-new", "-o", f"UserKnownHostsFile={self.path}",
                "-o", "GlobalKnownHostsFile=/dev/null", "-o", "HashKnownHosts=no"]

    def ansible_args(self) -> str:
        """The same, as Ansible's ``ansible_ssh_common_args`` (a shell-quoted string)."""
        return " ".join(shlex.quote(a) for a in self.ssh_options())


def known_hosts(state: ClusterState) -> KnownHosts:
    return KnownHosts(state.ssh_dir / "known_hosts")


def scan(nodes: Sequence[NodeRecord], timeout: int = SCAN_TIMEOUT) -> dict[str, list[HostKey]]:
    """The host keys each node presents now (ssh-keyscan, bounded: ``timeout`` s per host,
    hosts scanned in parallel by ssh-keyscan itself, one run per distinct port). Nodes that
    do not answer are missing from the result."""
    if shutil.which("ssh-keyscan") is None:
        raise ProvisionError("ssh-keyscan is not installed: install openssh-client")
    by_port: dict[int, list[NodeRecord]] = {}
    for n in nodes:
        if n.address:
            by_port.setdefault(n.ssh_port, []).append(n)
    found: dict[str, list[HostKey]] = {}
    for port, group in by_port.items():
        addrs = sorted({n.address for n in group})
        proc = subprocess.run(
            ["ssh-keyscan", "-T", str(timeout), "-p", str(port), "-t",
             "ed25519,ecdsa,rsa", "-f", "-"], input="\n".join(addrs) + "\n",
            capture_output=True, text=True, timeout=timeout * (len(addrs) + 2) + 10)
        per_host: dict[str, list[HostKey]] = {}
        for line in proc.stdout.splitlines():
            if not line or line.startswith("#"):
                continue
            host, _, rest = line.partition(" ")
            key = HostKey.parse(rest)
            if key is not None:
                per_host.setdefault(host, []).append(key)
        for n in group:
            keys = per_host.get(host_pattern(n)) or per_host.get(n.address)
            if keys:
                found[n.name] = keys
    return found


TrustedKeys = Callable[[NodeRecord], list[HostKey] | None]


def trusted_keys(backend: object) -> TrustedKeys:
    """The platform's word on a node's keys: the backend's ``host_keys(node)`` where it has
    one, else keys the node record carries (``labels["ssh_host_keys"]``: bare-metal installs
    write generated keys into the install seed and record the public halves there)."""
    from_backend = getattr(backend, "host_keys", None)

    def keys(node: NodeRecord) -> list[HostKey] | None:
        if from_backend is not None:
            try:
                found = from_backend(node)
            except Exception as exc:  # the channel is down: trust on first use instead
                logging.getLogger(__name__).warning("host keys of %s from %s: %s", node.name,
                                                    node.provider, exc)
                found = None
            if found:
                return parse_keys(found)
        listed = node.labels.get("ssh_host_keys")
        if listed:
            lines = listed if isinstance(listed, list) else str(listed).splitlines()
            return parse_keys(lines) or None
        return None

    return keys


def _changed_message(state: ClusterState, node: NodeRecord, old: list[HostKey],
                     new: list[HostKey]) -> str:
    learnt = state.extra.get("host_keys", {}).get(node.name, {})
    olds = ", ".join(f"{k.keytype} {k.fingerprint}" for k in old)
    news = ", ".join(f"{k.keytype} {k.fingerprint}" for k in new)
    return (
        f"node {node.name} ({host_pattern(node)}) presents a different SSH host key than the "
        f"one recorded for it ({learnt.get('how', 'recorded')} on {learnt.get('at', '?')}):\n"
        f"  recorded: {olds}\n  presented: {news}\n"
        "Someone may be intercepting the connection, so provision will not connect to it. If "
        "you reinstalled or replaced this node yourself, check the new fingerprint on its "
        f"console, then run `provision known-hosts forget {state.name} {node.name}` and "
        "rerun the command.")


def ensure_host_keys(state: ClusterState, nodes: Sequence[NodeRecord],
                     trusted: TrustedKeys | None, *, replaced: Iterable[str] = (),
                     log: Callable[[str], None] = lambda m: None) -> None:
    """Bring the cluster's known_hosts in line with ``nodes`` (call with the lock held).

    ``trusted`` returns the keys the platform vouches for (None: it offers no channel);
    ``replaced`` names nodes provision (re)created in this run, whose old keys are void.
    Raises HostKeyChanged, naming the node and both fingerprints, when a node presents a key
    other than the recorded one and neither the platform nor a replacement explains it."""
    kh = known_hosts(state)
    entries = kh.entries()
    meta = state.extra.setdefault("host_keys", {})
    wanted = {host_pattern(n) for n in nodes}
    for gone in [h for h in entries if h not in wanted]:
        del entries[gone]
    replaced = set(replaced)
    presented = scan([n for n in nodes if not n.via])  # the ones reachable from here
    for node in nodes:
        pattern = host_pattern(node)
        if node.name in replaced or meta.get(node.name, {}).get("address") != pattern:
            entries.pop(pattern, None)  # a new node, or an old one at a new address
        recorded = entries.get(pattern, [])
        now_keys = presented.get(node.name, [])
        if recorded and (not now_keys or _agrees(recorded, now_keys)):
            continue  # known and unchanged (or not answering: the run will say so)
        vouched = trusted(node) if trusted else None
        if vouched and (not now_keys or _agrees(vouched, now_keys)):
            how = "from the platform"
            keys = vouched
        elif vouched:
            raise HostKeyChanged(_changed_message(state, node, vouched, now_keys).replace(
                "than the one recorded for it", "than the ones its platform reports"))
        elif recorded:
            raise HostKeyChanged(_changed_message(state, node, recorded, now_keys))
        elif now_keys:
            how, keys = "trusted on first use", now_keys
        else:
            continue  # not answering yet and nothing known: the run reports it unreachable
        entries[pattern] = keys
        meta[node.name] = {"address": pattern, "how": how, "at": now(),
                           "fingerprints": [k.fingerprint for k in keys]}
        log(f"host keys of {node.name}: {how} ({', '.join(k.fingerprint for k in keys)})")
    for name in [n for n in meta if n not in {node.name for node in nodes}]:
        del meta[name]
    kh.write(entries)
    state.save()


def _agrees(recorded: list[HostKey], presented: list[HostKey]) -> bool:
    """Every key type both sides have carries the same key, and they share at least one."""
    mine = {k.keytype: k.blob for k in recorded}
    theirs = {k.keytype: k.blob for k in presented}
    common = set(mine) & set(theirs)
    return bool(common) and all(mine[t] == theirs[t] for t in common)


def forget(state: ClusterState, node_name: str) -> bool:
    """Drop one node's recorded keys (the next run learns them again); True if it had any."""
    node = next((n for n in state.nodes if n.name == node_name), None)
    if node is None:
        return False
    kh = known_hosts(state)
    entries = kh.entries()
    had = entries.pop(host_pattern(node), None) is not None
    state.extra.get("host_keys", {}).pop(node_name, None)
    kh.write(entries)
    state.save()
    return had
