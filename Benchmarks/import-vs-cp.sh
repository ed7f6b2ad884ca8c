#!/usr/bin/env bash
# Full ingest, side by side: our `import` (frames kept as-is, SQLite catalog, one sync before commit) against
# `cp -r` of the same folder (with and without a final `sync`), warm source cache, each run starting from an
# empty target. Also peak RSS of the import. Usage: Benchmarks/import-vs-cp.sh [FILES (default 3000)]
set -euo pipefail
cd "$(dirname "$0")/.."
files=${1:-3000}
source Benchmarks/common.sh
ensure_archive "$files"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bytes=$(du -sb "$archive" | cut -f1)
find "$archive" -type f -print0 | xargs -0 cat > /dev/null
hyperfine --runs 5 --export-json "$work/import.json" --prepare "rm -rf $work/t; sync" \
  -n "dicom-ingest import (2 threads)" "$bin import $archive --output $work/t/out --store $work/t/store --threads 2" \
  -n "dicom-ingest import (1 thread)" "$bin import $archive --output $work/t/out --store $work/t/store --threads 1" \
  -n "cp -r" "cp -r $archive $work/t" \
  -n "cp -r + sync" "cp -r $archive $work/t && sync"
rm -rf "$work/t"
rss=$( { /usr/bin/time -v "$bin" import "$archive" --output "$work/t/out" --store "$work/t/store" > /dev/null; } 2>&1 \
  | awk -F': ' '/Maximum resident/ {print $2}')
python3 - "$work/import.json" "$(find "$archive" -type f | wc -l)" "$bytes" "$rss" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
files, size, rss = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ours = results[0]["median"]
print(f"\n{files} files, {size / 1e6:.0f} MB; peak RSS of dicom-ingest import: {rss / 1024:.0f} MB")
print("| command | median s | files/s | MB/s | time relative to dicom-ingest import |")
print("|---|---|---|---|---|")
for r in results:
    m = r["median"]
    print(f"| {r['command']} | {m:.2f} | {files / m:.0f} | {size / 1e6 / m:.0f} | {m / ours:.2f}x |")
PY
