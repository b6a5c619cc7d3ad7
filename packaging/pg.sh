# Throwaway PostgreSQL cluster for tests and the demo (sourced).
# pg_start sets PG_DSN and PG_DIR; pg_stop removes everything.
# As root, the cluster runs as the "postgres" user: initdb refuses root.

pg_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && echo "$d"; done | sort -V | tail -n 1
}

pg_start() {
  local bin port
  bin=$(pg_bin)
  [ -n "$bin" ] || { echo "pg.sh: PostgreSQL server binaries not found" >&2; return 1; }
  PG_DIR=$(mktemp -d /tmp/regentra-pg.XXXXXX)
  chmod 755 "$PG_DIR"
  local as=()
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$PG_DIR"
    as=(runuser -u postgres --)
  fi
  "${as[@]}" "$bin/initdb" -D "$PG_DIR/data" -U regentra --auth=trust -E UTF8 \
    --locale=C.UTF-8 >"$PG_DIR/initdb.log" 2>&1 ||
    { cat "$PG_DIR/initdb.log" >&2; return 1; }
  # A random free port; another process may hold the one picked, so retry.
  local attempt
  for attempt in 1 2 3 4 5; do
    port=$(( 20000 + RANDOM % 20000 ))
    "${as[@]}" "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $PG_DIR -c fsync=off -c max_connections=200" \
      start >/dev/null && break
    [ "$attempt" -eq 5 ] && { cat "$PG_DIR/server.log" >&2; return 1; }
  done
  PG_DSN="postgresql://regentra@127.0.0.1:$port/postgres"
  PG_PORT=$port
  export PG_DSN PG_DIR PG_PORT
}

pg_stop() {
  [ -n "${PG_DIR:-}" ] && [ -d "$PG_DIR" ] || return 0
  local bin as=()
  bin=$(pg_bin)
  [ "$(id -u)" -eq 0 ] && as=(runuser -u postgres --)
  "${as[@]}" "$bin/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$PG_DIR"
  PG_DIR=
}
