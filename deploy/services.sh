#!/usr/bin/env bash
# Make sure PostgreSQL (127.0.0.1:5432, trust auth) and NATS with JetStream (127.0.0.1:4222)
# answer. Starts them when they are installed but down; installs them on a fresh Debian machine.
set -euo pipefail

log() { printf '[services] %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

need_root() {
  if [ "$(id -u)" != 0 ]; then
    log "must run as root to install or start $1"; exit 1
  fi
}

ensure_postgres() {
  if command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; then return; fi
  need_root PostgreSQL
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    log "installing PostgreSQL"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    local hbas=(/etc/postgresql/*/main/pg_hba.conf)
    local hba="${hbas[0]}"
    # Local development and CI only: trust connections from this machine.
    sed -i -E 's/^(local|host)(\s+all\s+all\s+.*)\s(peer|scram-sha-256|md5)$/\1\2 trust/' "$hba"
  fi
  log "starting PostgreSQL"
  local versions=(/etc/postgresql/*/)
  local version="${versions[0]%/}"
  pg_ctlcluster --skip-systemctl-redirect "${version##*/}" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && return; sleep 1; done
  log "PostgreSQL did not come up"; exit 1
}

ensure_nats() {
  if port_open 4222; then return; fi
  need_root NATS
  if [ ! -x /usr/sbin/nats-server ]; then
    log "installing nats-server"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server >/dev/null
  fi
  log "starting NATS with JetStream"
  mkdir -p /var/lib/nats-server
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
  for _ in $(seq 1 30); do port_open 4222 && return; sleep 1; done
  log "NATS did not come up"; exit 1
}

ensure_postgres
ensure_nats
log "PostgreSQL and NATS are up"
