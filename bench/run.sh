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
#   6. roomgate's peak RSS (VmHWM) over the whole run
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
((n_nonmembers <= 5000)) || die "BENCH_NONMEMBERS must be 0-5000"

rg=$bindir/roomgate
idp=$bindir/idp
lg=$bindir/bench/loadgen
for b in "$rg" "$idp" "$lg" "$bindir/bench/ldapload" "$bindir/bench/floor"; do
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
rg_pid="" floor_pid="" sampler=""
idp_pids=()
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
  for p in $rg_pid $floor_pid "${idp_pids[@]}"; do
    kill -TERM "$p" 2>/dev/null || true
  done
  for p in $rg_pid $floor_pid "${idp_pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  if [[ -d $run/ldap ]]; then "$root/deploy/dev/slapd.sh" stop "$run/ldap" >/dev/null 2>&1 || true; fi
  if [[ -d $run/pg ]]; then "$root/deploy/dev/pg.sh" stop "$run/pg" >/dev/null 2>&1 || true; fi
  if ((rc != 0)); then
    warn "failed (exit $rc); logs kept in $run"
  elif [[ -z $keep ]]; then
    rm -rf -- "$run"
  else
    say "kept $run"
  fi
  exit "$rc"
}

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
# memberof overlay (as deploy/dev/demo-ldif.sh does).
bench_ldif() {
  awk -v people="$people" -v g5="$group5k" -v g10="$group10k" 'BEGIN {
    for (i = 1; i <= 10000; i++) {
      u = sprintf("bu%05d", i)
      printf "dn: uid=%s,%s\nobjectClass: inetOrgPerson\nuid: %s\ncn: Bench User %d\nsn: User%d\ngivenName: Bench\ndisplayName: Bench User %d\nmail: %s@example.com\n", u, people, u, i, i, i, u
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
bench_ldif >"$run/bench.ldif"
/usr/sbin/slapadd -n1 -w -F "$run/ldap/slapd.d" -l "$run/bench.ldif" >"$run/slapadd.log" 2>&1 ||
  { tail -n 20 "$run/slapadd.log" >&2; die "slapadd of the bench directory failed"; }
"$root/deploy/dev/slapd.sh" start "$run/ldap" >>"$run/ldap-start.log" 2>&1 ||
  { cat "$run/ldap-start.log" >&2; die "slapd did not restart"; }
# shellcheck disable=SC1091
. "$run/ldap/env"
(umask 077 && printf '%s' "$LDAP_BIND_PASSWORD" >"$run/ldap-password")

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
(umask 077 && rand_hex 16 >"$run/user-password")

# Lockout stays on and is checked on every request, but with limits the
# bench's own wrong codes cannot reach: every request comes from 127.0.0.1
# (source_max_failures), and probing detection would switch the meetings'
# waiting rooms on (probe_identities = 0: off).
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
EOF
)

say "starting roomgate on $base"
setsid "$rg" serve -c "$run/roomgate.ini" >"$run/roomgate.log" 2>&1 </dev/null &
rg_pid=$!
for i in $(seq 1 100); do
  curl -fsS -o /dev/null --noproxy '*' "$base/readyz" 2>/dev/null && break
  kill -0 "$rg_pid" 2>/dev/null || { tail_log "$run/roomgate.log"; die "roomgate exited"; }
  ((i < 100)) || { tail_log "$run/roomgate.log"; die "roomgate did not become ready"; }
  sleep 0.2
done
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
adm_rows() { psql -X -At "$pg_rg_admin_url" -c "SELECT count(*) FROM audit_log WHERE event_type = 'admission'"; }
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
  # PostgreSQL writes the fragment: the top statements by total time.
  psql -X -q -At -v ON_ERROR_STOP=1 -v adm=$((adm1 - adm0)) "$pg_rg_admin_url" >"$frag/statements.json" <<'SQL'
WITH s AS (
  SELECT calls, total_exec_time, mean_exec_time, query
  FROM pg_stat_statements
  WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'roomgate')
), t AS (SELECT sum(calls) AS calls, sum(total_exec_time) AS ms FROM s)
SELECT json_build_object(
  'kind', 'statements',
  'admissions', :adm,
  'calls_per_admission', round((SELECT calls FROM t) / greatest(:adm, 1), 2),
  'exec_ms_per_admission', round(((SELECT ms FROM t) / greatest(:adm, 1))::numeric, 3),
  'top', (SELECT json_agg(x) FROM (
    SELECT calls, round(total_exec_time::numeric, 1) AS total_ms,
           round(mean_exec_time::numeric, 3) AS mean_ms,
           round((100 * total_exec_time / nullif((SELECT ms FROM t), 0))::numeric, 1) AS pct,
           left(regexp_replace(query, '\s+', ' ', 'g'), 100) AS query
    FROM s ORDER BY total_exec_time DESC LIMIT 8) x))
SQL
fi
rt1=$(metric_sum roomgate_directory_round_trips_total)
ck1=$(metric_sum roomgate_directory_checks_total)
"$lg" note "$frag/directory.json" directory checks=$((ck1 - ck0)) round_trips=$((rt1 - rt0)) \
  round_trips_per_check="$(awk -v r=$((rt1 - rt0)) -v c=$((ck1 - ck0)) 'BEGIN { printf "%.3f", c ? r / c : 0 }')"

# ---- 5. issue 6's timing figure -------------------------------------------

say "timing: right vs wrong codes, members and non-members, $timing_clients clients, $timing_secs s"
"$lg" join "$base" "$run/sessions.txt" "$run/meetings.txt" "$timing_clients" "$timing_secs" \
  "$warmup" "$seed" 0.5 0.5 "timing: 50/50 codes, 50/50 non-members" "$frag/timing.json" timing

# ---- 6. memory, the not-yet-measured parts, the report --------------------

hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$rg_pid/status")
"$lg" note "$frag/rss.json" rss peak_rss_kb="$hwm"
i=0
for what in "forward-auth /v1/authz (live mode)" "forward-auth /v1/authz (watcher-cache mode)" \
  "revocation distribution" "under attack (wrong-code flood)" "peer: Apache mod_authnz_ldap"; do
  "$lg" note "$frag/todo-$i.json" todo what="$what"
  i=$((i + 1))
done
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
  wall_seconds=$(($(date +%s) - t_begin))
"$lg" report "$out/bench-$stamp.json" "$frag"/*.json | tee "$out/bench-$stamp.txt"
cp "$out/bench-$stamp.json" "$out/bench-latest.json"
cp "$out/bench-$stamp.txt" "$out/bench-latest.txt"
