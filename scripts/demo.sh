#!/usr/bin/env bash
# The main job: imports the bundled fixture archive (fixtures/archive, generated from fixtures/dumps) into the
# embedded data store, writes HealthImaging's job report, and shows where to look.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
fixtures/generate.sh >/dev/null
swift build -c release --product dicom-ingest
store=${DICOM_INGEST_STORE:-$PWD/.demo/store}
output=$PWD/.demo/output
.build/release/dicom-ingest import fixtures/archive --output "$output" --store "$store"
echo
echo "Image sets:      .build/release/dicom-ingest image-set list --store $store"
echo "Metadata:        .build/release/dicom-ingest image-set metadata <imageSetId> --store $store"
echo "A frame as PNG:  .build/release/dicom-ingest image-set frame <imageSetId> <frameId> --png -o frame.png --store $store"
echo "Job report:      $output/<datastoreId>-DicomImport-<jobId>/ (job-output-manifest.json, SUCCESS/, FAILURE/, WARNING/)"
