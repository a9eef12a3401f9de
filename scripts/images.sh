#!/usr/bin/env bash
# Builds the project's container images on a machine without a container registry, from the Dockerfile's
# runtime targets (api, api-sip, operator), and saves each as an archive a container runtime can import:
#
#   scripts/images.sh <env-file>     # writes `export FAXBOT_TEST_…_IMAGE=…` lines (and …_ARCHIVE) to <env-file>
#
# Only the base images differ from a registry build (docker build --target api .): they are build arguments of
# the Dockerfile, and here they are made from Debian packages (this host is Debian bookworm, like the bases):
# - RUNTIME_BASE, in place of gcr.io/distroless/cc-debian12:nonroot: the Debian packages of distroless's
#   static and cc layers that the binaries need (base-files, netbase, tzdata, ca-certificates with its bundle,
#   libc6, libgcc-s1), distroless's users (root, nobody, nonroot 65532) and a /tmp with mode 1777. No shell,
#   no package manager. The binaries link nothing else (tests/images.rs checks their ELF NEEDED
#   entries against the image's files).
# - SIP_BASE, in place of debian:bookworm-slim: `debootstrap --variant=minbase bookworm` (cached as a tar).
# - The binaries: `cargo build --release --locked` on the host (BINARIES=prebuilt), instead of the
#   Dockerfile's build stage, whose rust image cannot be pulled here; the runtime stages are the same.
# It also builds two images only the real-node test cluster needs: the pod sandbox (tools/images/pause.c)
# and kubectl for the chart's `helm test` Pod.
#
# Images are tagged <version>-<first 12 hex digits of the image ID> and built with --timestamp 0, so the same
# inputs give the same tag and an unchanged image is neither rebuilt nor saved again.
#
# Environment:
#   FAXBOT_IMAGES_CACHE    podman storage, bases and archives (default /var/tmp/faxbot-images; outside the clone)
#   CARGO_TARGET_DIR       where cargo puts the release binaries (default <repo>/target)
#   KUBE_BINS              directory with kubectl (default: scripts/kube-bins.sh builds or finds it)
#   FAXBOT_IMAGE_MUTATION  for the mutation check only: `drop-libgcc` leaves libgcc_s.so.1 out of the runtime
#                          base, so the binaries cannot start (docs/benchmarks.md, "Real pods")
#
# Needs root (debootstrap, podman's storage), podman, gcc, dpkg-deb, apt-get and debootstrap (.ci/run installs them).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
log() { echo "images: $*" >&2; }
die() {
  log "$*"
  exit 1
}

[[ $# -eq 1 && -n $1 ]] || die "usage: $0 <env-file>"
env_out=$1

cache=${FAXBOT_IMAGES_CACHE:-/var/tmp/faxbot-images}
mkdir -p "$cache"/{archives,debs}
for tool in podman gcc objcopy dpkg-deb apt-get debootstrap tar cargo; do
  command -v "$tool" >/dev/null || die "$tool is missing (apt-get install podman gcc dpkg-dev debootstrap; .ci/run does)"
done
[[ $(id -u) == 0 ]] || die "must run as root (debootstrap and podman's image storage)"

# Private podman configuration: nothing in /etc/containers is read or changed, and the storage lives in the
# cache, so layers (the api-sip apt step above all) are reused by later runs.
export CONTAINERS_CONF=$repo/tools/images/containers.conf
export CONTAINERS_STORAGE_CONF=$cache/storage.conf
cat >"$CONTAINERS_STORAGE_CONF" <<EOF
[storage]
driver = "overlay"
graphroot = "$cache/storage"
runroot = "/run/faxbot-images"
EOF
export CONTAINERS_REGISTRIES_CONF=$cache/registries.conf
# No registry is searched for short names: every image here is local and fully qualified.
echo 'unqualified-search-registries = []' >"$CONTAINERS_REGISTRIES_CONF"

# One build at a time per cache (concurrent CI jobs on one machine).
exec 8>"$cache/lock"
flock 8

version=$(awk -F'"' '/^version *=/ { print $2; exit }' "$repo/api-server/Cargo.toml")
target_dir=${CARGO_TARGET_DIR:-$repo/target}
mutation=${FAXBOT_IMAGE_MUTATION:-}
case $mutation in "" | drop-libgcc) ;; *) die "unknown FAXBOT_IMAGE_MUTATION $mutation" ;; esac

t0=$SECONDS
have_image() { podman image exists "$1" 2>/dev/null; }

# A reproducible tar of directory $1 on stdout (sorted, numeric owners kept, every mtime 0).
tar_dir() { tar -C "$1" --sort=name --numeric-owner --mtime=@0 -c .; }

# --- the runtime base (distroless-like) --------------------------------------------------------------------
base_packages=(base-files netbase tzdata ca-certificates libc6 libgcc-s1)
(cd "$cache/debs" && apt-get download -q -o APT::Sandbox::User=root "${base_packages[@]}" >/dev/null) ||
  die "apt-get download ${base_packages[*]} failed"
debs=()
for p in "${base_packages[@]}"; do
  # The candidate version's file (apt-get download names it <package>_<version>_<arch>.deb, ':' as %3a).
  v=$(apt-cache policy "$p" | awk '/Candidate:/ { print $2 }')
  f=""
  for candidate in "$cache/debs/${p}_${v//:/%3a}_"*.deb; do
    [[ -e $candidate ]] && f=$candidate && break
  done
  [[ -n $f ]] || die "no .deb for $p $v in $cache/debs"
  debs+=("$f")
done
base_key=$(printf '%s\n' "${debs[@]##*/}" "$(sha256sum "$0" | cut -c1-16)" | sha256sum | cut -c1-12)
runtime_base=localhost/faxbot/base-cc:bookworm-$base_key${mutation:+-$mutation}
if ! have_image "$runtime_base"; then
  rootfs=$(mktemp -d "$cache/rootfs.XXXXXX")
  for f in "${debs[@]}"; do dpkg-deb -x "$f" "$rootfs"; done
  # What ca-certificates' postinst (update-ca-certificates) would generate: the bundle every TLS client reads.
  mkdir -p "$rootfs/etc/ssl/certs"
  find "$rootfs/usr/share/ca-certificates" -name '*.crt' -print0 | sort -z | xargs -0 cat \
    >"$rootfs/etc/ssl/certs/ca-certificates.crt"
  # distroless's accounts; the images run as the numeric UID 10001 (Dockerfile USER), which needs none.
  cat >"$rootfs/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
  cat >"$rootfs/etc/group" <<'EOF'
root:x:0:
tty:x:5:
staff:x:50:
nobody:x:65534:
nonroot:x:65532:
EOF
  mkdir -p "$rootfs/tmp" "$rootfs/home/nonroot" "$rootfs/root"
  chmod 1777 "$rootfs/tmp"
  chmod 700 "$rootfs/home/nonroot" "$rootfs/root"
  chown 65532:65532 "$rootfs/home/nonroot"
  # Documentation other than the licences is not part of distroless either.
  find "$rootfs/usr/share/doc" -type f ! -name copyright -delete 2>/dev/null || true
  rm -rf "$rootfs/usr/share/man" "$rootfs/usr/share/info" "$rootfs/usr/share/lintian"
  if [[ $mutation == drop-libgcc ]]; then
    find "$rootfs" -name 'libgcc_s.so*' -delete
  fi
  tar_dir "$rootfs" | podman import -q - "$runtime_base" >/dev/null
  rm -rf "$rootfs"
  log "runtime base $runtime_base imported"
fi

# --- the SIP base (debian:bookworm-slim's stand-in) ---------------------------------------------------------
sip_base=localhost/faxbot/debian:bookworm-minbase
if ! have_image "$sip_base"; then
  minbase_tar=$cache/debian-bookworm-minbase.tar
  if [[ ! -s $minbase_tar ]]; then
    mirror=$(awk '/^URIs:/ && /debian$/ { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    mirror=${mirror:-http://deb.debian.org/debian}
    dir=$(mktemp -d "$cache/minbase.XXXXXX")
    log "debootstrap --variant=minbase bookworm from $mirror (about a minute, once)"
    debootstrap --variant=minbase bookworm "$dir" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
      die "debootstrap failed; see $cache/debootstrap.log"
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
    tar_dir "$dir" >"$minbase_tar.tmp"
    mv "$minbase_tar.tmp" "$minbase_tar"
    rm -rf "$dir"
  fi
  podman import -q "$minbase_tar" "$sip_base" >/dev/null
fi

# --- test-only images: the pod sandbox and kubectl -----------------------------------------------------------
pause_key=$(sha256sum "$repo/tools/images/pause.c" "$repo/tools/images/Containerfile.pause" | sha256sum | cut -c1-12)
pause_image=localhost/faxbot-test/pause:$pause_key
if ! have_image "$pause_image"; then
  ctx=$(mktemp -d)
  gcc -static -Os -s -o "$ctx/pause" "$repo/tools/images/pause.c"
  podman build -q --pull=never --timestamp 0 -f "$repo/tools/images/Containerfile.pause" -t "$pause_image" "$ctx" >/dev/null
  rm -rf "$ctx"
fi
kube_bins=${KUBE_BINS:-$("$repo/scripts/kube-bins.sh" | tail -n 1)}
k8s_version=$("$kube_bins/kubectl" version --client -o json | awk -F'"' '/gitVersion/ { print $4; exit }')
kubectl_image=localhost/faxbot-test/kubectl:$k8s_version
if ! have_image "$kubectl_image"; then
  ctx=$(mktemp -d)
  cp "$kube_bins/kubectl" "$ctx/kubectl"
  podman build -q --pull=never --timestamp 0 -f "$repo/tools/images/Containerfile.kubectl" -t "$kubectl_image" "$ctx" >/dev/null
  rm -rf "$ctx"
fi

# --- the project's images from the Dockerfile ----------------------------------------------------------------
ctx=$cache/context
rm -rf "$ctx"
mkdir -p "$ctx/prebuilt" "$ctx/test-leak"
# The test-only leak build first (tools/images/Containerfile.test-leak), so that the release binary left in
# the target directory afterwards is the real one. Only faxbot-api itself compiles twice: the feature changes
# no dependency.
log "cargo build --release -p faxbot-api --features test-leak (test image only)"
(cd "$repo" && cargo build --release --locked -q -p faxbot-api --bin faxbot-api --features test-leak)
objcopy --strip-debug "$target_dir/release/faxbot-api" "$ctx/test-leak/faxbot-api"
log "cargo build --release (faxbot-api, faxbot-operator)"
(cd "$repo" && cargo build --release --locked -q --bin faxbot-api --bin faxbot-operator)
cp "$repo/Dockerfile" "$ctx/Dockerfile"
# Without the line tables of the release profile (kept for local profiling and backtraces): 116 MB -> 30 MB
# per binary. Function names stay. The Dockerfile's build stage does the same.
for bin in faxbot-api faxbot-operator; do
  objcopy --strip-debug "$target_dir/release/$bin" "$ctx/prebuilt/$bin"
done

declare -A built
for target in api api-sip operator; do
  id=$(podman build -q --pull=never --timestamp 0 --network=host \
    --build-arg BINARIES=prebuilt --build-arg RUNTIME_BASE="$runtime_base" --build-arg SIP_BASE="$sip_base" \
    --target "$target" "$ctx" 2>"$cache/build-$target.log" | tail -n 1) ||
    die "podman build --target $target failed: $(tail -n 20 "$cache/build-$target.log")"
  ref=localhost/faxbot-$target:$version-${id:0:12}
  [[ -n $mutation ]] && ref=localhost/faxbot-$target:$version-$mutation-${id:0:12}
  podman tag "$id" "$ref"
  built[$target]=$ref
done
id=$(podman build -q --pull=never --timestamp 0 --build-arg API_IMAGE="${built[api]}" \
  -f "$repo/tools/images/Containerfile.test-leak" "$ctx/test-leak" 2>"$cache/build-test-leak.log" | tail -n 1) ||
  die "podman build of the test-leak image failed: $(tail -n 20 "$cache/build-test-leak.log")"
ref=localhost/faxbot-api-test-leak:$version-${id:0:12}
[[ -n $mutation ]] && ref=localhost/faxbot-api-test-leak:$version-$mutation-${id:0:12}
podman tag "$id" "$ref"
built[api-test-leak]=$ref
rm -rf "$ctx"

# One archive per image (`podman save` of several names writes only the first unless -m).
archive_of() {
  local ref=$1 file
  file=$cache/archives/$(echo "$ref" | tr '/:' '__').tar
  if [[ ! -s $file ]]; then
    rm -f "$file.tmp"
    podman save -q --format docker-archive -o "$file.tmp" "$ref"
    mv "$file.tmp" "$file"
  fi
  echo "$file"
}

# Older builds of the same images go: tags, archives and then their layers (not after a mutation build,
# which must leave the real images in place).
if [[ -z $mutation ]]; then
  keep=("${built[@]}" "$pause_image" "$kubectl_image" "$runtime_base" "$sip_base")
  while read -r ref; do
    [[ $ref == localhost/faxbot* ]] || continue
    [[ " ${keep[*]} " == *" $ref "* ]] && continue
    podman rmi -f "$ref" >/dev/null 2>&1 || true
  done < <(podman images --format '{{.Repository}}:{{.Tag}}')
  podman image prune -f >/dev/null 2>&1 || true
fi

{
  echo "# Written by scripts/images.sh; source it."
  for pair in "API:${built[api]}" "API_SIP:${built[api-sip]}" "OPERATOR:${built[operator]}" \
    "API_LEAK:${built[api-test-leak]}" \
    "PAUSE:$pause_image" "KUBECTL:$kubectl_image"; do
    name=${pair%%:*} ref=${pair#*:}
    printf 'export FAXBOT_TEST_%s_IMAGE=%q\n' "$name" "$ref"
    printf 'export FAXBOT_TEST_%s_IMAGE_ARCHIVE=%q\n' "$name" "$(archive_of "$ref")"
  done
} >"$env_out"
# Keep only the archives named in the env file.
if [[ -z $mutation ]]; then
  for f in "$cache"/archives/*.tar; do
    [[ -e $f ]] || continue
    grep -qF "$f" "$env_out" || rm -f "$f"
  done
fi

for ref in "${built[@]}"; do
  log "$ref: $(podman image inspect --format '{{.Size}}' "$ref" | awk '{ printf "%.1f MB", $1 / 1e6 }')"
done
log "images ready in $((SECONDS - t0)) s; $env_out"
