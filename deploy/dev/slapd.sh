#!/usr/bin/env bash
# A private OpenLDAP slapd with the demo directory, for the local stack and
# the tests.
#
# Usage: deploy/dev/slapd.sh start DIR [PORT TLSPORT]
#        deploy/dev/slapd.sh stop DIR
#        deploy/dev/slapd.sh status DIR
#
# start  builds everything on first use (private CA and server certificate,
#        cn=config, the demo directory from demo-ldif.sh, random passwords),
#        then starts slapd on 127.0.0.1:PORT (ldap, StartTLS) and
#        127.0.0.1:TLSPORT (ldaps), plus an ldapi socket for local admin, and
#        waits until the service account can bind. Without ports it reuses
#        the saved ones, or picks free ones for a new DIR. Writes DIR/env
#        (see README.md).
# stop   SIGTERM to the pid in DIR/slapd.pid only; succeeds when not running.
# status exit 0 when running, 1 when not.
#
# slapd runs as the invoking user. Layout: DIR/slapd.d (cn=config), DIR/data
# (mdb), DIR/tls (ca.pem, ca.key, server.pem, server.key), DIR/ldif (what
# was loaded; hashes only), DIR/slapd.log, DIR/slapd.pid, DIR/ldapi, DIR/env.
#
# Environment: SLAPD_DEBUG  slapd -d level (default "none": errors only;
#                           "stats" logs every operation).
set -euo pipefail

# shellcheck disable=SC2034 # message prefix, used by lib.sh
PROG=slapd
HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

BASE_DN=dc=example,dc=com
ADMIN_DN=cn=admin,$BASE_DN
BIND_DN=cn=roomgate,ou=services,$BASE_DN
SCHEMA_DIR=/etc/ldap/schema
MODULE_DIR=/usr/lib/ldap
SLAPD=/usr/sbin/slapd
SLAPADD=/usr/sbin/slapadd
SLAPPASSWD=/usr/sbin/slappasswd

usage() {
  echo "usage: $0 start DIR [PORT TLSPORT] | stop DIR | status DIR" >&2
  exit 2
}

setup() {
  local t
  DIR=$(abs_dir "$1")
  [[ $DIR =~ ^[A-Za-z0-9._/+@,=-]+$ ]] ||
    die "DIR may only contain letters, digits and . _ / + @ , = - (it ends up in LDIF and URLs): $DIR"
  ENVF=$DIR/env
  PIDFILE=$DIR/slapd.pid
  LOG=$DIR/slapd.log
  for t in "$SLAPD" "$SLAPADD" "$SLAPPASSWD" ldapwhoami openssl; do
    command -v "$t" >/dev/null 2>&1 || die "$t not found; run deploy/install-deps.sh (packages slapd, ldap-utils, openssl)"
  done
  cd /
}

# urlencode S: percent-encode everything but unreserved characters (ldapi
# URLs carry a socket path).
urlencode() {
  local s=$1 out="" c i
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case $c in
      [A-Za-z0-9._~-]) out+=$c ;;
      *) out+=$(printf '%%%02X' "'$c") ;;
    esac
  done
  printf '%s' "$out"
}

# ldapi_path: the socket path; sun_path holds 107 bytes, so a long DIR gets a
# short private directory under /tmp (recorded in DIR/env as LDAPI_URI).
ldapi_path() {
  local old
  if ((${#DIR} + 6 <= 100)); then
    printf '%s' "$DIR/ldapi"
    return
  fi
  old=$(env_get "$ENVF" LDAPI_SOCKET 2>/dev/null || true)
  if [[ $old == /tmp/rgldap.*/ldapi && -d ${old%/ldapi} && -O ${old%/ldapi} ]]; then
    printf '%s' "$old"
    return
  fi
  printf '%s/ldapi' "$(mktemp -d /tmp/rgldap.XXXXXX)"
}

# our_pid: the pid in the pid file when it is alive and is this DIR's slapd
# (a stale pid file may name a recycled pid).
our_pid() {
  local pid
  [[ -r $PIDFILE ]] || return 1
  pid=$(head -c 32 "$PIDFILE" | tr -d ' \n')
  [[ $pid =~ ^[1-9][0-9]*$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || [[ -d /proc/$pid ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "-F $DIR/slapd.d " || return 1
  printf '%s' "$pid"
}

hash_pw() {
  "$SLAPPASSWD" -h '{SSHA}' -T <(printf '%s' "$1")
}

# tls_names: the DNS names the server certificate must carry. "localhost"
# for clients that check the name as written (OpenSSL, curl, Python...), and
# this machine's host name: libldap (all its TLS backends) silently replaces
# a URL host of "localhost" with the local FQDN before checking the
# certificate, so ldaps://localhost fails against a localhost-only
# certificate for every libldap client, roomgate included. No IP address, ever.
tls_names() {
  local h fq4 fq n out=localhost
  h=$(hostname 2>/dev/null || true)
  [[ -n $h ]] || { printf '%s' "$out"; return; }
  # libldap takes gethostbyname(hostname)->h_name; getent shows the same
  # canonical name (IPv4 lookup, and the generic one in case they differ).
  fq4=$(getent ahostsv4 "$h" 2>/dev/null | awk 'NR == 1 { print $3 }' || true)
  fq=$(getent hosts "$h" 2>/dev/null | awk 'NR == 1 { print $2 }' || true)
  for n in "$fq4" "$fq" "$h"; do
    if [[ $n =~ ^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$ &&
      ! $n =~ ^[0-9]+(\.[0-9]+){3}$ && " $out " != *" $n "* ]]; then
      out+=" $n"
    fi
  done
  printf '%s' "$out"
}

make_tls() {
  local t=$DIR/tls tag names n san="" nc=""
  names=$(tls_names)
  for n in $names; do
    san+="${san:+,}DNS:$n"
    nc+="${nc:+,}permitted;DNS:$n"
  done
  tag=$(rand_hex 4)
  rm -rf -- "$t"
  mkdir -p -- "$t"
  chmod 0700 -- "$t"
  cat >"$t/openssl.cnf" <<EOF
# Written by deploy/dev/slapd.sh; used once to make this stack's certificates.
[req]
distinguished_name = dn
prompt = no
[dn]
O = roomgate dev
CN = roomgate dev CA $tag
[ca_ext]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
# If someone trusts this CA by mistake, it can still vouch for these names only.
nameConstraints = critical,$nc
[server_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
# DNS names only, no IP: tests rely on ldaps://127.0.0.1 failing hostname
# verification while ldaps://localhost passes.
subjectAltName = $san
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOF
  (
    umask 077
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$t/ca.key"
    openssl req -x509 -new -config "$t/openssl.cnf" -extensions ca_ext \
      -key "$t/ca.key" -sha256 -days 3650 -set_serial "0x$(rand_hex 16)" -out "$t/ca.pem"
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$t/server.key"
    openssl req -new -config "$t/openssl.cnf" -key "$t/server.key" \
      -subj "/O=roomgate dev/CN=localhost" -out "$t/server.csr"
    openssl x509 -req -in "$t/server.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" \
      -set_serial "0x$(rand_hex 16)" -days 825 -sha256 \
      -extfile "$t/openssl.cnf" -extensions server_ext -out "$t/server.pem"
  ) >"$t/openssl.log" 2>&1 || {
    tail_log "$t/openssl.log"
    die "could not make the TLS certificates (see $t/openssl.log)"
  }
  rm -f -- "$t/server.csr"
  chmod 0644 -- "$t/ca.pem" "$t/server.pem"
  chmod 0600 -- "$t/ca.key" "$t/server.key"
  printf '%s\n' "$names" >"$t/names"
}

# check_tls: remake the CA and certificate when the host name changed since
# they were made (a DIR kept across containers), or ldaps://localhost breaks.
check_tls() {
  local now
  now=$(tls_names)
  if [[ ! -s $DIR/tls/server.pem || $(cat "$DIR/tls/names" 2>/dev/null) != "$now" ]]; then
    warn "host names changed (certificate for '$(cat "$DIR/tls/names" 2>/dev/null)', now '$now'); making a new CA and certificate in $DIR/tls"
    make_tls
  fi
}

# config_ldif ADMIN_HASH: cn=config for slapadd -n0.
config_ldif() {
  local admin_hash=$1 peer
  # Local admin: whoever runs this script, over ldapi with SASL EXTERNAL.
  peer="gidNumber=$(id -g)+uidNumber=$(id -u),cn=peercred,cn=external,cn=auth"
  cat <<EOF
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: $PIDFILE
olcArgsFile: $DIR/slapd.args
olcLogLevel: none
olcTLSCACertificateFile: $DIR/tls/ca.pem
olcTLSCertificateFile: $DIR/tls/server.pem
olcTLSCertificateKeyFile: $DIR/tls/server.key
olcTLSProtocolMin: 3.3
olcTLSVerifyClient: never

dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: $MODULE_DIR
olcModuleLoad: {0}back_mdb
olcModuleLoad: {1}memberof
olcModuleLoad: {2}syncprov
olcModuleLoad: {3}ppolicy

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file://$SCHEMA_DIR/core.ldif

include: file://$SCHEMA_DIR/cosine.ldif

include: file://$SCHEMA_DIR/nis.ldif

include: file://$SCHEMA_DIR/inetorgperson.ldif

dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend
olcSizeLimit: 100000
# Large groups: keep member values sorted so modify/compare need no scan.
olcSortVals: member
olcAccess: {0}to dn.base="" by * read
olcAccess: {1}to dn.base="cn=Subschema" by * read

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcAccess: {0}to * by dn.exact="$peer" manage by * none

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcSuffix: $BASE_DN
olcDbDirectory: $DIR/data
olcRootDN: $ADMIN_DN
olcRootPW: $admin_hash
olcDbMaxSize: 2147483648
olcDbIndex: objectClass eq
olcDbIndex: uid eq
olcDbIndex: mail eq
olcDbIndex: cn eq,sub
olcDbIndex: member eq
olcDbIndex: memberOf eq
olcDbIndex: entryUUID eq
olcDbIndex: entryCSN eq
olcDbMultival: member 100,10
olcLimits: {0}dn.exact="$BIND_DN" size=unlimited time=unlimited
olcAccess: {0}to * by dn.exact="$peer" manage by * break
olcAccess: {1}to attrs=userPassword by anonymous auth by * none
olcAccess: {2}to dn.subtree="$BASE_DN" by dn.exact="$BIND_DN" read by self read by * none

dn: olcOverlay={0}memberof,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcMemberOf
olcOverlay: {0}memberof
olcMemberOfGroupOC: groupOfNames
olcMemberOfMemberAD: member
olcMemberOfMemberOfAD: memberOf
olcMemberOfRefInt: TRUE
olcMemberOfDangling: ignore

dn: olcOverlay={1}syncprov,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcSyncProvConfig
olcOverlay: {1}syncprov
olcSpCheckpoint: 100 10
olcSpSessionlog: 10000

dn: olcOverlay={2}ppolicy,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcPPolicyConfig
olcOverlay: {2}ppolicy
olcPPolicyDefault: cn=default,ou=policies,$BASE_DN
olcPPolicyHashCleartext: TRUE
olcPPolicyUseLockout: FALSE
EOF
}

build() {
  local admin_pw=$1 svc_pw=$2 demo_pw=$3
  say "building a new directory in $DIR"
  # Leftovers of an interrupted build (no .built marker) are ours to replace.
  rm -rf -- "$DIR/slapd.d" "$DIR/data" "$DIR/tls" "$DIR/ldif"
  mkdir -p -- "$DIR/slapd.d" "$DIR/data" "$DIR/ldif"
  chmod 0700 -- "$DIR" "$DIR/slapd.d" "$DIR/data" "$DIR/ldif"
  make_tls
  (umask 077 && config_ldif "$(hash_pw "$admin_pw")" >"$DIR/ldif/config.ldif")
  (umask 077 && "$HERE/demo-ldif.sh" "$(hash_pw "$demo_pw")" "$(hash_pw "$svc_pw")" \
    >"$DIR/ldif/demo.ldif")
  "$SLAPADD" -n0 -F "$DIR/slapd.d" -l "$DIR/ldif/config.ldif" >"$DIR/ldif/slapadd.log" 2>&1 || {
    tail_log "$DIR/ldif/slapadd.log"
    die "slapadd of cn=config failed (see $DIR/ldif/slapadd.log)"
  }
  # -w writes contextCSN, so syncprov (RFC 4533) has a state to start from.
  "$SLAPADD" -n1 -w -F "$DIR/slapd.d" -l "$DIR/ldif/demo.ldif" >>"$DIR/ldif/slapadd.log" 2>&1 || {
    tail_log "$DIR/ldif/slapadd.log"
    die "slapadd of the demo directory failed (see $DIR/ldif/slapadd.log)"
  }
  touch "$DIR/.built"
}

# listen_urls PORT TLSPORT SOCKET
listen_urls() {
  local urls
  urls="ldap://127.0.0.1:$1/ ldaps://127.0.0.1:$2/ ldapi://$(urlencode "$3")/"
  # TLS clients use ldaps://localhost; if localhost means ::1 here, be there.
  if [[ $(getent ahosts localhost 2>/dev/null | awk 'NR == 1 { print $1 }') == ::1 ]]; then
    urls+=" ldap://[::1]:$1/ ldaps://[::1]:$2/"
  fi
  printf '%s' "$urls"
}

cmd_start() {
  local want_port=${2:-} want_tls=${3:-} port tls admin_pw svc_pw demo_pw sock pid bg i fresh=0
  setup "$1"
  if [[ -n $want_port || -n $want_tls ]]; then
    if ! valid_port "$want_port" || ! valid_port "$want_tls"; then
      die "PORT and TLSPORT must both be numbers in 1024-65535, got '$want_port' '$want_tls'"
    fi
    [[ $want_port != "$want_tls" ]] || die "PORT and TLSPORT must differ"
  fi

  if [[ -f $DIR/.built ]]; then
    if ! port=$(env_get "$ENVF" LDAP_PORT) || ! tls=$(env_get "$ENVF" LDAPS_PORT) ||
      ! admin_pw=$(env_get "$ENVF" LDAP_ADMIN_PASSWORD) ||
      ! svc_pw=$(env_get "$ENVF" LDAP_BIND_PASSWORD) ||
      ! demo_pw=$(env_get "$ENVF" LDAP_DEMO_PASSWORD); then
      die "$ENVF is missing or incomplete, so the directory's passwords are lost; remove $DIR to start over"
    fi
    if pid=$(our_pid); then
      if [[ -n $want_port && "$want_port $want_tls" != "$port $tls" ]]; then
        die "already running in $DIR on ports $port/$tls, not $want_port/$want_tls; stop it first"
      fi
      say "already running on 127.0.0.1:$port (ldaps $tls), pid $pid"
      return 0
    fi
    port=${want_port:-$port}
    tls=${want_tls:-$tls}
  else
    port=${want_port:-$(pick_port)}
    tls=${want_tls:-$(pick_port)}
    while [[ $tls == "$port" ]]; do tls=$(pick_port); done
    admin_pw=$(rand_hex 24)
    svc_pw=$(rand_hex 24)
    demo_pw=$(rand_hex 8)
    fresh=1
  fi
  need_free_port "$port" "LDAP"
  need_free_port "$tls" "LDAPS"

  mkdir -p -- "$DIR"
  chmod 0700 -- "$DIR"
  if ((fresh)); then
    build "$admin_pw" "$svc_pw" "$demo_pw"
  else
    check_tls
  fi
  sock=$(ldapi_path)
  env_write "$ENVF" \
    "LDAP_PORT=$port" \
    "LDAPS_PORT=$tls" \
    "LDAP_URI=ldap://127.0.0.1:$port" \
    "LDAPS_URI=ldaps://localhost:$tls" \
    "LDAP_STARTTLS_URI=ldap://localhost:$port" \
    "LDAPI_URI=ldapi://$(urlencode "$sock")" \
    "LDAPI_SOCKET=$sock" \
    "LDAP_BASE_DN=$BASE_DN" \
    "LDAP_BIND_DN=$BIND_DN" \
    "LDAP_BIND_PASSWORD=$svc_pw" \
    "LDAP_ADMIN_DN=$ADMIN_DN" \
    "LDAP_ADMIN_PASSWORD=$admin_pw" \
    "LDAP_CA_FILE=$DIR/tls/ca.pem" \
    "LDAP_DEMO_PASSWORD=$demo_pw"

  rm -f -- "$PIDFILE" "$sock"
  say "starting on 127.0.0.1:$port (ldaps $tls) (log: $LOG)"
  # In the foreground (-d) so errors reach the log, in its own session so it
  # outlives the caller's terminal.
  printf '\n=== %s slapd.sh start\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"$LOG"
  setsid "$SLAPD" -F "$DIR/slapd.d" -h "$(listen_urls "$port" "$tls" "$sock")" \
    -d "${SLAPD_DEBUG:-none}" </dev/null >>"$LOG" 2>&1 &
  bg=$!

  # Ready when the service account can bind; bounded (30 s).
  for ((i = 0; i < 300; i++)); do
    if ldapwhoami -x -o nettimeout=2 -H "ldap://127.0.0.1:$port" -D "$BIND_DN" \
      -y <(printf '%s' "$svc_pw") >/dev/null 2>&1; then
      pid=$(our_pid) || pid=$bg
      say "ready: ldap://127.0.0.1:$port ldaps://localhost:$tls, pid $pid, env in $ENVF"
      return 0
    fi
    if ! our_pid >/dev/null && ! kill -0 "$bg" 2>/dev/null; then
      tail_log "$LOG"
      die "slapd exited during start-up (ports $port/$tls); see $LOG"
    fi
    sleep 0.1
  done
  tail_log "$LOG"
  die "slapd did not answer on 127.0.0.1:$port within 30 s; see $LOG (it may still be running: $0 stop $DIR)"
}

cmd_stop() {
  local pid i sock
  setup "$1"
  if ! pid=$(our_pid); then
    say "not running ($DIR)"
    return 0
  fi
  kill -TERM "$pid"
  for ((i = 0; i < 300; i++)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      break
    fi
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    # mdb is crash-safe; a hung slapd must not block the caller forever.
    warn "slapd (pid $pid) still running 30 s after SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    ! kill -0 "$pid" 2>/dev/null || die "slapd (pid $pid) did not exit"
  fi
  rm -f -- "$PIDFILE"
  sock=$(env_get "$ENVF" LDAPI_SOCKET 2>/dev/null || true)
  if [[ $sock == /tmp/rgldap.*/ldapi ]]; then
    rm -f -- "$sock"
    rmdir -- "${sock%/ldapi}" 2>/dev/null || true
  fi
  say "stopped ($DIR)"
}

cmd_status() {
  local pid port tls
  setup "$1"
  port=$(env_get "$ENVF" LDAP_PORT 2>/dev/null || echo "?")
  tls=$(env_get "$ENVF" LDAPS_PORT 2>/dev/null || echo "?")
  if pid=$(our_pid); then
    say "running on 127.0.0.1:$port (ldaps $tls), pid $pid ($DIR)"
    return 0
  fi
  say "not running ($DIR)"
  return 1
}

[[ $# -ge 2 ]] || usage
case $1 in
  start)
    [[ $# -eq 2 || $# -eq 4 ]] || usage
    cmd_start "$2" "${3:-}" "${4:-}"
    ;;
  stop) [[ $# -eq 2 ]] || usage; cmd_stop "$2" ;;
  status) [[ $# -eq 2 ]] || usage; cmd_status "$2" ;;
  *) usage ;;
esac
