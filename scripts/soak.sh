#!/usr/bin/env bash
# Soak: 200 concurrent connections through `driftcheck record` for DURATION (default 5 min).
# Prints RSS sampled every 10 s and checks that every completed request was stored.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-300}
CONNECTIONS=${CONNECTIONS:-200}
# SOAK_BIN=PATH soaks another build (an earlier commit's) instead of this checkout's.
if [ -n "${SOAK_BIN:-}" ]; then
  bin=$SOAK_BIN
else
  swift build -c release --product driftcheck >&2
  bin=$(swift build -c release --show-bin-path)/driftcheck
fi
work=$(mktemp -d /tmp/driftcheck-soak.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/www" "$work/logs"
printf '{"id":42,"status":"paid"}' > "$work/www/order.json"
cat > "$work/nginx.conf" <<CONF
worker_processes 1; pid $work/nginx.pid; error_log $work/logs/error.log;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; server { listen 127.0.0.1:$port; root $work/www; } }
CONF
nginx -c "$work/nginx.conf" -p "$work"
"$bin" record --store "$work/s.sqlite" --upstream "o=http://127.0.0.1:$port" --listen 127.0.0.1:0 2> "$work/dc.log" &
dc=$!; pids+=("$dc")
for _ in $(seq 100); do grep -q "listening on" "$work/dc.log" && break; sleep 0.1; done
dc_port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$work/dc.log" | head -1)
( while kill -0 "$dc" 2>/dev/null; do echo "rss_kib $(awk '/VmRSS/ {print $2}' /proc/$dc/status)"; sleep 10; done ) > "$work/rss.log" &
pids+=("$!")
wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" "http://127.0.0.1:$dc_port/order.json" > "$work/wrk.log"
completed=$(awk '/requests in/ {print $1}' "$work/wrk.log")
kill -INT "$dc"; wait "$dc" || true
stored=$(sqlite3 "$work/s.sqlite" "select count(*) from exchange where failure is null")
failed=$(sqlite3 "$work/s.sqlite" "select count(*) from exchange where failure is not null")
echo "RSS over time (KiB): $(awk '{print $2}' "$work/rss.log" | tr '\n' ' ')"
echo "requests completed: $completed; stored: $stored (+$failed cut off when wrk stopped)"
[ "$stored" -ge "$completed" ] && echo "every completed request was stored" || { echo "LOST $((completed - stored)) exchanges"; exit 1; }
# Stable memory: after a 20 s warm-up, RSS may not grow by more than half again.
python3 - "$work/rss.log" <<'PY'
import sys
samples = [int(line.split()[1]) for line in open(sys.argv[1]) if line.startswith("rss_kib")]
if len(samples) < 4:
    sys.exit("too few RSS samples: run the soak for at least 40 s")
warm, peak = samples[2], max(samples[2:])
print(f"RSS after warm-up {warm / 1024:.1f} MiB, highest after that {peak / 1024:.1f} MiB ({(peak / warm - 1) * 100:+.0f}%)")
if peak > warm * 1.5:
    sys.exit("RSS kept growing")
PY
