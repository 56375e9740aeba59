#!/usr/bin/env bash
# What one proxy spends per request under wrk: user and system CPU, syscalls and context
# switches, counted with perf's tracepoints on the proxy's processes only (strace slows what it
# counts and shifts the wake-ups it should measure).
#
#   scripts/per-request.sh LABEL URL_PATH CMD...   starts CMD (it must print "listening on
#                                                  http://127.0.0.1:PORT" on stderr, as
#                                                  `driftcheck record` and driftcheck-bench-floor do)
#   scripts/per-request.sh LABEL URL --pids P1,P2  measures running processes (nginx's workers)
#
# Example, against an origin on 127.0.0.1:18901:
#   scripts/per-request.sh relay /order.json .build/release/driftcheck-bench-floor relay 18901
# DURATION (default 10s) and WRK_ARGS (default -t2 -c50) set the load.
set -euo pipefail
label=$1
target=$2
shift 2
command -v perf > /dev/null || { echo "per-request: perf is not installed (linux-perf)" >&2; exit 2; }
command -v wrk > /dev/null || { echo "per-request: wrk is not installed" >&2; exit 2; }
log=$(mktemp)
stat=$(mktemp)
started=
if [ "${1:-}" = "--pids" ]; then
    pids=$2
    url=$target
else
    "$@" 2> "$log" &
    started=$!
    for _ in $(seq 200); do grep -q "listening on" "$log" && break; sleep 0.1; done
    port=$(grep -o "127.0.0.1:[0-9]*" "$log" | head -1 | cut -d: -f2)
    [ -n "$port" ] || { echo "per-request: $label did not say where it listens: $(cat "$log")" >&2; exit 2; }
    pids=$started
    url="http://127.0.0.1:$port$target"
fi
cpu() { for pid in ${pids//,/ }; do awk '{print $14, $15}' "/proc/$pid/stat"; done; }
before=$(cpu)
perf stat -x, -o "$stat" -p "$pids" -e \
    'syscalls:sys_enter_read,syscalls:sys_enter_recvfrom,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_futex,context-switches' &
perf_pid=$!
out=$(wrk ${WRK_ARGS:--t2 -c50} -d"${DURATION:-10s}" "$url")
after=$(cpu)
kill -INT "$perf_pid"
wait "$perf_pid" || true
if [ -n "$started" ]; then
    kill -TERM "$started"
    wait "$started" || true
fi
total=$(awk '/requests in/ {print $1}' <<< "$out")
rate=$(awk '/Requests\/sec/ {print $2}' <<< "$out")
python3 - "$label" "$total" "$rate" "$stat" "$before" "$after" << 'PY'
import sys
label, total, rate, stat, before, after = sys.argv[1:]
total = int(total)
b = [int(x) for x in before.split()]
a = [int(x) for x in after.split()]
user = sum(a[i] - b[i] for i in range(0, len(a), 2)) / 100
system = sum(a[i] - b[i] for i in range(1, len(a), 2)) / 100
counts = {}
for line in open(stat):
    parts = line.strip().split(",")
    if len(parts) > 2 and parts[0].replace(".", "").isdigit():
        counts[parts[2].replace("syscalls:sys_enter_", "")] = float(parts[0])
each = " ".join(f"{name} {value / total:.2f}" for name, value in counts.items() if value)
print(f"{label}: {rate} req/s; per request: user {user / total * 1e6:.1f} us, system "
      f"{system / total * 1e6:.1f} us; {each}")
PY
rm -f "$log" "$stat"
