# shellcheck shell=bash
# shellcheck disable=SC2154 # dir, marker, bins, kubectl and admin_token are the sourcing script's
# Sourced by scripts/kube-testenv.sh for `start --kubelet`: a real node next to the test control plane.
# containerd (Debian's) runs the containers with runc, a kubelet registers node `faxbot-node`, kube-proxy
# (iptables mode) gives ClusterIP Services, and the CNI bridge `faxbot0` gives pods their addresses.
#
# Addresses (a rule of this project: tests send traffic only to this machine): pods 198.18.0.0/24 on the
# bridge, whose gateway 198.18.0.1 is this host (the API server, the kubelet and every service the pods use
# listen there, never on every interface); Services 198.19.0.0/24. Pods get routes to those two ranges only,
# no masquerading, no DNS (an empty resolv.conf), and a FORWARD rule refuses anything crossing between the
# bridge and any other interface, so nothing in a pod can reach anything off this machine.
#
# One kubelet per machine (fixed ports 10248/10250, one kubepods cgroup tree, host iptables): `start` claims
# the node in /run/faxbot-kube-node (waiting while another live environment holds it) and first removes what
# a killed run left behind; every step of the teardown works without that run's directory or processes.
# Settings and why each is needed: ../shared/reference/real-cluster.md and docs/operations.md.

NODE_NAME=faxbot-node
NODE_BRIDGE=faxbot0
NODE_ADDR=198.18.0.1
NODE_POD_CIDR=198.18.0.0/24
NODE_SERVICE_CIDR=198.19.0.0/24
NODE_API_SERVICE_IP=198.19.0.1
NODE_STATE=/run/faxbot-kube-node
NODE_CONTAINERD_STATE=/run/faxbot-containerd
NODE_CONTAINERD_SOCK=$NODE_CONTAINERD_STATE/containerd.sock
NODE_LOCK=/var/tmp/faxbot-kube-node.lock

node_preflight() {
  local missing=() c
  [[ $(id -u) == 0 ]] || {
    log "--kubelet needs root (containerd, kubelet, network setup)"
    exit 1
  }
  for c in containerd containerd-shim-runc-v2 ctr runc iptables iptables-save iptables-restore ip conntrack \
    podman debootstrap gcc; do
    command -v "$c" >/dev/null || missing+=("$c")
  done
  [[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local && -x /usr/lib/cni/loopback ]] ||
    missing+=(containernetworking-plugins)
  if ((${#missing[@]})); then
    log "--kubelet needs: ${missing[*]} (apt-get install containerd runc containernetworking-plugins iptables" \
      "conntrack podman debootstrap gcc; .ci/run installs them)"
    exit 1
  fi
}

# True when the environment recorded in $NODE_STATE/owner still runs (its kubelet or apiserver is alive).
node_owner_alive() {
  local owner pid name
  owner=$(cat "$NODE_STATE/owner" 2>/dev/null) || return 1
  for name in kubelet kube-apiserver containerd; do
    pid=$(cat "$owner/pids/$name.pid" 2>/dev/null) || continue
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
      ps -o args= -p "$pid" 2>/dev/null | grep -qF -- "$owner/" && return 0
  done
  return 1
}

# Claims the node for $dir: waits (up to 30 minutes) while a live environment holds it, cleans up after a
# dead one, then records $dir as the owner.
node_claim() {
  local deadline=$((SECONDS + 1800)) waited=0
  mkdir -p "$NODE_STATE"
  while :; do
    exec 7>"$NODE_LOCK"
    flock 7
    if ! node_owner_alive; then
      node_cleanup
      echo "$dir" >"$NODE_STATE/owner"
      flock -u 7
      exec 7>&-
      return 0
    fi
    flock -u 7
    exec 7>&-
    ((SECONDS < deadline)) || {
      log "another real-node environment ($(cat "$NODE_STATE/owner")) held the node for 30 minutes"
      exit 1
    }
    ((waited++ % 12 == 0)) && log "waiting for the real-node environment $(cat "$NODE_STATE/owner") to stop"
    sleep 5
  done
}

# SIGKILLs every process whose command line contains the fixed string $1, except this script and its callers.
kill_matching() {
  local needle=$1 p pid found=0 self=" $$ $BASHPID $PPID "
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    [[ $self == *" $pid "* ]] && continue
    # (A process may exit between the glob and the read: the braces silence the failed redirection too.)
    if { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -qF -- "$needle"; then
      kill -KILL "$pid" 2>/dev/null && found=1
    fi
  done
  ((found)) && sleep 0.2
  return 0
}

# Removes everything a real-node environment makes, whether or not its processes or directory still exist:
# containers, shims, mounts, network namespaces, kubepods cgroups, the bridge, iptables chains, sysctls.
# Idempotent; called by `start` before claiming and by `stop`.
node_cleanup() {
  local owner f
  owner=$(cat "$NODE_STATE/owner" 2>/dev/null || true)
  # 1. The processes of the owner: every one names a path in its directory (pid files may be gone), and the
  #    node's by what they always name: containerd its config and socket (the shims too), the kubelet the node,
  #    kube-proxy its config file.
  [[ -n $owner ]] && kill_matching "$owner/"
  kill_matching "$NODE_CONTAINERD_STATE/"
  kill_matching "--hostname-override=$NODE_NAME"
  kill_matching "/kube-proxy.yaml"
  # 2. Container processes: everything in the kubepods cgroups (the pids hierarchy sees every task).
  for _ in 1 2 3 4 5; do
    local pids
    pids=$(find /sys/fs/cgroup/pids/kubepods -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u || true)
    [[ -z $pids ]] && break
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    sleep 0.2
  done
  # 3. Mounts: the kubelet's volumes and containerd's rootfs and shm mounts under the owner's directory, the
  #    containerd state, and the network namespaces the CNI made. Deepest first.
  local prefixes=("$NODE_CONTAINERD_STATE/" /run/netns/cni-)
  [[ -n $owner ]] && prefixes+=("$owner/")
  local mounts m p
  mounts=$(awk '{ print $5 }' /proc/self/mountinfo | sort -r)
  for m in $mounts; do
    for p in "${prefixes[@]}"; do
      if [[ $m == "$p"* ]]; then
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
      fi
    done
  done
  for f in /run/netns/cni-*; do
    [[ -e $f ]] && rm -f "$f"
  done
  rm -rf "$NODE_CONTAINERD_STATE"
  # 4. cgroups: every kubepods directory in every hierarchy, deepest first (a cgroup with tasks stays; the
  #    loop above emptied them).
  for _ in 1 2 3; do
    find /sys/fs/cgroup -depth -type d -path '*/kubepods*' -exec rmdir {} + 2>/dev/null || true
    [[ -z $(find /sys/fs/cgroup -type d -path '*/kubepods*' 2>/dev/null | head -n 1) ]] && break
    sleep 0.3
  done
  # 5. Network: the bridge (its veths went with the namespaces), kube-proxy's, the kubelet's and our
  #    iptables chains, in both families, and the sysctls as they were before the first start.
  ip link del "$NODE_BRIDGE" 2>/dev/null || true
  local cmd table rules
  for cmd in iptables ip6tables; do
    command -v "$cmd-save" >/dev/null || continue
    for table in filter nat mangle raw; do
      rules=$("$cmd-save" -t "$table" 2>/dev/null) || continue
      grep -qE 'KUBE-|FAXBOT-' <<<"$rules" || continue
      grep -vE 'KUBE-|FAXBOT-' <<<"$rules" | "$cmd-restore" -T "$table" 2>/dev/null || true
    done
  done
  if [[ -f $NODE_STATE/sysctl ]]; then
    while read -r key value; do
      sysctl -q -w "$key=$value" >/dev/null 2>&1 || true
    done <"$NODE_STATE/sysctl"
    rm -f "$NODE_STATE/sysctl"
  fi
  # 6. The kubelet's log symlinks (/var/log/containers is fixed) into the owner's directory, and the directory.
  if [[ -n $owner ]]; then
    find /var/log/containers -maxdepth 1 -type l -lname "$owner/*" -delete 2>/dev/null || true
    if [[ -e $owner/$marker ]]; then
      rm -rf "$owner"
    fi
  fi
  rm -f "$NODE_STATE/owner"
}

# The bridge with the host's address on it, forwarding, and the isolation chain.
node_network_up() {
  : >"$NODE_STATE/sysctl"
  local key
  for key in net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables; do
    echo "$key $(sysctl -n "$key")" >>"$NODE_STATE/sysctl"
  done
  # Bridged pod traffic must pass iptables (kube-proxy's DNAT back to a pod on the same bridge), and the node
  # routes pod -> Service -> pod.
  sysctl -q -w net.bridge.bridge-nf-call-iptables=1 net.ipv4.ip_forward=1
  ip link add "$NODE_BRIDGE" type bridge
  ip addr add "$NODE_ADDR/24" dev "$NODE_BRIDGE"
  ip link set "$NODE_BRIDGE" up
  # The Service range is routed to the bridge too: a connection from this host to a ClusterIP that kube-proxy
  # has not programmed yet (or never will) must stay on the bridge, not follow the default route off the
  # machine. With a rule, kube-proxy's DNAT rewrites it to a pod as usual.
  ip route add "$NODE_SERVICE_CIDR" dev "$NODE_BRIDGE" src "$NODE_ADDR"
  # Nothing is forwarded between the bridge and any other interface, in either direction.
  iptables -N FAXBOT-ISOLATION
  iptables -A FAXBOT-ISOLATION -i "$NODE_BRIDGE" ! -o "$NODE_BRIDGE" -j REJECT
  iptables -A FAXBOT-ISOLATION -o "$NODE_BRIDGE" ! -i "$NODE_BRIDGE" -j DROP
  iptables -I FORWARD 1 -j FAXBOT-ISOLATION
}

node_write_configs() {
  mkdir -p "$dir/cni/net.d" "$dir/cni/ipam" "$dir/kubelet" "$dir/pod-logs" "$NODE_CONTAINERD_STATE"
  # The routes are the Service range and the subnet itself (host-local adds it); no default route.
  cat >"$dir/cni/net.d/10-faxbot.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "faxbot",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$NODE_BRIDGE",
      "isGateway": true,
      "isDefaultGateway": false,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$dir/cni/ipam",
        "ranges": [[{"subnet": "$NODE_POD_CIDR", "rangeStart": "198.18.0.16", "gateway": "$NODE_ADDR"}]],
        "routes": [{"dst": "$NODE_SERVICE_CIDR"}]
      }
    }
  ]
}
EOF
  cat >"$dir/containerd.toml" <<EOF
version = 2
root = "$dir/containerd"
state = "$NODE_CONTAINERD_STATE/state"
oom_score = 0
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = "$NODE_CONTAINERD_SOCK"

[ttrpc]
  address = "$NODE_CONTAINERD_SOCK.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/containerd-opt"

[plugins."io.containerd.grpc.v1.cri"]
  # The pause image is built here (tools/images/pause.c): there is no registry to pull one from.
  sandbox_image = "$FAXBOT_TEST_PAUSE_IMAGE"
  # The kubelet runs with oomScoreAdj 0: this VM lacks CAP_SYS_RESOURCE to lower it.
  restrict_oom_score_adj = true
  disable_apparmor = true

[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroup = false

[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "$dir/cni/net.d"
EOF
  cat >"$dir/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_ADDR
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $dir/pki/ca.crt}
authorization:
  mode: Webhook
containerRuntimeEndpoint: unix://$NODE_CONTAINERD_SOCK
# cgroup v2 cannot be used on these VMs (the v1 memory hierarchy holds the VM agent's cgroups).
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
oomScoreAdj: 0
# The images are imported, not pulled: never collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", nodefs.inodesFree: "1%", imagefs.available: "1%"}
podLogsDir: $dir/pod-logs
# No cluster DNS, and no host resolver either: pods look nothing up (they use IPs and hostAliases).
resolvConf: ""
serializeImagePulls: false
rotateCertificates: false
serverTLSBootstrap: false
maxPods: 60
EOF
  cat >"$dir/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $dir/kube-proxy.kubeconfig
mode: iptables
clusterCIDR: $NODE_POD_CIDR
hostnameOverride: $NODE_NAME
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
oomScoreAdj: 0
# This VM may not raise nf_conntrack_max; the defaults are plenty for tests.
conntrack:
  maxPerCore: 0
  min: 0
nodePortAddresses: ["$NODE_ADDR/32"]
iptables:
  localhostNodePorts: false
EOF
}

node_start_containerd() {
  launch containerd containerd --config "$dir/containerd.toml"
  local deadline=$((SECONDS + 30))
  until ctr --address "$NODE_CONTAINERD_SOCK" version >/dev/null 2>&1; do
    check_alive containerd
    ((SECONDS < deadline)) || fail "containerd did not answer within 30 s"
    sleep 0.2
  done
}

# Imports every image named in $dir/images.env into containerd's CRI namespace.
node_load_images() {
  local var archive
  for var in API API_SIP API_LEAK OPERATOR PAUSE KUBECTL PLUGIN_PYTHON; do
    archive=FAXBOT_TEST_${var}_IMAGE_ARCHIVE
    if ! ctr --address "$NODE_CONTAINERD_SOCK" -n k8s.io images import "${!archive}" >/dev/null; then
      log "ctr images import ${!archive} failed"
      return 1
    fi
  done
}

node_start_kubelet() {
  launch kubelet "$bins/kubelet" \
    --config="$dir/kubelet/config.yaml" \
    --kubeconfig="$dir/kubelet.kubeconfig" \
    --root-dir="$dir/kubelet/root" \
    --cert-dir="$dir/kubelet/pki" \
    --hostname-override="$NODE_NAME" \
    --node-ip="$NODE_ADDR" \
    --v=1
  local deadline=$((SECONDS + 90))
  until [[ $("${kubectl[@]}" get node "$NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]; do
    check_alive etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet
    ((SECONDS < deadline)) || fail "the node did not become Ready within 90 s"
    sleep 0.25
  done
}

node_start_kube_proxy() {
  launch kube-proxy "$bins/kube-proxy" --config="$dir/kube-proxy.yaml" --v=1
  # kube-proxy is working once the `kubernetes` Service answers on its ClusterIP from this host.
  local deadline=$((SECONDS + 60))
  until curl -fsS --max-time 2 --cacert "$dir/pki/ca.crt" -H "Authorization: Bearer $admin_token" \
    "https://$NODE_API_SERVICE_IP/readyz" >/dev/null 2>&1; do
    check_alive kube-apiserver kubelet kube-proxy
    ((SECONDS < deadline)) || fail "the kubernetes Service did not answer on $NODE_API_SERVICE_IP within 60 s"
    sleep 0.25
  done
}

# Graceful part of the teardown: stops what recreates pods, lets the kubelet stop every pod (so the CNI
# releases addresses and namespaces), then stops the node processes in order. node_cleanup does the rest.
node_stop() {
  local kubectl=("$(cat "$dir/bins-path" 2>/dev/null || echo /nonexistent)/kubectl" --kubeconfig="$dir/kubeconfig")
  stop_process kube-controller-manager
  if ours "$dir/pids/kubelet.pid" && ours "$dir/pids/kube-apiserver.pid"; then
    "${kubectl[@]}" delete pods --all --all-namespaces --grace-period=2 --wait=true --timeout=40s \
      >/dev/null 2>&1 || true
  fi
  stop_process kube-proxy
  stop_process kubelet
  stop_process kube-scheduler
  stop_process kube-apiserver
  stop_process etcd
  local ids
  ids=$(ctr --address "$NODE_CONTAINERD_SOCK" -n k8s.io tasks ls -q 2>/dev/null || true)
  for id in $ids; do
    ctr --address "$NODE_CONTAINERD_SOCK" -n k8s.io tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
  done
  stop_process containerd
}
