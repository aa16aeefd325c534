#!/usr/bin/env bash
# The local demo stack behind `make run` / `make stop`: a private PostgreSQL,
# slapd with the demo directory, and roomgate, all on loopback, all state
# under .data/ in the checkout (git-ignored).
#
# Usage: deploy/dev/stack.sh start|stop|status
# Ports (environment): ROOMGATE_DEV_HTTP_PORT (8080), ROOMGATE_DEV_PG_PORT
# (55432), ROOMGATE_DEV_LDAP_PORT (3389), ROOMGATE_DEV_LDAPS_PORT (6636).
# Binary: ROOMGATE_BIN (build/rel/roomgate). Data: ROOMGATE_DEV_DATA (.data).
set -euo pipefail

PROG=stack
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=deploy/dev/lib.sh
. "$here/lib.sh"

data=${ROOMGATE_DEV_DATA:-$root/.data}
http_port=${ROOMGATE_DEV_HTTP_PORT:-8080}
pg_port=${ROOMGATE_DEV_PG_PORT:-55432}
ldap_port=${ROOMGATE_DEV_LDAP_PORT:-3389}
ldaps_port=${ROOMGATE_DEV_LDAPS_PORT:-6636}
bin=${ROOMGATE_BIN:-$root/build/rel/roomgate}
pidfile=$data/roomgate.pid
logfile=$data/roomgate.log
ini=$data/roomgate.ini

rg_pid() {
  local pid
  [[ -r $pidfile ]] || return 1
  pid=$(cat "$pidfile")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  # only our process: same binary name, still alive
  [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'roomgate serve' || return 1
  printf '%s' "$pid"
}

write_config() {
  local tmp
  # shellcheck disable=SC1091
  . "$data/pg/env"
  # shellcheck disable=SC1091
  . "$data/ldap/env"
  tmp=$(mktemp "$data/roomgate.ini.XXXXXX")
  chmod 0600 "$tmp"
  cat >"$tmp" <<EOF
; Written by deploy/dev/stack.sh for the local demo stack; rewritten on
; every start. See README.md for every setting.
[server]
listen = 127.0.0.1
port = $http_port
public_url = http://127.0.0.1:$http_port
node_name = dev

[database]
url = $PG_URL
migrate_on_start = true

[ldap]
uri = $LDAP_URI
bind_dn = $LDAP_BIND_DN
bind_password = $LDAP_BIND_PASSWORD
base_dn = $LDAP_BASE_DN

[keys]
file = $data/server.keys
EOF
  mv "$tmp" "$ini"
}

wait_ready() {
  local i
  for i in $(seq 1 100); do
    if curl -fsS -o /dev/null --noproxy '*' "http://127.0.0.1:$http_port/readyz" 2>/dev/null; then
      return 0
    fi
    if ! rg_pid >/dev/null; then
      warn "roomgate exited; last lines of $logfile:"
      tail -n 20 "$logfile" >&2 || true
      return 1
    fi
    sleep 0.2
    : "$i"
  done
  warn "roomgate did not become ready within 20 s; last lines of $logfile:"
  tail -n 20 "$logfile" >&2 || true
  return 1
}

cmd_start() {
  local pid
  if pid=$(rg_pid); then
    say "already running: roomgate (pid $pid) on http://127.0.0.1:$http_port/"
    say "nothing to do; to restart with a fresh build: make stop && make run"
    exit 0
  fi
  [[ -x $bin ]] || die "$bin is missing: build it first (make)"
  mkdir -p "$data"
  chmod 0755 "$data"
  need_free_port "$http_port" "roomgate HTTP; set ROOMGATE_DEV_HTTP_PORT to use another"

  "$here/pg.sh" start "$data/pg" "$pg_port"
  "$here/slapd.sh" start "$data/ldap" "$ldap_port" "$ldaps_port"
  if [[ ! -e $data/server.keys ]]; then
    "$bin" keygen -o "$data/server.keys" >/dev/null
    say "made server keys in $data/server.keys"
  fi
  write_config

  # setsid: the service outlives this shell and a Ctrl-C in its terminal.
  setsid "$bin" serve -c "$ini" >>"$logfile" 2>&1 </dev/null &
  echo $! >"$pidfile"
  wait_ready || { cmd_stop >/dev/null 2>&1 || true; die "roomgate failed to start"; }

  # shellcheck disable=SC1091
  . "$data/ldap/env"
  cat <<EOF

roomgate is running on loopback:
  roomgate     http://127.0.0.1:$http_port/   (pid $(cat "$pidfile"), log: $logfile)
  readiness    curl http://127.0.0.1:$http_port/readyz
  metrics      curl http://127.0.0.1:$http_port/metrics
  PostgreSQL   127.0.0.1:$pg_port   (credentials in $data/pg/env)
  slapd        $LDAP_URI  and  $LDAPS_URI   (base $LDAP_BASE_DN; credentials in $data/ldap/env)
  config       $ini

Demo directory users (password for all: $LDAP_DEMO_PASSWORD):
  alice    meeting-allowed, engineering, meeting-hosts
  bob      meeting-allowed
  carol    meeting-allowed, compliance
  dave     engineering only (not in meeting-allowed)
  mallory  meeting-allowed, but the account is locked
  trent    meeting-allowed, directory-admins
  user01 .. user35   meeting-allowed (user01-10 also engineering; user01-02 hosts; user03 compliance)

Meetings, codes and SSO sign-in arrive with the next issues; until then the
stack serves /healthz, /readyz and /metrics.

Stop everything with: make stop
EOF
}

cmd_stop() {
  local pid i
  if pid=$(rg_pid); then
    kill -TERM "$pid"
    for i in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
      : "$i"
    done
    if kill -0 "$pid" 2>/dev/null; then
      warn "roomgate (pid $pid) did not stop within 10 s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    say "stopped roomgate (pid $pid)"
  else
    say "roomgate is not running"
  fi
  rm -f "$pidfile"
  if [[ -d $data/ldap ]]; then "$here/slapd.sh" stop "$data/ldap"; fi
  if [[ -d $data/pg ]]; then "$here/pg.sh" stop "$data/pg"; fi
}

cmd_status() {
  local pid rc=0
  if pid=$(rg_pid); then
    say "roomgate running (pid $pid) on http://127.0.0.1:$http_port/"
  else
    say "roomgate not running"
    rc=1
  fi
  if [[ -d $data/pg ]]; then "$here/pg.sh" status "$data/pg" || rc=1; fi
  if [[ -d $data/ldap ]]; then "$here/slapd.sh" status "$data/ldap" || rc=1; fi
  return $rc
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
*)
  echo "usage: $0 start|stop|status" >&2
  exit 2
  ;;
esac
