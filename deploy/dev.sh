#!/usr/bin/env bash
# Start the whole system locally with demo-ready defaults: services, database, `mini-xdr serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mini-xdr-target}"
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/mini_xdr}"
# The demo's NATS runs the shipped per-role identities (deploy/nats), on a port of its own
# beside the unauthenticated development server services.sh keeps on 4222 for the tests.
nats_port="${XDR_DEV_NATS_PORT:-4223}"
export NATS_URL="${NATS_URL:-nats://127.0.0.1:$nats_port}"
export XDR_BIND="${XDR_BIND:-127.0.0.1:8000}"

bash deploy/services.sh
db_name="${DATABASE_URL##*/}"
db_name="${db_name%%\?*}"
if ! psql "${DATABASE_URL%/*}/postgres" -Atc "SELECT 1 FROM pg_database WHERE datname = '$db_name'" | grep -q 1; then
  psql "${DATABASE_URL%/*}/postgres" -qc "CREATE DATABASE \"$db_name\""
fi
# A development secret, generated once and kept out of git; set JWT_SECRET_KEY to use your own.
secret_file=".dev-secrets"
if [ -z "${JWT_SECRET_KEY:-}" ]; then
  [ -f "$secret_file" ] || printf 'JWT_SECRET_KEY=%s\nENCRYPTION_KEY=%s\n' \
    "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$secret_file"
  # Generated just above and kept out of git, so shellcheck cannot read it.
  set -a
  # shellcheck source=/dev/null
  . "./$secret_file"
  set +a
fi
# One NATS password per role, generated once and kept out of git; the server and `serve` (one
# connection per role) read the same variables. `mini-xdr ingest` needs the producer's.
nats_secret_file=".dev-nats-secrets"
if [ ! -f "$nats_secret_file" ]; then
  for role in PRODUCER INGESTOR RELAY DETECTOR API SCHEDULER; do
    printf 'XDR_NATS_%s_PASSWORD=%s\n' "$role" "$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  done > "$nats_secret_file"
fi
set -a
# shellcheck source=/dev/null
. "./$nats_secret_file"
set +a
if ! (exec 3<>"/dev/tcp/127.0.0.1/$nats_port") 2>/dev/null; then
  nats_server="$(command -v nats-server || echo /usr/sbin/nats-server)"
  mkdir -p .dev-nats
  "$nats_server" -c deploy/nats/nats-server.conf -a 127.0.0.1 -p "$nats_port" -sd .dev-nats \
    -l .dev-nats/nats-server.log &
  for _ in $(seq 1 30); do (exec 3<>"/dev/tcp/127.0.0.1/$nats_port") 2>/dev/null && break; sleep 1; done
fi
# The console at / (XDR_DASHBOARD_DIR defaults to dashboard/dist); skipped with a note when
# Node is not installed: the API works without it.
if command -v npm >/dev/null; then
  (cd dashboard && npm ci --no-audit --no-fund --prefer-offline && npm run build)
else
  echo "npm not found: the dashboard is not built (the API still runs; / says how to build it)" >&2
fi
cargo build --release --bin mini-xdr
exec "$CARGO_TARGET_DIR/release/mini-xdr" serve
