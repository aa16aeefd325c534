#!/bin/sh
# The 1,000,000-record export of issue 8's acceptance, opt-in because it
# takes longer than the suite should (about 2 minutes under ASan here):
# test_audit_export with RG_EXPORT_ROWS records (default 1000000) in its
# large export. Prints the insert time, the export's records/s, roomgate's
# RSS before and at peak during the stream; the test asserts the growth
# stays under 48 MB and that the export verifies with verify-export.
#
#   tests/export-1m.sh [BUILD_DIR]   (default build/asan; make MODE=asan tests first)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build/asan}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
st=0
RG_EXPORT_ROWS=${RG_EXPORT_ROWS:-1000000} RG_KEEP_TMP=1 \
	"$root/tests/run.sh" "$build" test_audit_export >"$log" 2>&1 || st=$?
cat "$log"
tmp=$(sed -n 's/^run.sh: kept //p' "$log")
if [ -n "$tmp" ] && [ -d "$tmp" ]; then
	grep -h '^# .*records' "$tmp"/integration_test_audit_export.out || true
	rm -rf "$tmp"
fi
exit "$st"
