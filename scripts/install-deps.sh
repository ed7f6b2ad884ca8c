#!/usr/bin/env bash
# Installs what building and testing need on Debian 12 (run as root): DCMTK and codec libraries, the DCMTK
# command-line tools that generate fixtures, and pinned PyPI packages (pydicom for the test corpus and oracle).
set -euo pipefail
packages="dcmtk libdcmtk-dev libopenjp2-7-dev libcharls-dev libopenjph-dev zlib1g-dev libsqlite3-dev python3-pip"
missing=""
for package in $packages; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing="$missing $package"
done
if [ -n "$missing" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq $missing >/dev/null
fi
python3 -c 'import pydicom, sys; sys.exit(0 if pydicom.__version__ == "3.0.2" else 1)' 2>/dev/null \
  || python3 -m pip install --quiet --root-user-action=ignore "pydicom==3.0.2" 2>/dev/null \
  || python3 -m pip install --quiet --break-system-packages "pydicom==3.0.2"
