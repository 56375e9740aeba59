#!/usr/bin/env bash
# One `swift test` run of make test: `scripts/test.sh skip|filter PATTERN`.
# Swift Testing's verbose log (which test started when) is kept in .build/test-logs/; the console
# gets the usual lines. A run that outlasts TEST_TIMEOUT seconds (default 1200) is stopped with
# every process it started (servers the tests spawned run in process groups of their own), and
# the tests still running are named: a hang fails CI with a cause instead of using its time.
set -uo pipefail
cd "$(dirname "$0")/.."
mode=$1
pattern=$2
limit=${TEST_TIMEOUT:-1200}
mkdir -p .build/test-logs
log=.build/test-logs/$mode.log
: > "$log"

descendants() {
    local child
    for child in $(pgrep -P "$1"); do
        echo "$child"
        descendants "$child"
    done
}

# Line-buffered, so that the log is current when a run is stopped.
SWT_VERBOSE_OUTPUT=1 stdbuf -oL -eL "${SWIFT:-swift}" test --skip-build "--$mode" "$pattern" > "$log" 2>&1 &
run=$!
tail -n +1 -f --pid="$run" "$log" | grep --line-buffered -v -E '^(◇ Test .* started\.|✔ Test case passing )' &
shown=$!
(
    sleep "$limit"
    kill -0 "$run" 2> /dev/null || exit 0
    touch "$log.timeout"
    for process in $(descendants "$run") "$run"; do kill -9 "$process" 2> /dev/null; done
) &
watchdog=$!
rm -f "$log.timeout"
wait "$run"
status=$?
sleeper=$(pgrep -P "$watchdog")
kill "$watchdog" 2> /dev/null
[ -n "$sleeper" ] && kill $sleeper 2> /dev/null
wait "$shown"
if [ -e "$log.timeout" ]; then
    rm -f "$log.timeout"
    echo "make test: stopped after $limit s; still running (full log: $log):"
    started=$(grep -o '◇ Test [^ ]*(.*) started' "$log" | sed 's/◇ Test //; s/ started$//' | sort)
    ended=$(grep -oE '[✔✘] Test [^ ]*\([^ ]*\)( with [0-9]+ test cases?)? (passed|failed)' "$log" |
        sed -E 's/^[✔✘] Test //; s/ with [0-9]+ test cases?//; s/ (passed|failed)$//' | sort -u)
    comm -23 <(echo "$started") <(echo "$ended") | sed 's/^/  /'
    exit 124
fi
exit "$status"
