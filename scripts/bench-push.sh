#!/usr/bin/env bash
# Team store throughput: N exchanges (default 1,000,000) pushed from a SQLite store into a
# PostgreSQL server started here (fsync on, as a team's server would run), pushed again (adds
# nothing), and pulled back into an empty SQLite store. Prints rates and the server's size.
# Usage: N=1000000 scripts/bench-push.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/postgres.sh
N=${N:-1000000}
swift build -c release --product driftcheck >&2
bin=$(swift build -c release --show-bin-path)/driftcheck
work=$(mktemp -d /tmp/driftcheck-bench-push.XXXXXX)
chmod 755 "$work"
trap 'postgres_stop "$work/pg"; rm -rf "$work"' EXIT
scripts/generate-store.sh "$bin" "$N" "$work/local.sqlite"
postgres_start "$work/pg"

timed() {
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" 2> "$work/log" || { cat "$work/log" >&2; exit 1; }
  read -r seconds kib < "$work/time"
  printf '%-22s %7.2f s  %9.0f exchanges/s  peak RSS %4d MiB  | %s\n' "$label" "$seconds" \
    "$(echo "$N / $seconds" | bc -l)" $((kib / 1024)) "$(grep -o '[0-9]* new.*' "$work/log")"
}
timed "push" "$bin" push --store "$work/local.sqlite" --to "$POSTGRES_URL"
timed "push again" "$bin" push --store "$work/local.sqlite" --to "$POSTGRES_URL"
timed "pull into empty file" "$bin" pull --from "$POSTGRES_URL" --store "$work/back.sqlite"
echo "server: $(psql -X -A -t "$POSTGRES_URL" -c "SELECT count(*) || ' exchanges, ' || pg_size_pretty(pg_database_size('bench')) FROM driftcheck.exchange")"
