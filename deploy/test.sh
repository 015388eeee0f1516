#!/usr/bin/env bash
# The test command: formatting, lints, then every test against real PostgreSQL and NATS.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mini-xdr-target}"
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export NATS_URL="${NATS_URL:-nats://127.0.0.1:4222}"

bash deploy/services.sh
# Tools the tests call: shellcheck (every script must be clean), openssl and curl (the TLS
# test makes a certificate and speaks HTTPS), nft, iptables, ip and socat (the agent's
# firewall backends, tested in private network namespaces), promtool (the shipped alert
# rules, from Debian's prometheus package). Installed here when missing and we are root.
missing=()
for tool in shellcheck openssl curl; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
command -v nft >/dev/null || missing+=(nftables)
command -v iptables >/dev/null || missing+=(iptables)
command -v ip >/dev/null || missing+=(iproute2)
command -v socat >/dev/null || missing+=(socat)
command -v promtool >/dev/null || missing+=(prometheus)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "missing tools: ${missing[*]} (apt-get install ${missing[*]})" >&2; exit 1
  fi
fi
shellcheck deploy/*.sh deploy/aws/*.sh tests/fixtures/fakebin/*
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
# The console: codegen current, typecheck, Vitest, build, end to end in Chromium (needs the
# debug binary `cargo test` just built).
bash deploy/dashboard-test.sh
