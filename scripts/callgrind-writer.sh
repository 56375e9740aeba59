#!/usr/bin/env bash
# Instruction counts of the store writer's hot path (redaction, header encoding, insert) with
# callgrind, for this checkout and for an earlier commit side by side: repeatable where wall
# time on a shared 2-core machine is not. driftcheck-bench-store has a synchronous main, which
# valgrind can run; -gdwarf-4 lets it read the symbols of a release build.
# Usage: scripts/callgrind-writer.sh [BASE_COMMIT] (default b613671, before the issue 5 work)
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${1:-b613671}
N=${N:-20000}
command -v valgrind > /dev/null || scripts/ensure-packages.sh valgrind
work=$(mktemp -d /tmp/driftcheck-callgrind.XXXXXX)
trap 'git worktree remove --force "$work/base" 2> /dev/null || true; rm -rf "$work"' EXIT
git worktree add --detach "$work/base" "$BASE" > /dev/null 2>&1
count() {
  (cd "$1" && swift build -c release --product driftcheck-bench-store -Xcc -gdwarf-4 --build-path .build-callgrind >&2)
  rm -f "$work/s.sqlite"*
  valgrind --tool=callgrind --callgrind-out-file="$work/$2.out" \
    "$1/.build-callgrind/release/driftcheck-bench-store" "$N" "$work/s.sqlite" > "$work/$2.log" 2>&1
  sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$work/$2.log"
}
before=$(count "$work/base" base)
after=$(count . head)
python3 -c "
b, a, n = $before, $after, $N
print(f'store writer, {n} exchanges: {b:,} instructions at $BASE, {a:,} now: {b / a:.2f}x fewer '
      f'({b // n:,} -> {a // n:,} per exchange)')"
