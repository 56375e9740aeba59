#!/usr/bin/env bash
# One `swift test` run of make test: `scripts/test.sh skip|filter PATTERN`.
# Swift Testing's verbose log (which test started when) is kept in .build/test-logs/; the console
# gets the usual lines (line-buffered: stdbuf). A run that outlasts TEST_TIMEOUT seconds (default 1200) is stopped and the
# tests still running are named, so that a hang fails CI with a cause instead of using its time.
set -uo pipefail
cd "$(dirname "$0")/.."
mode=$1
pattern=$2
mkdir -p .build/test-logs
log=.build/test-logs/$mode.log
SWT_VERBOSE_OUTPUT=1 timeout --kill-after=30 "${TEST_TIMEOUT:-1200}" stdbuf -oL -eL "${SWIFT:-swift}" test --skip-build "--$mode" "$pattern" 2>&1 |
    tee "$log" | grep --line-buffered -v -E '^(◇ Test .* started\.|✔ Test case passing )'
status=${PIPESTATUS[0]}
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    echo "make test: stopped after ${TEST_TIMEOUT:-1200} s; still running (full log: $log):"
    started=$(grep -o '◇ Test [^ ]*(.*) started' "$log" | sed 's/◇ Test //; s/ started$//' | sort)
    ended=$(grep -oE '[✔✘] Test [^ ]*\([^ ]*\)( with [0-9]+ test cases?)? (passed|failed)' "$log" |
        sed -E 's/^[✔✘] Test //; s/ with [0-9]+ test cases?//; s/ (passed|failed)$//' | sort -u)
    comm -23 <(echo "$started") <(echo "$ended") | sed 's/^/  /'
fi
exit "$status"
