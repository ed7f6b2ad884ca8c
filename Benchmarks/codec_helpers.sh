#!/usr/bin/env bash
# The pixel stage with the decoders of outside input in codec helper processes (this tree) against the same stage
# decoding in-process (BEFORE, the last commit that did: 7e03eb1), release builds side by side on this machine:
# imports of 200 CT slices (512x512, 16-bit) in each syntax that needs decoding (JPEG lossless, JPEG-LS, JPEG 2000),
# each frame decoded, HTJ2K-encoded and verified. Writes $DATA/results/codec-helpers.json and prints the section
# BENCHMARKS.md quotes ("Codec helpers").
#
# Usage: Benchmarks/codec_helpers.sh      (environment: BEFORE=7e03eb1 RUNS=5 THREADS=2 DATA=/tmp/dicom-ingest-compare)
# Needs root on Debian 12 (installs what it needs). About 30 minutes on 2 cores, most of it the two release builds.
set -euo pipefail
cd "$(dirname "$0")/.."
BEFORE=${BEFORE:-7e03eb1}
RUNS=${RUNS:-5}
THREADS=${THREADS:-2}
data=${DATA:-/tmp/dicom-ingest-compare}
scripts/install-deps.sh
command -v hyperfine >/dev/null || apt-get install -y hyperfine >/dev/null
swift build -c release --product dicom-ingest >/dev/null
after=$PWD/.build/release/dicom-ingest
before_tree=$data/before-$BEFORE
if [ ! -x "$before_tree/.build/release/dicom-ingest" ]; then
  rm -rf "$before_tree"
  git worktree add -f "$before_tree" "$BEFORE" >/dev/null
  (cd "$before_tree" && swift build -c release --product dicom-ingest >/dev/null)
fi
before=$before_tree/.build/release/dicom-ingest
mkdir -p "$data/results"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for syntax in jpeg-lossless jpeg-ls j2k; do
  input=$data/codec-$syntax
  [ -d "$input" ] || python3 Benchmarks/generate_archive.py "$input" --studies 2 --series 2 --instances 50 --mix "$syntax=1" --seed 7 >/dev/null
  find "$input" -type f -exec cat {} + > /dev/null
  hyperfine --runs "$RUNS" --warmup 1 --export-json "$work/$syntax.json" \
    --prepare "rm -rf $work/out $work/store" \
    -n "in-process ($BEFORE)" "$before import $input --output $work/out --store $work/store --threads $THREADS --no-progress" \
    -n "codec helpers" "$after import $input --output $work/out --store $work/store --threads $THREADS --no-progress" >&2
done
python3 - "$work" "$data/results/codec-helpers.json" "$BEFORE" "$THREADS" "$data" <<'PY'
import json, os, sys
work, output, before, threads, data = sys.argv[1:6]
results = {"before": before, "threads": int(threads), "syntaxes": {}}
for syntax in ["jpeg-lossless", "jpeg-ls", "j2k"]:
    runs = {run["command"].split(" (")[0]: run for run in json.load(open(os.path.join(work, syntax + ".json")))["results"]}
    folder = os.path.join(data, "codec-" + syntax)
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(folder) for f in files)
    results["syntaxes"][syntax] = {"files": 200, "bytes": size, "inProcess": runs["in-process"]["median"],
                                   "helpers": runs["codec helpers"]["median"],
                                   "inProcessStddev": runs["in-process"]["stddev"], "helpersStddev": runs["codec helpers"]["stddev"]}
json.dump(results, open(output, "w"), indent=1)
PY
python3 Benchmarks/render_codec_helpers.py "$data/results"
