# shellcheck shell=bash
# Sourced by scripts/test: starts a throwaway S3-compatible server (moto's server, from PyPI) on loopback
# for the S3 storage tests and exports FAXBOT_TEST_S3_URL, FAXBOT_TEST_S3_BUCKET,
# FAXBOT_TEST_S3_ACCESS_KEY_ID and FAXBOT_TEST_S3_SECRET_ACCESS_KEY. The server enforces SigV4 signatures:
# the first four requests (unauthenticated, INITIAL_NO_AUTH_ACTION_COUNT) create an IAM user with an
# access key and an s3:*/kms:* policy, and the bucket; every later request must be signed with that key,
# so a wrong key is refused like on AWS. .ci/run installs moto into /var/tmp/faxbot-moto
# (`pip install 'moto[server]==5.2.5'` in a venv); a moto_server on PATH works too.
#
# With a real test node (FAXBOT_TEST_HOST_ADDR and the test CA's certificate FAXBOT_TEST_TLS_CERT/KEY, from
# scripts/kube-testenv.sh start --kubelet), start_pod_s3 starts a second one for API pods: HTTPS on the node's
# bridge address, as S3 is reached over TLS in production (the pods trust the test CA through
# apiServer.trustBundle). It exports the same four variables with FAXBOT_TEST_POD_S3_ in place of
# FAXBOT_TEST_S3_.

moto_bin() {
  local d
  for d in /var/tmp/faxbot-moto/bin "$(dirname "$(command -v moto_server 2>/dev/null || echo /nonexistent/x)")"; do
    [ -x "$d/moto_server" ] && { echo "$d"; return 0; }
  done
  return 1
}

# Starts one moto server on host $1 (https when $2 is `tls`), sets it up, and exports <prefix>URL, BUCKET,
# ACCESS_KEY_ID and SECRET_ACCESS_KEY, <prefix> being $3. Appends its pid to S3_TEST_PIDS.
start_moto() {
  local host=$1 tls=$2 prefix=$3 bindir python
  if ! bindir=$(moto_bin); then
    echo "scripts/test: moto_server is not installed (python3 -m venv /var/tmp/faxbot-moto && /var/tmp/faxbot-moto/bin/pip install 'moto[server]==5.2.5') and FAXBOT_TEST_S3_URL is unset" >&2
    return 1
  fi
  python="$bindir/python"
  [ -x "$python" ] || python=python3
  # moto before 5.2.5 miscomputes SigV4 for a '/' in the query string (every prefixed listing fails).
  if ! "$python" -c 'import sys, moto; sys.exit(tuple(map(int, moto.__version__.split(".")[:3])) < (5, 2, 5))'; then
    echo "scripts/test: moto $("$python" -c 'import moto; print(moto.__version__)') in $bindir is older than 5.2.5" >&2
    return 1
  fi
  [ -n "${S3_TEST_DIR:-}" ] || S3_TEST_DIR=$(mktemp -d /tmp/faxbot-s3.XXXXXX)
  local port scheme=http args=() verify=""
  port=$("$python" -c 'import socket, sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "$host")
  if [ "$tls" = tls ]; then
    scheme=https
    args=(-c "$FAXBOT_TEST_TLS_CERT" -k "$FAXBOT_TEST_TLS_KEY")
    verify=$FAXBOT_TEST_TLS_CA
  fi
  local log="$S3_TEST_DIR/log-$host-$port"
  INITIAL_NO_AUTH_ACTION_COUNT=4 "$bindir/moto_server" -H "$host" -p "$port" "${args[@]}" >"$log" 2>&1 &
  S3_TEST_PIDS="${S3_TEST_PIDS:-} $!"
  if ! "$python" - "$scheme://$host:$port" "$verify" >"$S3_TEST_DIR/keys" 2>>"$log" <<'PY'
import json, socket, sys, time
import boto3
endpoint, verify = sys.argv[1], sys.argv[2] or None
host, port = endpoint.rsplit("/", 1)[1].split(":")
for _ in range(200):
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
        break
    except OSError:
        time.sleep(0.1)
kw = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="setup", aws_secret_access_key="setup",
          verify=verify)
iam = boto3.client("iam", **kw)
iam.create_user(UserName="faxbot-test")
key = iam.create_access_key(UserName="faxbot-test")["AccessKey"]
policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:*", "kms:*"], "Resource": "*"}]}
iam.put_user_policy(UserName="faxbot-test", PolicyName="faxbot-test", PolicyDocument=json.dumps(policy))
boto3.client("s3", **kw).create_bucket(Bucket="faxbot-test")
print(key["AccessKeyId"], key["SecretAccessKey"])
PY
  then
    echo "scripts/test: the S3 test server on $host did not start:" >&2
    cat "$log" >&2
    return 1
  fi
  local key secret
  read -r key secret <"$S3_TEST_DIR/keys"
  export "${prefix}URL=$scheme://$host:$port"
  export "${prefix}BUCKET=faxbot-test"
  export "${prefix}ACCESS_KEY_ID=$key"
  export "${prefix}SECRET_ACCESS_KEY=$secret"
  echo "scripts/test: S3 (moto $("$python" -c 'import moto; print(moto.__version__)')) at $scheme://$host:$port" >&2
}

start_s3() {
  start_moto 127.0.0.1 plain FAXBOT_TEST_S3_
}

start_pod_s3() {
  start_moto "$FAXBOT_TEST_HOST_ADDR" tls FAXBOT_TEST_POD_S3_
}

stop_s3() {
  local pid
  for pid in ${S3_TEST_PIDS:-}; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "${S3_TEST_DIR:-}" ]; then rm -rf "$S3_TEST_DIR"; fi
}
