#!/usr/bin/env bash
# DICOMweb side by side with Orthanc (Benchmarks/dicomweb.py): frames per second as stored and in ELE, series
# metadata and QIDO-RS latency, peak RSS under 64 concurrent frame requests; release build, wrk as the one load
# generator for both. Writes $DATA/results/dicomweb.json and prints the section BENCHMARKS.md quotes ("DICOMweb").
#
# Usage: Benchmarks/dicomweb.sh      (environment: DATA=/tmp/dicom-ingest-compare DURATION=10)
# Needs root on Debian 12 (installs what it needs). About 10 minutes on 2 cores after the release build.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${DATA:-/tmp/dicom-ingest-compare}
scripts/install-deps.sh
command -v wrk >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
swift build -c release --product dicom-ingest >/dev/null
mkdir -p "$data/results"
python3 Benchmarks/dicomweb.py "$PWD/.build/release/dicom-ingest" "$data" "$data/results/dicomweb.json" >/dev/null
python3 Benchmarks/render_dicomweb.py "$data/results"
