#!/usr/bin/env bash
# Starts a throwaway PostgreSQL 15 cluster for tests and benchmarks: initdb in a new temporary folder, a free port on
# 127.0.0.1 only, trust authentication (nothing but this machine's loopback reaches it). Writes an env file with
#   DICOM_INGEST_TEST_POSTGRES  the catalog URL (postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable)
#   POSTGRES_TEST_PID           the server's PID: `kill $POSTGRES_TEST_PID` stops it (a smart shutdown)
#   POSTGRES_TEST_DIR           the folder to remove afterwards
# Usage: scripts/postgres/start-throwaway.sh ENV_FILE [durable]
# Without `durable` the cluster skips fsync (tests); with it, it keeps PostgreSQL's defaults (benchmarks).
set -euo pipefail
env_file=$1
mode=${2:-fast}
bin=/usr/lib/postgresql/15/bin
[ -x "$bin/initdb" ] || { echo "PostgreSQL 15 is not installed (apt-get install postgresql-15)" >&2; exit 1; }
dir=$(mktemp -d /tmp/dicom-ingest-postgres.XXXXXX)
as_postgres() {
  # initdb and postgres refuse to run as root.
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
[ "$(id -u)" = 0 ] && chown postgres "$dir"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_postgres "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
options="-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=400"
[ "$mode" = durable ] || options="$options -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -o "$options" -w start >/dev/null
pid=$(head -1 "$dir/data/postmaster.pid")
cat > "$env_file" <<ENV
export DICOM_INGEST_TEST_POSTGRES='postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable'
export POSTGRES_TEST_PID=$pid
export POSTGRES_TEST_DIR=$dir
ENV
