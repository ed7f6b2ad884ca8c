#!/usr/bin/env python3
"""OHIF v3 in headless Chromium against a real `dicom-ingest serve` (SigV4), through scripts/dicomweb/ohif_viewer.py.

Usage: ohif_e2e.py BINARY SCENARIO WORK_DIR   (scenario: viewer)
Imports the bundled fixtures (two studies), then:
- the study list (rendered DOM after OHIF's scripts ran) shows both studies: patient IDs, names, the CT's description;
- the viewer opened on the CT study renders its image: in the screenshot (WORK_DIR/viewer.png, for a person to look
  at) the image inside the active viewport correlates with the frame rendered with its own window (WindowCenter /
  WindowWidth, PS3.3 C.11.2.1.2) above 0.9, and is not blank;
- the server was asked, through the viewer's proxy, the QIDO study and series searches, the series metadata and
  the frame, each answered 200.
Prints one JSON line; exits non-zero on the first failed check.
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import time
import zlib

import numpy
import pydicom

from e2e_common import ROOT, check, free_port, seen, wait_for

binary, scenario, work = sys.argv[1], sys.argv[2], sys.argv[3]
seen["scenario"] = scenario
os.makedirs(work, exist_ok=True)
OHIF = os.environ.get("DICOM_INGEST_OHIF", os.path.join(os.path.expanduser("~"), ".cache", "dicom-ingest", "ohif"))
check(os.path.exists(os.path.join(OHIF, "index.html")), f"the OHIF build is unpacked at {OHIF} (scripts/install-deps.sh)")
chromium = shutil.which("chromium")
check(chromium is not None, "chromium is installed (scripts/install-deps.sh)")


def png(path):
    """An 8-bit RGB or RGBA PNG (as Chromium writes screenshots) as a height × width × 3 array."""
    data = open(path, "rb").read()
    position, compressed = 8, b""
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        body = data[position + 8:position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            check(depth == 8 and colour in (2, 6) and interlace == 0, f"a plain 8-bit PNG: {depth} {colour} {interlace}")
        elif kind == b"IDAT":
            compressed += body
    channels = 3 if colour == 2 else 4
    raw = zlib.decompress(compressed)
    stride = width * channels
    rows = numpy.zeros((height, stride), numpy.int32)
    previous = numpy.zeros(stride, numpy.int32)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], numpy.frombuffer(raw, numpy.uint8, stride, y * (stride + 1) + 1).astype(numpy.int32)
        if kind == 0:
            current = line
        elif kind == 2:
            current = (line + previous) & 0xFF
        else:
            current = numpy.zeros(stride, numpy.int32)
            for x in range(stride):
                left = current[x - channels] if x >= channels else 0
                up, corner = previous[x], previous[x - channels] if x >= channels else 0
                if kind == 1:
                    predictor = left
                elif kind == 3:
                    predictor = (left + up) // 2
                else:
                    estimate = left + up - corner
                    da, db, dc = abs(estimate - left), abs(estimate - up), abs(estimate - corner)
                    predictor = left if da <= db and da <= dc else (up if db <= dc else corner)
                current[x] = (line[x] + predictor) & 0xFF
        rows[y] = current
        previous = current
    return rows.reshape(height, width, channels)[:, :, :3]


def chromium_run(*arguments):
    result = subprocess.run(
        [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,800",
         "--virtual-time-budget=60000", f"--user-data-dir={work}/chromium-profile", *arguments],
        capture_output=True, timeout=180)
    check(result.returncode == 0, f"chromium {arguments[0]}: {result.stderr.decode(errors='replace')[-1500:]}")
    return result.stdout


environment = dict(os.environ, DICOM_INGEST_LOG_LEVEL="info")
store = os.path.join(work, "store")
subprocess.run([binary, "import", os.path.join(ROOT, "fixtures/generated"), "--store", store, "--output", os.path.join(work, "out"),
                "--no-progress"], env=environment, check=True, capture_output=True, timeout=600)
datastore = json.loads(subprocess.run([binary, "datastore", "list", "--store", store], capture_output=True, check=True,
                                      env=environment).stdout)["datastoreSummaries"][0]["datastoreId"]
ct = pydicom.dcmread(os.path.join(ROOT, "fixtures/generated/ct_explicit_le.dcm"))

port, viewer_port = free_port(), free_port()
server = subprocess.Popen([binary, "serve", "--store", store, "--host", "127.0.0.1", "--port", str(port)], env=environment,
                          stdout=open(os.path.join(work, "serve.log"), "w"), stderr=subprocess.STDOUT)
viewer_log = os.path.join(work, "viewer.log")
viewer = subprocess.Popen(
    [sys.executable, os.path.join(ROOT, "scripts/dicomweb/ohif_viewer.py"), "--server", f"http://127.0.0.1:{port}",
     "--datastore-id", datastore, "--port", str(viewer_port), "--ohif", OHIF],
    env=environment, stdout=open(viewer_log, "w"), stderr=subprocess.STDOUT)
try:
    wait_for(f"http://127.0.0.1:{port}/healthz", server, "serve")
    wait_for(f"http://127.0.0.1:{viewer_port}/ohif/", viewer, "the viewer")
    root = f"http://127.0.0.1:{viewer_port}/ohif"

    # The study list, as OHIF rendered it.
    dom = chromium_run("--dump-dom", root + "/").decode(errors="replace")
    open(os.path.join(work, "study-list.html"), "w").write(dom)
    for expected in ("PAT001", "PAT002", "Chest CT", "Doe, Jane", "Müller, Jürgen"):
        check(expected in dom, f"the study list shows {expected}")
    chromium_run("--screenshot=" + os.path.join(work, "study-list.png"), root + "/")

    # The CT study in the viewer.
    # Chromium's virtual time does not wait for the image decoders' workers: a screenshot taken before the frame
    # was drawn is taken again, up to four times.
    shot = os.path.join(work, "viewer.png")
    for attempt in range(4):
        chromium_run("--screenshot=" + shot, f"{root}/viewer?StudyInstanceUIDs={ct.StudyInstanceUID}")
        image = png(shot)
        outline = (image[:, :, 2] > 180) & (image[:, :, 1] > 150) & (image[:, :, 0] < 120)
        columns, rows = numpy.where(outline.sum(axis=0) > 200)[0], numpy.where(outline.sum(axis=1) > 200)[0]
        if len(columns) >= 2 and len(rows) >= 2 and image[rows.min() + 3:rows.max() - 3, columns.min() + 3:columns.max() - 3].std() > 20:
            break
    seen["screenshots"] = attempt + 1
    gray = image.mean(axis=2)
    # The active viewport is outlined in OHIF's highlight colour (cyan: blue and green well above red).
    check(len(columns) >= 2 and len(rows) >= 2, "the viewport's outline is in the screenshot")
    left, right, top, bottom = columns.min() + 3, columns.max() - 3, rows.min() + 3, rows.max() - 3
    # The frame with its own window.
    values = ct.pixel_array.astype(numpy.float64) * float(ct.get("RescaleSlope", 1)) + float(ct.get("RescaleIntercept", 0))
    center, window = float(ct.WindowCenter), float(ct.WindowWidth)
    rendered = numpy.clip(((values - (center - 0.5)) / (window - 1) + 0.5) * 255, 0, 255)
    fit = min((right - left) / ct.Columns, (bottom - top) / ct.Rows)

    inner_rows = numpy.arange(ct.Rows // 10, ct.Rows - ct.Rows // 10)
    inner_columns = numpy.arange(ct.Columns // 10, ct.Columns - ct.Columns // 10)
    expected = rendered[numpy.ix_(inner_rows, inner_columns)].ravel()

    def compared(zoom, dx, dy):
        """The screenshot at the centre of each frame pixel, the frame drawn `zoom` × the viewport's fit and
        centred `dx`, `dy` off the viewport's centre (OHIF picks its own margin), against the frame: their
        correlation. Corners hold OHIF's overlay text: the middle 80 % of each side is compared."""
        scale = fit * zoom
        x0 = (left + right) / 2 + dx - ct.Columns * scale / 2
        y0 = (top + bottom) / 2 + dy - ct.Rows * scale / 2
        ys = (y0 + (inner_rows + 0.5) * scale).astype(int).clip(0, gray.shape[0] - 1)
        xs = (x0 + (inner_columns + 0.5) * scale).astype(int).clip(0, gray.shape[1] - 1)
        shown = gray[numpy.ix_(ys, xs)].ravel()
        if shown.std() == 0:
            return 0.0, shown
        return float(numpy.corrcoef(shown, expected)[0, 1]), shown

    coarse = max(((compared(zoom, dx, dy)[0], zoom, dx, dy) for zoom in numpy.arange(0.50, 1.001, 0.01)
                  for dx in range(-60, 61, 6) for dy in range(-60, 61, 6)), key=lambda found: found[0])
    _, zoom, dx, dy = max(((compared(z, x, y)[0], z, x, y) for z in numpy.arange(coarse[1] - 0.01, coarse[1] + 0.0101, 0.0025)
                           for x in range(coarse[2] - 6, coarse[2] + 7) for y in range(coarse[3] - 6, coarse[3] + 7)),
                          key=lambda found: found[0])
    correlation, shown = compared(zoom, dx, dy)
    seen.update(viewport=[int(left), int(top), int(right), int(bottom)], correlation=round(correlation, 4),
                fitted=[round(float(zoom), 4), dx, dy], shownStd=round(float(shown.std()), 1))
    check(shown.std() > 20, "the viewport is not blank")
    check(correlation > 0.9, f"the viewport shows the frame with its window: correlation {correlation:.3f}")

    # What the viewer asked of the server.
    asked = open(viewer_log).read().splitlines()
    wanted = {
        "study search": lambda line: line.startswith("GET /studies?") and "includefield" in line,
        "series search": lambda line: line.startswith(f"GET /studies/{ct.StudyInstanceUID}/series?"),
        "series metadata": lambda line: line.startswith(f"GET /studies/{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}/metadata"),
        "frame": lambda line: "/instances/" in line and "/frames/1" in line,
    }
    for name, matches in wanted.items():
        found = [line for line in asked if matches(line)]
        check(found and all(line.endswith(" 200") for line in found), f"the viewer asked the {name}, answered 200: {asked}")
    seen["requests"] = len([line for line in asked if line.startswith("GET ")])
    check(server.poll() is None, "serve is still up")
    seen["ok"] = True
finally:
    for process in (viewer, server):
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
print(json.dumps(seen))
