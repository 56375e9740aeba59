# Sourced by benchmarks: a throwaway PostgreSQL server in a temporary directory on a free port,
# run as the unprivileged `postgres` user when we are root (PostgreSQL refuses root).
# postgres_start DIR → sets POSTGRES_URL (database "bench"); postgres_stop DIR.
postgres_bin() {
  command -v "$1" 2>/dev/null || ls /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -V | tail -1
}

postgres_as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

postgres_start() {
  local dir=$1 port
  command -v psql > /dev/null || scripts/ensure-packages.sh postgresql
  mkdir -p "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  postgres_as_owner "$(postgres_bin initdb)" -D "$dir/data" -U driftcheck --auth=trust -E UTF8 --no-locale > "$dir/initdb.log"
  postgres_as_owner "$(postgres_bin pg_ctl)" -D "$dir/data" -l "$dir/server.log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_wal_size=4GB" start > /dev/null
  psql -X -q "postgres://driftcheck@127.0.0.1:$port/postgres" -c "CREATE DATABASE bench"
  POSTGRES_URL="postgres://driftcheck@127.0.0.1:$port/bench"
  POSTGRES_PORT=$port
}

postgres_stop() {
  local dir=$1
  [ -f "$dir/data/postmaster.pid" ] && postgres_as_owner "$(postgres_bin pg_ctl)" -D "$dir/data" -m fast stop > /dev/null 2>&1 || true
}
