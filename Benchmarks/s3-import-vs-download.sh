#!/usr/bin/env bash
# Import from an S3 API server on loopback (moto) against the download floor, `aws s3 cp --recursive` of the
# same prefix to local disk. Both are bound by the server (moto is one CPU-bound Python process), which is the
# point: the import should cost no more than fetching the bytes. Usage: Benchmarks/s3-import-vs-download.sh [FILES]
set -euo pipefail
cd "$(dirname "$0")/.."
files=${1:-500}
source Benchmarks/common.sh
ensure_archive "$files"
work=$(mktemp -d)
python3 scripts/s3/start-moto.py "$work/s3.env" >/dev/null
source "$work/s3.env"
trap 'kill $S3_TEST_SERVER_PIDS 2>/dev/null || true; rm -rf "$work"' EXIT
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1
export AWS_ENDPOINT_URL=$S3_TEST_ENDPOINT
aws s3 mb s3://bench >/dev/null
aws s3 cp --recursive --quiet "$archive" s3://bench/in/
bytes=$(du -sb "$archive" | cut -f1)
hyperfine --runs 3 --export-json "$work/s3.json" --prepare "rm -rf $work/t; sync" \
  -n "dicom-ingest import from S3 (8 workers)" "$bin import s3://bench/in/ --output $work/t/out --store $work/t/store --threads 8" \
  -n "aws s3 cp --recursive (download only)" "aws s3 cp --recursive --quiet s3://bench/in/ $work/t/download"
python3 - "$work/s3.json" "$files" "$bytes" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
files, size = int(sys.argv[2]), int(sys.argv[3])
ours = results[0]["median"]
print(f"\n{files} files, {size / 1e6:.0f} MB, from moto_server on loopback")
print("| command | median s | files/s | MB/s | time relative to dicom-ingest import |")
print("|---|---|---|---|---|")
for r in results:
    m = r["median"]
    print(f"| {r['command']} | {m:.2f} | {files / m:.0f} | {size / 1e6 / m:.0f} | {m / ours:.2f}x |")
PY
