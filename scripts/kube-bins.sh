#!/usr/bin/env bash
# Ensures the Kubernetes control-plane binaries used by the operator's end-to-end tests exist and prints the
# directory that holds them as the last line on stdout:
#
#   bins=$(scripts/kube-bins.sh | tail -n 1)
#
# The binaries (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, and for the real-node
# variant of scripts/kube-testenv.sh the kubelet and kube-proxy) are built from source by the wrapper Go module
# in tools/kube-testbins, which pins the Kubernetes and etcd versions (go.mod + committed go.sum).
# Building from source instead of downloading release tarballs means no Docker, no extra download location
# to trust and the same versions everywhere; the price is a cold build of several minutes, so the result
# is cached OUTSIDE the clone (default /var/tmp/faxbot-kube-bins/<kubernetes version>) where every clone and
# every CI job on the same machine reuses it. Binaries must never end up inside the repository.
#
# Environment:
#   FAXBOT_KUBE_BINS  cache directory (default /var/tmp/faxbot-kube-bins/<version from go.mod>)
#
# Idempotent and safe to run concurrently: a second caller waits on a lock and then finds the binaries.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
module_dir="$repo/tools/kube-testbins"

# The Kubernetes version comes from go.mod, so bumping it there also selects a fresh cache directory.
k8s_version=$(awk '$1 == "k8s.io/kubernetes" { print $2; exit }' "$module_dir/go.mod")
if [[ ! $k8s_version =~ ^v([0-9]+)\.([0-9]+)\.[0-9]+$ ]]; then
  echo "kube-bins: cannot read the k8s.io/kubernetes version from $module_dir/go.mod" >&2
  exit 1
fi
k8s_major=${BASH_REMATCH[1]}
k8s_minor=${BASH_REMATCH[2]}

bins_dir=${FAXBOT_KUBE_BINS:-/var/tmp/faxbot-kube-bins/$k8s_version}
binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy kwok)

have_all() {
  local b
  for b in "${binaries[@]}"; do
    [[ -x $bins_dir/$b ]] || return 1
  done
  [[ -f $bins_dir/kwok-stages.yaml ]]
}

if have_all; then
  echo "kube-bins: using cached binaries in $bins_dir" >&2
  echo "$bins_dir"
  exit 0
fi

if ! command -v go >/dev/null; then
  echo "kube-bins: the Go toolchain is needed to build the binaries (see $module_dir/go.mod for the version)" >&2
  exit 1
fi

parent=$(dirname "$bins_dir")
mkdir -p "$parent"

# Serialise concurrent callers (parallel CI jobs on one machine) so the multi-minute build runs once.
exec 9>"$bins_dir.lock"
if command -v flock >/dev/null; then
  flock 9
fi
if have_all; then # somebody else finished the build while we waited for the lock
  echo "$bins_dir"
  exit 0
fi

# Build into a temporary sibling directory (same filesystem, so each mv is an atomic rename: a binary in the
# cache is always complete) and move the binaries into place one by one, because FAXBOT_KUBE_BINS may point at
# a directory that holds other things too. An interrupted build leaves at most some of them; the next run
# builds the rest (have_all() accepts only the full set).
tmp=$(mktemp -d "$bins_dir.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# The version variables are normally stamped by Kubernetes' own Makefile; without them the binaries report
# v0.0.0 and kubectl warns about a client/server version skew.
ldflags="-s -w"
ldflags+=" -X k8s.io/component-base/version.gitVersion=$k8s_version"
ldflags+=" -X k8s.io/component-base/version.gitMajor=$k8s_major"
ldflags+=" -X k8s.io/component-base/version.gitMinor=$k8s_minor"
ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$k8s_version"

# Only what is missing is built: a cache from before the kubelet was added keeps its control-plane binaries.
packages=()
for b in kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy; do
  [[ -x $bins_dir/$b ]] || packages+=("k8s.io/kubernetes/cmd/$b")
done
[[ -x $bins_dir/etcd ]] || packages+=(go.etcd.io/etcd/server/v3)
echo "kube-bins: building Kubernetes $k8s_version binaries into $bins_dir (a cold build takes several minutes):" \
  "${packages[*]:-kwok only}" >&2
start=$SECONDS
# -mod=readonly (also the default, but GOFLAGS=-mod=mod in the caller's environment would override that):
# the build must use exactly the committed go.mod/go.sum and fail rather than silently rewrite them.
# CGO_ENABLED=0 gives static binaries that need no C toolchain and run on any Linux of the same arch.
if ((${#packages[@]})); then
  (
    cd "$module_dir"
    CGO_ENABLED=0 go build -mod=readonly -trimpath -ldflags "$ldflags" -o "$tmp/" "${packages[@]}"
  )
fi

# etcd's main package is the module root go.etcd.io/etcd/server/v3. `go build -o dir/` names it after the
# import path minus the major-version suffix ("server", seen with Go 1.26); accept the raw last element
# ("v3") too, in case a toolchain names it that way.
# kwok (fake nodes whose pods become Running/Ready) lives in its own module: its k8s.io dependencies must not
# meet the replace block that pins the Kubernetes staging modules above.
if [[ ! -x $bins_dir/kwok || ! -f $bins_dir/kwok-stages.yaml ]]; then
  (
    cd "$repo/tools/kwok"
    CGO_ENABLED=0 go build -mod=readonly -trimpath -ldflags "-s -w" -o "$tmp/" sigs.k8s.io/kwok/cmd/kwok
    # kwok does nothing without "stages": ship its own fast node/pod stages (node becomes Ready and keeps its
    # Lease fresh, scheduled pods become Running and Ready at once) next to the binary.
    stages=$(go list -mod=readonly -m -f '{{.Dir}}' sigs.k8s.io/kwok)/kustomize/stage
    for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
      pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
      echo "---"
      cat "$stages/$f"
    done >"$tmp/kwok-stages.yaml"
  )
fi

for name in v3 server; do
  if [[ -x $tmp/$name ]]; then
    mv "$tmp/$name" "$tmp/etcd"
    break
  fi
done

mkdir -p "$bins_dir"
for f in "$tmp"/*; do
  [[ -e $f ]] || continue
  mv -f "$f" "$bins_dir/"
done
if ! have_all; then
  echo "kube-bins: the build did not produce every binary (have: $(ls "$bins_dir"))" >&2
  exit 1
fi
echo "kube-bins: built in $((SECONDS - start)) s" >&2
echo "$bins_dir"
