#!/usr/bin/env bash
# Makes a store of N exchanges for benchmarks: `driftcheck demo` records a real workload
# (so the schema and the data are the product's own), then its exchanges are copied with
# fresh ids until there are N.  Usage: scripts/generate-store.sh BINARY N PATH
set -euo pipefail
bin=$1 count=$2 store=$3
rm -f "$store" "$store-wal" "$store-shm"
"$bin" demo --store "$store" --format json > /dev/null 2>&1 || true
sqlite3 "$store" <<SQL
CREATE TEMP TABLE seed AS SELECT * FROM exchange WHERE failure IS NULL;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ($count / (SELECT count(*) FROM seed)) + 1)
INSERT INTO exchange (session_id, service, method, scheme, host, port, path, query, request_headers, request_body,
  request_body_size, status, response_headers, response_body, response_body_size, failure, started_at, duration)
SELECT session_id, service, method, scheme, host, port,
  CASE WHEN path GLOB '/orders/[0-9]*' THEN '/orders/' || ((i * 7 + CAST(substr(path, 9) AS INTEGER)) % 997 + 1) ELSE path END,
  query, request_headers, request_body, request_body_size, status, response_headers, response_body,
  response_body_size, failure, started_at + i, duration
FROM seed, n;
DELETE FROM exchange WHERE id > $count;
SQL
echo "$(sqlite3 "$store" 'select count(*) from exchange') exchanges in $store" >&2
