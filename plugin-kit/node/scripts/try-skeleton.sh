#!/usr/bin/env bash
# Builds a plugin from plugin-kit/templates/node the way `faxbot plugin new <name> --kind node` does
# (placeholders replaced in file contents and paths), then checks it for real: `npm install` pulls the kit
# from its path, `npm test` passes, the plugin starts on a free port and answers health, manifest, send and
# status over HTTP with the token, stops cleanly on SIGTERM, and the Containerfile's install step works on
# the lockfile `npm install` wrote (run outside a container: no base image can be pulled here).
#
# Usage: scripts/try-skeleton.sh [DEST]   (DEST defaults to /tmp/nodeskel and is replaced)
#        SKEL_ID=joes-fax SKEL_NAME="Joe's Fax" scripts/try-skeleton.sh   (another id and name)
set -euo pipefail

kit="$(cd "$(dirname "$0")/.." && pwd)"
template="$(cd "$kit/../templates/node" && pwd)"
dest="${1:-/tmp/nodeskel}"
id="${SKEL_ID:-acme-fax}"
name="${SKEL_NAME:-Acme Fax}"
module="${id//-/_}"
token="try-$RANDOM-$RANDOM"

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }

step "generate $dest from $template"
rm -rf "$dest"
node - "$template" "$dest" "$id" "$name" "$module" "$kit" <<'JS'
const fs = require('node:fs');
const path = require('node:path');
const [from, to, id, name, module_, kit] = process.argv.slice(2);
const swap = (s) => s.replaceAll('@@ID@@', id).replaceAll('@@NAME@@', name).replaceAll('@@MODULE@@', module_)
  .replaceAll('@@KIT@@', kit);
(function copy(dir) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const source = path.join(dir, entry.name);
    if (entry.isDirectory()) { copy(source); continue; }
    const target = path.join(to, swap(path.relative(from, source)));
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(target, swap(fs.readFileSync(source, 'utf8')), { mode: fs.statSync(source).mode });
  }
})(from);
JS
if grep -rl '@@[A-Z]*@@' "$dest"; then fail "placeholders left in the files above"; fi
find "$dest" -type f | sort

cd "$dest"
step "npm install"
npm install --no-audit --no-fund
node -e '
  const e = require("./package-lock.json").packages["node_modules/faxbot-plugin-kit"];
  if (!e || e.link) throw new Error("the kit is not recorded as a copy");
  console.log("lockfile records the kit as", e.resolved);'

step "npm test"
npm test

step "start with FAXBOT_PLUGIN_LISTEN=127.0.0.1:0"
out="$(mktemp)"
FAXBOT_PLUGIN_LISTEN=127.0.0.1:0 FAXBOT_PLUGIN_TOKEN="$token" FAXBOT_PLUGIN_WEBHOOK_SECRET=try-secret \
  node index.js >"$out" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -f "$out"' EXIT
for _ in $(seq 50); do grep -q '^listening on ' "$out" && break; sleep 0.1; done
line="$(head -n1 "$out")"
echo "$line"
[[ "$line" =~ ^listening\ on\ (http://127\.0\.0\.1:[0-9]+)$ ]] || fail "unexpected first line: $line"
url="${BASH_REMATCH[1]}"
[[ "$url" != *":0" ]] || fail "printed port 0, not the bound port"

check() { # check WHAT EXPECTED-STATUS CURL-ARGS...: prints the body, fails on another status
  local what="$1" want="$2"; shift 2
  local body status
  body="$(curl -sS -w '\n%{http_code}' "$@")"
  status="${body##*$'\n'}"; body="${body%$'\n'*}"
  printf '%-28s %s %s\n' "$what" "$status" "$body"
  [[ "$status" == "$want" ]] || fail "$what answered $status, expected $want"
  REPLY="$body"
}
auth=(-H "Authorization: Bearer $token" -H 'Faxbot-Plugin-Protocol: 1')
check "health (no token)" 200 "$url/v1/health"
check "manifest without token" 401 "$url/v1/manifest"
check "manifest" 200 "${auth[@]}" "$url/v1/manifest"
node -e 'const m = JSON.parse(process.argv[1]); if (m.id !== process.argv[2] || m.name !== process.argv[3]) process.exit(1)' \
  "$REPLY" "$id" "$name" \
  || fail "the manifest does not carry the generated id and name"
pdf="$(printf '%%PDF-1.4\n%%%%EOF\n' | base64 -w0)"
send() { printf '{"jobId":"%s","to":"%s","idempotencyKey":"%s","pages":1,"document":{"contentType":"application/pdf","base64":"%s"}}' "$1" "$2" "$1" "$pdf"; }
check "send 0100" 200 "${auth[@]}" -H 'Content-Type: application/json' -d "$(send j1 +15555550100)" "$url/v1/send"
provider="$(node -p 'JSON.parse(process.argv[1]).providerId' "$REPLY")"
check "status" 200 "${auth[@]}" "$url/v1/faxes/$provider"
[[ "$REPLY" == *'"delivered"'* ]] || fail "status is not delivered"
check "send 0101, then status" 200 "${auth[@]}" -H 'Content-Type: application/json' -d "$(send j2 +15555550101)" "$url/v1/send"
check "status" 200 "${auth[@]}" "$url/v1/faxes/$(node -p 'JSON.parse(process.argv[1]).providerId' "$REPLY")"
[[ "$REPLY" == *'"failed"'* ]] || fail "status is not failed"
check "send 0102" 422 "${auth[@]}" -H 'Content-Type: application/json' -d "$(send j3 +15555550102)" "$url/v1/send"
check "send 0103" 503 "${auth[@]}" -H 'Content-Type: application/json' -d "$(send j4 +15555550103)" "$url/v1/send"
[[ "$REPLY" != *5555550* ]] || fail "an error echoed the number"
check "unknown fax" 404 "${auth[@]}" "$url/v1/faxes/nope"

step "SIGTERM"
kill -TERM "$pid"
code=0; wait "$pid" || code=$?
[[ "$code" == 0 ]] || fail "exit code $code after SIGTERM"
echo "exited 0"
if [[ "$(wc -l <"$out")" != 1 ]]; then cat "$out"; fail "more than the one listening line on the console"; fi

step "the Containerfile's install step, on this lockfile"
# The image runs the RUN line below from /app, where the lockfile's leading `..` stop at /. Here it runs
# from a directory as deep as those `..` inside a scratch root, so the kit lands inside the scratch root,
# never on a real path.
scratch="$(mktemp -d)"
rel="$(node -p 'require("./package-lock.json").packages["node_modules/faxbot-plugin-kit"].resolved.replace(/^file:/, "")')"
ups="$(node -p 'process.argv[1].split("/").filter((s) => s === "..").length' "$rel")"
app="$scratch"; for _ in $(seq 2 "$ups"); do app="$app/d"; done; app="$app/app"
mkdir -p "$app"
cp package.json package-lock.json .npmrc "$app/"
cp -r "$kit" "$scratch/kit-context"
script="$(node -e '
  const text = require("fs").readFileSync("Containerfile", "utf8").replace(/\\\n/g, "");
  const m = /node -p \x27([^\x27]*)\x27/.exec(text);
  if (!m) throw new Error("no node -p step in the Containerfile");
  process.stdout.write(m[1]);')"
target="$(cd "$app" && node -p "$script")"
[[ "$target" == "$scratch"/* ]] || fail "the kit would land outside the scratch root: $target"
mkdir -p "$(dirname "$target")"
mv "$scratch/kit-context" "$target"
(cd "$app" && npm ci --omit=dev --no-audit --no-fund)
rm -rf "$target"
(cd "$app" && cp "$dest/plugin.js" "$dest/index.js" . && node -e '
  const { FaxPlugin } = require("./plugin");
  const kit = require("faxbot-plugin-kit");
  if (kit.validateManifest(new FaxPlugin().manifest()).length) process.exit(1);
  if (require("fs").lstatSync("node_modules/faxbot-plugin-kit").isSymbolicLink()) throw new Error("a link");
  console.log("installed from the lockfile; the kit is a copy and works without its source");')
rm -rf "$scratch"

step "all good"
