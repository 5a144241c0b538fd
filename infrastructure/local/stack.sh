#!/usr/bin/env bash
# Makes Redis, NATS (with JetStream) and PostgreSQL available on loopback, for `make run` and
# `make test` on any Debian/Ubuntu machine:
#   1. a service already listening on its port is used as it is;
#   2. otherwise it is started from its installed binaries, as the current user, with its data,
#      log and pid file under .local/stack/ in the project;
#   3. otherwise it is installed with apt-get first.
# Then the `auction` database is created if missing.
#
#   stack.sh [up|down|status]     ports: REDIS_PORT, NATS_PORT, PG_PORT (default 6379/4222/5432)
#
# `down` stops only what this script started (by the pid files it wrote), never anything else.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STATE="$ROOT/.local/stack"
REDIS_PORT=${REDIS_PORT:-6379}
NATS_PORT=${NATS_PORT:-4222}
PG_PORT=${PG_PORT:-5432}
SCRIPT_NAME=stack
# shellcheck source=infrastructure/local/common.sh
. "$ROOT/infrastructure/local/common.sh"

# Waits until something listens on port $1; names service $2 and its log $3 on failure.
wait_for() {
  local port=$1 name=$2 log=$3
  for _ in $(seq 1 150); do
    listening "$port" && return 0
    sleep 0.1
  done
  die "$name did not start on 127.0.0.1:$port within 15 s; see $log"
}

redis_up() {
  if listening "$REDIS_PORT"; then say "redis: using the one on :$REDIS_PORT"; return; fi
  command -v redis-server >/dev/null || apt_install redis-server
  # apt may have started the distribution's own service.
  if listening "$REDIS_PORT"; then say "redis: using the one on :$REDIS_PORT"; return; fi
  mkdir -p "$STATE/redis"
  # Append-only file: the outbox lives in Redis, so a local restart must not lose it.
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" \
    --dir "$STATE/redis" --appendonly yes --save "" \
    --pidfile "$STATE/redis.pid" --logfile "$STATE/redis.log"
  wait_for "$REDIS_PORT" redis "$STATE/redis.log"
  say "redis: started on :$REDIS_PORT (data in $STATE/redis)"
}

nats_up() {
  if listening "$NATS_PORT"; then say "nats: using the one on :$NATS_PORT"; return; fi
  [ -n "$(nats_bin)" ] || apt_install nats-server
  if listening "$NATS_PORT"; then say "nats: using the one on :$NATS_PORT"; return; fi
  mkdir -p "$STATE/nats"
  nohup setsid "$(nats_bin)" -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$STATE/nats" \
    -P "$STATE/nats.pid" -l "$STATE/nats.log" >/dev/null 2>&1 &
  wait_for "$NATS_PORT" nats "$STATE/nats.log"
  say "nats: started on :$NATS_PORT with JetStream (store in $STATE/nats)"
}

pg_bin() {
  local dir
  for dir in /usr/lib/postgresql/*/bin "$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/x)")"; do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then echo "$dir"; return 0; fi
  done
  return 1
}

# PostgreSQL refuses to run as root: as root, run its tools as the `postgres` user.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

psql_cmd() {
  local bin
  bin=$(command -v psql 2>/dev/null || echo "$(pg_bin)/psql")
  "$bin" -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@"
}

postgres_up() {
  if ! listening "$PG_PORT"; then
    pg_bin >/dev/null || apt_install postgresql
  fi
  if ! listening "$PG_PORT"; then
    local bin data="$STATE/postgres"
    bin=$(pg_bin) || die "PostgreSQL binaries not found after install"
    mkdir -p "$STATE"
    if [ ! -s "$data/PG_VERSION" ]; then
      mkdir -p "$data"
      [ "$(id -u)" -eq 0 ] && chown postgres: "$data" "$STATE"
      chmod 700 "$data"
      as_pg "$bin/initdb" -D "$data" -A trust -U postgres >"$STATE/postgres-init.log" 2>&1 \
        || die "initdb failed; see $STATE/postgres-init.log"
    fi
    [ "$(id -u)" -eq 0 ] && touch "$STATE/postgres.log" && chown postgres: "$STATE/postgres.log"
    as_pg "$bin/pg_ctl" -D "$data" -l "$STATE/postgres.log" -w -t 30 \
      -o "-p $PG_PORT -k $data -c listen_addresses=127.0.0.1" start >/dev/null \
      || die "PostgreSQL did not start; see $STATE/postgres.log"
    echo "$data" >"$STATE/postgres.datadir"
    say "postgres: started on :$PG_PORT (data in $data)"
  else
    say "postgres: using the one on :$PG_PORT"
  fi
  for _ in $(seq 1 100); do
    psql_cmd -tAc 'select 1' >/dev/null 2>&1 && break
    sleep 0.1
  done
  if ! psql_cmd -tAc "select 1 from pg_database where datname = 'auction'" | grep -q 1; then
    psql_cmd -qc 'create database auction' >/dev/null
    say "postgres: created database auction"
  fi
}

up() {
  redis_up
  nats_up
  postgres_up
  say "ready: redis 127.0.0.1:$REDIS_PORT, nats 127.0.0.1:$NATS_PORT, postgres 127.0.0.1:$PG_PORT/auction"
}

stop_pidfile() {
  local name=$1 file=$2 pid
  [ -f "$file" ] || return 0
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    say "$name: stopped (pid $pid)"
  fi
  rm -f "$file"
}

down() {
  stop_pidfile redis "$STATE/redis.pid"
  stop_pidfile nats "$STATE/nats.pid"
  if [ -f "$STATE/postgres.datadir" ]; then
    local bin data
    data=$(cat "$STATE/postgres.datadir")
    bin=$(pg_bin) && as_pg "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 \
      && say "postgres: stopped"
    rm -f "$STATE/postgres.datadir"
  fi
}

status() {
  local name port
  for name in redis:$REDIS_PORT nats:$NATS_PORT postgres:$PG_PORT; do
    port=${name#*:}
    if listening "$port"; then echo "${name%%:*} up (127.0.0.1:$port)"; else echo "${name%%:*} down (127.0.0.1:$port)"; fi
  done
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) die "usage: $0 [up|down|status]" ;;
esac
