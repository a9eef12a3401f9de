#!/usr/bin/env bash
# Generates a plugin from plugin-kit/templates/python the way `faxbot plugin new acme-fax --kind python` does
# (every file copied, the placeholders replaced in contents and in paths), then proves it works for real:
# a fresh venv, `pip install` of the generated project (which pulls the kit from its path), its own tests,
# and the plugin started on a free port and called with curl (health, manifest, send, status, a refusal,
# a signed callback), then stopped with SIGTERM.
#
#   plugin-kit/python/scripts/try-skeleton.sh [out-dir]     # default /tmp/pyskel
#
# With TRY_IMAGE_BASE=<python image with pip> it also builds the generated Containerfile with podman on that
# base (--build-arg PYTHON_BASE) and runs the image: non-root user, health and manifest over loopback, exit 0
# on SIGTERM. (TRY_IMAGE_BASE=docker.io/library/python:3.12-slim where a registry is reachable.)
#
# Needs python3 (3.9+) with venv, curl, and PyPI for setuptools (pip's isolated build). The out-dir is
# replaced only if this script made it (it leaves a marker file there).
set -euo pipefail

kit=$(cd "$(dirname "$0")/.." && pwd)
template=$(cd "$kit/../templates/python" && pwd)
out=${1:-/tmp/pyskel}
python=${PYTHON:-python3}
marker=.try-skeleton

log() { echo "try-skeleton: $*" >&2; }
die() {
  log "$*"
  exit 1
}

if [[ -e $out ]]; then
  [[ -f $out/$marker ]] || die "$out exists and was not made by this script; choose another directory"
  rm -rf "$out"
fi
mkdir -p "$out"
touch "$out/$marker"

# The generator's substitution: plain text replacement of the four placeholders, in contents and paths.
log "generating acme-fax into $out"
"$python" - "$template" "$out" "$kit" <<'PY'
import os, sys
template, out, kit = sys.argv[1:]
values = {"@@ID@@": "acme-fax", "@@NAME@@": "Acme Fax", "@@MODULE@@": "acme_fax", "@@KIT@@": kit}
def fill(text):
    for key, value in values.items():
        text = text.replace(key, value)
    return text
for root, dirs, files in os.walk(template):
    dirs[:] = [d for d in dirs if d != "__pycache__"]
    for name in files:
        src = os.path.join(root, name)
        dest = os.path.join(out, fill(os.path.relpath(src, template)))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(src, encoding="utf-8") as f:
            text = fill(f.read())
        with open(dest, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(dest, os.stat(src).st_mode & 0o777)
PY
if grep -rl '@@[A-Z]*@@' "$out" --exclude="$marker"; then
  die "placeholders left in the files above"
fi

log "venv and pip install (the kit comes from $kit)"
"$python" -m venv "$out/.venv"
"$out/.venv/bin/pip" install -q --disable-pip-version-check "$out"
"$out/.venv/bin/pip" show -q faxbot-plugin-kit >/dev/null || die "the kit was not installed"

log "the generated project's tests, as its README runs them"
(cd "$out" && .venv/bin/python -m unittest discover -s tests -v)

log "starting the plugin on a free port"
stdout=$out/plugin.out
stderr=$out/plugin.err
FAXBOT_PLUGIN_LISTEN=127.0.0.1:0 FAXBOT_PLUGIN_TOKEN=try-token FAXBOT_PLUGIN_WEBHOOK_SECRET=try-secret \
  "$out/.venv/bin/acme-fax" >"$stdout" 2>"$stderr" &
pid=$!
stop() { kill "$pid" 2>/dev/null || true; }
trap stop EXIT
for _ in $(seq 100); do
  grep -q '^listening on ' "$stdout" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || die "the plugin exited: $(cat "$stderr")"
  sleep 0.1
done
line=$(head -n 1 "$stdout")
[[ $line =~ ^listening\ on\ http://127\.0\.0\.1:([1-9][0-9]*)$ ]] || die "unexpected first line: $line"
url=http://127.0.0.1:${BASH_REMATCH[1]}
log "$line"

auth=(-H 'Authorization: Bearer try-token' -H 'Faxbot-Plugin-Protocol: 1')
# expect <what> <status> <body> -- <curl arguments>
expect() {
  local what=$1 status=$2 body=$3
  shift 4
  local got
  got=$(curl -s -o "$out/body" -w '%{http_code}' "$@")
  if [[ $got != "$status" ]] || [[ $(cat "$out/body") != "$body" ]]; then
    die "$what: expected $status $body, got $got $(cat "$out/body")"
  fi
  log "$what: $got $(cat "$out/body")"
}
pdf=$(printf '%%PDF-1.4\n' | base64)
send() { printf '{"jobId":"%s","to":"%s","idempotencyKey":"%s","document":{"contentType":"application/pdf","base64":"%s"}}' "$1" "$2" "$1" "$pdf"; }

expect health 200 '{"status":"ok"}' -- "$url/v1/health"
expect "manifest without the token" 401 \
  '{"error":{"kind":"unauthenticated","message":"missing or wrong plugin token"}}' -- "$url/v1/manifest"
manifest='{"protocol":1,"id":"acme-fax","name":"Acme Fax","version":"0.1.0","hipaaCompliant":false,"capabilities":["send","status","cancel","webhook"],"idempotent":true,"needsDocument":true,"pollIntervalMs":1000,"webhook":{"verification":"HMAC-SHA256 of the body in X-Sim-Signature","maxBytes":1048576}}'
expect manifest 200 "$manifest" -- "${auth[@]}" "$url/v1/manifest"
expect "send 0100" 200 '{"providerId":"sim-1","status":"in_progress","checkAfterMs":0}' -- \
  "${auth[@]}" -H 'Content-Type: application/json' -d "$(send j1 +15555550100)" "$url/v1/send"
expect "status sim-1" 200 '{"providerId":"sim-1","status":"delivered"}' -- "${auth[@]}" "$url/v1/faxes/sim-1"
expect "send 0101" 200 '{"providerId":"sim-2","status":"in_progress","checkAfterMs":0}' -- \
  "${auth[@]}" -H 'Content-Type: application/json' -d "$(send j2 +15555550101)" "$url/v1/send"
expect "status sim-2" 200 '{"providerId":"sim-2","status":"failed","error":"no answer from the receiving fax machine"}' -- \
  "${auth[@]}" "$url/v1/faxes/sim-2"
expect "send 0102" 422 '{"error":{"kind":"rejected","message":"the provider refused the destination"}}' -- \
  "${auth[@]}" -H 'Content-Type: application/json' -d "$(send j3 +15555550102)" "$url/v1/send"
expect "send 0103" 503 '{"error":{"kind":"unavailable","message":"the provider is busy","retryAfterMs":1000}}' -- \
  "${auth[@]}" -H 'Content-Type: application/json' -d "$(send j4 +15555550103)" "$url/v1/send"
callback='{"providerId":"sim-1","status":"delivered"}'
# The simulated provider's signature (lowercase hex HMAC-SHA256 of the body) and the forwarded request.
webhook() {
  "$python" -c 'import base64, hashlib, hmac, json, sys
body, key, forge = sys.argv[1].encode(), sys.argv[2].encode(), sys.argv[3] == "forge"
sig = "00" if forge else hmac.new(key, body, hashlib.sha256).hexdigest()
print(json.dumps({"url": "https://faxbot.example/webhooks/acme-fax", "headers": [["x-sim-signature", sig]],
                  "bodyBase64": base64.b64encode(body).decode()}))' "$callback" try-secret "$1"
}
expect "signed callback" 200 '{"events":[{"providerId":"sim-1","status":"delivered"}]}' -- \
  "${auth[@]}" -H 'Content-Type: application/json' -d "$(webhook sign)" "$url/v1/webhook"
expect "forged callback" 401 '{"error":{"kind":"unauthenticated","message":"callback signature missing or wrong"}}' -- \
  "${auth[@]}" -H 'Content-Type: application/json' -d "$(webhook forge)" "$url/v1/webhook"

kill -TERM "$pid"
wait "$pid" || die "the plugin exited with $? on SIGTERM"
trap - EXIT
if grep -q 5555550 "$stdout" "$stderr"; then
  die "a number reached the plugin's output"
fi
log "stopped cleanly; stderr was: $(tr '\n' ' ' <"$stderr")"

if [[ -n ${TRY_IMAGE_BASE:-} ]]; then
  image=localhost/try-skeleton/acme-fax:0.1.0
  log "building the image on $TRY_IMAGE_BASE"
  (cd "$out" && podman build -q -f Containerfile --build-arg "PYTHON_BASE=$TRY_IMAGE_BASE" \
    --build-context "kit=$kit" -t "$image" .) >/dev/null
  cid=$(podman run -d --network host -e FAXBOT_PLUGIN_LISTEN=127.0.0.1:0 -e FAXBOT_PLUGIN_TOKEN=try-token "$image")
  remove() { podman rm -f "$cid" >/dev/null 2>&1 || true; }
  trap remove EXIT
  for _ in $(seq 100); do
    podman logs "$cid" 2>/dev/null | grep -q '^listening on ' && break
    sleep 0.1
  done
  line=$(podman logs "$cid" 2>/dev/null | head -n 1)
  [[ $line =~ ^listening\ on\ (http://127\.0\.0\.1:[1-9][0-9]*)$ ]] || die "image: unexpected first line: $line"
  url=${BASH_REMATCH[1]}
  [[ $(podman exec "$cid" id -u) == 10001 ]] || die "image: not running as uid 10001"
  expect "image health" 200 '{"status":"ok"}' -- "$url/v1/health"
  expect "image manifest" 200 "$manifest" -- "${auth[@]}" "$url/v1/manifest"
  podman stop -t 10 "$cid" >/dev/null
  [[ $(podman inspect -f '{{.State.ExitCode}}' "$cid") == 0 ]] || die "image: non-zero exit on SIGTERM"
  remove
  trap - EXIT
  log "image $image: built, ran as uid 10001, answered, stopped cleanly"
fi
log "OK: $out"
