#!/usr/bin/env bash
# Benchmark: compare N recorded exchanges (default 100,000) against the built-in WireMock
# engine over the demo's fixture mocks. Prints wall time, exchanges/s and peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-100000}
swift build -c release --product driftcheck >&2
bin=$(swift build -c release --show-bin-path)/driftcheck
work=$(mktemp -d /tmp/driftcheck-bench-compare.XXXXXX)
trap 'rm -rf "$work"' EXIT
scripts/generate-store.sh "$bin" "$N" "$work/store.sqlite"
/usr/bin/time -v "$bin" compare fixtures/demo/mocks --store "$work/store.sqlite" --format json --output "$work/report.json" \
  2> "$work/time.log" || true
seconds=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/time.log")
rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.log")
python3 - "$N" "$seconds" "$rss" <<'PY'
import sys
n, wall, rss_kib = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
parts = [float(p) for p in wall.split(":")]
seconds = parts[-1] + (parts[-2] * 60 if len(parts) > 1 else 0) + (parts[-3] * 3600 if len(parts) > 2 else 0)
print(f"compare {n} exchanges against the built-in WireMock engine: {seconds:.2f} s "
      f"({n / seconds:,.0f} exchanges/s), peak RSS {rss_kib / 1024:.0f} MiB (target: < 10 s)")
PY
