#!/usr/bin/env bash
# Build the Pulumi CLI from its Go module and cache the binary, for machines where no prebuilt
# CLI can be downloaded but the Go module proxy is reachable.
#
# Why a wrapper module: pkg/go.mod carries `replace sdk/v3 => ../sdk` (and a clipboard fork), so
# `go install github.com/pulumi/pulumi/pkg/v3/cmd/pulumi@VERSION` refuses to build. A module of
# our own that requires pkg/v3 and sdk/v3 at the same version, repeating the non-local replace,
# resolves. The result lands in ~/.cache/provision/pulumi/<version>/bin (re-runs reuse it).
#
# Usage: scripts/build-pulumi-cli.sh [VERSION]   (prints the bin directory on stdout)
set -euo pipefail
version="${1:-${PROVISION_PULUMI_VERSION:-v3.274.1}}"
cache="${PROVISION_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/provision}/pulumi/${version}"
bin="$cache/bin"
if [ -x "$bin/pulumi" ] && [ -x "$bin/pulumi-resource-pulumi-python" ] \
   && "$bin/pulumi" version >/dev/null 2>&1; then
  echo "$bin"
  exit 0
fi
command -v go >/dev/null 2>&1 || { echo "error: go is not installed; cannot build the Pulumi CLI" >&2; exit 1; }
work="$cache/src"
mkdir -p "$work" "$bin"
cd "$work"
cat > go.mod <<MOD
module provision.local/pulumi-cli

go 1.26

replace github.com/atotto/clipboard => github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e
MOD
start=$(date +%s)
echo "building the Pulumi CLI ${version} from its Go module (long on 2 cores; cached afterwards)" >&2
go get "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi@${version}" "github.com/pulumi/pulumi/sdk/v3@${version}" >&2
go build -trimpath -o "$bin/pulumi.tmp" \
  -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=${version}" \
  github.com/pulumi/pulumi/pkg/v3/cmd/pulumi >&2
mv "$bin/pulumi.tmp" "$bin/pulumi"
# The engine starts Python dynamic providers through this launcher (`python3 -m pulumi.dynamic`,
# or PULUMI_PYTHON_CMD); Pulumi ships it beside the CLI, from sdk/python/dist of the same module.
sdk_dir=$(go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)
install -m 0755 "$sdk_dir/python/dist/pulumi-resource-pulumi-python" "$bin/"
echo "built $("$bin/pulumi" version) in $(( $(date +%s) - start )) s" >&2
echo "$bin"
