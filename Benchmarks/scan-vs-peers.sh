#!/usr/bin/env bash
# Header scan, side by side, warm cache: our `scan` against DCMTK dcmdump (stop before pixel data), pydicom
# (stop_before_pixels, 2 processes) and the floor (`head -c 8192` of every file). Prints hyperfine's table and
# files/s. Usage: Benchmarks/scan-vs-peers.sh [FILES (default 3000)]
set -euo pipefail
cd "$(dirname "$0")/.."
files=${1:-3000}
source Benchmarks/common.sh
ensure_archive "$files"
list=$(mktemp)
find "$archive" -type f | sort > "$list"
n=$(wc -l < "$list")
cat > /tmp/pydicom-scan.py <<'PY'
import sys
from multiprocessing import Pool
import pydicom
def scan(path):
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return ds.get("SeriesInstanceUID")
if __name__ == "__main__":
    paths = [line.strip() for line in open(sys.argv[1])]
    with Pool(2) as pool:
        pool.map(scan, paths, chunksize=64)
PY
cat "$list" | xargs cat > /dev/null  # warm the page cache
hyperfine --warmup 1 --runs 5 --export-json /tmp/scan-bench.json \
  -n "dicom-ingest scan (2 threads)" "$bin scan $archive --no-progress > /dev/null 2>&1" \
  -n "dicom-ingest scan (1 thread)" "$bin scan $archive --threads 1 --no-progress > /dev/null 2>&1" \
  -n "dcmdump (stop before pixel data)" "xargs -a $list dcmdump -q +sb 7fe0,0010 > /dev/null" \
  -n "pydicom stop_before_pixels (2 processes)" "python3 /tmp/pydicom-scan.py $list" \
  -n "floor: head -c 8192 of every file" "xargs -a $list -n 1000 head -q -c 8192 > /dev/null"
python3 - "$n" <<'PY'
import json, sys
n = int(sys.argv[1])
results = json.load(open("/tmp/scan-bench.json"))["results"]
ours = results[0]["median"]
print(f"\n{n} files")
print(f"| command | median s | files/s | ratio to dicom-ingest scan |")
print(f"|---|---|---|---|")
for r in results:
    print(f"| {r['command']} | {r['median']:.3f} | {n / r['median']:.0f} | {r['median'] / ours:.2f}x |")
PY
rm -f "$list"
