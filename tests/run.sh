#!/usr/bin/env bash
# Runs roomgate's whole test suite against real services it starts itself:
# a private PostgreSQL and slapd on free loopback ports in a temp dir, always
# stopped on exit (also on failure or Ctrl-C). Ends with "N passed, N failed".
#
# Usage: tests/run.sh BUILD_DIR [TEST_NAME_SUBSTRING]
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:?usage: tests/run.sh BUILD_DIR [FILTER]}
build=$(cd "$build" && pwd)
filter=${2:-}

tmp=$(mktemp -d /tmp/rgtest.XXXXXX)
chmod 0755 "$tmp"
pg_dir=$tmp/pg
ldap_dir=$tmp/ldap

cleanup() {
	local pid
	# Servers a failed test could not stop: only those running from this
	# run's temp dir (their config lives there), by PID.
	for pid in $(pgrep -f -- "$tmp/" 2>/dev/null); do
		case "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" in
		*roomgate*serve*"$tmp/"* | *idp*"$tmp/"*) kill "$pid" 2>/dev/null || true ;;
		esac
	done
	"$root/deploy/dev/slapd.sh" stop "$ldap_dir" >/dev/null 2>&1 || true
	"$root/deploy/dev/pg.sh" stop "$pg_dir" >/dev/null 2>&1 || true
	if [ -n "${RG_KEEP_TMP:-}" ]; then
		echo "run.sh: kept $tmp"
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A port below the kernel's ephemeral range (outgoing connections take
# ports from that range at any time) with nothing listening on it.
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
	echo "run.sh: no free port found" >&2
	return 1
}

passed=0
failed=0
failures=()

echo "== starting PostgreSQL and slapd under $tmp"
if ! "$root/deploy/dev/pg.sh" start "$pg_dir" "$(free_port)" >"$tmp/pg-start.log" 2>&1; then
	cat "$tmp/pg-start.log"
	echo "0 passed, 1 failed"
	exit 1
fi
if ! "$root/deploy/dev/slapd.sh" start "$ldap_dir" "$(free_port)" "$(free_port)" >"$tmp/ldap-start.log" 2>&1; then
	cat "$tmp/ldap-start.log"
	echo "0 passed, 1 failed"
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
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$root/tests/lsan.supp:print_suppressions=0}
export CMOCKA_MESSAGE_OUTPUT=TAP

# Runs one cmocka binary (or TAP script) within limit seconds (600),
# counts its TAP lines. A binary that dies (ASan,
# crash, assertion in a fixture) counts as one more failure.
run_one() {
	local bin=$1 limit=${2:-600} name out st ok notok
	name=${bin#"$build/tests/"}
	name=${name#"$root/tests/"}
	out=$tmp/$(echo "$name" | tr '/' '_').out
	echo "== $name"
	(cd "$tmp" && timeout "$limit" "$bin") >"$out" 2>&1
	st=$?
	ok=$(grep -cE '^ok [0-9]+' "$out")
	notok=$(grep -cE '^not ok [0-9]+' "$out")
	grep -E '^(ok|not ok) [0-9]+' "$out" | sed 's/^/   /'
	passed=$((passed + ok))
	failed=$((failed + notok))
	if [ "$notok" -gt 0 ]; then
		failures+=("$name")
	fi
	if [ "$st" -ne 0 ] && [ "$notok" -eq 0 ]; then
		failed=$((failed + 1))
		failures+=("$name (exit $st)")
	fi
	if [ "$st" -ne 0 ] || [ "$notok" -gt 0 ]; then
		echo "---- output of $name"
		# The failures with cmocka's messages first (a leak report at
		# exit can be long enough to push them out of the tail).
		grep -A8 -E '^not ok' "$out" | head -n 80
		echo "---- (last lines)"
		grep -vE '^ok [0-9]+' "$out" | tail -n 80
		echo "----"
	fi
	heal
}

# A test binary killed mid-way (time limit, crash) may leave slapd frozen
# (SIGSTOP) or a service stopped; put them back so one failure does not
# cascade into the next binary's results.
heal() {
	local pid
	pid=$(cat "$ldap_dir/slapd.pid" 2>/dev/null || true)
	if [ -n "$pid" ]; then kill -CONT "$pid" 2>/dev/null || true; fi
	"$root/deploy/dev/slapd.sh" status "$ldap_dir" >/dev/null 2>&1 ||
		"$root/deploy/dev/slapd.sh" start "$ldap_dir" >>"$tmp/heal.log" 2>&1 || true
	"$root/deploy/dev/pg.sh" status "$pg_dir" >/dev/null 2>&1 ||
		"$root/deploy/dev/pg.sh" start "$pg_dir" >>"$tmp/heal.log" 2>&1 || true
}

for kind in unit integration; do
	for bin in "$build/tests/$kind"/test_*; do
		[ -x "$bin" ] || continue
		case "$bin" in *"$filter"*) ;; *) continue ;; esac
		run_one "$bin"
	done
done

# The static step (tests/static/run.sh: banned functions, cppcheck,
# clang-tidy, valgrind over the unit tests built without sanitizers in
# RG_STATIC_REL_BUILD, default BUILD_DIR-rel), counted like a test binary.
case "static/run.sh" in
*"$filter"*)
	export RG_STATIC_REL_BUILD=${RG_STATIC_REL_BUILD:-$build-rel}
	run_one "$root/tests/static/run.sh" 1800
	;;
esac

if [ "${#failures[@]}" -gt 0 ]; then
	echo "failed: ${failures[*]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
