#!/usr/bin/env bash
# The dashboard's part of the test command: installs what is missing (Debian's Chromium when we
# are root, the npm packages from package-lock.json), checks that the generated GraphQL types
# are current, then typecheck, Vitest, the production build, and the end-to-end run in real
# Chromium against a real `mini-xdr serve` (the debug binary `cargo test` built).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mini-xdr-target}"
export NATS_URL="${NATS_URL:-nats://127.0.0.1:4222}"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "dashboard tests need Node 20+ and npm (apt-get install nodejs npm)" >&2; exit 1
fi
chromium_path="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ ! -x "$chromium_path" ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "missing $chromium_path (apt-get install chromium)" >&2; exit 1
  fi
fi
binary="${MINI_XDR_BIN:-$CARGO_TARGET_DIR/debug/mini-xdr}"
[ -x "$binary" ] || cargo build --bin mini-xdr

cd dashboard
# npm's cache (~/.npm) is reused between runs; `npm ci` only installs what the lock file says.
npm ci --no-audit --no-fund --prefer-offline
npm run codegen:check
npm run typecheck
npm test
npm run build
MINI_XDR_BIN="$binary" CHROMIUM_PATH="$chromium_path" npm run e2e
