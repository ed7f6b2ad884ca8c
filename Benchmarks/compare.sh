#!/usr/bin/env bash
# Side-by-side benchmarks of dicom-ingest against DCMTK, GDCM, pydicom, Orthanc and the physical floors, on one
# generated archive, warm cache, several runs each; rewrites BENCHMARKS.md with the results.
#
# Usage: Benchmarks/compare.sh            (environment: FILES=3000 BIG_MB=2048 SMALL=100000 RUNS=5 ORTHANC_FILES=500
#                                          PIXEL_FILES=400 CATALOG_SIZES="100000 1000000")
# Needs root on Debian 12 (installs dcmtk, libgdcm-tools, orthanc, libopenjp2-tools, hyperfine, postgresql-15 and the pinned
# PyPI packages). Takes about 10 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
FILES=${FILES:-3000}
BIG_MB=${BIG_MB:-2048}
SMALL=${SMALL:-100000}
RUNS=${RUNS:-5}
ORTHANC_FILES=${ORTHANC_FILES:-500}
PIXEL_FILES=${PIXEL_FILES:-400}
scripts/install-deps.sh
missing=""
for package in libgdcm-tools orthanc libopenjp2-tools hyperfine awscli postgresql-15; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing="$missing $package"
done
[ -z "$missing" ] || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null; }
swift build -c release --product dicom-ingest >/dev/null
bin=$PWD/.build/release/dicom-ingest
data=${DATA:-/tmp/dicom-ingest-compare}
results=$data/results
mkdir -p "$results"
work=$(mktemp -d)
trap 'rm -rf "$work"; [ -n "${orthanc_pid:-}" ] && kill $orthanc_pid 2>/dev/null || true' EXIT

# MARK: - Inputs (generated once, reused by later runs)
archive=$data/archive-$FILES
if [ ! -d "$archive" ]; then
  python3 Benchmarks/generate_archive.py "$archive" --studies $((FILES / 100)) --series 2 --instances 50 \
    --mix implicit=0.1,jpeg-lossless=0.1,jpeg-ls=0.1,rle=0.05,j2k=0.05 --junk 0.01 --truncated 0.01
fi
big=$data/big-$BIG_MB
[ -d "$big" ] || python3 Benchmarks/generate_archive.py "$big" --studies 0 --big-multiframe-mb "$BIG_MB"
small=$data/small-$SMALL
[ -d "$small" ] || python3 Benchmarks/generate_archive.py "$small" --studies 0 --many-small "$SMALL"
find "$archive" -type f | sort > "$work/files"
files=$(wc -l < "$work/files")
bytes=$(du -sb "$archive" | cut -f1)
xargs -a "$work/files" cat > /dev/null

# MARK: - Header scan
cat > "$work/pydicom-scan.py" <<'PY'
import sys
from multiprocessing import Pool
import pydicom
def scan(path):
    try:
        return pydicom.dcmread(path, stop_before_pixels=True).get("SeriesInstanceUID")
    except Exception:
        return None
if __name__ == "__main__":
    with Pool(2) as pool:
        pool.map(scan, [line.strip() for line in open(sys.argv[1])], chunksize=64)
PY
mkdir -p "$work/empty"
hyperfine --warmup 1 --runs "$RUNS" --export-json "$results/scan.json" \
  -n "dicom-ingest scan (2 threads)" "$bin scan $archive --no-progress > /dev/null 2>&1" \
  -n "dicom-ingest scan of an empty folder (process start-up)" "$bin scan $work/empty --no-progress > /dev/null 2>&1" \
  -n "dicom-ingest scan (1 thread)" "$bin scan $archive --threads 1 --no-progress > /dev/null 2>&1" \
  -n "DCMTK dcmdump +sb 7fe0,0010 (1 process)" "xargs -a $work/files dcmdump -q +sb 7fe0,0010 > /dev/null 2>&1 || true" \
  -n "GDCM gdcmscanner -t study/series UID (1 process)" "gdcmscanner -d $archive -r -t 0020,000d -t 0020,000e > /dev/null 2>&1" \
  -n "pydicom stop_before_pixels (2 processes)" "python3 $work/pydicom-scan.py $work/files" \
  -n "floor: cat of every file" "xargs -a $work/files cat > /dev/null" \
  -n "floor: head -c 8192 of every file" "xargs -a $work/files -n 1000 head -q -c 8192 > /dev/null"

# MARK: - Full ingest
hyperfine --runs "$RUNS" --export-json "$results/import.json" --prepare "rm -rf $work/t; sync" \
  -n "dicom-ingest import (2 threads)" "$bin import $archive --output $work/t/out --store $work/t/store --threads 2 --no-progress" \
  -n "dicom-ingest import (1 thread)" "$bin import $archive --output $work/t/out --store $work/t/store --threads 1 --no-progress" \
  -n "cp -r" "cp -r $archive $work/t" \
  -n "cp -r + sync (durable, as the import is)" "cp -r $archive $work/t && sync"
rm -rf "$work/t"

# Orthanc 1.10 with its SQLite index, fed over REST by 4 keep-alive clients (a subset: it is slow).
awk -v n="$ORTHANC_FILES" '!/\/broken\// && count < n {print; count++}' "$work/files" > "$work/orthanc-files"
mkdir -p "$work/orthanc"
port=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
cat > "$work/orthanc/config.json" <<JSON
{"Name": "bench", "HttpPort": $port, "StorageDirectory": "$work/orthanc/storage",
 "IndexDirectory": "$work/orthanc/index", "RemoteAccessAllowed": false, "AuthenticationEnabled": false,
 "DicomServerEnabled": false, "HttpServerEnabled": true, "StorageCompression": false}
JSON
Orthanc "$work/orthanc/config.json" > "$work/orthanc/log" 2>&1 &
orthanc_pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/system" > /dev/null && break; sleep 0.2; done
cat > "$work/orthanc-upload.py" <<'PY'
import http.client, sys, threading, time
port, paths = int(sys.argv[1]), [line.strip() for line in open(sys.argv[2])]
chunks = [paths[i::4] for i in range(4)]
def upload(chunk):
    connection = http.client.HTTPConnection("127.0.0.1", port)
    for path in chunk:
        connection.request("POST", "/instances", body=open(path, "rb").read(), headers={"Content-Type": "application/dicom"})
        connection.getresponse().read()
start = time.time()
threads = [threading.Thread(target=upload, args=(c,)) for c in chunks]
[t.start() for t in threads]
[t.join() for t in threads]
print(time.time() - start)
PY
orthanc_seconds=$(python3 "$work/orthanc-upload.py" "$port" "$work/orthanc-files")
kill $orthanc_pid; wait $orthanc_pid 2>/dev/null || true; orthanc_pid=""
orthanc_bytes=$(xargs -a "$work/orthanc-files" du -cb | tail -1 | cut -f1)

# MARK: - Pixel stage: native CT frames transcoded to HTJ2K, next to the codec alone and to peers converting the
# same files losslessly (2 processes each; GDCM here has no HTJ2K, so its JPEG 2000; DCMTK's JPEG-LS; pydicom with
# pylibjpeg-openjpeg's JPEG 2000).
native=$data/native-$PIXEL_FILES
[ -d "$native" ] || python3 Benchmarks/generate_archive.py "$native" --studies $((PIXEL_FILES / 100)) --series 2 --instances 50
find "$native" -type f -name '*.dcm' | sort > "$work/native-files"
native_files=$(wc -l < "$work/native-files")
native_bytes=$(du -sb "$native" | cut -f1)
xargs -a "$work/native-files" cat > /dev/null
(cd Benchmarks && swift build -c release --product PixelCodecRate >/dev/null)
xargs -a "$work/native-files" Benchmarks/.build/release/PixelCodecRate > "$results/codec.json"
cat > "$work/pydicom-j2k.py" <<'PY'
import os, sys
from multiprocessing import Pool
import pydicom
from pydicom.uid import JPEG2000Lossless
def convert(job):
    source, target = job
    ds = pydicom.dcmread(source)
    ds.compress(JPEG2000Lossless, encoding_plugin="pylibjpeg")
    ds.save_as(target)
if __name__ == "__main__":
    paths = [line.strip() for line in open(sys.argv[1])]
    os.makedirs(sys.argv[2], exist_ok=True)
    jobs = [(path, os.path.join(sys.argv[2], f"{index}.dcm")) for index, path in enumerate(paths)]
    with Pool(2) as pool:
        pool.map(convert, jobs, chunksize=8)
PY
hyperfine --runs "$RUNS" --export-json "$results/pixels.json" --prepare "rm -rf $work/t; sync" \
  -n "dicom-ingest import, lossless frames to HTJ2K (2 threads)" "$bin import $native --output $work/t/out --store $work/t/store --threads 2 --no-progress" \
  -n "dicom-ingest import, lossless frames to HTJ2K (1 thread)" "$bin import $native --output $work/t/out --store $work/t/store --threads 1 --no-progress" \
  -n "GDCM gdcmconv --j2k (2 processes)" "mkdir -p $work/t/peer && xargs -a $work/native-files -P 2 -I{} sh -c 'gdcmconv --j2k {} $work/t/peer/\$(echo {} | md5sum | cut -c1-12).dcm'" \
  -n "DCMTK dcmcjpls, JPEG-LS lossless (2 processes)" "mkdir -p $work/t/peer && xargs -a $work/native-files -P 2 -I{} sh -c 'dcmcjpls {} $work/t/peer/\$(echo {} | md5sum | cut -c1-12).dcm'" \
  -n "pydicom + pylibjpeg-openjpeg, JPEG 2000 lossless (2 processes)" "python3 $work/pydicom-j2k.py $work/native-files $work/t/peer"
rm -rf "$work/t"

# MARK: - Memory
rss() { /usr/bin/time -v "$@" 2>&1 >/dev/null | awk -F': ' '/Maximum resident/ {print $2}'; }
scan_small_rss=$(rss "$bin" scan "$small" --no-progress)
rm -rf "$work/t"
big_start=$(date +%s.%N)
import_big_rss=$(rss "$bin" import "$big" --output "$work/t/out" --store "$work/t/store" --no-progress)
big_seconds=$(echo "$(date +%s.%N) - $big_start" | bc)
big_bytes=$(du -sb "$big" | cut -f1)
rm -rf "$work/t"
import_rss=$(rss "$bin" import "$archive" --output "$work/t/out" --store "$work/t/store" --no-progress)
rm -rf "$work/t"

# MARK: - S3 (moto on loopback) against the download floor
s3_files=500
head -n "$s3_files" "$work/files" > "$work/s3-files"
python3 scripts/s3/start-moto.py "$work/s3.env" > /dev/null
source "$work/s3.env"
(
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1 AWS_ENDPOINT_URL=$S3_TEST_ENDPOINT
  aws s3 mb s3://bench > /dev/null
  mkdir -p "$work/s3in"
  while read -r path; do ln -s "$path" "$work/s3in/$(echo "${path#"$archive"/}" | tr / _)"; done < "$work/s3-files"
  aws s3 cp --recursive --quiet --follow-symlinks "$work/s3in" s3://bench/in/
  hyperfine --runs 3 --export-json "$results/s3.json" --prepare "rm -rf $work/t; sync" \
    -n "dicom-ingest import from S3 (8 workers)" "$bin import s3://bench/in/ --output $work/t/out --store $work/t/store --threads 8 --no-progress" \
    -n "aws s3 cp --recursive (download only)" "aws s3 cp --recursive --quiet s3://bench/in/ $work/t/download"
)
kill $S3_TEST_SERVER_PIDS 2>/dev/null || true
s3_bytes=$(xargs -a "$work/s3-files" du -cb | tail -1 | cut -f1)

# MARK: - Catalog at archive scale (CATALOG_SIZES instances, 100 per image set), on SQLite and on PostgreSQL (a
# throwaway cluster with PostgreSQL's durable defaults: fsync, synchronous_commit, full_page_writes)
(cd Benchmarks && swift build -c release --product CatalogScale >/dev/null)
scripts/postgres/start-throwaway.sh "$work/postgres.env" durable
source "$work/postgres.env"
: > "$results/catalog.md"
for instances in ${CATALOG_SIZES:-100000 1000000}; do
  Benchmarks/.build/release/CatalogScale "$work/catalog" "$instances" >> "$results/catalog.md"
  rm -rf "$work/catalog"
  Benchmarks/.build/release/CatalogScale "$work/catalog" "$instances" 100 "$DICOM_INGEST_TEST_POSTGRES&schema=scale_$instances" >> "$results/catalog.md"
  rm -rf "$work/catalog"
done
# MARK: - Many workers: the archive by a single process and by 1 and 2 worker processes on the same cluster
python3 Benchmarks/workers.py "$bin" "$archive" "$DICOM_INGEST_TEST_POSTGRES" "$RUNS" "$results/workers.json"
kill "$POSTGRES_TEST_PID"
while kill -0 "$POSTGRES_TEST_PID" 2>/dev/null; do sleep 0.2; done
rm -rf "$POSTGRES_TEST_DIR"
# MARK: - Codec helpers: the pixel stage decoding in helper processes against in-process decoding before them
DATA=$data RUNS=$RUNS Benchmarks/codec_helpers.sh > /dev/null
# MARK: - DICOMweb against Orthanc
DATA=$data Benchmarks/dicomweb.sh > /dev/null

# MARK: - Report
python3 Benchmarks/render_report.py "$results" BENCHMARKS.md \
  files="$files" bytes="$bytes" orthanc_files="$ORTHANC_FILES" orthanc_seconds="$orthanc_seconds" \
  orthanc_bytes="$orthanc_bytes" small="$SMALL" scan_small_rss="$scan_small_rss" big_mb="$BIG_MB" \
  big_bytes="$big_bytes" big_seconds="$big_seconds" import_big_rss="$import_big_rss" import_rss="$import_rss" \
  s3_files="$s3_files" s3_bytes="$s3_bytes" runs="$RUNS" native_files="$native_files" native_bytes="$native_bytes" \
  commit="$(git rev-parse --short HEAD)" swift="$(swift --version 2>&1 | head -1)" \
  dcmtk="$(dcmdump --version 2>&1 | head -1)" gdcm="$(gdcmscanner --version 2>&1 | head -1)" \
  pydicom="$(python3 -c 'import pydicom; print(pydicom.__version__)')" orthanc="$(Orthanc --version 2>&1 | head -1)" \
  aws="$(aws --version 2>&1 | head -1)" hyperfine="$(hyperfine --version)" \
  cpu="$(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2; exit}')" cores="$(nproc)" \
  memory="$(free -g | awk '/Mem:/ {print $2}') GiB"
echo "BENCHMARKS.md written"
