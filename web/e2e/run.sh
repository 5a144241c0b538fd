#!/usr/bin/env bash
# The web app's browser tests (part of `make test`): Debian's chromium and Node.js with npm
# (installed with the project's apt_install when absent: sudo when not root, apt-get update
# first), playwright-core from npm (no browser download; the locked version accepts Node 18, so
# Debian 12's own nodejs is enough), the services' debug binaries, then node's test runner.
# Needs the stack (`make stack`); each run starts its own services on free ports with a fresh
# database and removes what it made. E2E_BIN_DIR picks other binaries.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck disable=SC2034 # read by common.sh's messages
SCRIPT_NAME=e2e
# shellcheck source=infrastructure/local/common.sh
source "$ROOT/infrastructure/local/common.sh"
cd "$ROOT/web/e2e"

command -v chromium >/dev/null 2>&1 || apt_install chromium
missing=()
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
# The oldest Node with everything used here (fetch, the test runner's --test-concurrency).
node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 18 || (a === 18 && b >= 19) ? 0 : 1)' ||
  die "node $(node --version) is too old for the browser tests: they need Node 18.19 or newer"
if [ "$(node -p 'require("./node_modules/playwright-core/package.json").version' 2>/dev/null)" != \
     "$(node -p 'require("./package-lock.json").packages["node_modules/playwright-core"].version')" ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
if [ -z "${E2E_BIN_DIR:-}" ]; then
  cargo build -p api-gateway -p broadcast-service -p archival-worker
fi
# Explicit files: Node 22 and later take a bare directory argument as a file and fail.
exec node --test --test-concurrency=1 --test-reporter=spec tests/*.test.js
