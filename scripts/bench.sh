#!/usr/bin/env bash
# Side-by-side proxy benchmark, one run on one machine: wrk against the upstream directly,
# through nginx proxy_pass, and through `driftcheck record`. Prints req/s, p99, the ratio to
# nginx, exchanges stored vs requests completed, and driftcheck's peak RSS while a 1 GiB body
# streams through. Numbers are context; the ratios are the claim.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-50}
THREADS=${THREADS:-2}
work=$(mktemp -d /tmp/driftcheck-bench.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "building driftcheck (release)…" >&2
swift build -c release --product driftcheck >&2
bin=$(swift build -c release --show-bin-path)/driftcheck

upstream_port=$(free_port)
nginx_proxy_port=$(free_port)
mkdir -p "$work/www" "$work/logs"
printf '{"id":42,"status":"paid","total":99.5,"items":[{"sku":"SKU-1","quantity":2}],"createdAt":"2026-11-26T10:00:00Z"}' > "$work/www/order.json"
truncate -s 1G "$work/www/big.bin"
cat > "$work/nginx.conf" <<CONF
worker_processes auto;
pid $work/nginx.pid;
error_log $work/logs/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  default_type application/json;
  keepalive_requests 1000000;
  upstream origin { server 127.0.0.1:$upstream_port; keepalive 64; }
  server { listen 127.0.0.1:$upstream_port; root $work/www; }
  server {
    listen 127.0.0.1:$nginx_proxy_port;
    location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF
nginx -c "$work/nginx.conf" -p "$work"
sleep 0.5

store="$work/recordings.sqlite"
"$bin" record --store "$store" --upstream "orders=http://127.0.0.1:$upstream_port" --listen 127.0.0.1:0 \
  --max-body 1MiB 2> "$work/driftcheck.log" &
dc_pid=$!
pids+=("$dc_pid")
for _ in $(seq 100); do grep -q "listening on" "$work/driftcheck.log" && break; sleep 0.1; done
dc_port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$work/driftcheck.log" | head -1)

# wrk prints "Requests/sec:" and, with --latency, a percentile table.
run_wrk() {
  local out
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "http://127.0.0.1:$1/order.json")
  local rps p99 total
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  total=$(awk '/requests in/ {print $1}' <<<"$out")
  echo "$rps $p99 $total"
}

to_ms() { # wrk prints 1.23ms, 456.00us or 1.02s
  python3 -c "import sys; v=sys.argv[1]; print(float(v[:-2])/1000 if v.endswith('us') else float(v[:-2]) if v.endswith('ms') else float(v[:-1])*1000)" "$1"
}

echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, small JSON GETs on keep-alive connections" >&2
read -r direct_rps direct_p99 _ < <(run_wrk "$upstream_port")
read -r nginx_rps nginx_p99 _ < <(run_wrk "$nginx_proxy_port")
read -r dc_rps dc_p99 dc_total < <(run_wrk "$dc_port")

kill -INT "$dc_pid"
wait "$dc_pid" || true
grep "recorded\|warning\|error" "$work/driftcheck.log" >&2 || true
stored=$(sqlite3 "$store" "select count(*) from exchange where path = '/order.json' and failure is null")

# Peak RSS while 1 GiB streams through, in a fresh recorder so the load phase does not count
# (VmHWM is the process's high-water mark).
"$bin" record --store "$work/big.sqlite" --upstream "big=http://127.0.0.1:$upstream_port" --listen 127.0.0.1:0 \
  2> "$work/big.log" &
big_pid=$!
pids+=("$big_pid")
for _ in $(seq 100); do grep -q "listening on" "$work/big.log" && break; sleep 0.1; done
big_port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$work/big.log" | head -1)
curl -s -o /dev/null "http://127.0.0.1:$big_port/big.bin"
peak_kib=$(awk '/VmHWM/ {print $2}' "/proc/$big_pid/status")
kill -INT "$big_pid"; wait "$big_pid" || true

python3 - "$direct_rps" "$direct_p99" "$nginx_rps" "$nginx_p99" "$dc_rps" "$dc_p99" "$dc_total" "$stored" "$peak_kib" \
  "$(to_ms "$direct_p99")" "$(to_ms "$nginx_p99")" "$(to_ms "$dc_p99")" <<'PY'
import sys
(d_rps, d_p99, n_rps, n_p99, c_rps, c_p99, c_total, stored, peak_kib, d_ms, n_ms, c_ms) = sys.argv[1:]
d_rps, n_rps, c_rps = float(d_rps), float(n_rps), float(c_rps)
print(f"{'target':<26}{'req/s':>12}{'p99':>12}{'vs nginx':>10}")
print(f"{'upstream direct (nginx)':<26}{d_rps:>12.0f}{d_p99:>12}{d_rps / n_rps:>9.2f}x")
print(f"{'nginx proxy_pass':<26}{n_rps:>12.0f}{n_p99:>12}{1:>9.2f}x")
print(f"{'driftcheck record':<26}{c_rps:>12.0f}{c_p99:>12}{c_rps / n_rps:>9.2f}x")
print(f"p99 difference driftcheck - nginx: {float(c_ms) - float(n_ms):+.2f} ms (target: within 1 ms)")
print(f"throughput ratio to nginx: {c_rps / n_rps:.2f} (target: >= 0.90)")
print(f"exchanges stored / requests completed: {stored} / {c_total}")
print(f"driftcheck peak RSS with a 1 GiB body streamed through: {int(peak_kib) / 1024:.1f} MiB (target: < 64 MiB)")
PY
