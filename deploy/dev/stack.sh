#!/usr/bin/env bash
# The local demo stack behind `make run` / `make stop`: a private PostgreSQL,
# slapd with the demo directory, and roomgate, all on loopback, all state
# under .data/ in the checkout (git-ignored). `roomgate migrate` runs as the
# database's owner (.data/migrate.ini), the service as the login role
# roomgate_app, a member of roomgate_service, which cannot change or delete
# audit records (README.md, "Audit trail -> Who may change what").
#
# Usage: deploy/dev/stack.sh start|stop|status
# Ports (environment): ROOMGATE_DEV_HTTP_PORT (8080), ROOMGATE_DEV_PG_PORT
# (55432), ROOMGATE_DEV_LDAP_PORT (3389), ROOMGATE_DEV_LDAPS_PORT (6636),
# ROOMGATE_DEV_IDP_PORT (8090, the demo SAML IdP from tests/idp).
# Binaries: ROOMGATE_BIN (build/rel/roomgate), ROOMGATE_IDP_BIN (build/rel/idp).
# Data: ROOMGATE_DEV_DATA (.data).
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
idp_port=${ROOMGATE_DEV_IDP_PORT:-8090}
idp_bin=${ROOMGATE_IDP_BIN:-$root/build/rel/idp}
idp_pidfile=$data/idp.pid
idp_logfile=$data/idp.log
saml=$data/saml
# roomgate refuses unknown ROOMGATE_* variables (typos in settings): the
# stack's own knobs, read above, must not reach it.
unset ROOMGATE_DEV_DATA ROOMGATE_DEV_HTTP_PORT ROOMGATE_DEV_PG_PORT \
  ROOMGATE_DEV_LDAP_PORT ROOMGATE_DEV_LDAPS_PORT ROOMGATE_DEV_IDP_PORT \
  ROOMGATE_BIN ROOMGATE_IDP_BIN
pidfile=$data/roomgate.pid
logfile=$data/roomgate.log
ini=$data/roomgate.ini
migrate_ini=$data/migrate.ini
audit_key=$data/audit.key

rg_pid() {
  local pid
  [[ -r $pidfile ]] || return 1
  pid=$(cat "$pidfile")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  # only our process: same binary name, still alive
  [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'roomgate serve' || return 1
  printf '%s' "$pid"
}

idp_pid() {
  local pid
  [[ -r $idp_pidfile ]] || return 1
  pid=$(cat "$idp_pidfile")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- '--entity-id' || return 1
  printf '%s' "$pid"
}

# SAML: key pairs (made once, never committed), the demo users' password
# file for the IdP's login form, and the IdP's metadata for roomgate.
saml_prepare() {
  local u users
  mkdir -p "$saml"
  chmod 0700 "$saml"
  [[ -e $saml/sp.key ]] || "$bin" saml-keygen --key "$saml/sp.key" --cert "$saml/sp.crt" --name roomgate-dev >/dev/null
  [[ -e $saml/idp.key ]] || "$bin" saml-keygen --key "$saml/idp.key" --cert "$saml/idp.crt" --name roomgate-dev-idp >/dev/null
  # shellcheck disable=SC1091
  . "$data/ldap/env"
  users=$(mktemp "$saml/users.XXXXXX")
  chmod 0600 "$users"
  for u in alice bob carol dave mallory trent $(seq -f 'user%02g' 1 35); do
    printf '%s:%s:%s@example.com\n' "$u" "$LDAP_DEMO_PASSWORD" "$u" >>"$users"
  done
  mv "$users" "$saml/users.txt"
  "$idp_bin" --entity-id "http://127.0.0.1:$idp_port/metadata" \
    --base-url "http://127.0.0.1:$idp_port" --key "$saml/idp.key" \
    --cert "$saml/idp.crt" --metadata-out "$saml/idp-md.xml"
}

idp_start() {
  curl -fsS -o "$saml/sp-md.xml" --noproxy '*' "http://127.0.0.1:$http_port/saml/metadata" ||
    die "cannot read roomgate's SAML metadata"
  setsid "$idp_bin" --entity-id "http://127.0.0.1:$idp_port/metadata" \
    --base-url "http://127.0.0.1:$idp_port" --key "$saml/idp.key" \
    --cert "$saml/idp.crt" --users "$saml/users.txt" --port "$idp_port" \
    --sp-metadata "$saml/sp-md.xml" >>"$idp_logfile" 2>&1 </dev/null &
  echo $! >"$idp_pidfile"
  local i
  for i in $(seq 1 50); do
    curl -fsS -o /dev/null --noproxy '*' "http://127.0.0.1:$idp_port/metadata" 2>/dev/null && return 0
    sleep 0.2
    : "$i"
  done
  tail -n 20 "$idp_logfile" >&2 || true
  die "the demo IdP did not start"
}

write_config() {
  local tmp
  # shellcheck disable=SC1091
  . "$data/pg/env"
  # shellcheck disable=SC1091
  . "$data/ldap/env"
  # The join-token secret shared with the meeting platform (Jitsi's
  # app_secret), made once.
  if [[ ! -s $data/jitsi.secret ]]; then
    (umask 077 && rand_hex 32 >"$data/jitsi.secret")
  fi
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
; The service's login role, a member of roomgate_service: it cannot
; change, delete or unprotect audit records. The owner migrates
; (migrate.ini, before the service starts).
url = $PG_SERVICE_URL
migrate_on_start = false

[ldap]
uri = $LDAP_URI
bind_dn = $LDAP_BIND_DN
bind_password = $LDAP_BIND_PASSWORD
base_dn = $LDAP_BASE_DN

[keys]
file = $data/server.keys

[saml]
entity_id = http://127.0.0.1:$http_port/saml/metadata
key_file = $saml/sp.key
cert_file = $saml/sp.crt
idp_metadata_file = $saml/idp-md.xml
name_id_format = urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress
directory_key = uid

[directory]
host_group = cn=meeting-hosts,ou=groups,$LDAP_BASE_DN
admin_group = cn=directory-admins,ou=groups,$LDAP_BASE_DN
compliance_group = cn=compliance,ou=groups,$LDAP_BASE_DN
; Push revocation: follow the directory (syncprov) and end admissions the
; moment someone leaves the group.
watch = on

[admission]
; A stand-in platform: point this at your Jitsi Meet ({room}, {token}).
redirect_url = https://meet.example.com/{room}?jwt={token}

[tokens]
hs256_secret_file = $data/jitsi.secret
audience = jitsi
subject = meet.example.com

[audit]
; Records are chained and signed (checkpoints) by this node; the public
; key is $audit_key.pub. Verify with: roomgate -c $ini audit verify
signing_key_file = $audit_key
retention_days = 365
EOF
  mv "$tmp" "$ini"
}

# migrate: `roomgate migrate` as the database owner, from a config of its
# own (mode 0600) that holds only the owner's URL; the service never sees
# it. Then the schema is current before the service (which may not
# migrate: it does not own the schema) starts.
migrate() {
  local tmp out
  # shellcheck disable=SC1091
  . "$data/pg/env"
  [[ -n ${PG_OWNER_URL:-} && -n ${PG_SERVICE_URL:-} ]] ||
    die "$data/pg/env has no PG_OWNER_URL/PG_SERVICE_URL: deploy/dev/pg.sh did not finish; run make run again"
  tmp=$(mktemp "$data/migrate.ini.XXXXXX")
  chmod 0600 "$tmp"
  cat >"$tmp" <<EOF
; Written by deploy/dev/stack.sh: \`roomgate migrate\` runs with this as
; the database owner; the service uses roomgate.ini (its own role).
[database]
url = $PG_OWNER_URL
EOF
  mv "$tmp" "$migrate_ini"
  if ! out=$("$bin" -c "$migrate_ini" migrate 2>&1); then
    warn "$out"
    die "roomgate migrate (as the owner, $migrate_ini) failed"
  fi
  say "database (as the owner): $out"
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
    if [[ -r $ini ]] && ! grep -q '^url = postgresql://roomgate_app:' "$ini"; then
      say "it runs as the database's owner (started before the service role existed):"
      say "make stop && make run adds the role and restarts it separated"
    fi
    say "nothing to do; to restart with a fresh build: make stop && make run"
    exit 0
  fi
  [[ -x $bin ]] || die "$bin is missing: build it first (make)"
  [[ -x $idp_bin ]] || die "$idp_bin is missing: build it first (make run builds it)"
  mkdir -p "$data"
  chmod 0755 "$data"
  need_free_port "$http_port" "roomgate HTTP; set ROOMGATE_DEV_HTTP_PORT to use another"
  if ! idp_pid >/dev/null; then
    need_free_port "$idp_port" "the demo IdP; set ROOMGATE_DEV_IDP_PORT to use another"
  fi

  "$here/pg.sh" start "$data/pg" "$pg_port"
  "$here/slapd.sh" start "$data/ldap" "$ldap_port" "$ldaps_port"
  if [[ ! -e $data/server.keys ]]; then
    "$bin" keygen -o "$data/server.keys" >/dev/null
    say "made server keys in $data/server.keys"
  fi
  if [[ ! -e $audit_key ]]; then
    "$bin" audit keygen --out "$audit_key" >/dev/null
    say "made the audit signing key $audit_key (public: $audit_key.pub)"
  fi
  saml_prepare
  migrate
  write_config

  # setsid: the service outlives this shell and a Ctrl-C in its terminal.
  setsid "$bin" serve -c "$ini" >>"$logfile" 2>&1 </dev/null &
  echo $! >"$pidfile"
  wait_ready || { cmd_stop >/dev/null 2>&1 || true; die "roomgate failed to start"; }
  if ! idp_pid >/dev/null; then
    idp_start
  fi
  demo_meeting

  # shellcheck disable=SC1091
  . "$data/ldap/env"
  cat <<EOF

roomgate is running on loopback:
  roomgate     http://127.0.0.1:$http_port/   (pid $(cat "$pidfile"), log: $logfile)
  readiness    curl http://127.0.0.1:$http_port/readyz
  metrics      curl http://127.0.0.1:$http_port/metrics
  PostgreSQL   127.0.0.1:$pg_port   (credentials in $data/pg/env: the service runs as
               roomgate_app, a member of roomgate_service; migrations as the owner roomgate)
  audit        roomgate -c $ini audit verify   (roomgate_audit_role_separated in /metrics)
  slapd        $LDAP_URI  and  $LDAPS_URI   (base $LDAP_BASE_DN; credentials in $data/ldap/env)
  config       $ini
  demo IdP     http://127.0.0.1:$idp_port/metadata   (pid $(cat "$idp_pidfile"), log: $idp_logfile)
  sign in      http://127.0.0.1:$http_port/saml/login?return=/v1/me   (then see who you are)

Demo directory users (password for all: $LDAP_DEMO_PASSWORD):
  alice    meeting-allowed, engineering, meeting-hosts
  bob      meeting-allowed
  carol    meeting-allowed, compliance
  dave     engineering only (not in meeting-allowed)
  mallory  meeting-allowed, but the account is locked
  trent    meeting-allowed, directory-admins
  user01 .. user35   meeting-allowed (user01-10 also engineering; user01-02 hosts; user03 compliance)

Demo meeting (host alice, group meeting-allowed):
  link   $demo_link
  code   $demo_code
Open the link, sign in at the demo IdP with any user above, type the code:
members are sent on to https://meet.example.com/<room>?jwt=<join token> (a
stand-in platform; set [admission] redirect_url in $ini to your Jitsi Meet).
Waiting room: as alice (the host), switch it on with
  PATCH /v1/meetings/$demo_id  {"waiting_room": true}
then people who pass wait for her at http://127.0.0.1:$http_port/m/$demo_id/waiting (Admit / Deny).
Push revocation is on ([directory] watch): remove an admitted person from
meeting-allowed with ldapmodify and their admission ends at once (state
revoked, directory_removed; /metrics shows roomgate_directory_watch_*).
Manage meetings with /v1/meetings or \`roomgate -c $ini meeting ...\`.

Stop everything with: make stop
EOF
}

# The demo meeting: made once, then shown with its current code. Its id is
# kept in .data/demo-meeting.id.
demo_meeting() {
  local idfile=$data/demo-meeting.id out id
  demo_link="(none)" demo_code="(none)" demo_id="(none)"
  if [[ -s $idfile ]]; then
    id=$(cat "$idfile")
    out=$("$bin" -c "$ini" meeting show "$id" --with-code 2>&1) || out=""
  fi
  if [[ -z ${out:-} ]]; then
    out=$("$bin" -c "$ini" meeting create --title "Demo stand-up" \
      --group "cn=meeting-allowed,ou=groups,$LDAP_BASE_DN" \
      --host alice 2>&1) || { warn "could not create the demo meeting: $out"; return 0; }
    id=$(printf '%s\n' "$out" | sed -n 's/^  "id": "\([^"]*\)".*/\1/p' | head -n 1)
    [[ -n $id ]] && printf '%s\n' "$id" >"$idfile"
  fi
  demo_id=${id:-(none)}
  demo_link=$(printf '%s\n' "$out" | sed -n 's/^  "link": "\([^"]*\)".*/\1/p' | head -n 1)
  demo_code=$(printf '%s\n' "$out" | sed -n 's/^code: \([0-9]*\).*/\1/p' | head -n 1)
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
  if pid=$(idp_pid); then
    kill -TERM "$pid"
    say "stopped the demo IdP (pid $pid)"
  fi
  rm -f "$idp_pidfile"
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
  if pid=$(idp_pid); then
    say "demo IdP running (pid $pid) on http://127.0.0.1:$idp_port/"
  else
    say "demo IdP not running"
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
