#!/usr/bin/env bash
# Start the whole system locally with demo-ready defaults: services, database, `mini-xdr serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mini-xdr-target}"
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/mini_xdr}"
export NATS_URL="${NATS_URL:-nats://127.0.0.1:4222}"
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
# The console at / (XDR_DASHBOARD_DIR defaults to dashboard/dist); skipped with a note when
# Node is not installed: the API works without it.
if command -v npm >/dev/null; then
  (cd dashboard && npm ci --no-audit --no-fund --prefer-offline && npm run build)
else
  echo "npm not found: the dashboard is not built (the API still runs; / says how to build it)" >&2
fi
cargo build --release --bin mini-xdr
exec "$CARGO_TARGET_DIR/release/mini-xdr" serve
