#!/usr/bin/env bash
# One archive imported by a single process (SQLite and PostgreSQL catalogs) and by 1 and 2 worker processes sharing
# a PostgreSQL catalog (a durable throwaway cluster), on this machine; writes $DATA/results/workers.json and prints
# it. BENCHMARKS.md ("Many workers") quotes a run of it.
#
# Usage: Benchmarks/workers.sh      (environment: FILES=3000 RUNS=3 DATA=/tmp/dicom-ingest-compare)
# Needs root on Debian 12 (installs postgresql-15 and the pinned PyPI packages). About 10 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
FILES=${FILES:-3000}
RUNS=${RUNS:-3}
scripts/install-deps.sh
swift build -c release --product dicom-ingest >/dev/null
bin=$PWD/.build/release/dicom-ingest
data=${DATA:-/tmp/dicom-ingest-compare}
mkdir -p "$data/results"
archive=$data/archive-$FILES
if [ ! -d "$archive" ]; then
  python3 Benchmarks/generate_archive.py "$archive" --studies $((FILES / 100)) --series 2 --instances 50 \
    --mix implicit=0.1,jpeg-lossless=0.1,jpeg-ls=0.1,rle=0.05,j2k=0.05 --junk 0.01 --truncated 0.01
fi
work=$(mktemp -d)
trap '[ -n "${POSTGRES_TEST_PID:-}" ] && kill "$POSTGRES_TEST_PID" 2>/dev/null; rm -rf "$work" "${POSTGRES_TEST_DIR:-}"' EXIT
scripts/postgres/start-throwaway.sh "$work/postgres.env" durable
source "$work/postgres.env"
find "$archive" -type f -exec cat {} + > /dev/null
python3 Benchmarks/workers.py "$bin" "$archive" "$DICOM_INGEST_TEST_POSTGRES" "$RUNS" "$data/results/workers.json"
cat "$data/results/workers.json"
