#!/usr/bin/env bash
# `make run`: the whole system on this machine with a demo auction.
# Brings the stack up, builds the services in release mode, starts each one whose crate exists,
# makes two demo accounts (demo-admin, promoted with `api-gateway promote-admin`, and
# demo-bidder), creates a demo auction sold by demo-admin, prints how to sign in and use it, and
# follows the logs until Ctrl-C, which stops the services it started (and only those).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
LOGS="$ROOT/.local/logs"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
GATEWAY=${GATEWAY_URL:-http://127.0.0.1:8080}
# The demo accounts' password (12+ characters); both sign in with their username.
DEMO_PASSWORD=${DEMO_PASSWORD:-demo password 2026}
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

# The demo accounts: registered through the API (409 when an earlier run did), demo-admin made
# an admin by the documented command, then both signed in for access tokens (15 minutes; the
# login command below gets a fresh one).
json_field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }
register() {
  for _ in $(seq 1 100); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$GATEWAY/api/v1/auth/register" \
      -H 'content-type: application/json' \
      -d "{\"username\":\"$1\",\"display_name\":\"$2\",\"password\":\"$DEMO_PASSWORD\"}")
    case $code in 201|409) return 0 ;; 000|503) sleep 0.2 ;; *) echo "registering $1: HTTP $code" >&2; return 1 ;; esac
  done
  echo "registering $1: the accounts database did not become ready" >&2
  return 1
}
login() {
  curl -fs -X POST "$GATEWAY/api/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"login\":\"$1\",\"password\":\"$DEMO_PASSWORD\"}" | json_field access_token
}
register demo-admin "Demo admin"
register demo-bidder "Demo bidder"
"$BIN/api-gateway" promote-admin demo-admin >/dev/null
ADMIN_TOKEN=$(login demo-admin)
BIDDER_TOKEN=$(login demo-bidder)
[ -n "$ADMIN_TOKEN" ] && [ -n "$BIDDER_TOKEN" ] || { echo "signing in the demo accounts failed" >&2; exit 1; }
say "demo accounts: demo-admin (admin) and demo-bidder, password: $DEMO_PASSWORD"

# The demo auction: one hour from now, anti-sniping on, sold by demo-admin. Reuse it while it
# is still running.
item=demo-item
status=$(curl -s "$GATEWAY/api/v1/items/$item" | sed -n 's/.*"status":"\([a-z]*\)".*/\1/p')
if [ "$status" != "active" ]; then
  [ -n "$status" ] && item="demo-item-$(date +%s)"
  end=$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)
  curl -fs -X POST "$GATEWAY/api/v1/items" -H 'content-type: application/json' \
    -H "authorization: Bearer $ADMIN_TOKEN" -d "{
    \"id\": \"$item\", \"name\": \"Demo: vintage camera\",
    \"description\": \"A demo auction created by make run\",
    \"starting_price\": 10.00, \"min_increment\": 1.00, \"end_time\": \"$end\",
    \"extension_window_secs\": 30, \"extension_secs\": 30 }" >/dev/null
fi

cat <<MSG

$(say "The auction platform is running. Demo auction: $item")

$(say "  Open the web app: $GATEWAY/app/")
  (sign in as demo-bidder or demo-admin with the password above, or sign up)

  Tokens for this shell (they expire in 15 minutes; run the same command for a new one):
    export BIDDER_TOKEN=\$(curl -s -X POST $GATEWAY/api/v1/auth/login -H 'content-type: application/json' \\
         -d '{"login":"demo-bidder","password":"$DEMO_PASSWORD"}' | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
    export ADMIN_TOKEN=\$(curl -s -X POST $GATEWAY/api/v1/auth/login -H 'content-type: application/json' \\
         -d '{"login":"demo-admin","password":"$DEMO_PASSWORD"}' | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
  Place a bid as demo-bidder (the token says who bids; without one it is 401):
    curl -s -X POST $GATEWAY/api/v1/items/$item/bid -H "authorization: Bearer \$BIDDER_TOKEN" \\
         -H 'content-type: application/json' -d '{"amount":12.50}'
  Sign up yourself:
    curl -s -X POST $GATEWAY/api/v1/auth/register -H 'content-type: application/json' \\
         -d '{"username":"alice","display_name":"Alice","password":"a long enough password"}'
  Read the auction:
    curl -s $GATEWAY/api/v1/items/$item
  The demo auction in the web app:
    $GATEWAY/app/#/items/$item
  The broadcast service's bare watch page:
    http://127.0.0.1:8081/?item_id=$item
  or over a WebSocket:
    ws://127.0.0.1:8081/ws?item_id=$item
  Bid history (archived in PostgreSQL; bidders masked unless you are an admin or the bidder):
    curl -s $GATEWAY/api/v1/items/$item/bids
  Close it now (admin):
    curl -s -X POST $GATEWAY/api/v1/items/$item/close -H "authorization: Bearer \$ADMIN_TOKEN"
  Make another account an admin:
    $BIN/api-gateway promote-admin <email or username>
  Metrics:
    curl -s $GATEWAY/metrics

Following the logs; Ctrl-C stops the services.
MSG
tail -n 0 -f "$LOGS"/*.log &
pids+=($!)
wait "${pids[0]}"
