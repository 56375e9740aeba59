#!/usr/bin/env bash
# Side-by-side recorder benchmark, one run on one machine, one upstream (nginx serving files):
#   direct            wrk → upstream
#   nginx             wrk → nginx proxy_pass (worker_processes auto, upstream keep-alive) → upstream
#                     (a second nginx instance: see the comment at the configuration)
#   driftcheck        wrk → driftcheck record → upstream
#   before            the same, with BEFORE_BIN (an older build), when set
#   mitmproxy         wrk → mitmdump --mode reverse -w FILE → upstream        (BENCH_PEERS has mitmproxy)
#   wiremock          wrk → WireMock 2.35 --proxy-all --record-mappings → upstream (BENCH_PEERS has wiremock)
#   floors (BENCH_FLOORS, all four by default; driftcheck-bench-floor) split driftcheck's gap to nginx:
#   nio-relay         a SwiftNIO TCP byte relay: the most any SwiftNIO proxy gets from this machine
#   raw-http          driftcheck's HTTP1Framer on the raw bytes (one parse per message), nothing captured
#   nio-http          NIOHTTP1 decoding and encoding on both sides, pooled upstreams, nothing captured
#   dc-nostore        driftcheck's own proxy, every exchange captured and then discarded (no store)
# Workloads: small JSON GETs on keep-alive connections, 16 KB POSTs, 1 MiB responses, a new
# connection per request. Figures: req/s, p50/p99, CPU seconds per 10k requests, peak RSS,
# and for driftcheck exchanges stored vs requests completed. Ratios are the claims.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-50}
THREADS=${THREADS:-2}
WORKLOADS=${WORKLOADS:-"small post16k big1m newconn"}
BENCH_PEERS=${BENCH_PEERS-"mitmproxy wiremock"}
BENCH_FLOORS=${BENCH_FLOORS-"relay raw http proxy"}
work=$(mktemp -d /tmp/driftcheck-bench.XXXXXX)
# nginx workers run unprivileged: they must be able to read the files they serve.
chmod 755 "$work"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  [ -f "$work/origin.pid" ] && kill "$(cat "$work/origin.pid")" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
# CPU ticks of a process and its children processes (nginx's workers).
cpu_ticks() {
  local total=0 p
  for p in "$1" $(pgrep -P "$1" || true); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$total"
}

echo "building driftcheck (release)…" >&2
swift build -c release --product driftcheck >&2
bin=$(swift build -c release --show-bin-path)/driftcheck
if [ -n "$BENCH_FLOORS" ]; then swift build -c release --product driftcheck-bench-floor >&2; fi
floor_bin=$(swift build -c release --show-bin-path)/driftcheck-bench-floor

upstream_port=$(free_port)
nginx_port=$(free_port)
mkdir -p "$work/www" "$work/logs"
printf '{"id":42,"status":"paid","total":99.5,"items":[{"sku":"SKU-1","quantity":2}],"createdAt":"2026-11-26T10:00:00Z"}' > "$work/www/order.json"
head -c 1048576 /dev/zero | tr '\0' 'x' > "$work/www/big1m.json"
truncate -s 1G "$work/www/big.bin"
head -c 16384 /dev/zero | tr '\0' 'p' > "$work/post16k.body"
cat > "$work/post.lua" <<LUA
wrk.method = "POST"
local f = io.open("$work/post16k.body", "rb"); wrk.body = f:read("*a"); f:close()
wrk.headers["Content-Type"] = "application/octet-stream"
LUA
# The origin and the nginx proxy are two nginx instances, each with its own workers: in one
# instance a proxied request could be served end to end inside one worker's event loop (both
# server blocks in the same process, no wake-up of another process), an advantage no separate
# proxy such as driftcheck or mitmproxy can have, and nginx's CPU figure would include the
# origin's. NGINX_SHARED=1 measures the old layout (one instance with both server blocks).
cat > "$work/origin.conf" <<CONF
worker_processes auto;
pid $work/origin.pid;
error_log $work/logs/origin-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  default_type application/json;
  keepalive_requests 1000000;
  client_body_buffer_size 64k;
  server {
    listen 127.0.0.1:$upstream_port;
    root $work/www;
    # POSTs get the small JSON back, as a write endpoint would.
    error_page 405 =200 /order.json;
  }
CONF
proxy_block="
  upstream origin { server 127.0.0.1:$upstream_port; keepalive 64; }
  server {
    listen 127.0.0.1:$nginx_port;
    location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection \"\"; }
  }"
if [ -n "${NGINX_SHARED:-}" ]; then
  printf '%s\n}\n' "$proxy_block" >> "$work/origin.conf"
else
  echo "}" >> "$work/origin.conf"
  cat > "$work/nginx.conf" <<CONF
worker_processes auto;
pid $work/nginx.pid;
error_log $work/logs/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_buffer_size 64k;
$proxy_block
}
CONF
fi
nginx -c "$work/origin.conf" -p "$work"
wait_port "$upstream_port"
if [ -n "${NGINX_SHARED:-}" ]; then
  cp "$work/origin.pid" "$work/nginx.pid"
else
  nginx -c "$work/nginx.conf" -p "$work"
fi
wait_port "$nginx_port"

declare -A port pid
port[direct]=$upstream_port
port[nginx]=$nginx_port
pid[nginx]=$(cat "$work/nginx.pid")

# listening_port LOG: the port a recorder or floor announces in LOG ("listening on http://…"),
# once it has (up to 10 s); empty when it never does.
listening_port() {
  for _ in $(seq 100); do grep -q "listening on" "$1" && break; sleep 0.1; done
  sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$1" | head -1
}

# start_driftcheck TARGET BINARY: a recorder with a fresh store, its port in port[TARGET].
start_driftcheck() {
  local target=$1 binary=$2
  rm -f "$work/$target.sqlite"*
  "$binary" record --store "$work/$target.sqlite" --upstream "orders=http://127.0.0.1:$upstream_port" \
    --listen 127.0.0.1:0 2> "$work/$target.log" &
  pid[$target]=$!
  pids+=("${pid[$target]}")
  port[$target]=$(listening_port "$work/$target.log")
}
targets=(direct nginx driftcheck)
# The floors run for the whole benchmark, as nginx does: they store nothing between workloads.
for floor in $BENCH_FLOORS; do
  case "$floor" in relay) name=nio-relay ;; raw) name=raw-http ;; http) name=nio-http ;; proxy) name=dc-nostore ;; *) continue ;; esac
  "$floor_bin" "$floor" "$upstream_port" 2> "$work/$name.log" &
  pid[$name]=$!; pids+=("${pid[$name]}")
  port[$name]=$(listening_port "$work/$name.log")
  if [ -n "${port[$name]}" ]; then targets+=("$name"); else echo "=== SKIPPED FLOOR: $name (did not start: $work/$name.log) ===" >&2; fi
done
# BEFORE_BIN=path/to/an/older/driftcheck: measured in the same run, as "before".
[ -n "${BEFORE_BIN:-}" ] && targets+=(before)
if [[ " $BENCH_PEERS " == *" mitmproxy "* ]] && command -v mitmdump >/dev/null; then
  port[mitmproxy]=$(free_port)
  mitmdump --mode "reverse:http://127.0.0.1:$upstream_port" --listen-host 127.0.0.1 -p "${port[mitmproxy]}" \
    -w "$work/mitm.flows" -q > "$work/mitm.log" 2>&1 &
  pid[mitmproxy]=$!; pids+=("${pid[mitmproxy]}")
  if wait_port "${port[mitmproxy]}"; then targets+=(mitmproxy); else echo "=== SKIPPED PEER: mitmproxy (did not start: $work/mitm.log) ===" >&2; fi
elif [[ " $BENCH_PEERS " == *" mitmproxy "* ]]; then
  echo "=== SKIPPED PEER: mitmproxy (mitmdump not found; 'make peers' installs it) ===" >&2
fi
jar=$(python3 -c 'import wiremock, os, glob; print(glob.glob(os.path.dirname(wiremock.__file__) + "/server/*.jar")[0])' 2>/dev/null || true)
if [[ " $BENCH_PEERS " == *" wiremock "* ]] && [ -n "$jar" ]; then
  port[wiremock]=$(free_port)
  mkdir -p "$work/wiremock"
  java -jar "$jar" --port "${port[wiremock]}" --bind-address 127.0.0.1 --root-dir "$work/wiremock" \
    --proxy-all "http://127.0.0.1:$upstream_port" --record-mappings --disable-banner \
    > "$work/wiremock.log" 2>&1 &
  pid[wiremock]=$!; pids+=("${pid[wiremock]}")
  if wait_port "${port[wiremock]}"; then targets+=(wiremock); else echo "=== SKIPPED PEER: wiremock (did not start: $work/wiremock.log) ===" >&2; fi
elif [[ " $BENCH_PEERS " == *" wiremock "* ]]; then
  echo "=== SKIPPED PEER: wiremock (the PyPI package's jar or java not found; 'make peers' installs them) ===" >&2
fi

results="$work/results.tsv"
: > "$results"
for workload in $WORKLOADS; do
  for target in "${targets[@]}"; do
    [ "$target" = driftcheck ] && start_driftcheck driftcheck "$bin"
    [ "$target" = before ] && start_driftcheck before "$BEFORE_BIN"
    args=(-t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency)
    path=/order.json
    case "$workload" in
      post16k) args+=(-s "$work/post.lua") ;;
      big1m) path=/big1m.json ;;
      newconn) args+=(-H "Connection: close") ;;
    esac
    before=0
    [ -n "${pid[$target]:-}" ] && before=$(cpu_ticks "${pid[$target]}")
    out=$(wrk "${args[@]}" "http://127.0.0.1:${port[$target]}$path" 2>&1 || true)
    after=0
    [ -n "${pid[$target]:-}" ] && after=$(cpu_ticks "${pid[$target]}")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    total=$(awk '/requests in/ {print $1}' <<<"$out")
    errors=$(awk '/Non-2xx/ {print $5}' <<<"$out")
    [ -n "$errors" ] && echo "warning: $workload $target: $errors responses were not 2xx/3xx" >&2
    rss=-
    [ -n "${pid[$target]:-}" ] && rss=$(awk '/VmHWM/ {print $2}' "/proc/${pid[$target]}/status")
    stored=-
    if [ "$target" = driftcheck ] || [ "$target" = before ]; then
      kill -INT "${pid[$target]}"; wait "${pid[$target]}" || true
      stored=$(sqlite3 "$work/$target.sqlite" "select count(*) from exchange where failure is null")
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$workload" "$target" "${rps:-0}" "${p50:--}" "${p99:--}" \
      "${total:-0}" "$((after - before))" "$rss" "$stored" >> "$results"
    echo "$workload $target: ${rps:-0} req/s" >&2
  done
done

# Peak RSS while 1 GiB streams through, in a fresh recorder so load phases do not count.
"$bin" record --store "$work/big.sqlite" --upstream "big=http://127.0.0.1:$upstream_port" --listen 127.0.0.1:0 \
  2> "$work/big.log" &
big_pid=$!
pids+=("$big_pid")
big_port=$(listening_port "$work/big.log")
curl -s -o /dev/null "http://127.0.0.1:$big_port/big.bin"
peak_kib=$(awk '/VmHWM/ {print $2}' "/proc/$big_pid/status")
kill -INT "$big_pid"; wait "$big_pid" || true

# How fast this disk takes new data (appended to a new file, as a growing store is): a recorder
# that keeps every body stores at most this many body bytes per second, whatever its design.
disk_mbs=$(dd if=/dev/zero of="$work/disk.probe" bs=1M count=1024 conv=fsync 2>&1 | awk '/copied/ {
  for (i = 1; i <= NF; i++) if ($i == "s,") { print int(1073.741824 / $(i-1)); exit } }')
rm -f "$work/disk.probe"

python3 - "$results" "$peak_kib" "$(getconf CLK_TCK)" "${disk_mbs:-0}" <<'PY'
import sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1]) if line.strip()]
peak_kib, ticks, disk_mbs = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
body_bytes = {"post16k": 16384, "big1m": 1048576}
def ms(v):
    if v in ("-", ""): return float("nan")
    return float(v[:-2]) / 1000 if v.endswith("us") else float(v[:-2]) if v.endswith("ms") else float(v[:-1]) * 1000
by = {}
for w, t, rps, p50, p99, total, cpu, rss, stored in rows:
    by[(w, t)] = dict(rps=float(rps), p50=p50, p99=p99, total=int(total), cpu=int(cpu), rss=rss, stored=stored)
for w in dict.fromkeys(r[0] for r in rows):
    print(f"\n== {w}")
    print(f"{'target':<12}{'req/s':>10}{'p50':>10}{'p99':>10}{'CPU s/10k':>11}{'peak RSS':>10}{'vs nginx':>10}")
    nginx = by.get((w, "nginx"))
    for (ww, t), r in by.items():
        if ww != w: continue
        cpu = (r["cpu"] / ticks) / max(r["total"], 1) * 10000 if t != "direct" else float("nan")
        rss = f"{int(r['rss']) / 1024:.0f} MiB" if r["rss"] not in ("-", "") else "-"
        ratio = r["rps"] / nginx["rps"] if nginx and nginx["rps"] else float("nan")
        print(f"{t:<12}{r['rps']:>10.0f}{r['p50']:>10}{r['p99']:>10}{cpu:>11.2f}{rss:>10}{ratio:>9.2f}x")
    d = by.get((w, "driftcheck"))
    if d and nginx:
        goal = 0.9 if w in ("small", "newconn") else 0.7
        print(f"driftcheck / nginx throughput {d['rps'] / nginx['rps']:.2f} (target >= {goal:.2f}); "
              f"p99 {ms(d['p99']) - ms(nginx['p99']):+.2f} ms vs nginx (target within 1 ms)")
        # Where the gap goes: each step from nginx down to driftcheck, as a ratio of the step before
        # (driftcheck frames HTTP/1.1 as raw-http does); then NIOHTTP1 in the raw framer's place.
        steps = [t for t in ("nginx", "nio-relay", "raw-http", "dc-nostore", "driftcheck") if by.get((w, t), {}).get("rps")]
        if len(steps) > 2:
            print("the gap, step by step: " + ", ".join(
                f"{b} / {a} {by[(w, b)]['rps'] / by[(w, a)]['rps']:.2f}" for a, b in zip(steps, steps[1:])))
        if by.get((w, "nio-http"), {}).get("rps") and by.get((w, "raw-http"), {}).get("rps"):
            print(f"NIOHTTP1 in the raw framer's place: nio-http / raw-http "
                  f"{by[(w, 'nio-http')]['rps'] / by[(w, 'raw-http')]['rps']:.2f}")
        for peer in ("mitmproxy", "wiremock"):
            p = by.get((w, peer))
            if p and p["rps"]:
                print(f"driftcheck / {peer} throughput {d['rps'] / p['rps']:.1f}x")
        print(f"exchanges stored / requests completed: {d['stored']} / {d['total']}")
        if w in body_bytes and disk_mbs:
            ceiling = disk_mbs * 1e6 / body_bytes[w]
            print(f"the disk's ceiling for storing every body ({disk_mbs} MB/s of new data): "
                  f"{ceiling:.0f} exchanges/s = {ceiling / nginx['rps']:.2f}x nginx")
        b = by.get((w, "before"))
        if b and b["rps"]:
            print(f"driftcheck now / before: throughput {d['rps'] / b['rps']:.2f}x; "
                  f"before stored / completed: {b['stored']} / {b['total']}")
print(f"\ndriftcheck peak RSS with a 1 GiB body streamed through: {peak_kib / 1024:.1f} MiB (target < 64 MiB)")
PY
