#!/usr/bin/env bash
# Store writer throughput (exchanges/s, batch sizes, WAL growth), so the store is never what
# limits the proxy. Usage: scripts/bench-store.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product driftcheck-bench-store >&2
"$(swift build -c release --show-bin-path)/driftcheck-bench-store" "${1:-200000}"
