#!/usr/bin/env bash
# The static step of the suite: the banned-function check, cppcheck,
# clang-tidy (tests/static/clang-tidy.yaml) over every C source of ours,
# and valgrind memcheck over the unit tests built without sanitizers.
# Prints one TAP line per check ("ok N - ..." / "not ok N - ..."), which
# tests/run.sh counts into its "N passed, N failed" line, and the findings
# under a failed one. Each tool runs under a time limit; nothing is cached.
#
# Usage: tests/static/run.sh [REL_BUILD_DIR]
#   REL_BUILD_DIR (or $RG_STATIC_REL_BUILD): where the unit tests are built
#   (MODE=rel) for valgrind, e.g. build/rel; made here with
#   `make MODE=rel O=DIR unit-tests`.
set -uo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
rel=${1:-${RG_STATIC_REL_BUILD:-}}
if [ -z "$rel" ]; then
	echo "usage: tests/static/run.sh REL_BUILD_DIR (or RG_STATIC_REL_BUILD)" >&2
	exit 2
fi
case "$rel" in /*) ;; *) rel=$root/$rel ;; esac
cd "$root" || exit 1
jobs=${RG_STATIC_JOBS:-2}
work=$(mktemp -d /tmp/rgstatic.XXXXXX)
trap 'rm -rf "$work"' EXIT

n=0
failed=0
# result OK|FAIL "what" [file with findings]
result() {
	n=$((n + 1))
	if [ "$1" = OK ]; then
		echo "ok $n - $2"
	else
		failed=$((failed + 1))
		echo "not ok $n - $2"
		if [ -n "${3:-}" ] && [ -s "$3" ]; then
			head -n 60 "$3" | sed 's/^/#   /'
		fi
	fi
}

# Our C sources: the four folders, the tests, the bench tools (not the
# npm tree under tests/browser).
mapfile -t srcs < <(find server db directory saml tests bench \
	-path tests/browser -prune -o -name '*.c' -print | sort)
mapfile -t hdrs < <(find server db directory saml tests bench \
	-path tests/browser -prune -o -name '*.h' -print | sort)

# 1. Banned functions (STYLE.md; the same pattern as the before-stop hook).
t0=$SECONDS
grep -n -E '\b(sprintf|vsprintf|strcpy|strcat|atoi|atol|sscanf|strtok|gets)[[:space:]]*\(' \
	"${srcs[@]}" "${hdrs[@]}" >"$work/banned" 2>&1
if [ -s "$work/banned" ]; then
	result FAIL "banned functions (sprintf strcpy strcat atoi sscanf strtok and the line reader): use the bounded ones" "$work/banned"
else
	result OK "no banned function in ${#srcs[@]} C files and ${#hdrs[@]} headers ($((SECONDS - t0)) s)"
fi

# 2. cppcheck: warnings and portability issues; an inline
# "cppcheck-suppress ID" comment must say why on the same line.
t0=$SECONDS
if ! command -v cppcheck >/dev/null 2>&1; then
	echo "cppcheck is not installed (deploy/install-deps.sh)" >"$work/cppcheck"
	result FAIL "cppcheck" "$work/cppcheck"
else
	timeout 600 nice cppcheck --quiet --std=c11 --enable=warning,portability \
		--inline-suppr --error-exitcode=1 -j "$jobs" -I. -D_GNU_SOURCE \
		--template='{file}:{line}: {severity}: {message} [{id}]' \
		server db directory saml tests/lib tests/unit tests/integration \
		tests/fuzz tests/idp bench >"$work/cppcheck" 2>&1
	st=$?
	if [ "$st" -eq 0 ] && ! grep -q ': \(error\|warning\|style\|portability\|performance\): ' "$work/cppcheck"; then
		result OK "cppcheck clean ($((SECONDS - t0)) s)"
	else
		[ "$st" -eq 124 ] && echo "cppcheck: over its 600 s limit" >>"$work/cppcheck"
		result FAIL "cppcheck found problems" "$work/cppcheck"
	fi
fi

# 3. clang-tidy: bugprone-*, cert-*, clang-analyzer-* (the exceptions and
# why are in tests/static/clang-tidy.yaml), one file per process, $jobs at
# a time. A file's findings are kept in REL_BUILD_DIR/static-cache (never in
# git) under a hash of the file, every header of ours, the configuration,
# the flags and clang-tidy's version, so an unchanged tree is checked again
# in seconds; any header change checks everything again.
t0=$SECONDS
if ! command -v clang-tidy >/dev/null 2>&1; then
	echo "clang-tidy is not installed (deploy/install-deps.sh)" >"$work/tidy"
	result FAIL "clang-tidy" "$work/tidy"
else
	flags="-std=c11 -D_GNU_SOURCE -I. $(pkg-config --cflags libmicrohttpd \
		lasso ldap lber libpq libcurl libsodium jansson inih libcrypto \
		glib-2.0 gobject-2.0 libxml-2.0 libssl xmlsec1-openssl cmocka |
		sed 's/-I/-isystem /g')"
	RG_TIDY_FLAGS=$flags
	RG_TIDY_CACHE=$rel/static-cache/tidy
	RG_TIDY_BASE=$({
		clang-tidy --version
		cat tests/static/clang-tidy.yaml
		echo "$flags"
		cat "${hdrs[@]}"
	} | sha256sum | cut -c1-64)
	export RG_TIDY_FLAGS RG_TIDY_CACHE RG_TIDY_BASE
	mkdir -p "$RG_TIDY_CACHE"
	# shellcheck disable=SC2016
	printf '%s\n' "${srcs[@]}" |
		timeout 1800 xargs -P "$jobs" -n 1 sh -c '
			key=$( { echo "$RG_TIDY_BASE $1"; cat "$1"; } | sha256sum | cut -c1-64)
			if [ -f "$RG_TIDY_CACHE/$key" ]; then
				cat "$RG_TIDY_CACHE/$key"
				exit 0
			fi
			nice clang-tidy --quiet --config-file=tests/static/clang-tidy.yaml \
				"$1" -- $RG_TIDY_FLAGS >"$RG_TIDY_CACHE/$key.$$" 2>/dev/null
			cat "$RG_TIDY_CACHE/$key.$$"
			mv "$RG_TIDY_CACHE/$key.$$" "$RG_TIDY_CACHE/$key"' sh \
			>"$work/tidy.raw" 2>&1
	st=$?
	grep -E '^[^ ]+:[0-9]+:[0-9]+: (warning|error):' "$work/tidy.raw" |
		sed "s|^$root/||" | sort -u >"$work/tidy"
	if [ "$st" -eq 124 ]; then
		echo "clang-tidy: over its 1800 s limit" >>"$work/tidy"
		result FAIL "clang-tidy did not finish" "$work/tidy"
	elif [ -s "$work/tidy" ]; then
		result FAIL "clang-tidy: $(wc -l <"$work/tidy") finding(s)" "$work/tidy"
	else
		result OK "clang-tidy clean over ${#srcs[@]} files ($((SECONDS - t0)) s)"
	fi
fi

# 4. valgrind memcheck over the unit tests, built without sanitizers (they
# would hide what memcheck sees), $jobs at a time, one line per binary.
# Left out: test_jwt -- it generates RSA keys, which under memcheck takes
# over ten minutes on two cores; its ASan+UBSan run stays in the suite.
vg_skip=" test_jwt "
# Some unit tests use tests/lib/th.c (RG_TEST_ROOT, RG_TEST_TMP), which
# tests/run.sh exports; run on its own, this step gives them its own.
export RG_TEST_ROOT=${RG_TEST_ROOT:-$root} RG_TEST_TMP=${RG_TEST_TMP:-$work}
vg_one() {
	local bin=$1 name=${1##*/} t0=$SECONDS st
	(cd "$work" && CMOCKA_MESSAGE_OUTPUT=TAP timeout 300 nice valgrind \
		--tool=memcheck --error-exitcode=99 --leak-check=full \
		--errors-for-leak-kinds=definite --show-leak-kinds=definite \
		--num-callers=20 -q "$bin") >"$work/vg-$name" 2>&1
	st=$?
	echo "$st $((SECONDS - t0))" >"$work/vg-$name.st"
}
if ! command -v valgrind >/dev/null 2>&1; then
	echo "valgrind is not installed (deploy/install-deps.sh)" >"$work/vg"
	result FAIL "valgrind" "$work/vg"
elif ! nice make --no-print-directory -s MODE=rel O="$rel" unit-tests >"$work/vg-build" 2>&1; then
	result FAIL "valgrind: building the unit tests in $rel failed" "$work/vg-build"
else
	vg_bins=()
	for bin in "$rel"/tests/unit/test_*; do
		[ -x "$bin" ] || continue
		case "$vg_skip" in *" ${bin##*/} "*) continue ;; esac
		vg_bins+=("$bin")
		while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
		vg_one "$bin" &
	done
	wait
	for bin in "${vg_bins[@]}"; do
		name=${bin##*/}
		read -r st secs <"$work/vg-$name.st"
		if [ "$st" -eq 0 ]; then
			result OK "valgrind memcheck: $name (${secs} s)"
		else
			{
				[ "$st" -eq 124 ] && echo "over the 300 s limit"
				grep -E '^==[0-9]+==|^not ok' "$work/vg-$name"
			} >"$work/vg-$name.why"
			result FAIL "valgrind memcheck: $name (exit $st)" "$work/vg-$name.why"
		fi
	done
fi

[ "$failed" -eq 0 ]
