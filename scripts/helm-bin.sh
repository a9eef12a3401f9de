#!/usr/bin/env bash
# Ensures a Helm binary exists and prints its path as the last line on stdout:
#
#   helm=$(scripts/helm-bin.sh | tail -n 1)
#
# Helm is built from source by the wrapper Go module in tools/helm, which pins helm.sh/helm/v3 (go.mod +
# committed go.sum), for the same reasons as scripts/kube-bins.sh: no Docker, no extra download location to
# trust, one version everywhere. It lives in its own module (helm has no replace directives, but its k8s.io
# dependencies must not meet the replace block that pins the Kubernetes staging modules in tools/kube-testbins)
# and its own script, so adding it did not invalidate the existing Kubernetes binaries cache.
#
# The result is cached OUTSIDE the clone, default /var/tmp/faxbot-kube-bins/helm-<version>/helm.
#
# Environment:
#   FAXBOT_HELM_BIN_DIR  cache directory (default /var/tmp/faxbot-kube-bins/helm-<version from go.mod>)
#
# Idempotent and safe to run concurrently (a second caller waits on a lock and then finds the binary).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
module_dir="$repo/tools/helm"

helm_version=$(awk '$1 == "helm.sh/helm/v3" { print $2; exit }' "$module_dir/go.mod")
if [[ ! $helm_version =~ ^v3\.[0-9]+\.[0-9]+$ ]]; then
  echo "helm-bin: cannot read the helm.sh/helm/v3 version from $module_dir/go.mod" >&2
  exit 1
fi
bin_dir=${FAXBOT_HELM_BIN_DIR:-/var/tmp/faxbot-kube-bins/helm-$helm_version}

if [[ -x $bin_dir/helm ]]; then
  echo "helm-bin: using cached $bin_dir/helm" >&2
  echo "$bin_dir/helm"
  exit 0
fi
if ! command -v go >/dev/null; then
  echo "helm-bin: the Go toolchain is needed to build Helm (see $module_dir/go.mod for the version)" >&2
  exit 1
fi

parent=$(dirname "$bin_dir")
mkdir -p "$parent"
exec 9>"$bin_dir.lock"
if ! flock -n 9; then
  echo "helm-bin: another build of Helm $helm_version is running; waiting for it" >&2
  flock 9
fi
if [[ -x $bin_dir/helm ]]; then
  echo "$bin_dir/helm"
  exit 0
fi

tmp=$(mktemp -d "$bin_dir.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# The same stamps as Helm's own Makefile: its version, and the Kubernetes version that `helm template` /
# `helm lint` assume for .Capabilities.KubeVersion (client-go v0.X.Y -> Kubernetes 1.X).
client_go=$(awk '$1 == "k8s.io/client-go" { print $2; exit }' "$module_dir/go.mod")
if [[ ! $client_go =~ ^v0\.([0-9]+)\.[0-9]+$ ]]; then
  echo "helm-bin: cannot read the k8s.io/client-go version from $module_dir/go.mod" >&2
  exit 1
fi
k8s_minor=${BASH_REMATCH[1]}
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version"
ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
done

echo "helm-bin: building Helm $helm_version into $bin_dir (a cold build takes a few minutes)" >&2
start=$SECONDS
(
  cd "$module_dir"
  # -mod=readonly: exactly the committed go.mod/go.sum; CGO_ENABLED=0: a static binary.
  CGO_ENABLED=0 go build -mod=readonly -trimpath -ldflags "$ldflags" -o "$tmp/helm" helm.sh/helm/v3/cmd/helm
)
mkdir -p "$bin_dir"
mv -f "$tmp/helm" "$bin_dir/helm"
echo "helm-bin: built in $((SECONDS - start)) s" >&2
echo "$bin_dir/helm"
