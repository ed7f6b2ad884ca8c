#!/usr/bin/env bash
# Installs what building and testing need on Debian 12 (run as root): DCMTK and codec libraries, the DCMTK
# command-line tools that generate fixtures, OpenJPEG's and OpenJPH's tools (fixtures, independent decoders),
# PostgreSQL 15 (the tests of the second catalog backend start a throwaway cluster), Orthanc with its DICOMweb
# plugin (a DICOMweb peer of the server's tests), Chromium (headless, the OHIF viewer's test), pinned PyPI packages
# (pydicom with its pixel plugins for the test corpus and the pixel oracle, moto's S3 server and boto3 for the S3
# tests, dicomweb-client and pyjwt for the DICOMweb tests), and the OHIF v3 viewer built into the PyPI wheel
# monailabel==0.8.5, unpacked into ~/.cache/dicom-ingest/ohif (scripts/dicomweb/ohif_viewer.py serves it).
set -euo pipefail
packages="dcmtk libdcmtk-dev libopenjp2-7-dev libopenjp2-tools libcharls-dev libopenjph-dev openjph-tools zlib1g-dev
  libsqlite3-dev python3-pip time postgresql-15 orthanc orthanc-dicomweb chromium unzip"
missing=""
for package in $packages; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing="$missing $package"
done
if [ -n "$missing" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq $missing >/dev/null
fi
pinned='pydicom==3.0.2 moto[server]==5.2.1 boto3==1.43.11 numpy==2.2.6 pylibjpeg==2.1.0 pylibjpeg-openjpeg==2.6.0
  pylibjpeg-libjpeg==2.5.0 pylibjpeg-rle==2.2.0 pyjpegls==1.5.1 dicomweb-client==0.61.2 pyjwt==2.15.1'
python3 - <<'PY' 2>/dev/null || python3 -m pip install --quiet --root-user-action=ignore $pinned 2>/dev/null \
  || python3 -m pip install --quiet --break-system-packages $pinned
import importlib.metadata as m, sys
wanted = {"pydicom": "3.0.2", "moto": "5.2.1", "boto3": "1.43.11", "flask": None, "flask-cors": None,
          "numpy": "2.2.6", "pylibjpeg": "2.1.0", "pylibjpeg-openjpeg": "2.6.0", "pylibjpeg-libjpeg": "2.5.0",
          "pylibjpeg-rle": "2.2.0", "pyjpegls": "1.5.1", "dicomweb-client": "0.61.2", "pyjwt": "2.15.1"}
sys.exit(0 if all(m.version(p) == v or (v is None and m.version(p)) for p, v in wanted.items()) else 1)
PY
ohif="$HOME/.cache/dicom-ingest/ohif"
if [ ! -f "$ohif/index.html" ]; then
  wheels=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --dest "$wheels" monailabel==0.8.5
  unzip -q "$wheels"/monailabel-0.8.5-*.whl 'monailabel/endpoints/static/ohif/*' -d "$wheels/unpacked"
  mkdir -p "$(dirname "$ohif")"
  rm -rf "$ohif"
  mv "$wheels/unpacked/monailabel/endpoints/static/ohif" "$ohif"
  rm -rf "$wheels"
fi
