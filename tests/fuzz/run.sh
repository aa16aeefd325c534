#!/usr/bin/env bash
# Runs every libFuzzer target in build/fuzz for SECONDS each (default 60),
# starting from its committed seeds in tests/fuzz/corpus/NAME (read only:
# what the run finds goes to a temp dir, dropped afterwards), and prints
# one summary line per target: executions and findings. A finding (crash,
# leak, timeout, out-of-memory) is kept under build/fuzz/findings/NAME/
# and makes the script exit 1.
#
# Usage: tests/fuzz/run.sh [SECONDS] [NAME_SUBSTRING]
set -uo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-60}
filter=${2:-}
tmp=$(mktemp -d /tmp/rgfuzz.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

total_exec=0
total_find=0
summary=()
for bin in "$root"/build/fuzz/fuzz_*; do
	[ -x "$bin" ] || continue
	name=${bin##*/fuzz_}
	case "$name" in *"$filter"*) ;; *) continue ;; esac
	seeds=$root/tests/fuzz/corpus/$name
	found=$root/build/fuzz/findings/$name
	mkdir -p "$tmp/$name" "$found"
	opts=(-max_total_time="$secs" -print_final_stats=1 -timeout=10
		-rss_limit_mb=2048 -artifact_prefix="$found/")
	case "$name" in
	saml_response) opts+=(-max_len=65536) ;;
	http) opts+=(-max_len=16384) ;;
	esac
	before=$(find "$found" -type f | wc -l)
	# stdin from /dev/null: the config target reads files a setting
	# names, /dev/stdin included.
	dirs=("$tmp/$name")
	if [ -d "$seeds" ]; then dirs+=("$seeds"); fi
	nice "$bin" "${opts[@]}" "${dirs[@]}" </dev/null >"$tmp/$name.log" 2>&1
	st=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$tmp/$name.log" | tail -n 1)
	execs=${execs:-0}
	after=$(find "$found" -type f | wc -l)
	finds=$((after - before))
	if [ "$st" -ne 0 ] && [ "$finds" -eq 0 ]; then
		finds=1 # died without an artifact (startup failure)
	fi
	line=$(printf 'fuzz_%-15s %12s executions in %ss, %d finding(s)' \
		"$name" "$execs" "$secs" "$finds")
	echo "$line"
	if [ "$finds" -gt 0 ]; then
		grep -E '^(==[0-9]+==ERROR|SUMMARY|    #[0-9]+ )' "$tmp/$name.log" | head -n 30
		echo "   (inputs kept in ${found#"$root"/})"
	fi
	summary+=("$line")
	total_exec=$((total_exec + execs))
	total_find=$((total_find + finds))
done
echo "fuzz: ${#summary[@]} targets, $total_exec executions, $total_find finding(s)"
[ "$total_find" -eq 0 ] && [ "${#summary[@]}" -gt 0 ]
