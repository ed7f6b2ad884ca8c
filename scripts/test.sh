#!/usr/bin/env bash
# The whole test suite: installs dependencies, generates fixtures, fetches the pydicom corpus, builds, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
fixtures/generate.sh
fixtures/fetch-pydicom-corpus.sh
swift build
swift test
