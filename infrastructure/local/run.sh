#!/usr/bin/env bash
# `make run`: the whole system on this machine with a demo auction.
# Brings the stack up, builds the services in release mode, starts each one whose crate exists,
# creates a demo auction, prints how to use it, and follows the logs until Ctrl-C, which stops
# the services it started (and only those).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
LOGS="$ROOT/.local/logs"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
GATEWAY=${GATEWAY_URL:-http://127.0.0.1:8080}
# Admin actions (close, cancel, extend, relist) need a bearer token; a local demo gets one.
export ADMIN_TOKEN=${ADMIN_TOKEN:-demo-admin}
# name:port of every service; one without its crate yet is skipped.
SERVICES="api-gateway:8080 broadcast-service:8081 archival-worker:8082"

say() { printf '\033[1m%s\033[0m\n' "$*"; }

"$ROOT/infrastructure/local/stack.sh" up

packages=()
for entry in $SERVICES; do
  name=${entry%%:*}
  [ -d "$ROOT/$name" ] && packages+=(-p "$name")
done
say "building ${packages[*]//-p /} (release)…"
cargo build --release "${packages[@]}"

mkdir -p "$LOGS"
pids=()
stop() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  say "stopped."
}
trap stop EXIT INT TERM

for entry in $SERVICES; do
  name=${entry%%:*}
  port=${entry##*:}
  [ -x "$BIN/$name" ] || continue
  LISTEN_ADDR="127.0.0.1:$port" LOG_FORMAT=${LOG_FORMAT:-pretty} \
    "$BIN/$name" >"$LOGS/$name.log" 2>&1 &
  pids+=($!)
  ready=""
  for _ in $(seq 1 300); do
    if curl -fs "http://127.0.0.1:$port/ready" >/dev/null 2>&1; then ready=1; break; fi
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$ready" ] || { tail -20 "$LOGS/$name.log"; echo "$name did not become ready" >&2; exit 1; }
  say "$name ready on 127.0.0.1:$port (log: .local/logs/$name.log)"
done

# The demo auction: one hour from now, anti-sniping on. Reuse it while it is still running.
item=demo-item
status=$(curl -s "$GATEWAY/api/v1/items/$item" | sed -n 's/.*"status":"\([a-z]*\)".*/\1/p')
if [ "$status" != "active" ]; then
  [ -n "$status" ] && item="demo-item-$(date +%s)"
  end=$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)
  curl -fs -X POST "$GATEWAY/api/v1/items" -H 'content-type: application/json' -d "{
    \"id\": \"$item\", \"name\": \"Demo: vintage camera\",
    \"description\": \"A demo auction created by make run\",
    \"starting_price\": 10.00, \"min_increment\": 1.00, \"end_time\": \"$end\",
    \"extension_window_secs\": 30, \"extension_secs\": 30 }" >/dev/null
fi

cat <<MSG

$(say "The auction platform is running. Demo auction: $item")

  Place a bid:
    curl -s -X POST $GATEWAY/api/v1/items/$item/bid \\
         -H 'content-type: application/json' -d '{"user_id":"alice","amount":12.50}'
  Read the auction:
    curl -s $GATEWAY/api/v1/items/$item
  Watch it live in a browser (broadcast-service):
    http://127.0.0.1:8081/?item_id=$item
  or over a WebSocket:
    ws://127.0.0.1:8081/ws?item_id=$item
  Bid history (archived in PostgreSQL):
    curl -s $GATEWAY/api/v1/items/$item/bids
  Close it now (admin):
    curl -s -X POST $GATEWAY/api/v1/items/$item/close -H 'authorization: Bearer $ADMIN_TOKEN'
  Metrics:
    curl -s $GATEWAY/metrics

Following the logs; Ctrl-C stops the services.
MSG
tail -n 0 -f "$LOGS"/*.log &
pids+=($!)
wait "${pids[0]}"
