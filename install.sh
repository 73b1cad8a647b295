#!/usr/bin/env bash
# Install provision and what it drives on this machine: the Python package (with test tools)
# and, from the distribution: for the local target podman, runc, debootstrap, equivs and gpg
# (simulated GPU nodes' signed stand-in repository); for bare metal and its virtual-server lab
# QEMU, libvirt, OVMF, vde2 and the image tools (GRUB EFI, xorriso, mtools, dosfstools, fdisk,
# zstd). Then the Pulumi CLI when it is missing: built from its Go module where Go is present
# (scripts/build-pulumi-cli.sh, cached in ~/.cache/provision/pulumi), otherwise how to get it.
# Re-runnable; installs only what is missing. Needs root (or sudo) for the system packages.
set -euo pipefail
cd "$(dirname "$0")"

if [ "$(id -u)" -eq 0 ]; then sudo=(); else sudo=(sudo); fi
need=()
for tool in podman:podman runc:runc debootstrap:debootstrap equivs-build:equivs gpg:gpg \
    qemu-system-x86_64:qemu-system-x86 qemu-img:qemu-utils virsh:libvirt-clients \
    libvirtd:libvirt-daemon-system pkg-config:pkg-config grub-mkrescue:grub-common \
    xorriso:xorriso mcopy:mtools mkfs.vfat:dosfstools sfdisk:fdisk zstd:zstd \
    vde_switch:vde2 openssl:openssl ssh-keygen:openssh-client cpio:cpio; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool##*:}")
done
for file in /usr/share/OVMF/OVMF_CODE_4M.fd:ovmf /usr/lib/grub/x86_64-efi/linux.mod:grub-efi-amd64-bin \
    /usr/include/libvirt/libvirt.h:libvirt-dev /usr/share/qemu/efi-virtio.rom:ipxe-qemu; do
  [ -e "${file%%:*}" ] || need+=("${file##*:}")
done
if ((${#need[@]})); then
  if command -v apt-get >/dev/null 2>&1; then
    echo "installing system packages: ${need[*]}"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
      "${need[@]}" >/dev/null
  else
    echo "warning: install ${need[*]} with your package manager (the local target and the" \
         "bare-metal lab need them)" >&2
  fi
fi

python3 -m pip install --quiet --disable-pip-version-check -e '.[dev]'
echo "provision installed: $(command -v provision)"

# The Pulumi CLI (cloud and bare-metal stacks). Python dynamic providers also need its
# launcher pulumi-resource-pulumi-python on PATH.
if ! command -v pulumi >/dev/null 2>&1 || ! command -v pulumi-resource-pulumi-python >/dev/null 2>&1; then
  if command -v go >/dev/null 2>&1; then
    bin=$(scripts/build-pulumi-cli.sh)
    if [ "$(id -u)" -eq 0 ]; then dest=/usr/local/bin; else dest="$HOME/.local/bin"; fi
    mkdir -p "$dest"
    ln -sf "$bin/pulumi" "$bin/pulumi-resource-pulumi-python" "$dest/"
    echo "pulumi CLI: $dest/pulumi -> $bin/pulumi"
  else
    echo "note: no pulumi CLI. Install it with: curl -fsSL https://get.pulumi.com | sh" \
         "(or install Go and rerun ./install.sh, which builds it from its Go module)" >&2
  fi
fi
