"""SSH access to the nodes: the key pair to use and who may connect.

A plan may name its own key (``access.ssh_public_key``); otherwise the cluster gets an ed25519
key pair of its own in its state directory, mode 0600, created with ssh-keygen. Only paths and
public keys travel through the pipeline; private key contents are never read into Python.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from provision.backends.base import SshAccess
from provision.errors import ProvisionError
from provision.plan.load import LoadedPlan
from provision.state import ClusterState

DEFAULT_USER = {"local": "root", "aws": "ubuntu", "gcp": "ubuntu", "baremetal": "ubuntu"}


def cluster_key(state: ClusterState) -> Path:
    """The cluster's own private key, created on first use (ed25519, no passphrase, 0600)."""
    key = state.ssh_dir / "id_ed25519"
    if key.exists() and key.with_suffix(".pub").exists():
        return key
    if shutil.which("ssh-keygen") is None:
        raise ProvisionError("ssh-keygen is not installed: install openssh-client")
    state.ssh_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    for stale in (key, key.with_suffix(".pub")):
        stale.unlink(missing_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"provision-{state.name}",
         "-f", str(key)],
        check=True, capture_output=True,
    )
    key.chmod(0o600)
    return key


MAX_PUBLIC_KEY_BYTES = 16 * 1024  # an RSA-16384 key line is ~2.8 KB


def read_public_key(loaded: LoadedPlan, path: Path) -> str:
    """The OpenSSH public key line in ``path`` (``access.ssh_public_key``).

    The file is read only if it is a small regular file whose one line parses as an OpenSSH
    public key (cryptography's parser). Anything else is an InputError naming the field and
    the path but never quoting the content: the path could be /etc/shadow or a private key,
    and `preview` prints the key into JSON and pull-request comments."""
    from cryptography.hazmat.primitives.serialization import load_ssh_public_key

    where = ("access", "ssh_public_key")
    try:
        if not path.is_file():
            raise loaded.error(where, f"{path}: not a regular file")
        if path.stat().st_size > MAX_PUBLIC_KEY_BYTES:
            raise loaded.error(where, f"{path}: too large to be an OpenSSH public key")
        data = path.read_bytes()
    except OSError as exc:
        raise loaded.error(where, f"{path}: cannot read ({exc.strerror})") from None
    lines = [line for line in data.splitlines() if line.strip()]
    problem = (f"{path}: not an OpenSSH public key (expected one line such as "
               "'ssh-ed25519 AAAA... comment'; is it the private key or another file?)")
    if len(lines) != 1:
        raise loaded.error(where, problem)
    try:
        load_ssh_public_key(lines[0].strip())
        return lines[0].decode("ascii").strip()
    except Exception:  # any parse failure is a no; its text may quote the file
        raise loaded.error(where, problem) from None


def ssh_access(loaded: LoadedPlan, state: ClusterState, target: str) -> SshAccess:
    """The SshAccess for a plan: its own key, or the cluster's generated one."""
    access = loaded.plan.access
    user = access.ssh_user or DEFAULT_USER.get(target, "root")
    if access.ssh_public_key:
        pub = loaded.resolve_path(access.ssh_public_key)
        if not pub.is_file():
            raise loaded.error(("access", "ssh_public_key"), f"{pub}: no such file")
        priv = (loaded.resolve_path(access.ssh_private_key) if access.ssh_private_key
                else pub.with_suffix("") if pub.suffix == ".pub" else None)
        if priv is None or not priv.is_file():
            raise loaded.error(("access", "ssh_private_key"),
                               f"{priv or '(none)'}: the private key matching {pub.name} is "
                               "missing; give access.ssh_private_key")
        public = read_public_key(loaded, pub)
    else:
        priv = cluster_key(state)
        public = priv.with_suffix(".pub").read_text().strip()
    return SshAccess(user=user, public_key=public, private_key_path=str(priv),
                     operator_cidr=access.operator_cidr)
