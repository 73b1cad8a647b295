"""Build the local target's node image: debootstrap → podman import, cached and reused.

No image registry is needed: the root filesystem comes from a Debian mirror through
debootstrap, and ``podman import`` turns it into an image. The tag carries a hash of the
recipe (suite, packages, init script), so a changed recipe builds a new image and an unchanged
one is reused; ``provision image build --force`` rebuilds anyway.

The image runs sshd under tini (no systemd: services are started by their init scripts), and
pre-installs the packages the base, storage and MPI roles install, so a converge verifies
rather than downloads. Host keys are generated when a container starts, so nodes never share
them; the operator's public key arrives in ``PROVISION_AUTHORIZED_KEY``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from provision.backends import podman
from provision.backends.base import Event
from provision.errors import ProvisionError

SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
IMAGE_REPO = "localhost/provision-node"
STABLE_TAG = f"{IMAGE_REPO}:{SUITE}"  # always the newest build (Molecule scenarios use it)
PACKAGES = (
    # what every node needs to be managed
    "python3", "python3-apt", "openssh-server", "sudo", "tini", "ca-certificates", "gnupg",
    "iproute2", "iputils-ping", "netbase", "procps", "kmod", "less", "lsb-release", "pciutils",
    # base, hardening, storage and MPI roles (pre-installed so a converge needs no downloads)
    "chrony", "nftables", "e2fsprogs", "xfsprogs", "mdadm", "nfs-common", "sshfs", "fuse3",
    "rsync", "openmpi-bin",
)

INIT_SCRIPT = """#!/bin/sh
# provision node init (local target): per-container host keys, the operator's key, sshd.
set -e
mkdir -p /run/sshd /root/.ssh
chmod 700 /root/.ssh
ls /etc/ssh/ssh_host_*_key >/dev/null 2>&1 || ssh-keygen -A >/dev/null
if [ -n "$PROVISION_AUTHORIZED_KEY" ]; then
  printf '%s\\n' "$PROVISION_AUTHORIZED_KEY" > /root/.ssh/authorized_keys
  chmod 600 /root/.ssh/authorized_keys
fi
exec /usr/sbin/sshd -D -e
"""


def recipe_hash(mirror: str = DEFAULT_MIRROR) -> str:
    h = hashlib.sha256()
    for part in (SUITE, mirror, *PACKAGES, INIT_SCRIPT):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:12]


def image_tag(mirror: str | None = None) -> str:
    return f"{IMAGE_REPO}:{SUITE}-{recipe_hash(mirror or _mirror())}"


def _mirror() -> str:
    return os.environ.get("PROVISION_DEBIAN_MIRROR", DEFAULT_MIRROR)


def ensure_image(event: Event, *, force: bool = False) -> str:
    """The node image's tag, building it first when it is missing (or ``force``)."""
    tag = image_tag()
    if not force and podman.exists("image", tag):
        if not podman.exists("image", STABLE_TAG):
            podman.run("tag", tag, STABLE_TAG)
        return tag
    build_image(tag, event)
    return tag


def build_image(tag: str, event: Event) -> None:
    if os.geteuid() != 0:
        raise ProvisionError("building the node image needs root (debootstrap); run as root "
                             "or build once with sudo: sudo provision image build")
    if shutil.which("debootstrap") is None:
        raise ProvisionError("debootstrap is not installed; run ./install.sh or "
                             "apt-get install debootstrap")
    mirror = _mirror()
    work = Path(tempfile.mkdtemp(prefix="provision-rootfs-", dir=os.environ.get("TMPDIR",
                                                                                "/var/tmp")))
    root = work / "rootfs"
    try:
        event(f"building node image {tag}: debootstrap {SUITE} from {mirror} "
              "(about 2 minutes, once)")
        proc = subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE,
             str(root), mirror],
            capture_output=True, text=True, timeout=1800,
        )
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-5:])
            raise ProvisionError(f"debootstrap failed (is {mirror} reachable?):\n{tail}")
        _configure(root)
        event(f"importing {tag} into podman")
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        imp = subprocess.run(
            [podman.require(), "import",
             "--change", 'ENTRYPOINT=["/usr/bin/tini","--"]',
             "--change", 'CMD=["/usr/local/sbin/provision-node-init"]',
             "--change", f"LABEL=provision.recipe={recipe_hash(mirror)}",
             "-", tag],
            stdin=tar.stdout, capture_output=True, text=True, env=podman.env(), timeout=900,
        )
        tar.wait()
        if imp.returncode != 0 or tar.returncode != 0:
            raise ProvisionError(f"podman import failed: {imp.stderr.strip()[-500:]}")
        podman.run("tag", tag, STABLE_TAG)
        _remove_superseded(tag)
        event(f"node image {tag} ready")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _remove_superseded(current: str) -> None:
    """Older builds of the node image, unless a container still uses them."""
    for img in podman.run_json("images", "--filter", f"reference={IMAGE_REPO}", "--format",
                               "json"):
        names = img.get("Names") or []
        if current in names or any(n == STABLE_TAG for n in names):
            continue
        podman.run("rmi", img["Id"], check=False)


def _configure(root: Path) -> None:
    """Settings baked into the root filesystem."""
    init = root / "usr/local/sbin/provision-node-init"
    init.write_text(INIT_SCRIPT)
    init.chmod(0o755)
    for key in (root / "etc/ssh").glob("ssh_host_*"):  # generated per container instead
        key.unlink()
    (root / "etc/apt/apt.conf.d/90provision").write_text(
        'APT::Install-Recommends "false";\nAcquire::Retries "3";\n')
    # policy-rc.d from debootstrap would stop services from starting inside the node
    (root / "usr/sbin/policy-rc.d").unlink(missing_ok=True)
    (root / "etc/hostname").write_text("provision-node\n")
