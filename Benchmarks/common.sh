# Shared by the comparison scripts: builds the release binary and makes sure the generated archive exists.
# Usage (sourced): ensure_archive FILES → sets $archive and $bin.
ensure_archive() {
  local files=$1
  archive=${ARCHIVE:-/tmp/dicom-ingest-bench/ct-$files}
  if [ ! -d "$archive" ]; then
    python3 Benchmarks/generate_archive.py "$archive" --studies $((files / 100)) --series 2 --instances 50
  fi
  swift build -c release --product dicom-ingest >/dev/null
  bin=$PWD/.build/release/dicom-ingest
}
