#!/usr/bin/env bash
# `make cluster`: the production topology on this machine, on free loopback ports.
#
#   * a Redis Cluster of 3 masters + 3 replicas (redis-server, `redis-cli --cluster create`),
#     append-only files, cluster-node-timeout 2 s (a dead master's replica takes over in ~3 s);
#   * a 3-node NATS cluster with JetStream (streams and consumers created with 3 replicas);
#   * a fresh PostgreSQL database on the machine's server (started by stack.sh if none runs);
#   * 2 api-gateways, 2 broadcast-services, 2 archival-workers, configured as in production:
#     REDIS_URL lists the Redis nodes, NATS_URL the NATS servers, JETSTREAM_REPLICAS=3;
#   * HAProxy (Debian's package) in front: GATEWAY_URL routes `/ws*` to the broadcast instances
#     (WebSocket upgrade) and everything else to the gateways, as the ALB does; BROADCAST_URL
#     is the broadcast instances alone (page and sockets). Health checks use `/health`.
#
#   cluster.sh up|down|status|restart NAME|install
#
# Everything lives under CLUSTER_DIR (default .local/cluster/): data, logs, one pid file per
# process, `env` (GATEWAY_URL, BROADCAST_URL, REDIS_URL, NATS_URL, DATABASE_URL and each
# instance's URL, for scripts and the cluster tests). `down` stops only the processes whose pid
# files this script wrote, never anything by name, and drops the database it created.
#
# Settings: BIN_DIR (the service binaries; default target/release, which `make cluster`
# builds), PG_ADMIN_URL (default postgres://postgres@127.0.0.1:5432/postgres), DURABLE_ACCEPT
# (passed to the gateways; default false), SERVICE_ENV (extra VAR=value words for every
# service, e.g. "RUST_LOG=debug"), CLUSTER_ONLY=redis (the Redis Cluster alone, for the
# gateway's own cluster tests) or CLUSTER_ONLY=stores (Redis Cluster and NATS, for
# bench-cluster, which starts the services it measures itself).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DIR=${CLUSTER_DIR:-$ROOT/.local/cluster}
BIN_DIR=${BIN_DIR:-$ROOT/target/release}
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
SCRIPT_NAME=cluster
# shellcheck source=infrastructure/local/common.sh
. "$ROOT/infrastructure/local/common.sh"

haproxy_bin() {
  command -v haproxy 2>/dev/null || { [ -x /usr/sbin/haproxy ] && echo /usr/sbin/haproxy; }
}

# Sets PORT to a loopback port nothing listens on and this run has not handed out yet, below the ephemeral
# range (32768+) where outgoing connections take theirs. `free_port bus` also keeps port+10000
# free: a Redis Cluster node listens there for its cluster bus.
TAKEN=" "
free_port() {
  local port bus=${1:-}
  while :; do
    port=$((12000 + RANDOM % 10000))
    case "$TAKEN" in *" $port "*) continue ;; esac
    listening "$port" && continue
    if [ -n "$bus" ]; then
      case "$TAKEN" in *" $((port + 10000)) "*) continue ;; esac
      listening $((port + 10000)) && continue
      TAKEN="$TAKEN$((port + 10000)) "
    fi
    TAKEN="$TAKEN$port "
    PORT=$port
    return
  done
}

wait_for() {
  local what=$1 seconds=$2; shift 2
  local tries=$((seconds * 10))
  for _ in $(seq 1 "$tries"); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "$what not ready within ${seconds} s (logs in $DIR/logs)"
}

# Starts "$@" in the background as its own session, its output in logs/$1.log, its pid in
# pids/$1.pid, its command line in cmds/$1 (for `restart`).
launch() {
  local name=$1; shift
  mkdir -p "$DIR/cmds"
  printf '%q ' "$@" >"$DIR/cmds/$name"
  setsid "$@" >>"$DIR/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$DIR/pids/$name.pid"
}

# `restart NAME`: starts a process of this cluster again (same command, port and data) after
# it died or was killed (the cluster tests kill Redis masters, NATS nodes and instances).
restart() {
  local name=${1:-}
  [ -n "$name" ] && [ -f "$DIR/cmds/$name" ] || die "usage: $0 restart NAME (one of: $(ls "$DIR/cmds" 2>/dev/null | tr '\n' ' '))"
  alive "$DIR/pids/$name.pid" && die "$name is running (pid $(cat "$DIR/pids/$name.pid"))"
  local cmd
  cmd=$(cat "$DIR/cmds/$name")
  eval "setsid $cmd >>\"\$DIR/logs/\$name.log\" 2>&1 </dev/null &"
  echo $! >"$DIR/pids/$name.pid"
  say "$name restarted (pid $(cat "$DIR/pids/$name.pid"))"
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

redis_up() {
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null || apt_install redis-server redis-tools
  local ports=() port nodes=""
  for _ in 1 2 3 4 5 6; do free_port bus; ports+=("$PORT"); done
  for port in "${ports[@]}"; do
    mkdir -p "$DIR/redis/$port"
    launch "redis-$port" redis-server --bind 127.0.0.1 --port "$port" --dir "$DIR/redis/$port" \
      --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000 \
      --appendonly yes --appendfsync everysec --save ""
    nodes="$nodes 127.0.0.1:$port"
  done
  for port in "${ports[@]}"; do wait_for "redis :$port" 15 redis-cli -p "$port" ping; done
  # shellcheck disable=SC2086
  redis-cli --cluster create $nodes --cluster-replicas 1 --cluster-yes >"$DIR/logs/redis-create.log" 2>&1 \
    || die "redis-cli --cluster create failed; see $DIR/logs/redis-create.log"
  # Ready means every node agrees on the slot map (no MOVED for a client that asks any node)
  # and every replica is in sync with its master (so WAIT, --durable-accept, can succeed).
  for port in "${ports[@]}"; do
    wait_for "redis cluster state on :$port" 30 bash -c "redis-cli -p $port cluster info | grep -q 'cluster_state:ok'"
  done
  wait_for "redis nodes agreeing on the slots" 30 bash -c \
    "redis-cli --cluster check 127.0.0.1:${ports[0]} | grep -q 'All nodes agree about slots configuration'"
  for port in "${ports[@]}"; do
    wait_for "redis :$port in sync" 30 bash -c \
      "redis-cli -p $port info replication | grep -Eq 'role:master|master_link_status:up'"
  done
  REDIS_URL=$(printf 'redis://127.0.0.1:%s,' "${ports[@]}"); REDIS_URL=${REDIS_URL%,}
  say "redis: 3 masters + 3 replicas on ${ports[*]}"
}

nats_up() {
  [ -n "$(nats_bin)" ] || apt_install nats-server
  local i clients=() routes=() monitors=() route_list
  for i in 1 2 3; do
    free_port; clients+=("$PORT"); free_port; routes+=("$PORT"); free_port; monitors+=("$PORT")
  done
  route_list=$(printf 'nats://127.0.0.1:%s,' "${routes[@]}"); route_list=${route_list%,}
  for i in 0 1 2; do
    mkdir -p "$DIR/nats/n$((i + 1))"
    launch "nats-n$((i + 1))" "$(nats_bin)" -n "n$((i + 1))" -a 127.0.0.1 -p "${clients[$i]}" \
      -m "${monitors[$i]}" -js -sd "$DIR/nats/n$((i + 1))" --cluster_name auction \
      --cluster "nats://127.0.0.1:${routes[$i]}" --routes "$route_list"
  done
  # /healthz answers ok once the node's JetStream has joined the cluster's meta group.
  for i in 0 1 2; do
    wait_for "nats n$((i + 1))" 30 curl -fs "http://127.0.0.1:${monitors[$i]}/healthz"
  done
  NATS_URL=$(printf 'nats://127.0.0.1:%s,' "${clients[@]}"); NATS_URL=${NATS_URL%,}
  NATS_MONITORS="${monitors[*]}"
  say "nats: 3 nodes with JetStream on ${clients[*]} (monitoring ${monitors[*]})"
}

psql_admin() { psql "$PG_ADMIN_URL" -v ON_ERROR_STOP=1 -qtA "$@"; }

postgres_up() {
  psql_admin -c 'select 1' >/dev/null 2>&1 || "$ROOT/infrastructure/local/stack.sh" up
  DB_NAME="cluster_$(date +%s)_$$"
  psql_admin -c "create database $DB_NAME" >/dev/null
  echo "$DB_NAME" >"$DIR/database"
  DATABASE_URL="${PG_ADMIN_URL%/*}/$DB_NAME"
  say "postgres: database $DB_NAME"
}

# `env` with the common environment of every service instance, then "$@".
service_env() {
  # shellcheck disable=SC2206
  local extra=(${SERVICE_ENV:-})
  SERVICE_CMD=(env REDIS_URL="$REDIS_URL" NATS_URL="$NATS_URL" JETSTREAM_REPLICAS=3
    DATABASE_URL="$DATABASE_URL" LOG_FORMAT=json "${extra[@]}" "$@")
}

services_up() {
  local bin
  for bin in api-gateway broadcast-service archival-worker; do
    [ -x "$BIN_DIR/$bin" ] || die "$BIN_DIR/$bin missing: build it (make cluster builds release)"
  done
  command -v openssl >/dev/null || apt_install openssl
  # One signing key for both gateways, so a token one issues the other accepts: the caller's
  # (JWT_SIGNING_KEY, as the load tests pass theirs, to sign their users' tokens) or a new one.
  # It reaches the gateways as a file only (JWT_SIGNING_KEY_FILE, written to the env file).
  if [ -n "${JWT_SIGNING_KEY:-}" ]; then
    (umask 077 && printf '%s\n' "$JWT_SIGNING_KEY" >"$DIR/jwt-signing-key.pem")
  elif [ ! -s "$DIR/jwt-signing-key.pem" ]; then
    (umask 077 && openssl genpkey -algorithm ed25519 -out "$DIR/jwt-signing-key.pem" 2>/dev/null)
  fi
  unset JWT_SIGNING_KEY
  local i port
  GATEWAYS=() BROADCASTS=() WORKERS=()
  for i in 1 2; do
    free_port; port=$PORT; GATEWAYS+=("$port")
    service_env LISTEN_ADDR="127.0.0.1:$port" INSTANCE_ID="gateway-$i" \
      JWT_SIGNING_KEY_FILE="$DIR/jwt-signing-key.pem" \
      DURABLE_ACCEPT="${DURABLE_ACCEPT:-false}" "$BIN_DIR/api-gateway"
    launch "gateway-$i" "${SERVICE_CMD[@]}"
  done
  for i in 1 2; do
    free_port; port=$PORT; WORKERS+=("$port")
    service_env LISTEN_ADDR="127.0.0.1:$port" "$BIN_DIR/archival-worker"
    launch "worker-$i" "${SERVICE_CMD[@]}"
  done
  for i in 1 2; do
    free_port; port=$PORT; BROADCASTS+=("$port")
    service_env LISTEN_ADDR="127.0.0.1:$port" INSTANCE_ID="broadcast-$i" \
      "$BIN_DIR/broadcast-service"
    launch "broadcast-$i" "${SERVICE_CMD[@]}"
  done
  for port in "${GATEWAYS[@]}" "${WORKERS[@]}" "${BROADCASTS[@]}"; do
    wait_for "service on :$port" 60 curl -fs "http://127.0.0.1:$port/ready"
  done
  say "gateways on ${GATEWAYS[*]}, broadcast on ${BROADCASTS[*]}, workers on ${WORKERS[*]}"
}

haproxy_up() {
  [ -n "$(haproxy_bin)" ] || apt_install haproxy
  free_port; EDGE_PORT=$PORT
  free_port; BROADCAST_PORT=$PORT
  local i
  {
    cat <<CFG
global
    # Two descriptors per proxied connection, under the workplace's 20,000-file limit.
    maxconn 9000
    log stderr format short local0 warning

defaults
    mode http
    log global
    timeout connect 1s
    timeout client 60s
    timeout server 30s
    # A WebSocket, once upgraded, is a tunnel: viewers stay connected for an hour of silence
    # (the broadcast service's pings keep it busy anyway).
    timeout tunnel 1h
    # A connection refused by a dead instance is retried on the other one. Only connection
    # failures: a bid that reached a gateway is never sent twice by the load balancer.
    retries 2
    option redispatch
    retry-on conn-failure

frontend edge
    bind 127.0.0.1:$EDGE_PORT
    acl websocket path_beg /ws
    use_backend broadcast if websocket
    default_backend gateways

frontend broadcast_only
    bind 127.0.0.1:$BROADCAST_PORT
    default_backend broadcast

backend gateways
    balance roundrobin
    option httpchk GET /health
CFG
    for i in 0 1; do echo "    server gateway-$((i + 1)) 127.0.0.1:${GATEWAYS[$i]} check inter 500 fall 2 rise 2"; done
    cat <<CFG

backend broadcast
    balance leastconn
    option httpchk GET /health
CFG
    for i in 0 1; do echo "    server broadcast-$((i + 1)) 127.0.0.1:${BROADCASTS[$i]} check inter 500 fall 2 rise 2"; done
  } >"$DIR/haproxy.cfg"
  "$(haproxy_bin)" -c -q -f "$DIR/haproxy.cfg" || die "haproxy refused $DIR/haproxy.cfg"
  launch haproxy "$(haproxy_bin)" -db -f "$DIR/haproxy.cfg"
  wait_for "haproxy" 15 curl -fs "http://127.0.0.1:$EDGE_PORT/health"
  wait_for "haproxy (broadcast)" 15 curl -fs "http://127.0.0.1:$BROADCAST_PORT/health"
  say "haproxy: edge on $EDGE_PORT (API, /ws), broadcast on $BROADCAST_PORT"
}

write_env() {
  {
    echo "GATEWAY_URL=http://127.0.0.1:$EDGE_PORT"
    echo "BROADCAST_URL=http://127.0.0.1:$BROADCAST_PORT"
    echo "REDIS_URL=$REDIS_URL"
    echo "NATS_URL=$NATS_URL"
    echo "NATS_MONITOR_PORTS=\"$NATS_MONITORS\""
    echo "DATABASE_URL=$DATABASE_URL"
    echo "JETSTREAM_REPLICAS=3"
    echo "JWT_SIGNING_KEY_FILE=$DIR/jwt-signing-key.pem"
    echo "GATEWAY_1_URL=http://127.0.0.1:${GATEWAYS[0]}"
    echo "GATEWAY_2_URL=http://127.0.0.1:${GATEWAYS[1]}"
    echo "BROADCAST_1_URL=http://127.0.0.1:${BROADCASTS[0]}"
    echo "BROADCAST_2_URL=http://127.0.0.1:${BROADCASTS[1]}"
    echo "WORKER_1_URL=http://127.0.0.1:${WORKERS[0]}"
    echo "WORKER_2_URL=http://127.0.0.1:${WORKERS[1]}"
  } >"$DIR/env.tmp"
  mv "$DIR/env.tmp" "$DIR/env"
}

# What the cluster runs on, installed with apt-get where absent (`make test` calls this before
# the cluster suite, so no test waits on apt).
install() {
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null || apt_install redis-server redis-tools
  [ -n "$(nats_bin)" ] || apt_install nats-server
  [ -n "$(haproxy_bin)" ] || apt_install haproxy
  command -v curl >/dev/null || apt_install curl
  command -v psql >/dev/null || apt_install postgresql-client
  command -v openssl >/dev/null || apt_install openssl
  say "prerequisites present: redis-server, redis-cli, nats-server, haproxy, curl, psql, openssl"
}

up() {
  if [ -f "$DIR/env" ] && [ -n "$(ls "$DIR/pids" 2>/dev/null)" ]; then
    die "a cluster is already up in $DIR (cluster.sh down first)"
  fi
  install
  rm -rf "$DIR"
  mkdir -p "$DIR/logs" "$DIR/pids"
  # A failed start leaves nothing running.
  trap 'say "start failed; stopping what was started"; down' EXIT
  redis_up
  if [ "${CLUSTER_ONLY:-}" = redis ]; then
    echo "REDIS_URL=$REDIS_URL" >"$DIR/env"
    trap - EXIT
    say "up (Redis Cluster only): REDIS_URL=$REDIS_URL"
    return
  fi
  nats_up
  if [ "${CLUSTER_ONLY:-}" = stores ]; then
    printf 'REDIS_URL=%s\nNATS_URL=%s\n' "$REDIS_URL" "$NATS_URL" >"$DIR/env"
    trap - EXIT
    say "up (Redis Cluster and NATS only): REDIS_URL=$REDIS_URL NATS_URL=$NATS_URL"
    return
  fi
  postgres_up
  services_up
  haproxy_up
  write_env
  trap - EXIT
  usage
}

usage() {
  # shellcheck disable=SC1091
  . "$DIR/env"
  cat <<MSG

The cluster is up (state, logs and pid files in $DIR).

  source $DIR/env      # GATEWAY_URL, BROADCAST_URL, REDIS_URL, NATS_URL, DATABASE_URL
  curl -s -X POST \$GATEWAY_URL/api/v1/items -H 'content-type: application/json' \\
       -d '{"id":"demo","name":"Demo","starting_price":10,"end_time":"$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)"}'
  curl -s -X POST \$GATEWAY_URL/api/v1/items/demo/bid -H 'content-type: application/json' \\
       -d '{"user_id":"alice","amount":12.50}'
  watch live:   \$BROADCAST_URL/?item_id=demo   or   ws://${GATEWAY_URL#http://}/ws?item_id=demo
  redis-cli -c -p ${REDIS_URL##*:} cluster nodes
  infrastructure/local/cluster.sh status | down

MSG
}

down() {
  local file pid name
  [ -d "$DIR/pids" ] || { say "nothing to stop in $DIR"; return 0; }
  # Clients first (load balancer, services), then the stores they write to.
  for name in haproxy gateway-1 gateway-2 broadcast-1 broadcast-2 worker-1 worker-2 nats-n1 nats-n2 nats-n3; do
    stop_pid "$DIR/pids/$name.pid"
  done
  for file in "$DIR"/pids/redis-*.pid; do stop_pid "$file"; done
  if [ -s "$DIR/database" ]; then
    psql_admin -c "drop database if exists $(cat "$DIR/database") with (force)" >/dev/null 2>&1 || true
    rm -f "$DIR/database"
  fi
  rm -f "$DIR/env"
  say "stopped"
}

stop_pid() {
  local file=$1 pid
  [ -f "$file" ] || return 0
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

status() {
  [ -f "$DIR/env" ] || { echo "no cluster in $DIR"; return 1; }
  local file name
  for file in "$DIR"/pids/*.pid; do
    name=$(basename "$file" .pid)
    if alive "$file"; then echo "$name up (pid $(cat "$file"))"; else echo "$name DOWN"; fi
  done
  # shellcheck disable=SC1091
  . "$DIR/env"
  local port=${REDIS_URL##*:}
  redis-cli -p "$port" cluster info 2>/dev/null | grep -E 'cluster_state|cluster_known_nodes' || true
  redis-cli -p "$port" cluster nodes 2>/dev/null | awk '{print "redis " $2 " " $3}' | sed 's/myself,//' || true
  echo "GATEWAY_URL=${GATEWAY_URL:-} BROADCAST_URL=${BROADCAST_URL:-}"
}

case "${1:-}" in
  up) up ;;
  install) install ;;
  down) down ;;
  status) status ;;
  restart) restart "${2:-}" ;;
  *) die "usage: $0 up|down|status|restart NAME|install" ;;
esac
