#!/usr/bin/env bash
# The whole test suite: installs dependencies, generates fixtures, fetches the pydicom corpus, starts S3 API
# servers on loopback (moto), builds, tests, stops the servers, then replays the fuzz regression corpus and fuzzes
# each target briefly (repeatably: fixed seed, fixed number of inputs).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
fixtures/generate.sh
fixtures/fetch-pydicom-corpus.sh
swift build
runtime=$(mktemp -d)
python3 scripts/s3/start-moto.py "$runtime/s3.env"
source "$runtime/s3.env"
trap 'kill $S3_TEST_SERVER_PIDS 2>/dev/null || true; rm -rf "$runtime"' EXIT
swift test
# libFuzzer: the regression corpus, then 5,000 inputs of every target from a fixed seed (address sanitizer on).
scripts/fuzz.sh ci 5000
