#!/usr/bin/env bash
# Benchmark: compare N recorded exchanges (default 100,000) against
#   1. the built-in WireMock engine over the demo's fixture mocks (in process), and
#   2. the same mappings served by the real WireMock 2.35 jar over HTTP (replayed with libcurl,
#      --parallel 1 and --parallel $PARALLEL), when Java and the PyPI `wiremock` package are present.
# With STORE=postgres, the same recordings are also pushed into a PostgreSQL server started here
# and compared from it against the built-in engine, next to the SQLite run.
# Prints wall time, exchanges/s and peak RSS of driftcheck for each, and the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/postgres.sh
N=${N:-100000}
STORE=${STORE:-sqlite}
PARALLEL=${PARALLEL:-4}
swift build -c release --product driftcheck >&2
bin=$(swift build -c release --show-bin-path)/driftcheck
work=$(mktemp -d /tmp/driftcheck-bench-compare.XXXXXX)
wiremock_pid=
cleanup() {
  [ -n "$wiremock_pid" ] && kill "$wiremock_pid" 2>/dev/null || true
  postgres_stop "$work/pg"
  rm -rf "$work"
}
trap cleanup EXIT
scripts/generate-store.sh "$bin" "$N" "$work/store.sqlite"

# Runs one comparison; appends "label<TAB>seconds<TAB>peak KiB" to the results.
store_arg="$work/store.sqlite"
measure() {
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/time" "$bin" compare "$@" --store "$store_arg" --format json \
    --output "$work/report-$label.json" 2> "$work/log-$label" > /dev/null || true
  grep -q "exchanges compared" "$work/log-$label" || { cat "$work/log-$label" >&2; return 1; }
  printf '%s\t%s\t%s\n' "$label" $(cat "$work/time") >> "$work/results"
  echo "$label: $(cat "$work/time")" >&2
}
: > "$work/results"
measure engine fixtures/demo/mocks
if [ "$STORE" = postgres ]; then
  chmod 755 "$work"
  postgres_start "$work/pg"
  "$bin" push --store "$work/store.sqlite" --to "$POSTGRES_URL" >&2
  store_arg=$POSTGRES_URL
  measure engine-postgres fixtures/demo/mocks
  store_arg="$work/store.sqlite"
  cmp -s "$work/report-engine.json" "$work/report-engine-postgres.json" \
    && echo "reports: SQLite and PostgreSQL identical" >&2 || echo "reports: SQLite and PostgreSQL DIFFER" >&2
fi

jar=$(python3 -c 'import wiremock, os, glob; print(glob.glob(os.path.dirname(wiremock.__file__) + "/server/*.jar")[0])' 2>/dev/null || true)
if [ -n "$jar" ] && command -v java > /dev/null; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  # WireMock 2.35 predates urlPathTemplate: the copy it serves says the same with urlPathPattern.
  cp -r fixtures/demo/mocks/orders "$work/wiremock-root"
  python3 - "$work/wiremock-root/mappings" <<'PY'
import json, os, re, sys
for name in os.listdir(sys.argv[1]):
    path = os.path.join(sys.argv[1], name)
    mapping = json.load(open(path))
    template = mapping["request"].pop("urlPathTemplate", None)
    if template is not None:
        mapping["request"]["urlPathPattern"] = re.sub(r"\{[^}/]+\}", "[^/]+", template)
    json.dump(mapping, open(path, "w"))
PY
  java -jar "$jar" --port "$port" --bind-address 127.0.0.1 --root-dir "$work/wiremock-root" \
    --local-response-templating --disable-banner --no-request-journal > "$work/wiremock.log" 2>&1 &
  wiremock_pid=$!
  for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  measure http-1 --mock "orders=http://127.0.0.1:$port"
  measure "http-$PARALLEL" --mock "orders=http://127.0.0.1:$port" --parallel "$PARALLEL"
  # The same findings either way, except what only the in-process engine can know: stubs no
  # recording used, and requests no stub matched (over HTTP those are WireMock's 404s).
  python3 - "$work/report-engine.json" "$work/report-http-1.json" <<'PY'
import json, sys
load = lambda f: json.load(open(f))["findings"]
engine, http = load(sys.argv[1]), load(sys.argv[2])
unmatched = {x["endpoint"] for x in engine if x["kind"] == "unmocked"}
key = lambda x: (x["endpoint"], x["kind"], x["path"])
a = sorted(key(x) for x in engine if x["kind"] not in ("unmocked", "unverified"))
b = sorted(key(x) for x in http if x["endpoint"] not in unmatched)
print("findings: built-in engine and WireMock over HTTP " + ("agree" if a == b else f"DIFFER: {a} vs {b}"), file=sys.stderr)
PY
else
  echo "skipping the HTTP mock: needs java and the PyPI package wiremock (make peers)" >&2
fi

python3 - "$N" "$work/results" <<'PY'
import sys
n = int(sys.argv[1])
rows = [l.split("\t") for l in open(sys.argv[2]) if l.strip()]
base = None
for label, seconds, kib in rows:
    seconds, kib = float(seconds), int(kib)
    base = base or seconds
    what = ("built-in WireMock engine" if label == "engine"
            else "built-in WireMock engine, recordings read from PostgreSQL" if label == "engine-postgres"
            else f"WireMock 2.35 over HTTP, --parallel {label.split('-')[1]}")
    print(f"compare {n} exchanges against the {what}: {seconds:.2f} s ({n / seconds:,.0f} exchanges/s), "
          f"peak RSS {kib / 1024:.0f} MiB, {seconds / base:.2f}x the engine's time")
print("target: < 10 s against the built-in engine")
PY
