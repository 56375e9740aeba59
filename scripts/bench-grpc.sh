#!/usr/bin/env bash
# h2c workload: h2load (nghttp2-client) posts gRPC-framed unary calls over HTTP/2 prior
# knowledge, directly to an h2c upstream, through nginx grpc_pass, and through driftcheck
# record, in one run; prints req/s, the ratios and stored vs completed.
# The upstream is nghttpd (nghttp2-server) answering every call with the same gRPC-framed
# message: a grpcio server would be slower than both proxies and hide the difference.
# Usage: N=100000 CLIENTS=20 STREAMS=10 scripts/bench-grpc.sh
# BEFORE_BIN=path/to/an/older/driftcheck: measured in the same run, as "before".
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-100000}
CLIENTS=${CLIENTS:-20}
STREAMS=${STREAMS:-10}
scripts/ensure-packages.sh nghttp2-client nghttp2-server nginx-light >&2
swift build -c release --product driftcheck >&2
bin=$(swift build -c release --show-bin-path)/driftcheck
work=$(mktemp -d /tmp/driftcheck-bench-grpc.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  [ -n "${KEEP:-}" ] && echo "kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

mkdir -p "$work/root/shop.v1.Recommendations"
python3 - "$work" <<'PY'
import struct, sys
work = sys.argv[1]
request = b"\x0a\x02c0"
open(f"{work}/request.bin", "wb").write(b"\x00" + struct.pack(">I", len(request)) + request)
answer = b"\x0a\x08SKU-c0-1\x12\x06Item 1\x18\xd0\x0f\x20\x02"
open(f"{work}/root/shop.v1.Recommendations/Get", "wb").write(b"\x00" + struct.pack(">I", len(answer)) + answer)
PY
upstream=$(port)
nghttpd --no-tls -n 2 --max-concurrent-streams 1000 -d "$work/root" "$upstream" > "$work/nghttpd.log" 2>&1 &
pids+=($!)
wait_port "$upstream"

nginx_port=$(port)
cat > "$work/nginx.conf" <<CONF
worker_processes auto;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  upstream recs { server 127.0.0.1:$upstream; keepalive 64; keepalive_requests 10000000; }
  # nginx closes a client connection after 1,000 requests by default; h2load does not reconnect.
  http2_max_requests 10000000;
  keepalive_requests 10000000;
  server {
    listen 127.0.0.1:$nginx_port http2;
    location / { grpc_pass grpc://recs; }
  }
}
CONF
nginx -c "$work/nginx.conf" -p "$work"
wait_port "$nginx_port"

# start_recorder LABEL BINARY: a recorder with its own store; its port in the file LABEL.port.
start_recorder() {
  local label=$1 binary=$2
  "$binary" record --store "$work/$label.sqlite" --upstream "recs=h2c://127.0.0.1:$upstream" \
    --listen 127.0.0.1:0 > "$work/$label.log" 2>&1 &
  echo $! > "$work/$label.pid"
  pids+=($!)
  for _ in $(seq 300); do grep -q "listening on" "$work/$label.log" && break; sleep 0.1; done
  grep -o "127.0.0.1:[0-9]*" "$work/$label.log" | head -1 | cut -d: -f2 > "$work/$label.port"
}
# stop_recorder LABEL: stops it and prints how many exchanges it stored.
stop_recorder() {
  kill -INT "$(cat "$work/$1.pid")"
  while kill -0 "$(cat "$work/$1.pid")" 2>/dev/null; do sleep 0.1; done
  sqlite3 "$work/$1.sqlite" "select count(*) from exchange where failure is null"
}

# One load; prints "label req/s completed".
load() {
  local label=$1 port=$2
  h2load -n "$N" -c "$CLIENTS" -m "$STREAMS" -d "$work/request.bin" \
    -H "content-type: application/grpc" -H "te: trailers" \
    "http://127.0.0.1:$port/shop.v1.Recommendations/Get" > "$work/h2load-$label.log" 2>&1 || true
  local rate done
  rate=$(grep -o "finished in [0-9.]*[a-z]*, [0-9.]* req/s" "$work/h2load-$label.log" | awk '{print $4}')
  done=$(grep -o "requests: .* succeeded" "$work/h2load-$label.log" | grep -o "[0-9]* succeeded" | awk '{print $1}')
  echo "$label $rate $done"
}
load direct "$upstream" > "$work/results"
load nginx "$nginx_port" >> "$work/results"
start_recorder driftcheck "$bin"
load driftcheck "$(cat "$work/driftcheck.port")" >> "$work/results"
stored=$(stop_recorder driftcheck)
stored_before=-
if [ -n "${BEFORE_BIN:-}" ]; then
  start_recorder before "$BEFORE_BIN"
  load before "$(cat "$work/before.port")" >> "$work/results"
  stored_before=$(stop_recorder before)
fi
python3 - "$work/results" "$stored" "$N" "$stored_before" <<'PY'
import sys
rows = {l.split()[0]: l.split()[1:] for l in open(sys.argv[1]) if l.strip()}
stored, n, stored_before = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
for label in ("direct", "nginx", "driftcheck", "before"):
    if label not in rows: continue
    rate, done = rows[label]
    print(f"{label:11s} {float(rate):>10,.0f} req/s  ({done} of {n} succeeded)")
ratio = float(rows["driftcheck"][0]) / float(rows["nginx"][0])
print(f"driftcheck / nginx grpc_pass: {ratio:.2f}x (goal >= 0.7x); stored {stored} of {rows['driftcheck'][1]} completed")
if "before" in rows:
    print(f"driftcheck now / before: {float(rows['driftcheck'][0]) / float(rows['before'][0]):.2f}x; "
          f"before stored {stored_before} of {rows['before'][1]} completed")
PY
