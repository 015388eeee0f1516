#!/usr/bin/env bash
# Start the whole system locally with demo-ready defaults: services, database, `mini-xdr serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mini-xdr-target}"
# The schema owner: migrations and the operator's tools. The roles themselves connect as two
# logins that own nothing (created below, passwords in .dev-secrets).
export XDR_MIGRATE_DATABASE_URL="${XDR_MIGRATE_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/mini_xdr}"
# The demo's NATS runs the shipped per-role identities (deploy/nats), on a port of its own
# beside the unauthenticated development server services.sh keeps on 4222 for the tests.
nats_port="${XDR_DEV_NATS_PORT:-4223}"
export NATS_URL="${NATS_URL:-nats://127.0.0.1:$nats_port}"
export XDR_BIND="${XDR_BIND:-127.0.0.1:8000}"

bash deploy/services.sh
owner_url="$XDR_MIGRATE_DATABASE_URL"
db_name="${owner_url##*/}"
db_name="${db_name%%\?*}"
if ! psql "${owner_url%/*}/postgres" -Atc "SELECT 1 FROM pg_database WHERE datname = '$db_name'" | grep -q 1; then
  psql "${owner_url%/*}/postgres" -qc "CREATE DATABASE \"$db_name\""
fi
# A development secret, generated once and kept out of git; set JWT_SECRET_KEY to use your own.
secret_file=".dev-secrets"
random_hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }
# The two database logins' passwords, generated once (also into an older .dev-secrets).
touch "$secret_file"
for var in XDR_DEV_DB_API_PASSWORD XDR_DEV_DB_WORKER_PASSWORD; do
  grep -q "^$var=" "$secret_file" || printf '%s=%s\n' "$var" "$(random_hex 24)" >> "$secret_file"
done
dev_secret() { grep "^$1=" "$secret_file" | head -1 | cut -d= -f2-; }
if [ -z "${JWT_SECRET_KEY:-}" ]; then
  grep -q '^JWT_SECRET_KEY=' "$secret_file" ||
    printf 'JWT_SECRET_KEY=%s\nENCRYPTION_KEY=%s\n' "$(random_hex 32)" "$(random_hex 32)" >> "$secret_file"
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
# Migrate as the owner (it creates the groups xdr_api and xdr_worker), then the demo's
# logins exactly as an operator makes them (deploy/db-logins.sql, docs/OPERATIONS.md).
"$CARGO_TARGET_DIR/release/mini-xdr" migrate
api_password="$(dev_secret XDR_DEV_DB_API_PASSWORD)"
worker_password="$(dev_secret XDR_DEV_DB_WORKER_PASSWORD)"
psql "$owner_url" -q -v ON_ERROR_STOP=1 \
  -v api_login=mini_xdr_api -v api_password="$api_password" \
  -v worker_login=mini_xdr_worker -v worker_password="$worker_password" \
  -f deploy/db-logins.sql
db_server="${owner_url#*://}"
db_server="${db_server#*@}"
export XDR_API_DATABASE_URL="postgres://mini_xdr_api:$api_password@$db_server"
export DATABASE_URL="postgres://mini_xdr_worker:$worker_password@$db_server"
exec "$CARGO_TARGET_DIR/release/mini-xdr" serve
