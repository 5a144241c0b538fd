#!/usr/bin/env bash
# `make fuzz`: schemathesis against a real gateway, with a time budget (FUZZ_SECONDS, default
# 150 s; CI runs it so). Installs schemathesis into .local/fuzz on first use (again when
# fuzz/requirements.txt changes), builds and starts the gateway binary on a free port with its
# own throwaway Redis, NATS subjects, JetStream stream and a fresh PostgreSQL database, registers
# an account and promotes it to admin so the fuzzer holds a token with every role, then runs
# the OpenAPI document's operations with schemathesis' checks (no 5xx but 503, every response
# as documented) and ours (fuzz/hooks.py: a rejected request changes nothing in Redis: no
# auction key, no listing set, no idempotency record but a bid's short-lived rejection).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_INCREMENTAL=0

venv=.local/fuzz
want=$(sha256sum fuzz/requirements.txt | cut -d' ' -f1)
if [ ! -x "$venv/bin/schemathesis" ] || [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
    echo "== installing fuzz/requirements.txt into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r fuzz/requirements.txt
    echo "$want" > "$venv/.requirements.sha256"
fi

cargo build --quiet -p api-gateway --bin api-gateway
run_id="fuzz$(date +%s)$$"
port=$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# Its own throwaway Redis: the rejected-request check scans every auction key before and
# after each call, which must not walk the shared instance's keys (nor race other users).
redis_port=$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis_dir=$(mktemp -d)
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$redis_dir" --save "" --appendonly no \
    --daemonize no > "$redis_dir/redis.log" 2>&1 &
redis=$!
psql -q -h 127.0.0.1 -U postgres -d postgres -c "create database $run_id"
export LISTEN_ADDR="127.0.0.1:$port"
export REDIS_URL="redis://127.0.0.1:$redis_port"
export REDIS_KEY_PREFIX="$run_id:"
export NATS_URL=nats://127.0.0.1:4222
export SUBJECT_PREFIX="$run_id"
export ARCHIVE_STREAM="${run_id^^}_ARCHIVE"
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$run_id"
# Generous per-user bid limit: the fuzzer bids as one account.
export BID_RATE_PER_USER=1000 BID_BURST_PER_USER=1000 AUTH_ATTEMPTS_PER_IP_PER_MINUTE=100000
# Read by the gateway and by fuzz/hooks.py (a rejected bid's idempotency record may live this long).
export IDEMPOTENCY_REJECTION_TTL_SECS=60
export LOG_FORMAT=json
log=".local/fuzz-gateway.log"
target/debug/api-gateway > "$log" 2>&1 &
gateway=$!
cleanup() {
    kill "$gateway" 2>/dev/null || true
    wait "$gateway" 2>/dev/null || true
    kill "$redis" 2>/dev/null || true
    wait "$redis" 2>/dev/null || true
    rm -rf "$redis_dir"
    psql -q -h 127.0.0.1 -U postgres -d postgres -c "drop database if exists $run_id with (force)" || true
}
trap cleanup EXIT
for _ in $(seq 50); do
    redis-cli -p "$redis_port" ping > /dev/null 2>&1 && break
    sleep 0.1
done
base="http://127.0.0.1:$port"
for _ in $(seq 100); do
    curl -fs "$base/ready" > /dev/null && break
    sleep 0.2
done
curl -fs "$base/ready" > /dev/null || { echo "gateway not ready"; cat "$log"; exit 1; }
# The accounts schema migrates in the background and registration answers 503 until then
# (`/ready` does not wait for it: bids do not need it). On a fresh database and a loaded
# machine that takes a while, so wait for `"accounts":"up"` before registering.
for _ in $(seq 300); do
    curl -s "$base/ready" | grep -q '"accounts":"up"' && break
    sleep 0.2
done
curl -s "$base/ready" | grep -q '"accounts":"up"' || {
    echo "the accounts database did not become ready: $(curl -s "$base/ready")"; cat "$log"; exit 1; }

# A set-up call that fails says what it got, not only curl's exit code.
setup_call() {
    local what=$1 out code
    shift
    out=$(curl -s -w '\n%{http_code}' "$@") || { echo "$what: curl failed"; exit 1; }
    code=${out##*$'\n'}
    case $code in
        2??) printf '%s' "${out%$'\n'*}" ;;
        *) echo "$what: HTTP $code: ${out%$'\n'*}" >&2; exit 1 ;;
    esac
}

password="fuzz-$(date +%s%N)-Password"
setup_call "registering the fuzzer" -X POST "$base/api/v1/auth/register" \
    -H 'content-type: application/json' \
    -d "{\"username\":\"fuzzer\",\"display_name\":\"Fuzzer\",\"password\":\"$password\"}" > /dev/null
target/debug/api-gateway promote-admin fuzzer > /dev/null
login=$(setup_call "signing the fuzzer in" -X POST "$base/api/v1/auth/login" \
    -H 'content-type: application/json' -d "{\"login\":\"fuzzer\",\"password\":\"$password\"}")
token=$(printf '%s' "$login" | "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')

# Auctions for the rejected-request check to watch (the fuzzer's own creates are mostly refused).
end_time=$(date -u -d '+7 days' +%Y-%m-%dT%H:%M:%SZ)
for lot in fuzz-lot-1 fuzz-lot-2; do
    setup_call "creating $lot" -X POST "$base/api/v1/items" -H "authorization: Bearer $token" \
        -H 'content-type: application/json' \
        -d "{\"id\":\"$lot\",\"name\":\"Fuzz lot\",\"starting_price\":10,\"end_time\":\"$end_time\"}" > /dev/null
done

echo "== schemathesis against $base for ${FUZZ_SECONDS:-150} s"
report="$redis_dir/compared"
FUZZ_REPORT="$report" SCHEMATHESIS_HOOKS=hooks PYTHONPATH=fuzz timeout --signal=INT "${FUZZ_SECONDS:-150}" \
    "$venv/bin/schemathesis" run "$base/api/v1/openapi.json" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,no_5xx_but_503,rejected_request_changes_nothing \
    --exclude-checks not_a_server_error \
    --workers 1 --seed "${FUZZ_SEED:-2026}" --max-examples "${FUZZ_EXAMPLES:-100}" \
    --generation-allow-x00 true --request-timeout 5 \
    || status=$?
status=${status:-0}
# `timeout` ends a run that used its whole budget (124): that is a bounded run, not a failure.
if [ "$status" -eq 124 ] || [ "$status" -eq 130 ]; then
    echo "== fuzz budget used up; no failure so far"
    status=0
fi
read -r rejections with_items < "$report" || { echo "no rejection was checked"; exit 1; }
echo "== $rejections rejected requests checked against Redis, $with_items with items present"
if [ "$status" -eq 0 ] && [ "$with_items" -eq 0 ]; then
    echo "no rejected request was checked against a state holding an item: the check proved nothing"
    status=1
fi
exit "$status"
