#!/usr/bin/env bash
# Ensures the gitops-health test tool exists and prints its path as the last line on stdout:
#
#   tool=$(scripts/gitops-health-bin.sh | tail -n 1)
#
# gitops-health (tools/gitops-health, its own Go module: go.mod + committed go.sum pin sigs.k8s.io/cli-utils
# and github.com/yuin/gopher-lua) says what Flux (kstatus) and Argo CD (a resource health Lua script) report
# for an object; operator/tests/gitops_health.rs runs it over charts/faxbot-operator/argocd. Built from source
# for the same reasons as scripts/helm-bin.sh: no extra download location to trust, one version everywhere.
#
# The result is cached OUTSIDE the clone, default /var/tmp/faxbot-kube-bins/gitops-health-<hash>/gitops-health.
# The hash covers go.mod, go.sum AND the tool's own Go sources (not its _test.go files): unlike Helm, the
# code built here lives in this repository, so a change to it must not find a stale binary. (The Go
# toolchain version is not part of the key.)
#
# Cold build, measured on two shared cores under nice (go 1.26.8, CGO_ENABLED=0, -trimpath): 27 s with empty Go
# build and module caches (modules fetched from the Go module proxy), 26 s with the modules already downloaded;
# a cached run takes about 10 ms.
#
# Environment:
#   FAXBOT_GITOPS_HEALTH_BIN_DIR  cache directory (default /var/tmp/faxbot-kube-bins/gitops-health-<hash>)
#
# Idempotent and safe to run concurrently (a second caller waits on a lock and then finds the binary).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
module_dir="$repo/tools/gitops-health"

if [[ ! -f $module_dir/go.mod || ! -f $module_dir/go.sum ]]; then
  echo "gitops-health-bin: $module_dir/go.mod or go.sum is missing" >&2
  exit 1
fi
# File names and contents, in a fixed order, so a rename counts as well as an edit.
hash=$(
  cd "$module_dir"
  find . -maxdepth 1 -type f \( -name go.mod -o -name go.sum -o -name '*.go' \) ! -name '*_test.go' -print0 \
    | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16
)
bin_dir=${FAXBOT_GITOPS_HEALTH_BIN_DIR:-/var/tmp/faxbot-kube-bins/gitops-health-$hash}

if [[ -x $bin_dir/gitops-health ]]; then
  echo "gitops-health-bin: using cached $bin_dir/gitops-health" >&2
  echo "$bin_dir/gitops-health"
  exit 0
fi
if ! command -v go >/dev/null; then
  echo "gitops-health-bin: the Go toolchain is needed to build gitops-health (see $module_dir/go.mod for the version)" >&2
  exit 1
fi

parent=$(dirname "$bin_dir")
mkdir -p "$parent"
exec 9>"$bin_dir.lock"
if ! flock -n 9; then
  echo "gitops-health-bin: another build of gitops-health $hash is running; waiting for it" >&2
  flock 9
fi
if [[ -x $bin_dir/gitops-health ]]; then
  echo "$bin_dir/gitops-health"
  exit 0
fi

tmp=$(mktemp -d "$bin_dir.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "gitops-health-bin: building gitops-health into $bin_dir (a cold build takes under a minute)" >&2
start=$SECONDS
(
  cd "$module_dir"
  # -mod=readonly: exactly the committed go.mod/go.sum; CGO_ENABLED=0: a static binary.
  CGO_ENABLED=0 go build -mod=readonly -trimpath -ldflags "-s -w" -o "$tmp/gitops-health" .
)
mkdir -p "$bin_dir"
mv -f "$tmp/gitops-health" "$bin_dir/gitops-health"
echo "gitops-health-bin: built in $((SECONDS - start)) s" >&2
echo "$bin_dir/gitops-health"
