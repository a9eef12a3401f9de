#!/usr/bin/env bash
# A real, throwaway Kubernetes cluster for the end-to-end tests, as plain processes (no Docker):
#
#   scripts/kube-testenv.sh start --kubelet <dir>  # a real node: containerd, kubelet, kube-proxy, real pods
#   scripts/kube-testenv.sh start <dir>            # control plane + kwok (fake pods; the scale benchmark)
#   scripts/kube-testenv.sh stop <dir>             # stops everything it started and removes <dir>
#   scripts/kube-testenv.sh images <dir>           # rebuilds the images and loads them into the running node
#
# `start` prints <dir>/env on stdout; `source` it.
#
# The real-node variant (--kubelet, needs root; scripts/kube-node.sh) also builds the project's images
# (scripts/images.sh) and loads them into the node's containerd, and runs the kubelet and kube-proxy on the
# pod bridge 198.18.0.1 (pods 198.18.0.0/24, Services 198.19.0.0/24); the API server listens there. Its env
# adds FAXBOT_TEST_API_IMAGE, FAXBOT_TEST_API_SIP_IMAGE, FAXBOT_TEST_OPERATOR_IMAGE (and the pause and kubectl
# images, FAXBOT_TEST_API_LEAK_IMAGE, the test-only image whose server logs numbers in full, and
# FAXBOT_TEST_PLUGIN_PYTHON_IMAGE, a Python sidecar plugin from the plugin kit), FAXBOT_TEST_HOST_ADDR (the
# host address pods reach: services they need listen there),
# FAXBOT_TEST_NODE and FAXBOT_TEST_CONTAINERD_ADDRESS. A later `start --kubelet` waits for a live one to stop
# and removes what a killed one left (processes, mounts, cgroups, bridge, iptables chains).
#
# Why these three: the apiserver alone stores objects but nothing acts on them; kube-controller-manager adds
# the behaviour the operator relies on (garbage collection of ownerReferences, Deployment -> ReplicaSet,
# ServiceAccount and namespace controllers); kube-scheduler binds pods to a node, and kwok plays the kubelet of
# one fake node (`kwok-node-0`): it keeps the node Ready and turns scheduled pods Running and Ready without
# running any container. So a Deployment becomes Available, which is what the operator's Ready condition and
# the canary's replica ratio are judged on.
#
# Layout of <dir> (must be absent or empty on start):
#   env             shell exports: KUBECONFIG, FAXBOT_TEST_KUBECONFIG, KUBE_BINS, HELM, ...
#   kubeconfig      admin (system:masters) kubeconfig, context "faxbot-test"
#   pki/            throwaway CA, apiserver serving cert, service-account signing key pair
#   tokens.csv      static bearer tokens for the apiserver (--token-auth-file)
#   etcd/           etcd data
#   logs/*.log      one log per process
#   pids/*.pid      one pid per process
#   images.env      (--kubelet) the image references and archives from scripts/images.sh
#   containerd/, kubelet/, cni/, pod-logs/   (--kubelet) the node's state
#
# Both variants also issue a TLS serving certificate from the test CA for 127.0.0.1 and 198.18.0.1
# (FAXBOT_TEST_TLS_CERT/KEY, CA FAXBOT_TEST_TLS_CA): the provider fakes and the S3 test server serve HTTPS
# with it, as real providers do, and the API pods trust the CA through spec.apiServer.trustBundle.
#
# The binaries come from scripts/kube-bins.sh and Helm from scripts/helm-bin.sh (built once, cached outside the clone).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
# Marker file: `stop` only deletes a directory that `start` created, so a typo cannot rm -rf something else.
marker=.faxbot-kube-testenv
# Stop order: dependants first, so nothing logs a flood of connection errors while shutting down.
processes=(kwok kube-proxy kubelet kube-scheduler kube-controller-manager kube-apiserver etcd containerd)

usage() {
  echo "usage: $0 start [--kubelet] <dir> | stop <dir> | images <dir>" >&2
  exit 2
}

log() { echo "kube-testenv: $*" >&2; }

# Seconds since $1 (an earlier $EPOCHREALTIME), with one decimal.
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

# Prints $1 free TCP ports on 127.0.0.1, one per line. All sockets are held open together so the ports are
# distinct; another process could still grab one before we bind it, which is acceptable for tests.
free_ports() {
  if command -v python3 >/dev/null; then
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
for s in socks:
    print(s.getsockname()[1])
EOF
    return
  fi
  # Fallback without python: random high ports nobody answers on (a refused connection means free).
  local n=0 port seen=" "
  while ((n < $1)); do
    port=$((20000 + RANDOM % 40000))
    [[ $seen == *" $port "* ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      seen+="$port "
      n=$((n + 1))
    fi
  done
}

# Writes a kubeconfig using a bearer token and the embedded CA. Args: path server ca-file user token.
write_kubeconfig() {
  local path=$1 server=$2 ca=$3 user=$4 token=$5 ca_data
  ca_data=$(base64 <"$ca" | tr -d '\n')
  (
    umask 077 # it holds a bearer token
    cat >"$path" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: faxbot-test
  cluster:
    server: $server
    certificate-authority-data: $ca_data
users:
- name: $user
  user:
    token: $token
contexts:
- name: faxbot-test
  context:
    cluster: faxbot-test
    user: $user
    namespace: default
current-context: faxbot-test
EOF
  )
}

# Creates the throwaway PKI in $1: a CA, the apiserver serving certificate and the service-account key pair.
# A private openssl config keeps the result independent of the distribution's openssl.cnf.
make_pki() {
  local pki=$1
  mkdir -p "$pki"
  cat >"$pki/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = faxbot-test
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
[serving_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
authorityKeyIdentifier = keyid
subjectKeyIdentifier = hash
# 198.19.0.1 is the ClusterIP of the `kubernetes` Service (first address of --service-cluster-ip-range),
# used by in-cluster clients, and 198.18.0.1 the node's bridge address the apiserver listens on with a real
# node; the DNS names are the ones in-cluster clients may use to reach the apiserver.
subjectAltName = IP:127.0.0.1, DNS:localhost, IP:198.18.0.1, IP:198.19.0.1, DNS:kubernetes, DNS:kubernetes.default, DNS:kubernetes.default.svc, DNS:kubernetes.default.svc.cluster.local
[client_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
[test_server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
authorityKeyIdentifier = keyid
subjectAltName = IP:127.0.0.1, IP:198.18.0.1, DNS:localhost
EOF
  # RSA keeps every client (rustls, OpenSSL, Go) happy; 2048 bits is plenty for a cert that lives minutes.
  openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days 30 \
    -config "$pki/openssl.cnf" -extensions ca_ext -subj "/CN=faxbot-test-ca" \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
  openssl req -new -newkey rsa:2048 -nodes -sha256 \
    -config "$pki/openssl.cnf" -subj "/CN=kube-apiserver" \
    -keyout "$pki/apiserver.key" -out "$pki/apiserver.csr" 2>/dev/null
  openssl x509 -req -sha256 -days 30 -in "$pki/apiserver.csr" \
    -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -extfile "$pki/openssl.cnf" -extensions serving_ext -out "$pki/apiserver.crt" 2>/dev/null
  # The apiserver's client certificate for the kubelet (logs, exec): system:masters, so the kubelet's
  # webhook authorization (SubjectAccessReview) allows it.
  openssl req -new -newkey rsa:2048 -nodes -sha256 \
    -config "$pki/openssl.cnf" -subj "/O=system:masters/CN=kube-apiserver-kubelet-client" \
    -keyout "$pki/kubelet-client.key" -out "$pki/kubelet-client.csr" 2>/dev/null
  openssl x509 -req -sha256 -days 30 -in "$pki/kubelet-client.csr" \
    -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -extfile "$pki/openssl.cnf" -extensions client_ext -out "$pki/kubelet-client.crt" 2>/dev/null
  # The serving certificate of the test servers the API pods call (provider fakes, S3).
  openssl req -new -newkey rsa:2048 -nodes -sha256 \
    -config "$pki/openssl.cnf" -subj "/CN=faxbot-test-server" \
    -keyout "$pki/test-server.key" -out "$pki/test-server.csr" 2>/dev/null
  openssl x509 -req -sha256 -days 30 -in "$pki/test-server.csr" \
    -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -extfile "$pki/openssl.cnf" -extensions test_server_ext -out "$pki/test-server.crt" 2>/dev/null
  # Service-account tokens are signed by the apiserver (TokenRequest) and by the controller-manager's token
  # controller with the private key; the apiserver verifies them with the public key.
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$pki/sa.key" 2>/dev/null
  openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub"
  chmod 600 "$pki"/*.key
  # Test processes that are not root read the test server key.
  chmod 644 "$pki/test-server.key"
}

# Starts "$@" in the background as process $name, detached into its own session (setsid) so that a Ctrl-C
# aimed at the calling test run does not kill it halfway; its lifetime is managed by `stop` alone. stdin is
# /dev/null and stdout/stderr go to the log, so a caller capturing our output ($(...)) does not hang waiting
# for the daemon to close the pipe. The pid is the daemon's own: setsid only forks when the caller is a
# process-group leader, which a background job of this non-interactive script never is.
launch() {
  local name=$1
  shift
  setsid "$@" </dev/null >"$dir/logs/$name.log" 2>&1 &
  echo $! >"$dir/pids/$name.pid"
}

# True when pid file $1 names a live process that belongs to this environment (its command line mentions
# $dir/; every process gets a path under it), so a recycled pid is never killed.
ours() {
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  ps -o args= -p "$pid" 2>/dev/null | grep -qF -- "$dir/"
}

# Stops every process, one at a time in dependency order (an apiserver whose etcd is gone hangs on SIGTERM).
kill_all() {
  local name
  for name in "${processes[@]}"; do
    stop_process "$name"
  done
}

# Stops one process by its pid file: SIGTERM, up to 10 s, then SIGKILL.
stop_process() {
  local pidfile=$dir/pids/$1.pid pid waited=0
  ours "$pidfile" || return 0
  pid=$(cat "$pidfile")
  kill -TERM "$pid" 2>/dev/null || true
  while ((waited < 100)) && ours "$pidfile"; do
    sleep 0.1
    waited=$((waited + 1))
  done
  if ours "$pidfile"; then
    log "$1 did not exit after SIGTERM within 10 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
}

# True when etcd on 127.0.0.1:$1 reports itself healthy. Uses curl when present, else a bare HTTP/1.0
# request through bash's /dev/tcp, so curl is not a hard dependency.
etcd_healthy() {
  local reply
  if command -v curl >/dev/null; then
    reply=$(curl -fsS --max-time 2 "http://127.0.0.1:$1/health" 2>/dev/null) || return 1
  else
    reply=$(
      exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
      printf 'GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
      timeout 2 cat <&3
    ) 2>/dev/null || return 1
  fi
  [[ $reply == *'"health":"true"'* ]]
}

# On a failed start: show why, stop what was started, keep the directory (logs) for inspection.
fail() {
  local f
  log "$*"
  for f in "$dir"/logs/*.log; do
    [[ -e $f ]] || continue
    echo "----- tail of $f -----" >&2
    tail -n 40 "$f" >&2
  done
  kill_all
  log "processes stopped; logs kept in $dir/logs (remove with: $0 stop $dir)"
  exit 1
}

# Fails early when a daemon died instead of waiting for the whole timeout.
check_alive() {
  local name
  for name in "$@"; do
    ours "$dir/pids/$name.pid" || fail "$name exited during startup"
  done
}

start() {
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd) # absolute: the paths end up in flags, kubeconfig and env
  if [[ -n $(ls -A "$dir") ]]; then
    log "$dir is not empty (a running environment? stop it with: $0 stop $dir)"
    exit 1
  fi
  ((kubelet)) && node_preflight
  touch "$dir/$marker"
  mkdir -p "$dir/logs" "$dir/pids"

  local bins helm t0=$EPOCHREALTIME
  bins=$("$repo/scripts/kube-bins.sh" | tail -n 1)
  echo "$bins" >"$dir/bins-path"
  # Helm for the chart's end-to-end test (scripts/helm-bin.sh builds it once from tools/helm).
  helm=$("$repo/scripts/helm-bin.sh" | tail -n 1)
  if ((kubelet)); then
    # The images first (a cold build takes minutes): nothing of the node exists yet, so a failed build leaves
    # nothing to clean up.
    KUBE_BINS=$bins "$repo/scripts/images.sh" "$dir/images.env" || fail "building the images failed"
    # shellcheck disable=SC1091
    source "$dir/images.env"
    node_claim
  fi
  local t_images
  t_images=$(since "$t0")

  make_pki "$dir/pki"
  local pki=$dir/pki

  # With a real node the apiserver listens on the bridge, where the kubelet and the pods (through the
  # `kubernetes` Service and kube-proxy) reach it; without one, on loopback only.
  local api_addr=127.0.0.1
  if ((kubelet)); then
    node_network_up
    api_addr=$NODE_ADDR
  fi

  local ports_out ports etcd_client etcd_peer api_port kcm_port
  ports_out=$(free_ports 4)
  mapfile -t ports <<<"$ports_out"
  etcd_client=${ports[0]} etcd_peer=${ports[1]} api_port=${ports[2]} kcm_port=${ports[3]}
  local server=https://$api_addr:$api_port

  # Static bearer tokens (format: token,user,uid,"groups"). system:masters bypasses RBAC entirely, which is
  # what the test harness and the controller-manager need. RBAC tests use real ServiceAccount tokens
  # (TokenRequest), bound exactly as config/rbac and the Helm chart bind the operator. The kubelet is a node
  # (the Node authorizer limits it to its own node and pods); kube-proxy is the user the default
  # system:node-proxier binding names.
  local admin_token kcm_token kubelet_token proxy_token
  admin_token=$(openssl rand -hex 24)
  kcm_token=$(openssl rand -hex 24)
  kubelet_token=$(openssl rand -hex 24)
  proxy_token=$(openssl rand -hex 24)
  (
    umask 077
    cat >"$dir/tokens.csv" <<EOF
$admin_token,faxbot-test-admin,faxbot-test-admin,"system:masters"
$kcm_token,system:kube-controller-manager,system:kube-controller-manager,"system:masters"
$kubelet_token,system:node:$NODE_NAME,system:node:$NODE_NAME,"system:nodes"
$proxy_token,system:kube-proxy,system:kube-proxy
EOF
  )
  write_kubeconfig "$dir/kubeconfig" "$server" "$pki/ca.crt" faxbot-test-admin "$admin_token"
  write_kubeconfig "$dir/kube-controller-manager.kubeconfig" "$server" "$pki/ca.crt" \
    system:kube-controller-manager "$kcm_token"
  if ((kubelet)); then
    write_kubeconfig "$dir/kubelet.kubeconfig" "$server" "$pki/ca.crt" "system:node:$NODE_NAME" "$kubelet_token"
    write_kubeconfig "$dir/kube-proxy.kubeconfig" "$server" "$pki/ca.crt" system:kube-proxy "$proxy_token"
    node_write_configs
    node_start_containerd
    node_load_images || fail "loading the images failed"
  fi

  # etcd: single member, plain HTTP on loopback (nothing else can reach it), no fsync because the data is
  # thrown away anyway and fsync dominates apiserver write latency on slow CI disks.
  launch etcd "$bins/etcd" \
    --name=faxbot-test \
    --data-dir="$dir/etcd" \
    --listen-client-urls="http://127.0.0.1:$etcd_client" \
    --advertise-client-urls="http://127.0.0.1:$etcd_client" \
    --listen-peer-urls="http://127.0.0.1:$etcd_peer" \
    --initial-advertise-peer-urls="http://127.0.0.1:$etcd_peer" \
    --initial-cluster="faxbot-test=http://127.0.0.1:$etcd_peer" \
    --initial-cluster-state=new \
    --unsafe-no-fsync

  # Wait for etcd before starting the apiserver: it would cope, but its log would fill with gRPC dial errors,
  # and a broken etcd is reported here as what it is.
  log "waiting for etcd on 127.0.0.1:$etcd_client"
  local deadline=$((SECONDS + 30))
  until etcd_healthy "$etcd_client"; do
    check_alive etcd
    ((SECONDS < deadline)) || fail "etcd not healthy after 30 s"
    sleep 0.1
  done

  # kube-apiserver. Notes on the less obvious flags:
  # - --service-cluster-ip-range=198.19.0.0/24 makes 198.19.0.1 the `kubernetes` Service IP (in the cert SANs).
  # - Without a node (kwok): --authorization-mode=RBAC (the Node authorizer needs kubelets) and
  #   --endpoint-reconciler-type=none: the `kubernetes` Service is still created, but its Endpoints would
  #   have to be 127.0.0.1, which validation rejects ("may not be in the loopback range") every 10 s.
  # - With a node: the Node authorizer and NodeRestriction admission for the kubelet, the default endpoint
  #   reconciler (the Service's endpoint is 198.18.0.1, where pods reach it through kube-proxy), the kubelet
  #   client certificate, and --kubelet-preferred-address-types=InternalIP so `kubectl logs` dials the node
  #   IP instead of resolving its name.
  # - --cert-dir points into $dir because its default (/var/run/kubernetes) needs root; with
  #   --tls-cert-file set nothing is written there.
  # - Admission plugins stay at their defaults: the ServiceAccount plugin needs the `default` ServiceAccount,
  #   which the controller-manager's serviceaccount controller creates in every namespace.
  local api_flags=()
  if ((kubelet)); then
    # shellcheck disable=SC2054 # the comma is part of one flag's value
    api_flags=(
      --authorization-mode=Node,RBAC
      --enable-admission-plugins=NodeRestriction
      --kubelet-client-certificate="$pki/kubelet-client.crt"
      --kubelet-client-key="$pki/kubelet-client.key"
      --kubelet-preferred-address-types=InternalIP
    )
  else
    api_flags=(--authorization-mode=RBAC --endpoint-reconciler-type=none)
  fi
  launch kube-apiserver "$bins/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$etcd_client" \
    --bind-address="$api_addr" \
    --advertise-address="$api_addr" \
    --secure-port="$api_port" \
    --cert-dir="$pki" \
    --tls-cert-file="$pki/apiserver.crt" \
    --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" \
    --token-auth-file="$dir/tokens.csv" \
    --service-cluster-ip-range=198.19.0.0/24 \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$pki/sa.pub" \
    --service-account-signing-key-file="$pki/sa.key" \
    --allow-privileged=true \
    --profiling=false \
    "${api_flags[@]}"

  log "waiting for kube-apiserver on $server (etcd on 127.0.0.1:$etcd_client)"
  local kubectl=("$bins/kubectl" --kubeconfig="$dir/kubeconfig")
  deadline=$((SECONDS + 90))
  until [[ $("${kubectl[@]}" get --raw=/readyz --request-timeout=5s 2>/dev/null) == ok ]]; do
    check_alive etcd kube-apiserver
    ((SECONDS < deadline)) || fail "kube-apiserver not ready after 90 s"
    sleep 0.25
  done
  local t_api
  t_api=$(since "$t0")

  # kube-controller-manager, started once the apiserver is ready so it does not spend its start in retries.
  # - --controllers=* runs the default set, incl. garbage collector, deployment/replicaset, namespace,
  #   serviceaccount and serviceaccount-token controllers.
  # - --use-service-account-credentials=false: every controller uses the kubeconfig's (system:masters) token
  #   instead of per-controller service accounts; simpler and faster to start.
  # - --cluster-signing-*: lets the CSR signer run, so tests may use CertificateSigningRequests.
  # - --authentication/authorization-kubeconfig: its secure port can then check our tokens (e.g. /metrics)
  #   via TokenReview/SubjectAccessReview; --authentication-skip-lookup because the apiserver has no
  #   front-proxy (requestheader) CA for it to look up, which it would otherwise retry and log forever.
  # - --cert-dir: where its self-signed serving certificate goes (default is relative to the cwd).
  # - --flex-volume-plugin-dir: the default is /usr/libexec/kubernetes/..., which it creates when missing;
  #   as root that would litter the host.
  # - kwok only: without node-lifecycle-controller, because kwok's node heartbeat is sparse and now and then
  #   the controller judges the fake node not Ready and marks every pod on it NotReady, which kwok never
  #   undoes. With a real kubelet it runs: it lifts the node's not-ready taint and evicts from dead nodes.
  local controllers='*,-node-lifecycle-controller'
  ((kubelet)) && controllers='*'
  launch kube-controller-manager "$bins/kube-controller-manager" \
    --kubeconfig="$dir/kube-controller-manager.kubeconfig" \
    --authentication-kubeconfig="$dir/kube-controller-manager.kubeconfig" \
    --authorization-kubeconfig="$dir/kube-controller-manager.kubeconfig" \
    --authentication-skip-lookup=true \
    --leader-elect=false \
    --controllers="$controllers" \
    --use-service-account-credentials=false \
    --service-account-private-key-file="$pki/sa.key" \
    --root-ca-file="$pki/ca.crt" \
    --cluster-signing-cert-file="$pki/ca.crt" \
    --cluster-signing-key-file="$pki/ca.key" \
    --bind-address=127.0.0.1 \
    --secure-port="$kcm_port" \
    --cert-dir="$dir/kcm-certs" \
    --flex-volume-plugin-dir="$dir/flexvolume" \
    --profiling=false

  # The default ServiceAccount is created by the controller-manager, so its existence proves the
  # controller-manager is up and talking to the apiserver, and pods can now be admitted.
  deadline=$((SECONDS + 60))
  until "${kubectl[@]}" get serviceaccount default --namespace=default --request-timeout=5s >/dev/null 2>&1; do
    check_alive etcd kube-apiserver kube-controller-manager
    ((SECONDS < deadline)) || fail "the default ServiceAccount did not appear within 60 s"
    sleep 0.25
  done

  # kube-scheduler: binds pods to the node. Same kubeconfig (system:masters) as the controller-manager.
  local sched_port
  sched_port=$(free_ports 1)
  launch kube-scheduler "$bins/kube-scheduler" \
    --kubeconfig="$dir/kube-controller-manager.kubeconfig" \
    --authentication-kubeconfig="$dir/kube-controller-manager.kubeconfig" \
    --authorization-kubeconfig="$dir/kube-controller-manager.kubeconfig" \
    --authentication-skip-lookup=true \
    --leader-elect=false \
    --bind-address=127.0.0.1 \
    --secure-port="$sched_port" \
    --profiling=false

  if ((kubelet)); then
    node_start_kubelet
    node_start_kube_proxy
  else
    start_kwok
  fi

  {
    echo "# Written by scripts/kube-testenv.sh; source it."
    printf 'export KUBECONFIG=%q\n' "$dir/kubeconfig"
    printf 'export FAXBOT_TEST_KUBECONFIG=%q\n' "$dir/kubeconfig"
    printf 'export KUBE_BINS=%q\n' "$bins"
    printf 'export HELM=%q\n' "$helm"
    printf 'export FAXBOT_TEST_KUBE_SERVER=%q\n' "$server"
    printf 'export FAXBOT_TEST_KUBE_CA=%q\n' "$pki/ca.crt"
    printf 'export FAXBOT_TEST_TLS_CA=%q\n' "$pki/ca.crt"
    printf 'export FAXBOT_TEST_TLS_CERT=%q\n' "$pki/test-server.crt"
    printf 'export FAXBOT_TEST_TLS_KEY=%q\n' "$pki/test-server.key"
    if ((kubelet)); then
      grep '^export ' "$dir/images.env"
      printf 'export FAXBOT_TEST_HOST_ADDR=%q\n' "$NODE_ADDR"
      printf 'export FAXBOT_TEST_NODE=%q\n' "$NODE_NAME"
      printf 'export FAXBOT_TEST_CONTAINERD_ADDRESS=%q\n' "$NODE_CONTAINERD_SOCK"
      printf 'export FAXBOT_TEST_POD_CIDR=%q\n' "$NODE_POD_CIDR"
      printf 'export FAXBOT_TEST_SERVICE_CIDR=%q\n' "$NODE_SERVICE_CIDR"
    fi
  } >"$dir/env"
  chmod 600 "$dir/env"

  local what="control plane"
  ((kubelet)) && what="cluster with a real node (images ready after $t_images s)"
  log "$what ready in $(since "$t0") s (apiserver ready after $t_api s) at $server; source $dir/env"
  echo "$dir/env"
}

# kwok manages only nodes annotated kwok.x-k8s.io/node=fake, with the stages kube-bins.sh shipped. Its pod
# addresses are in 198.18.128.0/17: inside the range tests may use, apart from the real node's bridge, and
# nothing ever connects to them (no container runs).
start_kwok() {
  local kwok_port deadline
  kwok_port=$(free_ports 1)
  launch kwok "$bins/kwok" \
    --kubeconfig="$dir/kube-controller-manager.kubeconfig" \
    --config="$bins/kwok-stages.yaml" \
    --manage-all-nodes=false \
    --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --cidr=198.18.128.0/17 \
    --node-ip=127.0.0.1 \
    --server-address="127.0.0.1:$kwok_port"
  "${kubectl[@]}" apply -f - >/dev/null <<'NODE'
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-0
  annotations:
    kwok.x-k8s.io/node: fake
  labels:
    kubernetes.io/hostname: kwok-node-0
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
NODE
  deadline=$((SECONDS + 60))
  until [[ $("${kubectl[@]}" get node kwok-node-0 -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]; do
    check_alive etcd kube-apiserver kube-controller-manager kube-scheduler kwok
    ((SECONDS < deadline)) || fail "the fake node did not become Ready within 60 s"
    sleep 0.25
  done
  # The admission chain taints a new node not-ready; without the node lifecycle controller (see above)
  # nothing would lift it once kwok reports the node Ready.
  "${kubectl[@]}" taint nodes kwok-node-0 node.kubernetes.io/not-ready:NoSchedule- >/dev/null 2>&1 || true
}

stop() {
  if [[ ! -d $dir ]]; then
    return 0
  fi
  dir=$(cd "$dir" && pwd)
  if [[ ! -e $dir/$marker ]]; then
    log "$dir was not created by '$0 start'; refusing to delete it"
    exit 1
  fi
  if [[ $(cat "$NODE_STATE/owner" 2>/dev/null) == "$dir" ]]; then
    node_stop
    exec 7>"$NODE_LOCK"
    flock 7
    node_cleanup # removes $dir too
    flock -u 7
  else
    kill_all
  fi
  rm -rf "$dir"
}

# The edit-build-test loop on a running real-node environment: rebuilds the images (scripts/images.sh) from
# the working tree, imports them into the node and rewrites the image lines of <dir>/env (source it again).
reload_images() {
  dir=$(cd "$dir" && pwd)
  [[ $(cat "$NODE_STATE/owner" 2>/dev/null) == "$dir" ]] || {
    log "$dir is not the running real-node environment"
    exit 1
  }
  KUBE_BINS=$(cat "$dir/bins-path") "$repo/scripts/images.sh" "$dir/images.env"
  # shellcheck disable=SC1091
  source "$dir/images.env"
  node_load_images
  { grep -v '_IMAGE\(_ARCHIVE\)\?=' "$dir/env"; grep '^export ' "$dir/images.env"; } >"$dir/env.new"
  mv "$dir/env.new" "$dir/env"
  chmod 600 "$dir/env"
  log "images loaded; source $dir/env"
}

# shellcheck source=scripts/kube-node.sh
source "$repo/scripts/kube-node.sh"

kubelet=0
case ${1:-} in
  start)
    shift
    if [[ ${1:-} == --kubelet ]]; then
      kubelet=1
      shift
    fi
    [[ $# -eq 1 && -n $1 ]] || usage
    dir=$1
    start
    ;;
  stop)
    [[ $# -eq 2 && -n $2 ]] || usage
    dir=$2
    stop
    ;;
  images)
    [[ $# -eq 2 && -n $2 ]] || usage
    dir=$2
    reload_images
    ;;
  *) usage ;;
esac
