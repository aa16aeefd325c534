#!/usr/bin/env bash
# A private PostgreSQL 15 cluster for the local stack and the tests.
#
# Usage: deploy/dev/pg.sh start DIR [PORT]
#        deploy/dev/pg.sh stop DIR
#        deploy/dev/pg.sh status DIR
#
# start  creates the cluster on first use (scram-sha-256 everywhere, random
#        passwords; role "roomgate" owns database "roomgate" and runs the
#        migrations, login role "roomgate_app" in the NOLOGIN group role
#        "roomgate_service" is what the service connects as), then starts
#        it on 127.0.0.1:PORT. Without PORT it reuses the saved port, or
#        picks a free one for a new cluster. A DIR made before the service
#        role existed is given it (and its grants) on its next start. Writes
#        DIR/env (see README.md).
# stop   fast shutdown; succeeds when nothing is running.
# status exit 0 when running, 1 when not.
#
# Layout: DIR/pgdata (the cluster), DIR/postgresql.log, DIR/run (socket
# directory, or a short /tmp directory when DIR is too long for a socket
# path), DIR/env. PostgreSQL refuses to run as root, so when this script
# runs as root the server runs as the Debian package's "postgres" user, which
# then owns DIR; DIR/env stays owned by the caller.
#
# Environment: PG_BINDIR overrides where initdb/pg_ctl/psql are found.
set -euo pipefail

# shellcheck disable=SC2034 # message prefix, used by lib.sh
PROG=pg
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  echo "usage: $0 start DIR [PORT] | stop DIR | status DIR" >&2
  exit 2
}

# find_bindir: the PostgreSQL server binaries. pg_config from libpq-dev
# points at the server's bindir on Debian; fall back to the newest
# /usr/lib/postgresql/N/bin.
find_bindir() {
  local d
  if [[ -n ${PG_BINDIR:-} ]]; then
    [[ -x $PG_BINDIR/initdb ]] || die "PG_BINDIR=$PG_BINDIR has no initdb"
    printf '%s' "$PG_BINDIR"
    return
  fi
  if command -v pg_config >/dev/null 2>&1; then
    d=$(pg_config --bindir 2>/dev/null || true)
    if [[ -n $d && -x $d/initdb && -x $d/pg_ctl ]]; then
      printf '%s' "$d"
      return
    fi
  fi
  local -a cands=(/usr/lib/postgresql/15/bin)
  mapfile -t -O 1 cands < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r)
  for d in "${cands[@]}"; do
    if [[ -x $d/initdb && -x $d/pg_ctl ]]; then
      printf '%s' "$d"
      return
    fi
  done
  die "PostgreSQL server binaries not found (looked at pg_config --bindir and /usr/lib/postgresql/*/bin); run deploy/install-deps.sh"
}

# as_pg CMD...: run CMD as the user that owns the cluster.
as_pg() {
  if [[ $EUID -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# pg_put FILE: write stdin to FILE (mode 0600) as the cluster owner.
pg_put() {
  # shellcheck disable=SC2016 # $1 is for the inner shell
  as_pg sh -c 'umask 077 && cat >"$1"' sh "$1"
}

# running: 0 when the postmaster of $PGDATA is alive.
running() {
  [[ -f $PGDATA/PG_VERSION ]] && as_pg "$BIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1
}

setup() {
  DIR=$(abs_dir "$1")
  [[ $DIR =~ ^[A-Za-z0-9._/+@,=-]+$ ]] ||
    die "DIR may only contain letters, digits and . _ / + @ , = - (it ends up in config files and URLs): $DIR"
  BIN=$(find_bindir)
  PGDATA=$DIR/pgdata
  ENVF=$DIR/env
  LOG=$DIR/postgresql.log
  if [[ $EUID -eq 0 ]]; then
    id -u postgres >/dev/null 2>&1 ||
      die "running as root needs the 'postgres' user (created by the postgresql package); run deploy/install-deps.sh or run as a normal user"
  fi
  # Everything below uses absolute paths; leave a cwd postgres may not enter.
  cd /
}

# socket_dir: where the unix socket goes. sun_path holds 107 bytes, and
# PostgreSQL appends "/.s.PGSQL.NNNNN" (+ ".lock"), so long DIRs get a short
# private directory under /tmp instead (recorded in DIR/env).
socket_dir() {
  local want=$DIR/run old
  if ((${#want} + 22 <= 100)); then
    printf '%s' "$want"
    return
  fi
  old=$(env_get "$ENVF" PG_SOCKET_DIR 2>/dev/null || true)
  if [[ $old == /tmp/rgpg.* && -d $old && $(stat -c %U "$old") == "$(id -un "$OWNER")" ]]; then
    printf '%s' "$old"
    return
  fi
  mktemp -d /tmp/rgpg.XXXXXX
}

write_runtime_conf() {
  local port=$1 sock=$2
  mkdir -p -- "$sock"
  chmod 0700 -- "$sock"
  [[ $EUID -ne 0 ]] || chown postgres:postgres -- "$sock"
  # Port and socket change between runs; the rest is fixed at initdb time.
  pg_put "$PGDATA/roomgate.runtime.conf" <<EOF
# Written by deploy/dev/pg.sh at every start.
port = $port
unix_socket_directories = '$sock'
EOF
}

init_cluster() {
  local su_pw=$1
  say "creating cluster in $PGDATA"
  mkdir -p -- "$DIR"
  if [[ $EUID -eq 0 ]]; then
    check_reachable postgres "$DIR"
    chown postgres:postgres -- "$DIR"
  fi
  chmod 0700 -- "$DIR"
  # The password reaches initdb on a pipe, never on a command line or disk.
  # The inner `cat |` makes a pipe owned by the cluster owner: initdb reopens
  # /dev/stdin, which fails on a pipe that belongs to root.
  # shellcheck disable=SC2016 # $1 and "$@" are for the inner shell
  if ! printf '%s\n' "$su_pw" | as_pg sh -c 'log=$1; shift; cat | "$@" >"$log" 2>&1' sh \
    "$DIR/initdb.log" "$BIN/initdb" -D "$PGDATA" -U postgres \
    --pwfile=/dev/stdin --auth-local=scram-sha-256 --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C --data-checksums; then
    tail_log "$DIR/initdb.log"
    as_pg rm -rf -- "$PGDATA"
    die "initdb failed (full output in $DIR/initdb.log)"
  fi
  # shellcheck disable=SC2016 # $1 is for the inner shell
  as_pg sh -c 'cat >>"$1"' sh "$PGDATA/postgresql.conf" <<'EOF'

# --- roomgate dev cluster (deploy/dev/pg.sh) ---
listen_addresses = '127.0.0.1'
unix_socket_permissions = 0700
password_encryption = scram-sha-256
max_connections = 200
shared_buffers = 32MB
timezone = 'UTC'
log_timezone = 'UTC'
log_line_prefix = '%m [%p] %q%u@%d '
log_lock_waits = on
include_if_exists = 'roomgate.runtime.conf'
EOF
  pg_put "$PGDATA/pg_hba.conf" <<'EOF'
# roomgate dev cluster: passwords (scram) only, loopback only.
# TYPE  DATABASE  USER      ADDRESS        METHOD
local   all       postgres                 scram-sha-256
host    all       all       127.0.0.1/32   scram-sha-256
EOF
}

# provision: role and database "roomgate". Idempotent, so an interrupted
# first start is finished by the next one.
provision() {
  local port=$1 su_pw=$2 app_pw=$3
  PGPASSWORD=$su_pw PGCONNECT_TIMEOUT=10 "$BIN/psql" -X -q -v ON_ERROR_STOP=1 \
    -h 127.0.0.1 -p "$port" -U postgres -d postgres -f - <<EOF
SELECT 'CREATE ROLE roomgate LOGIN'
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'roomgate') \gexec
ALTER ROLE roomgate WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '$app_pw';
SELECT 'CREATE DATABASE roomgate OWNER roomgate TEMPLATE template0 ENCODING ''UTF8'''
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'roomgate') \gexec
REVOKE ALL ON DATABASE roomgate FROM PUBLIC;
EOF
  as_pg touch "$DIR/.provisioned"
}

# provision_service: the service's login role "roomgate_app", a member of
# the NOLOGIN group role "roomgate_service" (README.md, "Audit trail -> Who
# may change what"): it neither owns nor belongs to the owner of the
# tables, so it cannot switch the audit triggers off. Migration 0014 grants
# the group what the service needs; when the schema is already there (a
# DIR from before this role), roomgate_grant_service() runs now, as the
# owner, for the tables that exist. Idempotent.
provision_service() {
  local port=$1 su_pw=$2 svc_pw=$3
  PGPASSWORD=$su_pw PGCONNECT_TIMEOUT=10 "$BIN/psql" -X -q -v ON_ERROR_STOP=1 \
    -o /dev/null -h 127.0.0.1 -p "$port" -U postgres -d roomgate -f - <<EOF
SET client_min_messages = warning;
SELECT 'CREATE ROLE roomgate_service NOLOGIN'
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'roomgate_service') \gexec
SELECT 'CREATE ROLE roomgate_app LOGIN'
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'roomgate_app') \gexec
ALTER ROLE roomgate_app WITH LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE
  NOREPLICATION NOBYPASSRLS PASSWORD '$svc_pw';
SELECT 'GRANT roomgate_service TO roomgate_app'
  WHERE NOT pg_has_role('roomgate_app', 'roomgate_service', 'MEMBER') \gexec
GRANT CONNECT, TEMPORARY ON DATABASE roomgate TO roomgate_service;
SET ROLE roomgate;
SELECT 'SELECT roomgate_grant_service()'
  WHERE to_regprocedure('roomgate_grant_service()') IS NOT NULL \gexec
RESET ROLE;
EOF
  as_pg touch "$DIR/.provisioned-service"
}

say_service_role() {
  if (($1)); then
    say "$DIR predates the service role (one role owned the database and ran the service): adding roomgate_app (member of roomgate_service) and granting it the existing tables; from now on the owner only migrates"
  else
    say "creating the service role roomgate_app (member of roomgate_service)"
  fi
}

# write_env PORT SOCKDIR: DIR/env from su_pw, app_pw and svc_pw. PG_URL
# and PG_OWNER_URL are the owner (migrations, the tests' databases);
# PG_SERVICE_URL is the role the service runs as.
write_env() {
  local port=$1 sock=$2
  env_write "$ENVF" \
    "PG_HOST=127.0.0.1" \
    "PG_PORT=$port" \
    "PG_SOCKET_DIR=$sock" \
    "PG_URL=postgresql://roomgate:$app_pw@127.0.0.1:$port/roomgate" \
    "PG_OWNER_URL=postgresql://roomgate:$app_pw@127.0.0.1:$port/roomgate" \
    "PG_SERVICE_URL=postgresql://roomgate_app:$svc_pw@127.0.0.1:$port/roomgate" \
    "PG_ADMIN_URL=postgresql://postgres:$su_pw@127.0.0.1:$port/postgres"
}

cmd_start() {
  local want_port=${2:-} port su_pw app_pw svc_pw sock fresh=0 older=0
  setup "$1"
  if [[ $EUID -eq 0 ]]; then OWNER=postgres; else OWNER=$(id -un); fi
  if [[ -n $want_port ]] && ! valid_port "$want_port"; then
    die "PORT must be a number in 1024-65535, got '$want_port'"
  fi

  if [[ -f $PGDATA/PG_VERSION ]]; then
    if ! port=$(env_get "$ENVF" PG_PORT) || ! su_pw=$(env_get "$ENVF" PG_ADMIN_URL) ||
      ! app_pw=$(env_get "$ENVF" PG_URL); then
      die "$ENVF is missing or incomplete, so the cluster's passwords are lost; remove $DIR to start over"
    fi
    su_pw=${su_pw#postgresql://postgres:} su_pw=${su_pw%%@*}
    app_pw=${app_pw#postgresql://roomgate:} app_pw=${app_pw%%@*}
    # A DIR from before the service role: make its password now.
    if svc_pw=$(env_get "$ENVF" PG_SERVICE_URL); then
      svc_pw=${svc_pw#postgresql://roomgate_app:} svc_pw=${svc_pw%%@*}
    else
      svc_pw=$(rand_hex 24)
      older=1
    fi
    if running; then
      if [[ -n $want_port && $want_port != "$port" ]]; then
        die "already running in $DIR on port $port, not $want_port; stop it first"
      fi
      if [[ ! -f $DIR/.provisioned-service ]]; then
        write_env "$port" "$(env_get "$ENVF" PG_SOCKET_DIR)"
        say_service_role "$older"
        provision_service "$port" "$su_pw" "$svc_pw" ||
          die "could not create the service role roomgate_app; see $LOG"
      fi
      say "already running on 127.0.0.1:$port ($DIR)"
      return 0
    fi
    port=${want_port:-$port}
  else
    if [[ -e $PGDATA ]]; then
      die "$PGDATA exists but holds no cluster; remove it and retry"
    fi
    port=${want_port:-$(pick_port)}
    su_pw=$(rand_hex 24)
    app_pw=$(rand_hex 24)
    svc_pw=$(rand_hex 24)
    fresh=1
  fi
  need_free_port "$port" "PostgreSQL"

  if ((fresh)); then
    init_cluster "$su_pw"
  fi
  sock=$(socket_dir)
  write_runtime_conf "$port" "$sock"
  # The env file is where the passwords live; write it before the first
  # start so an interrupted start can be resumed.
  write_env "$port" "$sock"

  say "starting on 127.0.0.1:$port (log: $LOG)"
  if ! as_pg "$BIN/pg_ctl" -D "$PGDATA" -l "$LOG" -w -t 60 -s start; then
    tail_log "$LOG"
    die "PostgreSQL did not start on port $port; see $LOG"
  fi
  if [[ ! -f $DIR/.provisioned ]]; then
    say "creating role and database 'roomgate'"
    provision "$port" "$su_pw" "$app_pw" || die "could not create role/database roomgate; see $LOG"
  fi
  if [[ ! -f $DIR/.provisioned-service ]]; then
    say_service_role "$older"
    provision_service "$port" "$su_pw" "$svc_pw" ||
      die "could not create the service role roomgate_app; see $LOG"
  fi
  say "ready: 127.0.0.1:$port, env in $ENVF"
}

cmd_stop() {
  local sock
  setup "$1"
  if [[ ! -f $PGDATA/PG_VERSION ]]; then
    say "no cluster in $DIR; nothing to stop"
    return 0
  fi
  if ! running; then
    say "not running ($DIR)"
    return 0
  fi
  as_pg "$BIN/pg_ctl" -D "$PGDATA" -m fast -w -t 60 -s stop ||
    die "PostgreSQL in $DIR did not stop within 60 s; see $LOG"
  # A short socket directory under /tmp would outlive DIR; start makes a
  # new one when it is gone.
  sock=$(env_get "$ENVF" PG_SOCKET_DIR 2>/dev/null || true)
  if [[ $sock == /tmp/rgpg.* ]]; then
    rmdir -- "$sock" 2>/dev/null || true
  fi
  say "stopped ($DIR)"
}

cmd_status() {
  local port
  setup "$1"
  port=$(env_get "$ENVF" PG_PORT 2>/dev/null || echo "?")
  if running; then
    say "running on 127.0.0.1:$port ($DIR)"
    return 0
  fi
  if [[ -f $PGDATA/PG_VERSION ]]; then
    say "not running ($DIR, port $port)"
  else
    say "not running (no cluster in $DIR)"
  fi
  return 1
}

[[ $# -ge 2 ]] || usage
case $1 in
  start) [[ $# -le 3 ]] || usage; cmd_start "$2" "${3:-}" ;;
  stop) [[ $# -eq 2 ]] || usage; cmd_stop "$2" ;;
  status) [[ $# -eq 2 ]] || usage; cmd_status "$2" ;;
  *) usage ;;
esac
