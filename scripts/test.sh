#!/usr/bin/env bash
# The whole test suite: installs dependencies, generates fixtures, fetches the pydicom corpus, starts S3 API
# servers on loopback (moto) and a throwaway PostgreSQL cluster (the store suites run on both catalog backends),
# builds, tests, stops the servers, then replays the fuzz regression corpus and fuzzes each target briefly
# (repeatably: fixed seed, fixed number of inputs).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
fixtures/generate.sh
fixtures/fetch-pydicom-corpus.sh
swift build
runtime=$(mktemp -d)
stop() {
  kill ${S3_TEST_SERVER_PIDS:-} 2>/dev/null || true
  if [ -n "${POSTGRES_TEST_PID:-}" ]; then
    kill "$POSTGRES_TEST_PID" 2>/dev/null || true
    while kill -0 "$POSTGRES_TEST_PID" 2>/dev/null; do sleep 0.2; done
    rm -rf "$POSTGRES_TEST_DIR"
  fi
  rm -rf "$runtime"
}
trap stop EXIT
python3 scripts/s3/start-moto.py "$runtime/s3.env"
source "$runtime/s3.env"
scripts/postgres/start-throwaway.sh "$runtime/postgres.env"
source "$runtime/postgres.env"
export DICOM_INGEST_REQUIRE_POSTGRES=1
swift test
# libFuzzer: the regression corpus, then 5,000 inputs of every target from a fixed seed (address sanitizer on).
scripts/fuzz.sh ci 5000
