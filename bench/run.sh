#!/usr/bin/env bash
# `make bench`: roomgate's figures against its ceilings, all in one run, all
# on loopback. Starts a private PostgreSQL and slapd (deploy/dev/pg.sh and
# slapd.sh) under $BENCH_OUT/run, loads a bench directory of 10,000 people
# and two groups (bench-5k inside bench-10k), starts the lasso test IdP and
# roomgate (release build), makes meetings over the API with a host token,
# signs users in through the IdP, then measures in this order:
#   1. the HTTP floor: libmicrohttpd "200 OK" with server/http.c's settings
#   2. slapd: the exact search roomgate sends per admission
#   3. PostgreSQL: pgbench one-row INSERT commits (synchronous_commit on)
#   4. admissions: POST /v1/join/{link}, 90% right / 10% wrong codes, 5% of
#      requests from non-members, at each BENCH_CLIENTS concurrency
#   5. issue 6's timing figure: non-members (and members) with right vs
#      wrong codes, 50/50 mix, medians side by side
#   6. forward-auth, live mode: GET /v1/authz as nginx auth_request sends
#      it, from BENCH_AUTHZ_USERS distinct admitted people rotating
#   7. under attack: legitimate admissions alone, then beside a flood of
#      wrong codes from other identities and source addresses; wrong-code
#      admissions counted from the audit trail afterwards
#   8. the peer: Apache httpd + mod_authnz_ldap (Debian apache2, its own
#      config and loopback port, a foreground process started and stopped
#      here) protecting a page with `Require ldap-group` for the same
#      people -- default LDAP cache and cache off; denials; how long a
#      removed person is still let in (up to BENCH_PEER_STALE_BOUND)
#   9. roomgate restarted with the directory watcher and webhooks to a
#      receiver in bench/revoke.c, and `[authz] membership_cache = on`
#      when this roomgate has that key: forward-auth in cache mode, then
#      the revocation distribution (BENCH_REVOCATIONS removals: time from
#      the LDAP modify returning to the next join refused, /v1/authz 403,
#      the webhook's arrival; stale admissions)
#  10. restarted with the watcher and the cache off: the revocation
#      distribution in live mode
#  11. roomgate's peak RSS (VmHWM), the highest of its processes
# Prints a table and writes it as JSON to $BENCH_OUT/bench-<UTC time>.json
# (and bench-latest.json). Everything it started is stopped on exit, also on
# failure or Ctrl-C.
#
# Knobs (environment; defaults in brackets):
#   BENCH_SECONDS [20]           measured seconds per admission run
#   BENCH_CEILING_SECONDS [10]   measured seconds per ceiling run
#   BENCH_TIMING_SECONDS [20]    measured seconds of the timing run
#   BENCH_TIMING_CLIENTS [4]     clients in the timing run (low: no queueing)
#   BENCH_WARMUP [2]             seconds run before each measurement
#   BENCH_CLIENTS ["16 64"]      concurrencies of the ceilings and admissions
#   BENCH_SEED [42]              seed of every random choice (requests, uids)
#   BENCH_MEMBERS [240]          signed-in members of the meeting group
#   BENCH_NONMEMBERS [16]        signed-in people in bench-10k only
#   BENCH_MEETINGS [8]           meetings the requests spread over
#   BENCH_WRONG_SHARE [0.10]     share of wrong codes in the admission mix
#   BENCH_NONMEMBER_SHARE [0.05] share of non-member requests in the mix
#   BENCH_OUT [bench/out]        results and the private services (run/)
#   BENCH_BIN_DIR [build/rel]    roomgate, idp and the bench tools
#   BENCH_COMMIT [git describe]  what the report names as the code measured
#   BENCH_KEEP [unset]           1: keep $BENCH_OUT/run (logs, data)
#   ROOMGATE_*                   reach roomgate as usual and override the
#                                bench config, e.g. ROOMGATE_DATABASE_POOL_SIZE=32
#                                (the report names server threads and pools)
#   BENCH_SOURCES [many]         many: each signed-in person sends its own
#                                X-Forwarded-For address (10.x.y.z) and
#                                roomgate trusts 127.0.0.1 as a proxy (as
#                                behind nginx); one: every request from
#                                127.0.0.1 (one NAT address: all failures
#                                update one per-source lockout row)
#   BENCH_PG_STATEMENTS [1]      1: load pg_stat_statements and report the
#                                statements of the admission runs by time
#                                (what bounds them); 0: PostgreSQL as shipped
#   BENCH_AUTHZ_USERS ["500 5000"] distinct admitted people rotating in the
#                                forward-auth runs (and the peer's), each
#                                signed in through the IdP (at most 5000:
#                                the members of the meeting group)
#   BENCH_AUTHZ_CLIENTS [64]     clients of the forward-auth and peer runs
#   BENCH_ATTACK_CLIENTS [4]     legitimate clients in the attack phase
#                                (right codes, members; low: no queueing)
#   BENCH_FLOOD_CLIENTS [32]     clients of the wrong-code flood
#   BENCH_FLOOD_IDENTITIES [1000] signed-in people sending the flood, each
#                                from its own address (10.3.x.y, forwarded)
#   BENCH_REVOCATIONS [50]       removals per revocation run (per mode)
#   BENCH_REVOCATION_WAIT_MS [10000] longest wait for each effect
#   BENCH_PEER [1]               0: skip the Apache peer
#   BENCH_PEER_STALE_BOUND [30]  seconds the peer is watched letting a
#                                removed person in (its cache TTL is 600)
#   BENCH_PEER_DENY_CLIENTS [4]  clients of the peer's denial run
#   BENCH_PEER_DENY_SECONDS [20] its length (no warm-up: denials are slow)
#   BENCH_PHASES [all]           all: every phase above; admission: only the
#                                ceilings (1-3), the admissions (4) and the
#                                report (about 3 minutes instead of 12; the
#                                other phases are listed as not measured),
#                                to compare admission changes quickly;
#                                authz: the ceilings (1-3), forward-auth
#                                live (6), the peer's throughput runs (8)
#                                and forward-auth in cache mode (9), no
#                                admissions, timing, attack, stale or
#                                revocation runs (about 5 minutes), to
#                                compare forward-auth changes with Apache
# Phases 6-10 use the people bu00001.. in order: the first USERS of them
# rotate in the forward-auth runs; the flood comes from the first
# BENCH_FLOOD_IDENTITIES of them that are not among the admission runs'
# members; the revocations remove the last ones (each put back afterwards).
set -euo pipefail

PROG=bench
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=deploy/dev/lib.sh
. "$root/deploy/dev/lib.sh"

secs=${BENCH_SECONDS:-20}
ceil_secs=${BENCH_CEILING_SECONDS:-10}
timing_secs=${BENCH_TIMING_SECONDS:-20}
timing_clients=${BENCH_TIMING_CLIENTS:-4}
warmup=${BENCH_WARMUP:-2}
clients_list=${BENCH_CLIENTS:-16 64}
seed=${BENCH_SEED:-42}
n_members=${BENCH_MEMBERS:-240}
n_nonmembers=${BENCH_NONMEMBERS:-16}
n_meetings=${BENCH_MEETINGS:-8}
wrong_share=${BENCH_WRONG_SHARE:-0.10}
nonmember_share=${BENCH_NONMEMBER_SHARE:-0.05}
out=$(abs_dir "${BENCH_OUT:-$root/bench/out}")
bindir=$(abs_dir "${BENCH_BIN_DIR:-$root/build/rel}")
keep=${BENCH_KEEP:-}
sources=${BENCH_SOURCES:-many}
case $sources in
  many) trusted="trusted_proxies = 127.0.0.1" export_xff=1 ;;
  one) trusted="; every request from 127.0.0.1 (BENCH_SOURCES=one)" export_xff=0 ;;
  *) die "BENCH_SOURCES must be 'many' or 'one', got '$sources'" ;;
esac
export LOADGEN_XFF=$export_xff

for v in secs ceil_secs timing_secs timing_clients warmup seed n_members \
  n_nonmembers n_meetings; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, got '${!v}'"
done
for c in $clients_list; do
  [[ $c =~ ^[1-9][0-9]*$ ]] || die "BENCH_CLIENTS must list whole numbers, got '$clients_list'"
done
((n_members >= 1 && n_members <= 5000)) || die "BENCH_MEMBERS must be 1-5000"
authz_users_list=${BENCH_AUTHZ_USERS:-500 5000}
authz_clients=${BENCH_AUTHZ_CLIENTS:-64}
attack_clients=${BENCH_ATTACK_CLIENTS:-4}
flood_clients=${BENCH_FLOOD_CLIENTS:-32}
flood_ids=${BENCH_FLOOD_IDENTITIES:-1000}
n_revocations=${BENCH_REVOCATIONS:-50}
phases=${BENCH_PHASES:-all}
case $phases in
  all | admission | authz) ;;
  *) die "BENCH_PHASES must be 'all', 'admission' or 'authz', got '$phases'" ;;
esac
revocation_wait=${BENCH_REVOCATION_WAIT_MS:-10000}
peer=${BENCH_PEER:-1}
peer_bound=${BENCH_PEER_STALE_BOUND:-30}
deny_clients=${BENCH_PEER_DENY_CLIENTS:-4}
deny_secs=${BENCH_PEER_DENY_SECONDS:-20}
for v in authz_clients attack_clients flood_clients flood_ids n_revocations \
  revocation_wait peer_bound deny_clients deny_secs; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive whole number, got '${!v}'"
done
n_authz=0
for u in $authz_users_list; do
  [[ $u =~ ^[1-9][0-9]*$ ]] && ((u <= 5000)) ||
    die "BENCH_AUTHZ_USERS must list numbers 1-5000, got '$authz_users_list'"
  ((u > n_authz)) && n_authz=$u
done
((n_authz >= 2 * n_revocations + 1)) ||
  die "BENCH_AUTHZ_USERS' largest must exceed 2 x BENCH_REVOCATIONS ($n_revocations)"
((n_nonmembers <= 5000)) || die "BENCH_NONMEMBERS must be 0-5000"

rg=$bindir/roomgate
idp=$bindir/idp
lg=$bindir/bench/loadgen
rv=$bindir/bench/revoke
for b in "$rg" "$idp" "$lg" "$rv" "$bindir/bench/ldapload" "$bindir/bench/floor"; do
  [[ -x $b ]] || die "$b is missing: run 'make bench' (it builds everything first)"
done
command -v pgbench >/dev/null 2>&1 ||
  PATH=$PATH:$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
command -v pgbench >/dev/null 2>&1 || die "pgbench not found (Debian package postgresql-15)"

run=$out/run
frag=$run/frags
base_dn=dc=example,dc=com
people=ou=people,$base_dn
group5k=cn=bench-5k,ou=groups,$base_dn
group10k=cn=bench-10k,ou=groups,$base_dn
idp_per=64 # the test IdP holds at most 64 users (tests/idp/idp.c)
idp_entity=http://bench-idp.test/saml
rg_pid="" floor_pid="" sampler="" apache_pid="" flood_pid=""
idp_pids=() group_idp_pids=()
taken_ports=" "

# new_port: a free port not in $taken_ports (pick_port alone may return the
# same free port twice). Runs in $(...), so callers add it to taken_ports.
new_port() {
  local p
  p=$(pick_port)
  while [[ $taken_ports == *" $p "* ]]; do p=$(pick_port); done
  printf '%s' "$p"
}

cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  [[ -z $sampler ]] || kill -TERM "$sampler" 2>/dev/null || true
  for p in $rg_pid $floor_pid $apache_pid $flood_pid "${idp_pids[@]}" "${group_idp_pids[@]}"; do
    kill -TERM "$p" 2>/dev/null || true
  done
  for p in $rg_pid $floor_pid $apache_pid $flood_pid "${idp_pids[@]}" "${group_idp_pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  if [[ -d $run/ldap ]]; then "$root/deploy/dev/slapd.sh" stop "$run/ldap" >/dev/null 2>&1 || true; fi
  if [[ -d $run/pg ]]; then "$root/deploy/dev/pg.sh" stop "$run/pg" >/dev/null 2>&1 || true; fi
  rm -f -- "$out/.running"
  if ((rc != 0)); then
    warn "failed (exit $rc); logs kept in $run"
  elif [[ -z $keep ]]; then
    rm -rf -- "$run"
  else
    say "kept $run"
  fi
  exit "$rc"
}

# One run per output directory: a second one would stop the first one's
# services below. (A PID file, not flock: every service started here would
# inherit the lock's descriptor and hold it.)
mkdir -p -- "$out"
if [[ -s $out/.running ]]; then
  other=$(cat "$out/.running")
  if [[ $other =~ ^[0-9]+$ ]] && kill -0 "$other" 2>/dev/null &&
    [[ $(tr '\0' ' ' <"/proc/$other/cmdline" 2>/dev/null) == *bench/run.sh* ]]; then
    die "another bench run (PID $other) is using $out (set BENCH_OUT for a second one)"
  fi
fi
printf '%s\n' "$$" >"$out/.running"

# A previous run that died hard: stop what it left, start clean.
if [[ -d $run ]]; then
  if [[ -d $run/ldap ]]; then "$root/deploy/dev/slapd.sh" stop "$run/ldap" >/dev/null 2>&1 || true; fi
  if [[ -d $run/pg ]]; then "$root/deploy/dev/pg.sh" stop "$run/pg" >/dev/null 2>&1 || true; fi
  rm -rf -- "$run"
fi
mkdir -p -- "$out" "$run" "$frag"
chmod 0755 "$out" "$run"
trap cleanup EXIT
trap 'exit 130' INT TERM
t_begin=$(date +%s)

# ---- the directory: demo data plus 10,000 bench people --------------------

# bench_ldif: bu00001-bu05000 in bench-5k and bench-10k, bu05001-bu10000 in
# bench-10k only. memberOf is written here because slapadd bypasses the
# memberof overlay (as deploy/dev/demo-ldif.sh does). Everyone has the
# run's user password (the peer binds as the person, as HTTP Basic does).
bench_ldif() {
  awk -v people="$people" -v g5="$group5k" -v g10="$group10k" -v pw="$(cat "$run/user-password")" 'BEGIN {
    for (i = 1; i <= 10000; i++) {
      u = sprintf("bu%05d", i)
      printf "dn: uid=%s,%s\nobjectClass: inetOrgPerson\nuid: %s\ncn: Bench User %d\nsn: User%d\ngivenName: Bench\ndisplayName: Bench User %d\nmail: %s@example.com\nuserPassword: %s\n", u, people, u, i, i, i, u, pw
      if (i <= 5000) printf "memberOf: %s\n", g5
      printf "memberOf: %s\n\n", g10
    }
    printf "dn: %s\nobjectClass: groupOfNames\ncn: bench-5k\ndescription: bench: 5,000 members\n", g5
    for (i = 1; i <= 5000; i++) printf "member: uid=bu%05d,%s\n", i, people
    printf "\ndn: %s\nobjectClass: groupOfNames\ncn: bench-10k\ndescription: bench: 10,000 members\n", g10
    for (i = 1; i <= 10000; i++) printf "member: uid=bu%05d,%s\n", i, people
    printf "\n"
  }'
}

say "starting PostgreSQL and slapd under $run"
pg_port=$(new_port)
taken_ports+="$pg_port "
"$root/deploy/dev/pg.sh" start "$run/pg" "$pg_port" >"$run/pg-start.log" 2>&1 ||
  { cat "$run/pg-start.log" >&2; die "PostgreSQL did not start"; }
# shellcheck disable=SC1091
. "$run/pg/env"
pg_statements=${BENCH_PG_STATEMENTS:-1}
if [[ $pg_statements == 1 ]]; then
  psql -X -q -v ON_ERROR_STOP=1 "$PG_ADMIN_URL" \
    -c "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'" >/dev/null
  "$root/deploy/dev/pg.sh" stop "$run/pg" >>"$run/pg-start.log" 2>&1
  "$root/deploy/dev/pg.sh" start "$run/pg" >>"$run/pg-start.log" 2>&1 ||
    { cat "$run/pg-start.log" >&2; die "PostgreSQL did not restart"; }
fi
ldap_port=$(new_port)
taken_ports+="$ldap_port "
ldaps_port=$(new_port)
taken_ports+="$ldaps_port "
"$root/deploy/dev/slapd.sh" start "$run/ldap" "$ldap_port" "$ldaps_port" >"$run/ldap-start.log" 2>&1 ||
  { cat "$run/ldap-start.log" >&2; die "slapd did not start"; }
"$root/deploy/dev/slapd.sh" stop "$run/ldap" >>"$run/ldap-start.log" 2>&1
say "loading 10,000 people and groups of 5,000 and 10,000 into the directory"
(umask 077 && rand_hex 16 >"$run/user-password")
(umask 077 && bench_ldif >"$run/bench.ldif")
/usr/sbin/slapadd -n1 -w -F "$run/ldap/slapd.d" -l "$run/bench.ldif" >"$run/slapadd.log" 2>&1 ||
  { tail -n 20 "$run/slapadd.log" >&2; die "slapadd of the bench directory failed"; }
"$root/deploy/dev/slapd.sh" start "$run/ldap" >>"$run/ldap-start.log" 2>&1 ||
  { cat "$run/ldap-start.log" >&2; die "slapd did not restart"; }
# shellcheck disable=SC1091
. "$run/ldap/env"
(umask 077 && printf '%s' "$LDAP_BIND_PASSWORD" >"$run/ldap-password")
# The directory admin: the bench's removals (roomgate's account only reads).
(umask 077 && printf '%s' "$LDAP_ADMIN_PASSWORD" >"$run/ldap-admin-password")

# ---- roomgate and the IdP -------------------------------------------------

http_port=$(new_port)
taken_ports+="$http_port "
idp_port0=$(new_port)
taken_ports+="$idp_port0 "
base=http://127.0.0.1:$http_port
idp_base=http://127.0.0.1:$idp_port0
saml=$run/saml
mkdir -p "$saml"
chmod 0700 "$saml"
"$rg" keygen -o "$run/server.keys" >/dev/null
"$rg" saml-keygen --key "$saml/sp.key" --cert "$saml/sp.crt" --name roomgate-bench >/dev/null
"$rg" saml-keygen --key "$saml/idp.key" --cert "$saml/idp.crt" --name roomgate-bench-idp >/dev/null
"$idp" --entity-id "$idp_entity" --base-url "$idp_base" --key "$saml/idp.key" \
  --cert "$saml/idp.crt" --metadata-out "$saml/idp-md.xml"
(umask 077 && rand_hex 32 >"$run/jitsi.secret")
(umask 077 && rand_hex 32 >"$run/webhook.secret")

# Lockout stays on and is checked on every request, but with limits the
# bench's own wrong codes cannot reach: every request comes from 127.0.0.1
# (source_max_failures), and probing detection would switch the meetings'
# waiting rooms on (probe_identities = 0: off). write_config DIR EXTRA:
# the config with DIR added to [directory] and the sections EXTRA (the
# watcher phases).
write_config() {
(umask 077 && cat >"$run/roomgate.ini" <<EOF
; Written by bench/run.sh for one bench run.
[server]
listen = 127.0.0.1
port = $http_port
public_url = $base
node_name = bench

[database]
url = $PG_URL
migrate_on_start = true

[ldap]
uri = $LDAP_URI
bind_dn = $LDAP_BIND_DN
bind_password_file = $run/ldap-password
base_dn = $base_dn

[directory]
people_base = $people
group_base = ou=groups,$base_dn
$1

[keys]
file = $run/server.keys

[saml]
entity_id = $base/saml/metadata
key_file = $saml/sp.key
cert_file = $saml/sp.crt
idp_metadata_file = $saml/idp-md.xml
name_id_format = urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress
directory_key = uid

[admission]
redirect_url = https://meet.example.com/{room}?jwt={token}
max_failures = 1000
source_max_failures = 10000000
probe_identities = 0
$trusted

[tokens]
hs256_secret_file = $run/jitsi.secret
audience = jitsi
subject = meet.example.com
$2
EOF
)
}

start_roomgate() {
  setsid "$rg" serve -c "$run/roomgate.ini" >>"$run/roomgate.log" 2>&1 </dev/null &
  rg_pid=$!
  for i in $(seq 1 100); do
    curl -fsS -o /dev/null --noproxy '*' "$base/readyz" 2>/dev/null && break
    kill -0 "$rg_pid" 2>/dev/null || { tail_log "$run/roomgate.log"; die "roomgate exited"; }
    ((i < 100)) || { tail_log "$run/roomgate.log"; die "roomgate did not become ready"; }
    sleep 0.2
  done
}
# Peak RSS over every roomgate process of the run (restarts included).
peak_rss_kb=0
stop_roomgate() {
  local h
  h=$(awk '/^VmHWM:/ { print $2 }' "/proc/$rg_pid/status")
  ((h > peak_rss_kb)) && peak_rss_kb=$h
  kill -TERM "$rg_pid"
  wait "$rg_pid" 2>/dev/null || true
  rg_pid=""
}
write_config "" ""
say "starting roomgate on $base"
start_roomgate
curl -fsS -o "$saml/sp-md.xml" --noproxy '*' "$base/saml/metadata" ||
  die "cannot read roomgate's SAML metadata"
pg_rg_admin_url=${PG_ADMIN_URL%/postgres}/roomgate
if [[ $pg_statements == 1 ]]; then
  psql -X -q -v ON_ERROR_STOP=1 "$pg_rg_admin_url" \
    -c 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements' >/dev/null
fi

# The people who sign in: members spread over bu00001-bu05000, non-members
# over bu05001-bu10000; idp_per per IdP process (all share one entity id,
# key and base URL; the load generator sends each user to its process).
users_txt=$run/users.txt
: >"$users_txt"
pw=$(cat "$run/user-password")
n_users=$((n_members + n_nonmembers))
n_idp=$(((n_users + idp_per - 1) / idp_per))
idp_ports=()
for ((k = 0; k < n_idp; k++)); do
  if ((k == 0)); then
    idp_ports+=("$idp_port0")
  else
    p=$(new_port)
    taken_ports+="$p "
    idp_ports+=("$p")
  fi
  (umask 077 && : >"$saml/idp-users-$k.txt")
done
for ((i = 0; i < n_users; i++)); do
  if ((i < n_members)); then
    uid=$(printf 'bu%05d' $((1 + i * 5000 / n_members)))
    cls=m
  else
    uid=$(printf 'bu%05d' $((5001 + (i - n_members) * 5000 / (n_nonmembers > 0 ? n_nonmembers : 1))))
    cls=n
  fi
  k=$((i / idp_per))
  printf '%s:%s:%s@example.com\n' "$uid" "$pw" "$uid" >>"$saml/idp-users-$k.txt"
  printf '%s %s %s\n' "$uid" "${idp_ports[$k]}" "$cls" >>"$users_txt"
done
say "starting $n_idp test IdP process(es) for $n_users users"
for ((k = 0; k < n_idp; k++)); do
  setsid "$idp" --entity-id "$idp_entity" --base-url "$idp_base" --key "$saml/idp.key" \
    --cert "$saml/idp.crt" --users "$saml/idp-users-$k.txt" --port "${idp_ports[$k]}" \
    --sp-metadata "$saml/sp-md.xml" >>"$run/idp-$k.log" 2>&1 </dev/null &
  idp_pids+=($!)
done
for ((k = 0; k < n_idp; k++)); do
  for i in $(seq 1 100); do
    curl -fsS -o /dev/null --noproxy '*' "http://127.0.0.1:${idp_ports[$k]}/metadata" 2>/dev/null && break
    ((i < 100)) || { tail_log "$run/idp-$k.log"; die "test IdP $k did not start"; }
    sleep 0.1
  done
done

say "making $n_meetings meetings (allowed group $group5k) with a host token"
"$rg" -c "$run/roomgate.ini" token create --role host --name bench-host \
  --identity bu00001 >"$run/token.out" 2>&1 || { cat "$run/token.out" >&2; die "token create failed"; }
grep -o 'rgt_[A-Za-z0-9_-]*' "$run/token.out" | head -n 1 >"$run/host-token"
chmod 0600 "$run/host-token"
"$lg" meetings "$base" "$run/host-token" "$group5k" "$n_meetings" "$run/meetings.txt"

say "signing $n_users users in through the test IdP ($n_members members, $n_nonmembers non-members)"
t0=$(date +%s.%N)
"$lg" signin "$base" "$run/user-password" "$run/sessions.txt" <"$users_txt"
t1=$(date +%s.%N)
signin_secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')

# ---- 1. the HTTP floor ----------------------------------------------------

floor_port=$(new_port)
taken_ports+="$floor_port "
"$bindir/bench/floor" "$floor_port" "${ROOMGATE_SERVER_THREADS:-16}" >"$run/floor.log" 2>&1 &
floor_pid=$!
for i in $(seq 1 50); do
  curl -fsS -o /dev/null --noproxy '*' "http://127.0.0.1:$floor_port/" 2>/dev/null && break
  ((i < 50)) || die "the HTTP floor did not start"
  sleep 0.1
done
for c in $clients_list; do
  say "HTTP floor, $c clients"
  "$lg" get "http://127.0.0.1:$floor_port/" "$c" "$ceil_secs" "$warmup" \
    "HTTP floor: MHD 200 OK, ${ROOMGATE_SERVER_THREADS:-16} threads" "$frag/http-$c.json"
done
kill -TERM "$floor_pid"
wait "$floor_pid" 2>/dev/null || true
floor_pid=""

# ---- 2. slapd: roomgate's search ------------------------------------------

for c in $clients_list; do
  say "slapd, roomgate's check search, $c clients"
  "$bindir/bench/ldapload" "$LDAP_URI" "$LDAP_BIND_DN" "$run/ldap-password" "$people" \
    bu 10000 "$c" "$ceil_secs" "$warmup" "$seed" "slapd: the check's search" "$frag/ldap-$c.json"
done

# ---- 3. PostgreSQL: one-row INSERT commits --------------------------------

pg_bench_url=${PG_ADMIN_URL%/postgres}/bench
psql -X -q -v ON_ERROR_STOP=1 "$PG_ADMIN_URL" -c 'CREATE DATABASE bench' >/dev/null
psql -X -q -v ON_ERROR_STOP=1 "$pg_bench_url" \
  -c 'CREATE TABLE t (id bigserial PRIMARY KEY, v integer NOT NULL, at timestamptz NOT NULL DEFAULT now())' >/dev/null
sync_commit=$(psql -X -At "$pg_bench_url" -c 'SHOW synchronous_commit')
[[ $sync_commit == on ]] || die "synchronous_commit is '$sync_commit', not on"
printf '%s\n' '\set v random(1, 1000000)' 'INSERT INTO t (v) VALUES (:v);' >"$run/insert.sql"
for c in $clients_list; do
  say "pgbench one-row INSERT, $c clients"
  rm -f "$run"/pgb-"$c".*
  (cd "$run" && pgbench -n -f "$run/insert.sql" -c "$c" -j 2 -T "$ceil_secs" \
    -l --log-prefix="pgb-$c" "$pg_bench_url") >"$run/pgbench-$c.out" 2>&1 ||
    { cat "$run/pgbench-$c.out" >&2; die "pgbench failed"; }
  tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$run/pgbench-$c.out" | head -n 1)
  # Per-transaction log: column 3 is the latency in microseconds.
  read -r p50 p99 n_tx < <(cat "$run"/pgb-"$c".* | awk '{ print $3 }' | sort -n |
    awk '{ v[NR] = $1 } END { i50 = int(NR * 0.50 + 0.999999); i99 = int(NR * 0.99 + 0.999999);
      printf "%.3f %.3f %d\n", v[i50] / 1000, v[i99] / 1000, NR }')
  "$lg" note "$frag/pgbench-$c.json" pgbench label="pgbench one-row INSERT (sync commit)" \
    clients="$c" per_s="$tps" p50_ms="$p50" p99_ms="$p99" transactions="$n_tx" \
    synchronous_commit="$sync_commit" seconds="$ceil_secs"
  rm -f "$run"/pgb-"$c".*
done

# ---- 4. admissions --------------------------------------------------------

metric_sum() {
  curl -fsS --noproxy '*' "$base/metrics" | awk -v m="$1" \
    '$1 == m || index($1, m "{") == 1 { s += $NF } END { printf "%.0f\n", s }'
}
# What bounds the admissions: CPU ticks per component over the admission
# runs (/proc), and the wait events of roomgate's PostgreSQL backends,
# sampled during the last (highest concurrency) run.
ticks_of() {
  local t=0 p v
  for p in "$@"; do
    v=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }') || v=0
    t=$((t + ${v:-0}))
  done
  printf '%s' "$t"
}
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9, $5 + $6 }' /proc/stat; }
pg_pids() {
  local pm
  pm=$(head -n 1 "$run/pg/pgdata/postmaster.pid")
  printf '%s ' "$pm" $(pgrep -P "$pm")
}
slapd_pid=$(cat "$run/ldap/slapd.pid")
# pg_statements_fragment OUT PER N: roomgate's top statements by total time
# since the last pg_stat_statements_reset(), per one of N requests (PER
# names them); PostgreSQL writes the fragment.
pg_statements_fragment() {
  psql -X -q -At -v ON_ERROR_STOP=1 -v per="$2" -v n="$3" "$pg_rg_admin_url" >"$1" <<'SQL'
WITH s AS (
  SELECT calls, total_exec_time, mean_exec_time, query
  FROM pg_stat_statements
  WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'roomgate')
), t AS (SELECT sum(calls) AS calls, sum(total_exec_time) AS ms FROM s)
SELECT json_build_object(
  'kind', 'statements',
  'per', :'per',
  'requests', :n,
  'calls_per_request', round((SELECT calls FROM t) / greatest(:n, 1), 2),
  'exec_ms_per_request', round(((SELECT ms FROM t) / greatest(:n, 1))::numeric, 3),
  'top', (SELECT json_agg(x) FROM (
    SELECT calls, round(total_exec_time::numeric, 1) AS total_ms,
           round(mean_exec_time::numeric, 3) AS mean_ms,
           round((100 * total_exec_time / nullif((SELECT ms FROM t), 0))::numeric, 1) AS pct,
           left(regexp_replace(query, '\s+', ' ', 'g'), 100) AS query
    FROM s ORDER BY total_exec_time DESC LIMIT 8) x))
SQL
}
adm_rows() { psql -X -At "$pg_rg_admin_url" -c "SELECT count(*) FROM audit_log WHERE event_type = 'admission'"; }
if [[ $phases != authz ]]; then
adm0=$(adm_rows)
if [[ $pg_statements == 1 ]]; then
  psql -X -q -At "$pg_rg_admin_url" -c 'SELECT pg_stat_statements_reset()' >/dev/null
fi
rt0=$(metric_sum roomgate_directory_round_trips_total)
ck0=$(metric_sum roomgate_directory_checks_total)
read -r all0 idle0 < <(machine_ticks)
w0=$(date +%s.%N)
rgt0=$(ticks_of "$rg_pid")
sdt0=$(ticks_of "$slapd_pid")
# shellcheck disable=SC2046 # one PID per word
pgt0=$(ticks_of $(pg_pids))
: >"$run/pg-waits.txt"
last_c=${clients_list##* }
lg_cpu=0
for c in $clients_list; do
  say "admissions, $c clients, $secs s"
  sampler=""
  if [[ $c == "$last_c" ]]; then
    (
      sleep "$warmup"
      end=$((SECONDS + secs))
      while ((SECONDS < end)); do
        psql -X -At "$PG_ADMIN_URL" -c "SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') FROM pg_stat_activity WHERE datname = 'roomgate' AND state = 'active'" >>"$run/pg-waits.txt" 2>/dev/null || true
        sleep 0.25
      done
    ) &
    sampler=$!
  fi
  "$lg" join "$base" "$run/sessions.txt" "$run/meetings.txt" "$c" "$secs" "$warmup" "$seed" \
    "$wrong_share" "$nonmember_share" "admission: 90/10 codes, 5% non-members" "$frag/adm-$c.json"
  [[ -z $sampler ]] || wait "$sampler" || true
  sampler=""
  lg_cpu=$(awk -v a="$lg_cpu" '/"loadgen_cpu_s"/ { gsub(/[,]/, ""); print a + $2 }' "$frag/adm-$c.json")
done
read -r all1 idle1 < <(machine_ticks)
w1=$(date +%s.%N)
adm1=$(adm_rows)
rgt1=$(ticks_of "$rg_pid")
sdt1=$(ticks_of "$slapd_pid")
# shellcheck disable=SC2046 # one PID per word
pgt1=$(ticks_of $(pg_pids))
hz=$(getconf CLK_TCK)
waits=$(sort "$run/pg-waits.txt" | uniq -c | sort -rn | head -n 6 | awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""), $2, $1 }')
cores() { awk -v d="$1" -v hz="$hz" -v a="$w0" -v b="$w1" 'BEGIN { printf "%.2f", d / hz / (b - a) }'; }
"$lg" note "$frag/profile.json" profile \
  roomgate_cores="$(cores $((rgt1 - rgt0)))" postgres_cores="$(cores $((pgt1 - pgt0)))" \
  slapd_cores="$(cores $((sdt1 - sdt0)))" \
  loadgen_cores="$(awk -v s="$lg_cpu" -v a="$w0" -v b="$w1" 'BEGIN { printf "%.2f", s / (b - a) }')" \
  machine_busy_pct="$(awk -v i=$((idle1 - idle0)) -v t=$((all1 - all0)) 'BEGIN { printf "%.1f", t ? 100 - 100 * i / t : 0 }')" \
  pg_waits="${waits:-none sampled}" admissions=$((adm1 - adm0)) \
  postgres_cpu_ms_per_admission="$(awk -v d=$((pgt1 - pgt0)) -v hz="$hz" -v n=$((adm1 - adm0)) 'BEGIN { printf "%.3f", n ? 1000 * d / hz / n : 0 }')" \
  roomgate_cpu_ms_per_admission="$(awk -v d=$((rgt1 - rgt0)) -v hz="$hz" -v n=$((adm1 - adm0)) 'BEGIN { printf "%.3f", n ? 1000 * d / hz / n : 0 }')" \
  slapd_cpu_ms_per_admission="$(awk -v d=$((sdt1 - sdt0)) -v hz="$hz" -v n=$((adm1 - adm0)) 'BEGIN { printf "%.3f", n ? 1000 * d / hz / n : 0 }')"
# How many source addresses roomgate saw (BENCH_SOURCES): from its audit.
sources_seen=$(psql -X -At "$pg_rg_admin_url" -c "SELECT count(DISTINCT source_addr) FROM audit_log WHERE event_type = 'admission'")
if [[ $pg_statements == 1 ]]; then
  pg_statements_fragment "$frag/statements.json" admission $((adm1 - adm0))
fi
rt1=$(metric_sum roomgate_directory_round_trips_total)
ck1=$(metric_sum roomgate_directory_checks_total)
"$lg" note "$frag/directory.json" directory checks=$((ck1 - ck0)) round_trips=$((rt1 - rt0)) \
  round_trips_per_check="$(awk -v r=$((rt1 - rt0)) -v c=$((ck1 - ck0)) 'BEGIN { printf "%.3f", c ? r / c : 0 }')"
else
  sources_seen=0
  "$lg" note "$frag/todo-admissions.json" todo what="admissions" why="BENCH_PHASES=$phases"
fi

if [[ $phases != admission ]]; then
# ---- 5. issue 6's timing figure -------------------------------------------

if [[ $phases == all ]]; then
say "timing: right vs wrong codes, members and non-members, $timing_clients clients, $timing_secs s"
"$lg" join "$base" "$run/sessions.txt" "$run/meetings.txt" "$timing_clients" "$timing_secs" \
  "$warmup" "$seed" 0.5 0.5 "timing: 50/50 codes, 50/50 non-members" "$frag/timing.json" timing
fi

# ---- 6. forward-auth, live mode -------------------------------------------

# signin_group NAME UIDS OUT: signs the members listed in UIDS (one uid a
# line) in through IdP processes of their own (idp_per people each),
# stopped afterwards; writes "m uid cookie" lines to OUT in UIDS' order.
signin_group() {
  local name=$1 list=$2 sessions=$3 n=0 k=-1 uid port p
  local -a ports=()
  : >"$run/$name-users.txt"
  while read -r uid; do
    if ((n % idp_per == 0)); then
      port=$(new_port)
      taken_ports+="$port "
      ports+=("$port")
      k=$((k + 1))
      (umask 077 && : >"$saml/idp-$name-$k.txt")
    fi
    printf '%s:%s:%s@example.com\n' "$uid" "$pw" "$uid" >>"$saml/idp-$name-$k.txt"
    printf '%s %s m\n' "$uid" "$port" >>"$run/$name-users.txt"
    n=$((n + 1))
  done <"$list"
  group_idp_pids=()
  for ((k = 0; k < ${#ports[@]}; k++)); do
    setsid "$idp" --entity-id "$idp_entity" --base-url "$idp_base" --key "$saml/idp.key" \
      --cert "$saml/idp.crt" --users "$saml/idp-$name-$k.txt" --port "${ports[$k]}" \
      --sp-metadata "$saml/sp-md.xml" >>"$run/idp-$name.log" 2>&1 </dev/null &
    group_idp_pids+=($!)
  done
  for ((k = 0; k < ${#ports[@]}; k++)); do
    for i in $(seq 1 100); do
      curl -fsS -o /dev/null --noproxy '*' "http://127.0.0.1:${ports[$k]}/metadata" 2>/dev/null && break
      ((i < 100)) || { tail_log "$run/idp-$name.log"; die "test IdP $name-$k did not start"; }
      sleep 0.1
    done
  done
  "$lg" signin "$base" "$run/user-password" "$sessions" <"$run/$name-users.txt"
  for p in "${group_idp_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${group_idp_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  group_idp_pids=()
}
metric_value() {
  curl -fsS --noproxy '*' "$base/metrics" 2>/dev/null | awk -v m="$1" '$1 == m { print $2; exit }'
}

# The forward-auth people: bu00001.. in order, each signed in and admitted
# (session i to meeting i % meetings, as nginx would name it).
awk -v n="$n_authz" 'BEGIN { for (i = 1; i <= n; i++) printf "bu%05d\n", i }' >"$run/authz-uids.txt"
say "signing $n_authz forward-auth people in and admitting each one"
t0=$(date +%s.%N)
signin_group authz "$run/authz-uids.txt" "$run/authz-sessions.txt"
"$lg" admit "$base" "$run/authz-sessions.txt" "$run/meetings.txt" 16
t1=$(date +%s.%N)
authz_setup_secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
# What bounds forward-auth: its statements, as for the admissions.
if [[ $pg_statements == 1 ]]; then
  psql -X -q -At "$pg_rg_admin_url" -c 'SELECT pg_stat_statements_reset()' >/dev/null
fi
# /v1/authz requests answered so far (any status), from /metrics.
authz_requests() {
  curl -fsS --noproxy '*' "$base/metrics" | awk 'index($0, "roomgate_http_requests_total{") == 1 &&
    index($0, "/v1/authz") { s += $NF } END { printf "%.0f\n", s }'
}
az0=$(authz_requests)
for u in $authz_users_list; do
  say "forward-auth, live mode, $u people rotating, $authz_clients clients"
  "$lg" authz "$base" "$run/authz-sessions.txt" "$run/meetings.txt" "$u" "$authz_clients" \
    "$ceil_secs" "$warmup" "$seed" "forward-auth live, $u people" "$frag/authz-live-$u.json"
done
if [[ $pg_statements == 1 ]]; then
  pg_statements_fragment "$frag/statements-authz.json" "forward-auth request" \
    $(($(authz_requests) - az0))
fi

# ---- 7. under attack ------------------------------------------------------

if [[ $phases == all ]]; then

# The flood's people: the first flood_ids forward-auth people who are not
# among the admission runs' members (their lockout rows stay apart).
awk -v n="$flood_ids" 'NR == FNR { if ($1 == "m") legit[$2] = 1; next }
  !($2 in legit) && k < n { print; k++ }' \
  "$run/sessions.txt" "$run/authz-sessions.txt" >"$run/flood-sessions.txt"
n_flood=$(wc -l <"$run/flood-sessions.txt")
say "under attack: legitimate admissions, $attack_clients clients, quiet"
"$lg" join "$base" "$run/sessions.txt" "$run/meetings.txt" "$attack_clients" "$ceil_secs" \
  "$warmup" "$seed" 0 0 "attack: legitimate, quiet" "$frag/attack-quiet.json" attack_quiet
say "under attack: the same beside a wrong-code flood ($flood_clients clients, $n_flood people and addresses)"
flood_t0=$(psql -X -At "$pg_rg_admin_url" -c 'SELECT clock_timestamp()')
LOADGEN_XFF=1 LOADGEN_XFF_NET=3 "$lg" join "$base" "$run/flood-sessions.txt" "$run/meetings.txt" \
  "$flood_clients" "$ceil_secs" "$warmup" "$((seed + 1))" 1 0 "attack: the wrong-code flood" \
  "$frag/attack-flood.json" attack_flood &
flood_pid=$!
"$lg" join "$base" "$run/sessions.txt" "$run/meetings.txt" "$attack_clients" "$ceil_secs" \
  "$warmup" "$seed" 0 0 "attack: legitimate, under the flood" "$frag/attack-legit.json" attack_legit
wait "$flood_pid" || die "the flood's load generator failed"
flood_pid=""
flood_t1=$(psql -X -At "$pg_rg_admin_url" -c 'SELECT clock_timestamp()')
# Wrong-code admissions, from the audit trail: any allow without a right
# code over the whole run, and any allow for a flood identity (they only
# ever sent wrong codes) during the flood.
cut -d' ' -f2 "$run/flood-sessions.txt" >"$run/flood-uids.txt"
wrong_allow=$(psql -X -At "$pg_rg_admin_url" -c \
  "SELECT count(*) FROM audit_log WHERE event_type = 'admission' AND outcome = 'allow' AND code_ok IS NOT TRUE")
flood_allow=$(psql -X -q -At -v ON_ERROR_STOP=1 -v t0="$flood_t0" -v t1="$flood_t1" "$pg_rg_admin_url" <<SQL
CREATE TEMP TABLE flood (identity text);
\copy flood FROM '$run/flood-uids.txt'
SELECT count(*) FROM audit_log WHERE event_type = 'admission' AND outcome = 'allow'
  AND at BETWEEN :'t0' AND :'t1' AND identity IN (SELECT identity FROM flood);
SQL
)
flood_allow=${flood_allow##*$'\n'}
flood_rows=$(psql -X -At -v t0="$flood_t0" -v t1="$flood_t1" "$pg_rg_admin_url" <<'SQL'
SELECT count(*) FROM audit_log WHERE event_type = 'admission' AND outcome = 'deny'
  AND at BETWEEN :'t0' AND :'t1' AND code_ok IS FALSE;
SQL
)
"$lg" note "$frag/attack.json" attack_audit wrong_code_admissions_run="$wrong_allow" \
  flood_identity_admissions="$flood_allow" wrong_code_denials_recorded="$flood_rows" \
  flood_identities="$n_flood" flood_addresses="$n_flood"
fi

# ---- 8. the peer: Apache httpd + mod_authnz_ldap --------------------------

# bench_install_apache: Debian's apache2 when missing, as
# deploy/install-deps.sh installs packages: as root, with a policy-rc.d that
# keeps the package from starting the system's own Apache.
bench_install_apache() {
  local policy=/usr/sbin/policy-rc.d made=0
  [[ -x /usr/sbin/apache2 ]] && return 0
  if [[ $(id -u) != 0 ]]; then
    warn "the peer needs Debian's apache2: sudo apt-get install --no-install-recommends apache2 (or BENCH_PEER=0)"
    return 1
  fi
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    made=1
  fi
  say "installing Debian's apache2 (not started as a service)"
  apt-get update -qq >"$run/apt-apache2.log" 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Use-Pty=0 apache2 >>"$run/apt-apache2.log" 2>&1 || {
    [[ $made == 0 ]] || rm -f "$policy"
    tail -n 20 "$run/apt-apache2.log" >&2
    return 1
  }
  [[ $made == 0 ]] || rm -f "$policy"
}
# apache_conf CACHE: httpd config for the peer; CACHE "default" keeps
# mod_ldap's caches as shipped (search/bind and compare caches, 1024
# entries, TTL 600 s), "off" sets both to 0 entries.
apache_conf() {
  local mods=/usr/lib/apache2/modules cache_lines="" user_lines=""
  [[ $1 == off ]] && cache_lines=$'LDAPCacheEntries 0\nLDAPOpCacheEntries 0'
  [[ $(id -u) != 0 ]] || user_lines=$'User nobody\nGroup nogroup'
  cat <<EOF
# Written by bench/run.sh: the peer, mod_authnz_ldap, LDAP cache $1.
ServerRoot $run/apache
DefaultRuntimeDir $run/apache
PidFile $run/apache/httpd.pid
Listen 127.0.0.1:$apache_port
ServerName 127.0.0.1
ErrorLog $run/apache/error.log
LogLevel warn
LoadModule mpm_event_module $mods/mod_mpm_event.so
LoadModule authn_core_module $mods/mod_authn_core.so
LoadModule authz_core_module $mods/mod_authz_core.so
LoadModule auth_basic_module $mods/mod_auth_basic.so
LoadModule ldap_module $mods/mod_ldap.so
LoadModule authnz_ldap_module $mods/mod_authnz_ldap.so
$user_lines
StartServers 2
ServerLimit 4
ThreadsPerChild 64
MaxRequestWorkers 256
KeepAlive On
MaxKeepAliveRequests 0
$cache_lines
DocumentRoot $run/apache/htdocs
<Directory $run/apache/htdocs>
  Require all granted
</Directory>
<Location /app/>
  AuthType Basic
  AuthName "bench"
  AuthBasicProvider ldap
  AuthLDAPURL "ldap://${LDAP_URI#ldap://}/$people?uid?one?(objectClass=inetOrgPerson)"
  AuthLDAPBindDN "$LDAP_BIND_DN"
  AuthLDAPBindPassword "$LDAP_BIND_PASSWORD"
  AuthLDAPGroupAttribute member
  AuthLDAPGroupAttributeIsDN on
  Require ldap-group $group5k
</Location>
EOF
}
start_apache() {
  (umask 077 && apache_conf "$1" >"$run/apache/httpd-$1.conf")
  setsid /usr/sbin/apache2 -f "$run/apache/httpd-$1.conf" -DFOREGROUND >>"$run/apache/stdout.log" 2>&1 </dev/null &
  apache_pid=$!
  for i in $(seq 1 100); do
    # 401: up, asking for credentials.
    [[ $(curl -s -o /dev/null -w '%{http_code}' --noproxy '*' "$apache_url" 2>/dev/null) == 401 ]] && return 0
    kill -0 "$apache_pid" 2>/dev/null || { tail_log "$run/apache/error.log"; die "apache2 exited"; }
    sleep 0.1
  done
  tail_log "$run/apache/error.log"
  die "apache2 did not start"
}
stop_apache() {
  kill -TERM "$apache_pid" 2>/dev/null || true
  wait "$apache_pid" 2>/dev/null || true
  apache_pid=""
}

if [[ $peer == 1 ]] && bench_install_apache; then
  apache_port=$(new_port)
  taken_ports+="$apache_port "
  apache_url=http://127.0.0.1:$apache_port/app/index.html
  mkdir -p "$run/apache/htdocs/app"
  chmod 0755 "$run/apache" "$run/apache/htdocs" "$run/apache/htdocs/app"
  printf 'the meeting app\n' >"$run/apache/htdocs/app/index.html"
  awk 'BEGIN { for (i = 5001; i <= 10000; i++) printf "bu%05d\n", i }' >"$run/nonmember-uids.txt"
  # The person removed to see how long the peer still lets them in: one of
  # the forward-auth people the revocations leave alone.
  peer_victim=$(sed -n "$((n_authz - 2 * n_revocations))p" "$run/authz-uids.txt")
  for cache in default off; do
    start_apache "$cache"
    for u in $authz_users_list; do
      say "peer: Apache mod_authnz_ldap, LDAP cache $cache, $u people rotating, $authz_clients clients"
      "$lg" basic "$apache_url" "$run/authz-uids.txt" "$run/user-password" "$u" 200 \
        "$authz_clients" "$ceil_secs" "$warmup" "$seed" "peer: Apache, cache $cache, $u people" \
        "$frag/peer-$cache-$u.json" ||
        warn "peer run (cache $cache, $u people) had unexpected answers or errors: see the table"
    done
    if [[ $phases == all ]]; then
    say "peer: how long a removed person is still let in, LDAP cache $cache (bound $peer_bound s)"
    "$rv" apache "$LDAP_URI" "$LDAP_ADMIN_DN" "$run/ldap-admin-password" "$group5k" "$people" \
      "$apache_url" "$peer_victim" "$run/user-password" "$peer_bound" \
      "peer: removed person still let in, cache $cache" "$frag/peer-stale-$cache.json"
    # Last: Apache goes on searching for a denial its client gave up
    # on; stopping it ends that.
    if [[ $cache == default ]]; then
      # No warm-up: a denial may take many seconds (mod_authnz_ldap
      # looks for nested groups among the group's 5,000 members).
      say "peer: denials (non-members, Require ldap-group fails), $deny_clients clients, $deny_secs s"
      "$lg" basic "$apache_url" "$run/nonmember-uids.txt" "$run/user-password" 5000 0 \
        "$deny_clients" "$deny_secs" 0 "$seed" "peer: Apache denials, cache default" \
        "$frag/peer-deny.json" ||
        warn "the peer's denial run had unexpected answers or errors (denials slower than the window?)"
    fi
    fi
    stop_apache
  done
else
  "$lg" note "$frag/todo-peer.json" todo what="peer: Apache mod_authnz_ldap" \
    why="$([[ $peer == 1 ]] && echo 'apache2 missing' || echo 'BENCH_PEER=0')"
fi

# ---- 9. watcher + cache mode: forward-auth and revocation -----------------

hook_port=$(new_port)
taken_ports+="$hook_port "
watch_dir="watch = on"
hooks="[webhooks]
url = http://127.0.0.1:$hook_port/hook
secret_file = $run/webhook.secret"
# wait_watcher: until the watcher has done its full refresh (and, with the
# cache on, until forward-auth answers from it).
wait_watcher() {
  local want_cache=$1
  for i in $(seq 1 300); do
    if [[ $(metric_value roomgate_directory_watch_caught_up) == 1 ]] &&
      { [[ $want_cache == 0 ]] || [[ $(metric_value roomgate_authz_cache_active) == 1 ]]; }; then
      return 0
    fi
    sleep 0.2
  done
  return 1
}
# revocations MODE FIRST: BENCH_REVOCATIONS removals of the forward-auth
# people from line FIRST on (0-based), each put back afterwards.
revocations() {
  say "revocation, authz $1 mode: $n_revocations removals from $group5k"
  "$rv" roomgate "$LDAP_URI" "$LDAP_ADMIN_DN" "$run/ldap-admin-password" "$group5k" "$people" \
    "$base" "$run/authz-sessions.txt" "$run/meetings.txt" "$hook_port" "$run/webhook.secret" \
    "$2" "$n_revocations" "$revocation_wait" "revocation, authz $1 mode" "$frag/revocation-$1.json" ||
    warn "the revocation run ($1) did not measure every removal: see the table"
}
# (Not `| grep -q`: with pipefail, grep leaving early fails the pipe.)
if [[ $("$rg" help config 2>/dev/null) == *membership_cache* ]]; then
  stop_roomgate
  # The session cache (the database part of forward-auth) with it, where
  # this roomgate has one (auto would turn it on too; said explicitly).
  session_cache=""
  [[ $("$rg" help config 2>/dev/null) != *session_cache* ]] || session_cache="
session_cache = on"
  write_config "$watch_dir" "$hooks
[authz]
membership_cache = on$session_cache"
  say "restarting roomgate with the directory watcher and the forward-auth cache"
  start_roomgate
  if wait_watcher 1; then
    for u in $authz_users_list; do
      say "forward-auth, cache mode, $u people rotating, $authz_clients clients"
      "$lg" authz "$base" "$run/authz-sessions.txt" "$run/meetings.txt" "$u" "$authz_clients" \
        "$ceil_secs" "$warmup" "$seed" "forward-auth cache, $u people" "$frag/authz-cache-$u.json"
    done
    cache_hits=$(metric_sum 'roomgate_authz_decisions_total{source="cache"}')
    "$lg" note "$frag/authz-cache-source.json" authz_cache decisions_from_cache="${cache_hits:-0}" \
      decisions_live="$(metric_sum 'roomgate_authz_decisions_total{source="live"}')" \
      session_cache_hits="$(metric_sum 'roomgate_authz_session_cache_requests_total{result="hit"}')" \
      session_cache_misses="$(metric_sum 'roomgate_authz_session_cache_requests_total{result="miss"}')"
    [[ $phases != all ]] || revocations cache $((n_authz - 2 * n_revocations))
  else
    warn "the forward-auth cache did not become active in 60 s"
    "$lg" note "$frag/todo-cache.json" todo what="forward-auth /v1/authz (watcher-cache mode)" \
      why="cache never active (roomgate_authz_cache_active != 1 after 60 s)"
  fi
else
  "$lg" note "$frag/todo-cache.json" todo what="forward-auth /v1/authz (watcher-cache mode)" \
    why="cache not built"
  "$lg" note "$frag/todo-cache-rev.json" todo what="revocation, authz cache mode" why="cache not built"
fi

# ---- 10. watcher, cache off: revocation in live mode ----------------------

if [[ $phases == all ]]; then
stop_roomgate
write_config "$watch_dir" "$hooks"
say "restarting roomgate with the directory watcher, forward-auth live"
start_roomgate
wait_watcher 0 || die "the directory watcher did not catch up in 60 s"
revocations live $((n_authz - n_revocations))
else
  for what in "timing: right vs wrong codes" "under attack" \
    "peer: removed person still let in, denials" "revocation, authz cache mode" \
    "revocation, authz live mode"; do
    "$lg" note "$frag/todo-$(printf '%s' "$what" | tr -c 'a-z0-9' '-').json" todo what="$what" \
      why="BENCH_PHASES=$phases"
  done
fi

else
  authz_setup_secs=0
  for what in "timing: right vs wrong codes" "forward-auth /v1/authz (live mode)" \
    "under attack" "peer: Apache mod_authnz_ldap" "forward-auth /v1/authz (watcher-cache mode)" \
    "revocation, authz cache mode" "revocation, authz live mode"; do
    "$lg" note "$frag/todo-$(printf '%s' "$what" | tr -c 'a-z0-9' '-').json" todo what="$what" \
      why="BENCH_PHASES=$phases"
  done
fi

# ---- 11. memory, the report ----------------------------------------------

hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$rg_pid/status")
((hwm > peak_rss_kb)) && peak_rss_kb=$hwm
"$lg" note "$frag/rss.json" rss peak_rss_kb="$peak_rss_kb"
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
mem=$(awk '/^MemTotal:/ { printf "%.1f GB", $2 / 1048576 }' /proc/meminfo)
stamp=$(date -u +%Y%m%dT%H%M%SZ)
"$lg" note "$frag/meta.json" meta date="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  commit="${BENCH_COMMIT:-$(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)}" \
  machine="$(nproc) CPUs ($cpu), $mem RAM, $(uname -sr); load generator, PostgreSQL, slapd and roomgate share it" \
  seed="$seed" command="make bench" seconds="$secs" ceiling_seconds="$ceil_secs" \
  timing_seconds="$timing_secs" timing_clients="$timing_clients" warmup="$warmup" \
  clients="$clients_list" signed_in_members="$n_members" signed_in_nonmembers="$n_nonmembers" \
  meetings="$n_meetings" wrong_share="$wrong_share" nonmember_share="$nonmember_share" \
  directory_people=10000 group_5k="$group5k" group_10k="$group10k" \
  meeting_group="$group5k" idp_processes="$n_idp" signin_seconds="$signin_secs" \
  lockout="max_failures=1000 source_max_failures=10000000 probe_identities=0" \
  sources="$sources" source_addresses_seen="$sources_seen" \
  roomgate_threads="${ROOMGATE_SERVER_THREADS:-16}" db_pool="${ROOMGATE_DATABASE_POOL_SIZE:-8}" \
  ldap_pool="${ROOMGATE_LDAP_POOL_SIZE:-8}" \
  authz_users="$authz_users_list" authz_clients="$authz_clients" authz_setup_seconds="$authz_setup_secs" \
  attack_clients="$attack_clients" flood_clients="$flood_clients" \
  revocations="$n_revocations" revocation_wait_ms="$revocation_wait" \
  peer_stale_bound_s="$peer_bound" peer_deny_clients="$deny_clients" \
  peer_deny_seconds="$deny_secs" \
  phases="$phases" webhook_poll_interval_ms="${ROOMGATE_WEBHOOKS_POLL_INTERVAL_MS:-500}" \
  wall_seconds=$(($(date +%s) - t_begin))
"$lg" report "$out/bench-$stamp.json" "$frag"/*.json | tee "$out/bench-$stamp.txt"
cp "$out/bench-$stamp.json" "$out/bench-latest.json"
cp "$out/bench-$stamp.txt" "$out/bench-latest.txt"
