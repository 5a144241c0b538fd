# The two commands a newcomer needs are `make run` and `make test`; the rest are for developers.

.PHONY: run test test-web stack stack-down lint bench-write bench-write-proxy bench-archive bench-fanout \
	bench-fanout-floor bench-close bench-listing bench-write-floor bench-fanout-nchan bench experiments \
	contention fanout resilience infra-check cluster cluster-down \
	cluster-status cluster-experiment bench-cluster fuzz

## Start Redis/NATS/PostgreSQL if needed, build, run every service with a demo auction.
run:
	infrastructure/local/run.sh

## The whole test suite against real Redis, NATS and PostgreSQL (the cluster suite starts its
## own throwaway Redis Cluster, NATS cluster, services and HAProxy with cluster.sh), then the
## web app's browser tests in headless Chromium (web/e2e/run.sh installs chromium and
## playwright-core when absent).
test: stack
	infrastructure/local/cluster.sh install
	infrastructure/local/nchan.sh install
	cargo test --workspace --all-targets
	web/e2e/run.sh

## Only the web app's browser tests (about a minute); UPDATE_SCREENSHOTS=1 retakes docs/screenshots/.
test-web: stack
	web/e2e/run.sh

## Fuzzing, bounded (CI runs it): schemathesis against a real gateway from its OpenAPI document
## (no 5xx but 503, responses as documented, a rejected request changes nothing in Redis;
## FUZZ_SECONDS, default 150), then the seeded WebSocket fuzz with more frames (WS_FUZZ_FRAMES).
fuzz: stack
	fuzz/run.sh
	WS_FUZZ_FRAMES=$${WS_FUZZ_FRAMES:-3000} cargo test -p broadcast-service --test ws -- fuzz::

## Make Redis, NATS (JetStream) and PostgreSQL available on loopback.
stack:
	infrastructure/local/stack.sh up

## Stop what `make stack` started (never services it found running).
stack-down:
	infrastructure/local/stack.sh down

## The production topology on loopback: a 3-master + 3-replica Redis Cluster, a 3-node NATS
## JetStream cluster, a fresh database, two gateways, two broadcast instances and two workers
## behind HAProxy; writes .local/cluster/env (GATEWAY_URL, BROADCAST_URL, REDIS_URL, NATS_URL).
cluster:
	cargo build --release -p api-gateway -p broadcast-service -p archival-worker
	infrastructure/local/cluster.sh up

## Stop what `make cluster` started (by its pid files) and drop its database.
cluster-down:
	infrastructure/local/cluster.sh down

cluster-status:
	infrastructure/local/cluster.sh status

## The guarantees on a throwaway cluster of its own: the whole path, then a Redis master (with
## and without durable accept), a NATS node, a gateway and a broadcast instance killed under
## load; report in bench/results/cluster/ (a short run of it is part of `make test`).
cluster-experiment:
	cargo build --release -p api-gateway -p broadcast-service -p archival-worker -p load-tests
	target/release/load-tests cluster --bin-dir target/release --rate 300 --phase-secs 8 \
		--out-dir bench/results/cluster

## One Redis and NATS server against the local cluster (and the cluster with durable accept),
## in one run: 64 bidders on one hot item, the same over 200 items, 10,000 viewers of one item;
## bids/s, p99 and the ratios in bench/results/cluster-bench.json.
bench-cluster:
	cargo build --release -p api-gateway -p broadcast-service -p load-tests
	target/release/load-tests bench-cluster --bin-dir target/release --users 64 --items 200 \
		--duration-secs 10 --viewers 10000 --out bench/results/cluster-bench.json

## Offline checks of the deployment (infrastructure/docker, compose, terraform): terraform fmt,
## checkov, hadolint, the image build script and the wiring checker; installs its pinned tools
## into .local/ the first time.
infra-check:
	infrastructure/check/run.sh

## Formatting and lints, as CI expects them, and no two modules of a crate importing each other.
lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	python3 -m unittest discover -q -s tools -p "test_*.py"
	python3 tools/module_cycles.py

## Contended write throughput and latency (64 and 256 clients on one item), with and without
## the gateway's price pre-filter, every bid with a real access token; the first run also
## compares 64 clients with tokens against a gateway in AUTH_MODE=open (token verification's
## cost, `auth_comparison` in write.json); results in bench/results/.
bench-write: stack
	cargo build --release -p api-gateway -p load-tests
	target/release/load-tests bench-write --gateway-bin target/release/api-gateway \
		--clients 64,256 --duration-secs 10 --compare-open-clients 64 \
		--out bench/results/write.json
	PRICE_PREFILTER=false target/release/load-tests bench-write \
		--gateway-bin target/release/api-gateway \
		--clients 64,256 --duration-secs 10 --out bench/results/write-no-prefilter.json

## Proxy bidding under contention (issue 16): the hot item with half the bidders bidding with a
## maximum, their bids/s and p99 against the plain bids of the same run (`proxy_comparison` of
## each level); every bid through Redis (pre-filter off); result in bench/results/write-proxy.json.
bench-write-proxy: stack
	cargo build --release -p api-gateway -p load-tests
	PRICE_PREFILTER=false target/release/load-tests bench-write \
		--gateway-bin target/release/api-gateway --proxy-bidders \
		--clients 64,256 --duration-secs 10 --out bench/results/write-proxy.json

## The write path against its floor (issue 18): bench-write's hot-item load (64 and 256 goose
## clients, real access tokens, per-user limit off) against the gateway as deployed and against
## a floor server in load-tests (the same HTTP stack and token check, a JSON parse, one EVALSHA
## of a compare-and-set on the same Redis), alternately gateway, floor, floor, gateway; the
## medians and their ratio in bench/results/write-floor.json.
bench-write-floor: stack
	cargo build --release -p api-gateway -p load-tests
	target/release/load-tests bench-write-floor --gateway-bin target/release/api-gateway \
		--clients 64,256 --duration-secs 10 --out bench/results/write-floor.json

## Archive drain rate (200,000-event JetStream backlog into PostgreSQL) and accepted-bid-to-row
## delay at a steady 5,000 bids/s; result in bench/results/archive.json.
bench-archive: stack
	cargo build --release -p api-gateway -p archival-worker -p load-tests
	target/release/load-tests bench-archive --worker-bin target/release/archival-worker \
		--gateway-bin target/release/api-gateway --out bench/results/archive.json

## WebSocket fan-out: 1,000, 10,000 and 50,000 viewers on one item (several broadcast instances
## and client processes from 127.0.0.x addresses), bids at a steady rate; delivery ratio,
## POST-to-receipt latency, memory per idle viewer; result in bench/results/fanout.json.
bench-fanout: stack
	cargo build --release -p api-gateway -p broadcast-service -p load-tests
	target/release/load-tests bench-fanout --gateway-bin target/release/api-gateway \
		--broadcast-bin target/release/broadcast-service --out bench/results/fanout.json

## Fan-out against nginx + nchan (issue 18): Debian's libnginx-mod-nchan (installed by
## infrastructure/local/nchan.sh when absent), one worker, a throwaway config on a free port;
## 10,000 viewers of one item with bench-fanout's viewers client and layout, 20 events 200 ms
## apart; ours, nchan, nchan, ours, twice (a single pair's ratio ranged 0.80-1.45 in one hour
## here); medians of p99 and memory per idle viewer, the ratios in bench/results/fanout-nchan.json.
bench-fanout-nchan: stack
	infrastructure/local/nchan.sh install
	cargo build --release -p api-gateway -p broadcast-service -p load-tests
	target/release/load-tests bench-fanout-nchan --gateway-bin target/release/api-gateway \
		--broadcast-bin target/release/broadcast-service --viewers 10000 --rate 5 \
		--duration-secs 4 --pairs 2 --out bench/results/fanout-nchan.json

## Every benchmark with a peer or floor, then bench/results/SUMMARY.md (one table of them all,
## with the figures of the benches not re-run here from their last results); about 12 minutes.
bench: bench-write-floor bench-fanout-nchan bench-fanout-floor bench-fanout bench-write
	target/release/load-tests bench-summary --results bench/results --out bench/results/SUMMARY.md

## The floor under bench-fanout: the same layout (1,000, 10,000 and 50,000 sockets, writer and
## reader processes from 127.0.0.x addresses) in plain TCP, one non-blocking write per socket per
## event, 2 events/s; receipt latency and cost per socket. No services, no stack; result in
## bench/results/fanout-floor.json.
bench-fanout-floor:
	cargo build --release -p load-tests
	target/release/load-tests fanout-floor --out bench/results/fanout-floor.json

## 10,000 auctions ending within one second, watched over WebSockets: delay from each end time
## to a viewer's auction_closed; result in bench/results/close.json.
bench-close: stack
	cargo build --release -p api-gateway -p broadcast-service -p load-tests
	target/release/load-tests bench-close --gateway-bin target/release/api-gateway \
		--broadcast-bin target/release/broadcast-service --out bench/results/close.json

## The item listing over 20,000 auctions: `?limit=10` and a name search one at a time, then the
## bid latency of 16 bidders alone, with 4 clients listing, and alone again: closed loop
## (bench/results/listing.json), then paced at 1,000 bids/s (bench/results/listing-paced.json).
bench-listing: stack
	cargo build --release -p api-gateway -p load-tests
	target/release/load-tests bench-listing --gateway-bin target/release/api-gateway \
		--items 20000 --listers 4 --out bench/results/listing.json
	target/release/load-tests bench-listing --gateway-bin target/release/api-gateway \
		--items 20000 --listers 4 --bid-rate 1000 --out bench/results/listing-paced.json

## The gateway's Lua and optimistic (WATCH/MULTI/EXEC) Redis strategies side by side: 16, 64
## and 256 bidders on one item and a mixed workload over 200 items, each checked for lost
## updates and for the outbox; report in bench/results/contention/.
contention: stack
	cargo build --release -p api-gateway -p load-tests
	target/release/load-tests contention --gateway-bin target/release/api-gateway \
		--users 16,64,256 --duration-secs 10 --out-dir bench/results/contention
## Kill NATS, PostgreSQL, the worker, the broadcast service, a gateway and Redis in turn for
## 10 s under a steady load (its own throwaway Redis/NATS/PostgreSQL, never the shared ones):
## availability, errors, recovery time, loss check; report in bench/results/resilience/.
resilience:
	cargo build --release -p api-gateway -p broadcast-service -p archival-worker -p load-tests
	target/release/load-tests resilience --gateway-bin target/release/api-gateway \
		--broadcast-bin target/release/broadcast-service \
		--worker-bin target/release/archival-worker --out-dir bench/results/resilience

## WebSocket fan-out experiment: 1,000, 10,000 and 50,000 viewers on one item, bids at a
## steady rate; delivery, latency CDF, memory per viewer; report in bench/results/fanout/.
fanout: stack
	cargo build --release -p api-gateway -p broadcast-service -p load-tests
	target/release/load-tests fanout --gateway-bin target/release/api-gateway \
		--broadcast-bin target/release/broadcast-service --out-dir bench/results/fanout

## The three experiments, at the scale load-tests/RESULTS.md reports (about 10 minutes on
## 2 cores); each exits non-zero when its correctness check fails.
experiments: contention fanout resilience
