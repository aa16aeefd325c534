#!/usr/bin/env bash
# `make soak` (not in CI): roomgate under SOAK_SECONDS (default 600) of
# mixed load, its RSS and open descriptors sampled to a CSV; fails when
# either grows beyond its tolerance after the warm-up (knobs and verdict:
# tests/soak/soak.c). Starts a private PostgreSQL and slapd on free
# loopback ports in a temp dir (always stopped on exit), then runs
# BUILD/tests/soak/soak against BUILD/roomgate and BUILD/idp.
#
# Usage: tests/soak/run.sh BUILD_DIR      (make soak: build/rel)
# The CSV ends up in BUILD_DIR/soak/soak-<UTC time>.csv.
set -uo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:?usage: tests/soak/run.sh BUILD_DIR}
build=$(cd "$build" && pwd)
for f in roomgate idp tests/soak/soak; do
	[ -x "$build/$f" ] || { echo "soak: $build/$f is missing; run make soak" >&2; exit 2; }
done

tmp=$(mktemp -d /tmp/rgsoak.XXXXXX)
chmod 0755 "$tmp"
pg_dir=$tmp/pg
ldap_dir=$tmp/ldap
out_dir=$build/soak
mkdir -p "$out_dir"
csv=$out_dir/soak-$(date -u +%Y%m%dT%H%M%SZ).csv

cleanup() {
	local pid
	# A server or IdP the soak could not stop: only those of this run.
	for pid in $(pgrep -f -- "$tmp/" 2>/dev/null); do
		case "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" in
		*roomgate*serve*"$tmp/"* | *idp*"$tmp/"*) kill "$pid" 2>/dev/null || true ;;
		esac
	done
	"$root/deploy/dev/slapd.sh" stop "$ldap_dir" >/dev/null 2>&1 || true
	"$root/deploy/dev/pg.sh" stop "$pg_dir" >/dev/null 2>&1 || true
	if [ -n "${SOAK_KEEP:-}" ]; then
		echo "soak: kept $tmp"
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A port below the kernel's ephemeral range with nothing listening on it.
free_port() {
	local p lo
	read -r lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || lo=32768
	if [ "${lo:-0}" -lt 21000 ]; then lo=32768; fi
	for _ in $(seq 1 200); do
		p=$((20000 + RANDOM % (lo - 20000)))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	echo "soak: no free port found" >&2
	return 1
}

echo "== soak: starting PostgreSQL and slapd under $tmp"
if ! "$root/deploy/dev/pg.sh" start "$pg_dir" "$(free_port)" >"$tmp/pg-start.log" 2>&1; then
	cat "$tmp/pg-start.log"
	exit 1
fi
if ! "$root/deploy/dev/slapd.sh" start "$ldap_dir" "$(free_port)" "$(free_port)" >"$tmp/ldap-start.log" 2>&1; then
	cat "$tmp/ldap-start.log"
	exit 1
fi

# shellcheck disable=SC1091
set -a
. "$pg_dir/env"
. "$ldap_dir/env"
set +a
export RG_TEST_ROOT=$root RG_TEST_TMP=$tmp RG_TEST_BIN=$build/roomgate
export RG_TEST_PG_DIR=$pg_dir RG_TEST_PG_URL=$PG_URL RG_TEST_PG_ADMIN_URL=$PG_ADMIN_URL
export RG_TEST_LDAP_DIR=$ldap_dir RG_TEST_LDAP_URI=$LDAP_URI RG_TEST_LDAPS_URI=$LDAPS_URI
export RG_TEST_LDAP_STARTTLS_URI=$LDAP_STARTTLS_URI RG_TEST_LDAP_BASE_DN=$LDAP_BASE_DN
export RG_TEST_LDAP_BIND_DN=$LDAP_BIND_DN RG_TEST_LDAP_BIND_PASSWORD=$LDAP_BIND_PASSWORD
export RG_TEST_LDAP_ADMIN_DN=$LDAP_ADMIN_DN RG_TEST_LDAP_ADMIN_PASSWORD=$LDAP_ADMIN_PASSWORD
export RG_TEST_LDAP_CA_FILE=$LDAP_CA_FILE
export SOAK_CSV=$csv

echo "== soak: ${SOAK_SECONDS:-600} s of mixed load (CSV: $csv)"
(cd "$tmp" && "$build/tests/soak/soak")
st=$?
if [ "$st" -ne 0 ]; then
	echo "== soak: FAILED (exit $st); roomgate's log: $tmp/server-*.log (SOAK_KEEP=1 keeps it)"
else
	echo "== soak: passed"
fi
exit "$st"
