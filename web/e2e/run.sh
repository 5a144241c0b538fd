#!/usr/bin/env bash
# The web app's browser tests (part of `make test`): Debian's chromium (installed with apt-get
# when absent), playwright-core from npm (no browser download), the services' debug binaries,
# then node's test runner. Needs the stack (`make stack`); each run starts its own services on
# free ports with a fresh database and removes what it made. E2E_BIN_DIR picks other binaries.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT/web/e2e"

if ! command -v chromium >/dev/null 2>&1; then
  echo "installing Debian's chromium for the browser tests…"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if ! command -v node >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
if [ ! -d node_modules/playwright-core ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
if [ -z "${E2E_BIN_DIR:-}" ]; then
  cargo build -p api-gateway -p broadcast-service -p archival-worker
fi
exec node --test --test-concurrency=1 --test-reporter=spec tests/
