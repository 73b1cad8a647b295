"""The OS image and the deploy image of an image-based bare-metal install, built here once.

This is how OpenStack Ironic, MAAS and Tinkerbell install servers, rather than running a
distribution installer on each: a finished disk image is written by a small deploy ramdisk.

OS image (``os.img.zst``)
    Debian 12 from debootstrap with the cloud kernel, systemd, cloud-init, OpenSSH, and the
    packages the base, hardening, storage, MPI and monitoring roles install (so a converge on a
    fresh node verifies rather than downloads). A GPT disk: an EFI system partition holding a
    standalone GRUB (``EFI/BOOT/BOOTX64.EFI``, the removable-media path every UEFI firmware
    boots) that loads ``/boot/grub/grub.cfg`` from the root filesystem, and an ext4 root.
    ``/vmlinuz`` and ``/initrd.img`` are Debian's own links to the newest kernel, so a kernel
    the roles install later is booted without regenerating anything. The root partition is
    grown to the disk by cloud-init on first boot. No SSH host keys are baked in: each node's
    come in its seed.
Deploy image (``deploy/``)
    The same kernel and its own initrd (every storage driver the image's initramfs-tools
    packs), with a second cpio appended that replaces ``/init`` by :data:`DEPLOY_INIT` and
    adds busybox and zstd. It writes the OS image from the install medium to the chosen disk,
    puts the node's NoCloud seed into the new root filesystem and powers the machine off: the
    controller sees the power state change through the BMC, then boots the machine from disk.

Both are cached under ``~/.cache/provision/images/<recipe hash>/`` (``PROVISION_CACHE``): the
hash covers the suite, mirror, package list and every script, so a changed recipe builds anew
and an unchanged one is reused. Building needs root (debootstrap, chroot) and Debian's
debootstrap, fdisk, dosfstools, mtools, e2fsprogs, grub-efi-amd64-bin and zstd.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from provision.backends.base import Event
from provision.errors import ProvisionError

SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
KERNEL = "linux-image-cloud-amd64"
PACKAGES = (
    KERNEL, "systemd-sysv", "udev", "dbus", "cloud-init", "cloud-guest-utils", "gdisk",
    "openssh-server", "sudo", "python3", "python3-apt", "ca-certificates", "kmod",
    "iproute2", "iputils-ping", "netbase", "procps", "less", "lsb-release", "pciutils",
    "zstd", "busybox-static", "initramfs-tools",
    # what the base, hardening, storage, MPI and monitoring roles install
    "chrony", "rsync", "nftables", "e2fsprogs", "xfsprogs", "mdadm", "nfs-common",
    "nfs-kernel-server", "sshfs", "fuse3", "openmpi-bin", "prometheus-node-exporter",
    "prometheus",
)
# Drivers the deploy ramdisk and the installed system need early on the machines we install
# (virtual CD on IDE/SATA, virtio and NVMe disks); initramfs-tools' MODULES=most adds the rest.
INITRAMFS_MODULES = ("ata_piix", "ahci", "sr_mod", "isofs", "virtio_pci", "virtio_blk",
                     "virtio_scsi", "nvme", "sd_mod", "ext4")
ESP_MIB = 64
ROOT_SLACK = 1.25  # root filesystem = content × this + 256 MiB; cloud-init grows it on boot
ROOT_LABEL = "provision-root"

GRUB_EMBEDDED = """search --no-floppy --label --set=root {label}
configfile ($root)/boot/grub/grub.cfg
"""
GRUB_CFG = """# provision OS image: boots Debian's newest kernel through its /vmlinuz link.
set timeout=1
set default=0
menuentry "Debian GNU/Linux (provision image)" {{
    search --no-floppy --label --set=root {label}
    linux /vmlinuz root=LABEL={label} ro console=tty0 console=ttyS0,115200n8 net.ifnames=0
    initrd /initrd.img
}}
"""
FALLBACK_NETWORK = (
    "# provision OS image: DHCP on every Ethernet interface that no earlier file "
    "(cloud-init's\n"
    """# 10-cloud-init-*.network from the node's seed) configures.
[Match]
Name=e*

[Network]
DHCP=ipv4
""")
CLOUD_CFG = """# provision OS image: NoCloud seed only (written by the deploy ramdisk); never probe
# other datasources (no metadata service exists on bare metal).
datasource_list: [NoCloud, None]
"""
DEPLOY_INIT = r"""#!/bin/busybox sh
# provision deploy ramdisk: write the OS image and this node's seed, then power off.
/bin/busybox mkdir -p /proc /sys /dev /media /target /tmp
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
B=/bin/busybox
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
say() { echo "provision-deploy: $*" > /dev/console; }
fail() {
  say "FAILED: $*"
  say "block devices: $($B ls /sys/block | $B tr '\n' ' ')"
  say "modules: $($B cut -d' ' -f1 /proc/modules | $B tr '\n' ' ')"
  $B dmesg | $B tail -15 > /dev/console
  $B sleep 2; $B poweroff -f
}
for m in ata_piix ahci sr_mod isofs virtio_pci virtio_blk virtio_scsi nvme sd_mod; do
  modprobe "$m" > /dev/console 2>&1 || say "modprobe $m failed"
done
$B sleep 1
medium=""
for try in $($B seq 1 60); do
  for dev in /dev/sr* /dev/vd* /dev/sd*; do
    [ -b "$dev" ] || continue
    if $B mount -t iso9660 -o ro "$dev" /media 2>/dev/null; then
      if [ -f /media/provision/install.json ]; then medium="$dev"; break 2; fi
      $B umount /media
    fi
  done
  $B sleep 1
done
[ -n "$medium" ] || fail "no install medium with provision/install.json"
conf=/media/provision/install.env
[ -f "$conf" ] || fail "missing $conf"
. "$conf"
say "medium $medium; node $PROVISION_NODE generation $PROVISION_GENERATION"
disk=""
if [ -n "$PROVISION_ROOT_SERIAL" ]; then
  for s in /sys/block/*; do
    ser=$($B cat "$s/serial" 2>/dev/null || $B cat "$s/device/serial" 2>/dev/null)
    ser=$(echo $ser)
    if [ "$ser" = "$PROVISION_ROOT_SERIAL" ]; then disk=/dev/$($B basename "$s"); break; fi
  done
  [ -n "$disk" ] || fail "no disk with serial $PROVISION_ROOT_SERIAL"
else
  disk="$PROVISION_ROOT_DEVICE"
fi
[ -b "$disk" ] || fail "target disk $disk is not a block device"
set -o pipefail
zstd -V > /dev/null || fail "zstd cannot run in the ramdisk"
say "writing the OS image to $disk"
zstd -d -c /media/provision/os.img.zst | $B dd of="$disk" bs=4M conv=fsync 2>/dev/null \
  || fail "writing $disk"
$B sync
$B blockdev --rereadpt "$disk" || true
$B sleep 1
case "$disk" in *[0-9]) part="${disk}p2" ;; *) part="${disk}2" ;; esac
[ -b "$part" ] || $B mdev -s
[ -b "$part" ] || fail "no root partition $part after writing"
$B mount -t ext4 "$part" /target || fail "mounting $part"
$B mkdir -p /target/var/lib/cloud/seed/nocloud
$B cp /media/provision/seed/* /target/var/lib/cloud/seed/nocloud/ || fail "copying the seed"
$B chmod 0600 /target/var/lib/cloud/seed/nocloud/user-data
$B sync
$B umount /target
$B umount /media
say "done: node $PROVISION_NODE generation $PROVISION_GENERATION installed on $disk; powering off"
$B sync
$B poweroff -f
"""


@dataclass(frozen=True)
class Images:
    """Where a built image set lives (all files read-only once built)."""

    directory: Path

    @property
    def os_image(self) -> Path:
        return self.directory / "os.img.zst"

    @property
    def kernel(self) -> Path:
        return self.directory / "deploy" / "vmlinuz"

    @property
    def initrd(self) -> Path:
        """The image's own initrd plus busybox, zstd and their libraries (no /init yet:
        :func:`deploy_initrd_bytes` appends the deploy script, which is not part of the
        OS recipe, so changing it never rebuilds the OS image)."""
        return self.directory / "deploy" / "initrd-tools.img"

    @property
    def manifest(self) -> Path:
        return self.directory / "manifest.json"

    def ready(self) -> bool:
        return self.manifest.is_file() and all(
            p.is_file() for p in (self.os_image, self.kernel, self.initrd))


def cache_root() -> Path:
    base = os.environ.get("PROVISION_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "provision")
    return Path(base) / "images"


def mirror() -> str:
    return os.environ.get("PROVISION_DEBIAN_MIRROR", DEFAULT_MIRROR)


def recipe_hash(mirror_url: str | None = None) -> str:
    """Hash of everything that decides the images' content."""
    h = hashlib.sha256()
    for part in (SUITE, mirror_url or mirror(), *PACKAGES, *INITRAMFS_MODULES, GRUB_EMBEDDED,
                 GRUB_CFG, CLOUD_CFG, FALLBACK_NETWORK, str(ESP_MIB), ROOT_LABEL):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:12]


def images(mirror_url: str | None = None) -> Images:
    return Images(cache_root() / f"debian12-{recipe_hash(mirror_url)}")


def ensure_images(event: Event, *, force: bool = False) -> Images:
    """The image set for the current recipe, built first when missing (or ``force``)."""
    target = images()
    if target.ready() and not force:
        return target
    build(target, event)
    return target


def _run(cmd: list[str], what: str, timeout: int = 1800, **kw) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    except FileNotFoundError:
        raise ProvisionError(f"{what}: {cmd[0]} is not installed (./install.sh installs the "
                             "image tools)") from None
    except subprocess.TimeoutExpired:
        raise ProvisionError(f"{what}: {cmd[0]} did not finish within {timeout} s") from None
    if proc.returncode != 0:
        tail = "\n  ".join((proc.stdout + proc.stderr).strip().splitlines()[-6:])
        raise ProvisionError(f"{what} failed ({' '.join(cmd[:3])} ...):\n  {tail}")
    return proc


def build(target: Images, event: Event) -> None:
    """debootstrap → configured root → GPT disk image (ESP + ext4) → zstd; deploy ramdisk."""
    if os.geteuid() != 0:
        raise ProvisionError("building the OS image needs root (debootstrap, chroot)")
    started = time.monotonic()
    parent = target.directory.parent
    parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="provision-osimg-", dir=parent))
    root = work / "rootfs"
    try:
        url = mirror()
        event(f"OS image {target.directory.name}: debootstrap {SUITE} from {url} "
              "(a few minutes, once)")
        # a minimal base, then apt in the chroot: debootstrap's own resolver fails to configure
        # a long --include list (python3-cryptography under cloud-init, seen here)
        _run(["debootstrap", "--variant=minbase", SUITE, str(root), url], "debootstrap",
             timeout=3600)
        event(f"OS image: apt-get install {len(PACKAGES)} packages in the chroot")
        _install_packages(root)
        _configure(root)
        kernel = _newest(root / "boot", "vmlinuz-")
        version = kernel.name.removeprefix("vmlinuz-")
        event(f"OS image: initramfs for kernel {version}")
        mode = "-u" if (root / "boot" / f"initrd.img-{version}").exists() else "-c"
        _run(["chroot", str(root), "update-initramfs", mode, "-k", version], "update-initramfs")
        out = work / "out"
        (out / "deploy").mkdir(parents=True)
        shutil.copy2(kernel, out / "deploy" / "vmlinuz")
        initrd = root / "boot" / f"initrd.img-{version}"
        tools_initrd(initrd, root, out / "deploy" / "initrd-tools.img")
        event("OS image: disk image (ESP with GRUB, ext4 root) and zstd")
        raw = work / "os.img"
        size = disk_image(root, raw, work)
        _run(["zstd", "-q", "-T0", "-6", "--rm", str(raw), "-o", str(out / "os.img.zst")],
             "compressing the OS image")
        manifest = {"suite": SUITE, "mirror": url, "kernel": version, "packages": PACKAGES,
                    "disk_bytes": size, "recipe": recipe_hash(url),
                    "build_seconds": round(time.monotonic() - started, 1)}
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if target.directory.exists():
            shutil.rmtree(target.directory)
        out.rename(target.directory)
        event(f"OS image ready in {manifest['build_seconds']:.0f} s: {target.directory}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _install_packages(root: Path) -> None:
    """apt-get install PACKAGES inside the chroot, with services kept from starting."""
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
           "LC_ALL": "C"}
    proc_dir = root / "proc"
    subprocess.run(["mount", "-t", "proc", "proc", str(proc_dir)], check=False,
                   capture_output=True)
    try:
        _run(["chroot", str(root), "apt-get", "update", "-q"], "apt-get update", env=env)
        _run(["chroot", str(root), "apt-get", "install", "-y", "-q",
              "--no-install-recommends", *PACKAGES], "apt-get install", timeout=3600, env=env)
        _run(["chroot", str(root), "apt-get", "clean"], "apt-get clean", env=env)
    finally:
        subprocess.run(["umount", "-l", str(proc_dir)], check=False, capture_output=True)
        policy.unlink(missing_ok=True)


def _newest(directory: Path, prefix: str) -> Path:
    found = sorted(directory.glob(f"{prefix}*"))
    if not found:
        raise ProvisionError(f"no {prefix}* in {directory}: did the kernel package install?")
    return found[-1]


def _configure(root: Path) -> None:
    """What the image needs besides packages: boot config, cloud-init, no host keys."""
    (root / "boot/grub").mkdir(parents=True, exist_ok=True)
    (root / "boot/grub/grub.cfg").write_text(GRUB_CFG.format(label=ROOT_LABEL))
    (root / "etc/fstab").write_text(
        f"LABEL={ROOT_LABEL} / ext4 defaults,errors=remount-ro 0 1\n"
        "LABEL=ESP /boot/efi vfat umask=0077,nofail 0 2\n")
    (root / "boot/efi").mkdir(parents=True, exist_ok=True)
    (root / "etc/cloud/cloud.cfg.d/90-provision.cfg").write_text(CLOUD_CFG)
    (root / "etc/initramfs-tools/modules").write_text("\n".join(INITRAMFS_MODULES) + "\n")
    (root / "etc/apt/apt.conf.d/90provision").write_text(
        'APT::Install-Recommends "false";\nAcquire::Retries "3";\n')
    (root / "etc/hostname").write_text("provision-node\n")
    (root / "etc/machine-id").write_text("")  # systemd makes one per machine on first boot
    (root / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "usr/sbin/policy-rc.d").unlink(missing_ok=True)
    (root / "etc/systemd/network").mkdir(parents=True, exist_ok=True)
    (root / "etc/systemd/network/99-provision-dhcp.network").write_text(FALLBACK_NETWORK)
    # networkd renders cloud-init's network config (no ifupdown or netplan in the image)
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / "systemd-networkd.service"
    if not link.exists():
        link.symlink_to("/lib/systemd/system/systemd-networkd.service")
    # serial console login (what a BMC's serial-over-LAN shows)
    getty = root / "etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service"
    getty.parent.mkdir(parents=True, exist_ok=True)
    if not getty.exists():
        getty.symlink_to("/lib/systemd/system/serial-getty@.service")


def _du_bytes(root: Path) -> int:
    out = _run(["du", "-sxb", str(root)], "measuring the root filesystem").stdout
    return int(out.split()[0])


def disk_image(root: Path, raw: Path, work: Path) -> int:
    """A GPT disk image at ``raw``: ESP (standalone GRUB) + ext4 root made from ``root``."""
    root_bytes = int(_du_bytes(root) * ROOT_SLACK) + (256 << 20)
    root_mib = (root_bytes >> 20) + 1
    total_mib = 1 + ESP_MIB + root_mib + 1
    esp = work / "esp.img"
    _run(["truncate", "-s", f"{ESP_MIB}M", str(esp)], "ESP")
    _run(["mkfs.vfat", "-F", "32", "-n", "ESP", str(esp)], "mkfs.vfat")
    grub_cfg = work / "grub-embedded.cfg"
    grub_cfg.write_text(GRUB_EMBEDDED.format(label=ROOT_LABEL))
    bootx = work / "BOOTX64.EFI"
    _run(["grub-mkstandalone", "-O", "x86_64-efi", "-o", str(bootx),
          "--modules=part_gpt ext2 search search_label linux normal configfile echo",
          f"boot/grub/grub.cfg={grub_cfg}"], "grub-mkstandalone")
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    _run(["mmd", "-i", str(esp), "::/EFI", "::/EFI/BOOT"], "ESP directories", env=env)
    _run(["mcopy", "-i", str(esp), str(bootx), "::/EFI/BOOT/BOOTX64.EFI"], "ESP loader",
         env=env)
    rootfs = work / "root.ext4"
    _run(["mkfs.ext4", "-q", "-L", ROOT_LABEL, "-d", str(root), "-E",
          "lazy_itable_init=1,lazy_journal_init=1", str(rootfs), f"{root_mib}M"], "mkfs.ext4")
    _run(["truncate", "-s", f"{total_mib}M", str(raw)], "disk image")
    layout = (f"label: gpt\n"
              f"start=1MiB, size={ESP_MIB}MiB, type=uefi, name=esp\n"
              f"start={1 + ESP_MIB}MiB, size={root_mib}MiB, type=linux, name=root\n")
    _run(["sfdisk", "-q", str(raw)], "partitioning", input=layout)
    for image, offset_mib in ((esp, 1), (rootfs, 1 + ESP_MIB)):
        _run(["dd", f"if={image}", f"of={raw}", "bs=1M", f"seek={offset_mib}",
              "conv=notrunc,sparse", "status=none"], "writing partitions")
    return total_mib << 20


def deploy_initrd_bytes(images_: Images) -> bytes:
    """The deploy ramdisk: the tools initrd with /init replaced by :data:`DEPLOY_INIT`."""
    return images_.initrd.read_bytes() + _newc({"init": (DEPLOY_INIT.encode(), 0o755)})


ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def flat_initrd(data: bytes) -> bytes:
    """Debian's initrd (uncompressed early cpio, then a zstd-compressed main cpio) as plain
    concatenated cpio archives. Seen here: the kernel rejects a cpio appended after the zstd
    stream ("Initramfs unpacking failed: invalid magic at start of compressed archive"), so
    the deploy ramdisk is uncompressed throughout and later archives overlay earlier ones."""
    at = data.find(ZSTD_MAGIC)
    if at < 0:
        return data
    proc = subprocess.run(["zstd", "-d", "-c", "-q"], input=data[at:], capture_output=True,
                          timeout=600)
    if proc.returncode != 0 or not proc.stdout.startswith(b"070701"):
        raise ProvisionError(f"cannot decompress the image's initrd: {proc.stderr[-200:]!r}")
    return data[:at] + proc.stdout


def tools_initrd(base: Path, root: Path, dest: Path) -> None:
    """The image's own initrd, uncompressed, with a cpio appended: busybox and zstd (with the
    libraries it links, taken from the image itself)."""
    files: dict[str, tuple[bytes, int]] = {}
    for path in ("/bin/busybox", "/usr/bin/zstd", *_libraries(root, "/usr/bin/zstd")):
        # in its real directory (usr/...): an archive entry for a directory where the base
        # initrd has a symlink (bin -> usr/bin) makes the kernel replace the link with a
        # directory; under its own name (the soname the loader looks for), with the content
        # of the file it links to
        parent, name = path.rsplit("/", 1)
        where = _resolve_in(root, parent or "/") / name
        files[str(where.relative_to(root))] = (_resolve_in(root, path).read_bytes(), 0o755)
    extra = _newc(files)
    dest.write_bytes(flat_initrd(base.read_bytes()) + extra)


def _resolve_in(root: Path, path: str) -> Path:
    """A path inside ``root`` with every symlink (in any component) resolved inside ``root``."""
    real = root
    todo = [p for p in path.strip("/").split("/") if p]
    hops = 0
    while todo:
        part = todo.pop(0)
        if part == "..":
            real = real.parent if real != root else root
            continue
        nxt = real / part
        if nxt.is_symlink():
            hops += 1
            if hops > 40:
                raise ProvisionError(f"symlink loop at {path} in the image")
            link = os.readlink(nxt)
            todo = [p for p in link.split("/") if p and p != "."] + todo
            if link.startswith("/"):
                real = root
            continue
        real = nxt
    return real


def _libraries(root: Path, binary: str) -> list[str]:
    out = _run(["chroot", str(root), "ldd", binary], f"ldd {binary}").stdout
    libs = []
    for line in out.splitlines():
        parts = line.split()
        path = next((p for p in parts if p.startswith("/")), None)
        if path:
            libs.append(path)
    return libs


def _newc(files: dict[str, tuple[bytes, int]]) -> bytes:
    """An uncompressed newc cpio archive (what the kernel unpacks over the first one)."""
    buf = io.BytesIO()
    dirs: set[str] = set()
    for name in files:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
    ino = 1
    entries = [(d, b"", 0o040755) for d in sorted(dirs)]
    entries += [(n, data, 0o100000 | mode) for n, (data, mode) in files.items()]
    for name, data, mode in [*entries, ("TRAILER!!!", b"", 0)]:
        encoded = name.encode() + b"\0"
        header = "070701" + "".join(f"{v:08x}" for v in (
            ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0))
        buf.write(header.encode() + encoded)
        buf.write(b"\0" * ((4 - (110 + len(encoded)) % 4) % 4))
        buf.write(data)
        buf.write(b"\0" * ((4 - len(data) % 4) % 4))
        ino += 1
    return buf.getvalue()


def read_manifest(images_: Images) -> dict:
    """What a built image set was made from (suite, kernel, packages, size, build time)."""
    return json.loads(images_.manifest.read_text())
