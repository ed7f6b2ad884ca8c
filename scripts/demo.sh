#!/usr/bin/env bash
# The main job on the bundled fixtures: builds dicom-ingest, generates the fixtures and scans them.
# (The import issue turns this into an import into the embedded store.)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
fixtures/generate.sh >/dev/null
swift build -c release --product dicom-ingest
.build/release/dicom-ingest scan fixtures/generated
