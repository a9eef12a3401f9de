# shellcheck shell=bash
# Sourced by scripts/test: starts a throwaway PostgreSQL cluster on loopback for the test suite and exports
# FAXBOT_TEST_POSTGRES_URL. Installs PostgreSQL from Debian packages when it is missing and we are root.
# The cluster lives in a temp dir and is stopped on exit. With a real test node (FAXBOT_TEST_HOST_ADDR, from
# scripts/kube-testenv.sh start --kubelet) it also listens on the node's bridge address, where API pods reach
# it (FAXBOT_TEST_POD_POSTGRES_URL; trust authentication from the pod network only, for tests).

pg_bindir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  return 1
}

start_postgres() {
  local bindir
  if ! bindir=$(pg_bindir); then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "scripts/test: installing PostgreSQL from Debian packages" >&2
      (apt-get install -y -q postgresql >/dev/null 2>&1) || { apt-get update -q >/dev/null && apt-get install -y -q postgresql >/dev/null; }
      bindir=$(pg_bindir) || { echo "scripts/test: PostgreSQL install failed" >&2; return 1; }
    else
      echo "scripts/test: PostgreSQL is not installed (apt-get install postgresql) and FAXBOT_TEST_POSTGRES_URL is unset" >&2
      return 1
    fi
  fi
  local runas=()
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    runas=(runuser -u postgres --)
  fi
  PG_TEST_DIR=$(mktemp -d /tmp/faxbot-pg.XXXXXX)
  chmod 755 "$PG_TEST_DIR"
  [ "$(id -u)" = 0 ] && chown postgres "$PG_TEST_DIR"
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "${runas[@]}" "$bindir/initdb" -D "$PG_TEST_DIR/data" -U postgres --auth=trust -E UTF8 >/dev/null
  local listen=127.0.0.1
  if [ -n "${FAXBOT_TEST_HOST_ADDR:-}" ]; then
    listen="127.0.0.1,$FAXBOT_TEST_HOST_ADDR"
    echo "host all all ${FAXBOT_TEST_POD_CIDR:-198.18.0.0/24} trust" >>"$PG_TEST_DIR/data/pg_hba.conf"
  fi
  "${runas[@]}" "$bindir/pg_ctl" -D "$PG_TEST_DIR/data" -l "$PG_TEST_DIR/log" -w \
    -o "-p $port -k $PG_TEST_DIR -c listen_addresses=$listen -c max_connections=400 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >/dev/null
  export FAXBOT_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
  if [ -n "${FAXBOT_TEST_HOST_ADDR:-}" ]; then
    export FAXBOT_TEST_POD_POSTGRES_URL="postgres://postgres@$FAXBOT_TEST_HOST_ADDR:$port/postgres"
  fi
  PG_TEST_STOP=("${runas[@]}" "$bindir/pg_ctl" -D "$PG_TEST_DIR/data" -m fast stop)
  echo "scripts/test: PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on $listen port $port" >&2
}

stop_postgres() {
  if [ -n "${PG_TEST_DIR:-}" ]; then
    "${PG_TEST_STOP[@]}" >/dev/null 2>&1 || true
    rm -rf "$PG_TEST_DIR"
  fi
}
