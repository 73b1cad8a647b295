#!/usr/bin/env bash
# Install provision and what it drives on this machine: the Python package (with test tools)
# and, for the local target, podman, runc, debootstrap, equivs and gpg (simulated GPU nodes'
# signed stand-in repository) from the distribution.
# Re-runnable; installs only what is missing. Needs root (or sudo) for the system packages.
set -euo pipefail
cd "$(dirname "$0")"

need=()
for tool in podman:podman runc:runc debootstrap:debootstrap equivs-build:equivs gpg:gpg; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool##*:}")
done
if ((${#need[@]})); then
  if [ "$(id -u)" -eq 0 ]; then sudo=(); else sudo=(sudo); fi
  if command -v apt-get >/dev/null 2>&1; then
    echo "installing system packages: ${need[*]}"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "warning: install ${need[*]} with your package manager (the local target needs them)" >&2
  fi
fi

python3 -m pip install --quiet --disable-pip-version-check -e '.[dev]'
echo "provision installed: $(command -v provision)"
