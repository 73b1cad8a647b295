"""One node's install medium: deploy ramdisk + OS image + NoCloud seed, served to its BMC.

The seed is what makes the freshly written OS this cluster's node (cloud-init's NoCloud
datasource reads it from ``/var/lib/cloud/seed/nocloud/``, where the deploy ramdisk puts it):

* hostname, the login user with the cluster's SSH public key and password-less sudo;
* an SSH host key pair made here for this install, so the controller knows the node's host key
  before it ever connects (its public half is recorded on the node; the private half exists
  only in the medium, which is deleted as soon as the BMC has taken it);
* network: DHCP on the uplink, the cluster address on the interface with the given MAC;
* a generation marker written last (cloud-init's final stage): ``/var/lib/provision/install``
  holding the cluster, node, generation and a random install id. The controller reads it over
  SSH with the cluster key against the pinned host key: that, not an SSH banner, is what
  "installed" means (an old OS or an installer's sshd cannot show it).

The medium is an El Torito UEFI ISO (``grub-mkrescue``) whose GRUB boots the deploy kernel.
:class:`MediaServer` serves it over HTTP at an unguessable path, for the BMC to download.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from provision.backends.baremetal_image import Images, deploy_initrd_bytes
from provision.errors import ProvisionError

MARKER = "/var/lib/provision/install"
ISO_GRUB_CFG = """set timeout=0
set default=0
menuentry "provision deploy ({node}, generation {generation})" {{
    linux /provision/vmlinuz console=tty0 console=ttyS0,115200n8 quiet
    initrd /provision/initrd.img
}}
"""


@dataclass(frozen=True)
class NodeIdentity:
    """Who the node becomes (everything in the seed but keys)."""

    cluster: str
    node: str
    user: str
    authorized_key: str  # the cluster's SSH public key line
    generation: int
    install_id: str
    private_address: str | None = None  # address/prefix on the cluster interface
    private_mac: str | None = None


@dataclass(frozen=True)
class HostKey:
    private: str  # OpenSSH private key text: only ever written into the medium
    public: str  # "ssh-ed25519 AAAA..." (type and base64, no comment)

    def __repr__(self) -> str:  # never print the private half
        return f"HostKey(public={self.public!r})"


@dataclass(frozen=True)
class RootDevice:
    """Which disk the OS goes to: a serial number (stable) or a device path."""

    serial: str | None = None
    path: str | None = None

    def env(self) -> dict[str, str]:
        return {"PROVISION_ROOT_SERIAL": self.serial or "",
                "PROVISION_ROOT_DEVICE": self.path or ""}


def new_host_key() -> HostKey:
    """A fresh ed25519 host key pair (ssh-keygen in a private temporary directory)."""
    with tempfile.TemporaryDirectory(prefix="provision-hostkey-") as tmp:
        path = Path(tmp) / "key"
        try:
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "",
                            "-f", str(path)], check=True, capture_output=True)
        except FileNotFoundError:
            raise ProvisionError("ssh-keygen is not installed: install openssh-client") from None
        public = " ".join(path.with_suffix(".pub").read_text().split()[:2])
        return HostKey(path.read_text(), public)


def marker_text(identity: NodeIdentity) -> str:
    return (f"cluster={identity.cluster} node={identity.node} "
            f"generation={identity.generation} install={identity.install_id}")


def seed(identity: NodeIdentity, host_key: HostKey) -> dict[str, str]:
    """NoCloud seed files: user-data, meta-data, network-config."""
    user_data: dict[str, Any] = {
        "hostname": identity.node,
        "preserve_hostname": False,
        "manage_etc_hosts": False,
        "ssh_pwauth": False,
        "disable_root": True,
        "ssh_deletekeys": True,
        "ssh_genkeytypes": ["ed25519"],  # the type given below: nothing is generated
        "ssh_keys": {"ed25519_private": host_key.private,
                     "ed25519_public": host_key.public},
        "users": [{"name": identity.user, "shell": "/bin/bash", "lock_passwd": True,
                   "sudo": "ALL=(ALL) NOPASSWD:ALL",
                   "ssh_authorized_keys": [identity.authorized_key]}],
        "locale": "C.UTF-8",  # the image has no locales package; C.UTF-8 is libc's own
        "growpart": {"mode": "auto", "devices": ["/"]},
        "resize_rootfs": True,
        "runcmd": [["sh", "-c", f"mkdir -p {os.path.dirname(MARKER)} && printf '%s\\n' "
                    f"'{marker_text(identity)}' > {MARKER}.tmp && mv {MARKER}.tmp {MARKER}"]],
    }
    meta = {"instance-id": f"{identity.cluster}-{identity.node}-{identity.install_id}",
            "local-hostname": identity.node}
    ethernets: dict[str, Any] = {}
    if identity.private_address and identity.private_mac:
        ethernets["cluster"] = {"match": {"macaddress": identity.private_mac.lower()},
                                "addresses": [identity.private_address], "dhcp4": False}
    # every other interface: DHCP, from the image's own networkd fallback (cloud-init's
    # networkd renderer turns a v2 name-glob match into Name=<key>, seen here)
    network = {"version": 2, "ethernets": ethernets}
    return {
        "user-data": "#cloud-config\n" + yaml.safe_dump(user_data, sort_keys=False),
        "meta-data": yaml.safe_dump(meta, sort_keys=False),
        "network-config": yaml.safe_dump(network, sort_keys=False),
    }


def build_medium(images: Images, identity: NodeIdentity, host_key: HostKey,
                 root: RootDevice, dest: Path) -> Path:
    """The node's install ISO at ``dest`` (its directory must be private: it holds the seed)."""
    if not images.ready():
        raise ProvisionError(f"the OS image set {images.directory} is incomplete; rebuild it "
                             "with `provision lab image --force`")
    stage = Path(tempfile.mkdtemp(prefix="medium-", dir=dest.parent))
    try:
        prov = stage / "provision"
        (prov / "seed").mkdir(parents=True)
        (stage / "boot" / "grub").mkdir(parents=True)
        (stage / "boot" / "grub" / "grub.cfg").write_text(ISO_GRUB_CFG.format(
            node=identity.node, generation=identity.generation))
        _link_or_copy(images.kernel, prov / "vmlinuz")
        (prov / "initrd.img").write_bytes(deploy_initrd_bytes(images))
        _link_or_copy(images.os_image, prov / "os.img.zst")
        for name, text in seed(identity, host_key).items():
            (prov / "seed" / name).write_text(text)
        env = {"PROVISION_NODE": identity.node, "PROVISION_GENERATION": str(identity.generation),
               **root.env()}
        (prov / "install.env").write_text(
            "".join(f"{k}='{v}'\n" for k, v in env.items() if "'" not in v))
        (prov / "install.json").write_text(json.dumps(
            {"node": identity.node, "cluster": identity.cluster,
             "generation": identity.generation}) + "\n")
        try:
            proc = subprocess.run(
                ["grub-mkrescue", "-o", str(dest), str(stage), "--", "-volid", "PROVISION"],
                capture_output=True, text=True, timeout=600)
        except FileNotFoundError:
            raise ProvisionError("grub-mkrescue is not installed (grub-common, "
                                 "grub-efi-amd64-bin, xorriso, mtools)") from None
        if proc.returncode != 0:
            raise ProvisionError("building the install medium failed: "
                                 + proc.stderr.strip()[-400:])
        dest.chmod(0o600)
        return dest
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


@dataclass
class MediaServer:
    """Serves files from one private directory at ``/<token>/<name>`` while open.

    ``bind`` is the address the BMCs reach this machine at (``reinstall.media_address``);
    the random token keeps other hosts on that network from fetching another node's seed."""

    bind: str = "127.0.0.1"
    port: int = 0
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(
        prefix="provision-media-")))
    token: str = field(default_factory=lambda: secrets.token_urlsafe(16))

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.directory.chmod(0o700)
        self._server: http.server.ThreadingHTTPServer | None = None

    def url(self, name: str) -> str:
        assert self._server is not None, "start the server first"
        host = self.bind if ":" not in self.bind else f"[{self.bind}]"
        return f"http://{host}:{self._server.server_address[1]}/{self.token}/{name}"

    def start(self) -> MediaServer:
        directory, token = self.directory, self.token

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a: Any, **kw: Any) -> None:
                super().__init__(*a, directory=str(directory), **kw)

            def translate_path(self, path: str) -> str:
                prefix = f"/{token}/"
                name = path.split("?", 1)[0]
                if not name.startswith(prefix) or "/" in name[len(prefix):]:
                    return str(directory / "__missing__")
                return str(directory / name[len(prefix):])

            def list_directory(self, path: Any) -> None:
                self.send_error(404)
                return None

            def log_message(self, fmt: str, *args: Any) -> None:
                """Quiet: the BMC's downloads are not the operator's business."""

        self._server = http.server.ThreadingHTTPServer((self.bind, self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True,
                         name="provision-media").start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> MediaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def served_medium(images: Images, identity: NodeIdentity, host_key: HostKey,
                  root: RootDevice, bind: str) -> Iterator[str]:
    """Build the node's medium, serve it, yield its URL; delete it afterwards."""
    with MediaServer(bind=bind) as server:
        name = f"{identity.node}-g{identity.generation}.iso"
        build_medium(images, identity, host_key, root, server.directory / name)
        yield server.url(name)
