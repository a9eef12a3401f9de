#!/usr/bin/env bash
# Builds a Go tool from one of the wrapper modules under tools/ (their go.mod + committed go.sum pin every
# version) and prints the binary's path as the last line on stdout:
#
#   bin=$(scripts/go-tool-bin.sh <name> <module dir under tools/> <package> | tail -n 1)
#
# Built from source, not downloaded: no extra download location to trust and one version everywhere (the Go
# module proxy serves the sources). The result is cached OUTSIDE the clone, default
# /var/tmp/faxbot-kube-bins/<name>-<hash>/<name>; the hash covers go.mod, go.sum and the module's own Go
# sources (not its _test.go files), so a change to any of them never finds a stale binary. The Go toolchain
# version is not part of the key.
#
# Environment:
#   FAXBOT_GO_TOOL_CACHE  parent of the cache directories (default /var/tmp/faxbot-kube-bins)
#
# Idempotent and safe to run concurrently (a second caller waits on a lock and then finds the binary).
set -euo pipefail

if [[ $# -ne 3 ]]; then
  echo "usage: $0 <name> <module dir under tools/> <package>" >&2
  exit 2
fi
name=$1
repo=$(cd "$(dirname "$0")/.." && pwd)
module_dir="$repo/tools/$2"
package=$3

if [[ ! -f $module_dir/go.mod || ! -f $module_dir/go.sum ]]; then
  echo "$name-bin: $module_dir/go.mod or go.sum is missing" >&2
  exit 1
fi
# File names and contents, in a fixed order, so a rename counts as well as an edit.
hash=$(
  cd "$module_dir"
  find . -maxdepth 1 -type f \( -name go.mod -o -name go.sum -o -name '*.go' \) ! -name '*_test.go' -print0 \
    | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16
)
bin_dir=${FAXBOT_GO_TOOL_CACHE:-/var/tmp/faxbot-kube-bins}/$name-$hash

if [[ -x $bin_dir/$name ]]; then
  echo "$name-bin: using cached $bin_dir/$name" >&2
  echo "$bin_dir/$name"
  exit 0
fi
if ! command -v go >/dev/null; then
  echo "$name-bin: the Go toolchain is needed to build $name (see $module_dir/go.mod for the version)" >&2
  exit 1
fi

mkdir -p "$(dirname "$bin_dir")"
exec 9>"$bin_dir.lock"
if ! flock -n 9; then
  echo "$name-bin: another build of $name $hash is running; waiting for it" >&2
  flock 9
fi
if [[ -x $bin_dir/$name ]]; then
  echo "$bin_dir/$name"
  exit 0
fi

tmp=$(mktemp -d "$bin_dir.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "$name-bin: building $package into $bin_dir" >&2
start=$SECONDS
(
  cd "$module_dir"
  # -mod=readonly: exactly the committed go.mod/go.sum; CGO_ENABLED=0: a static binary.
  CGO_ENABLED=0 go build -mod=readonly -trimpath -ldflags "-s -w" -o "$tmp/$name" "$package"
)
mkdir -p "$bin_dir"
mv -f "$tmp/$name" "$bin_dir/$name"
echo "$name-bin: built in $((SECONDS - start)) s" >&2
echo "$bin_dir/$name"
