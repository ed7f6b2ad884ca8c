#!/usr/bin/env python3
"""Orthanc 1.10 with its DICOMweb plugin (Debian `orthanc`, `orthanc-dicomweb`) as a DICOMweb client of a real
`dicom-ingest serve`: Orthanc queries the server's studies with QIDO-RS (`/dicom-web/servers/.../get`), then
retrieves each study whole (`/dicom-web/servers/.../retrieve`: a QIDO-RS search of the study's instances, then
WADO-RS of each) and stores it; Orthanc's copy, read by pydicom, equals the source instance element by element and
pixel for pixel (for signed HTJ2K, which OpenJPEG behind pydicom mis-decodes, its frames equal the server's stored
frames).

Usage: orthanc_e2e.py BINARY SCENARIO WORK_DIR   (scenario: retrieve)
The server allows `unauthenticatedLoopbackReads` (Orthanc cannot sign SigV4). Prints one JSON line; exits non-zero
on the first failed check.
"""
import io
import json
import os
import subprocess
import sys

import numpy
import pydicom
import requests
from pydicom.encaps import generate_frames

from e2e_common import check, fixture, free_port, own_copy, seen, wait_for

binary, scenario, work = sys.argv[1], sys.argv[2], sys.argv[3]
os.makedirs(work, exist_ok=True)
seen["scenario"] = scenario


# Unsigned, native and compressed sources, each under a SOP Instance UID of its own.
source_folder = os.path.join(work, "input")
os.makedirs(source_folder, exist_ok=True)
sources = {}
for name in ["ct_explicit_le.dcm", "ct_jpeg_lossless.dcm", "mr_multiframe_le.dcm", "rgb_planar.dcm", "ct_jpegls.dcm"]:
    path = os.path.join(source_folder, name)
    sources[own_copy(fixture(name), path)] = path

environment = dict(os.environ, DICOM_INGEST_LOG_LEVEL="info")
store = os.path.join(work, "store")
result = subprocess.run([binary, "import", source_folder, "--output", os.path.join(work, "output"), "--store", store,
                         "--no-progress"], env=environment, capture_output=True, timeout=600)
check(result.returncode == 0, f"import: {result.stderr[-2000:]}")
listed = subprocess.run([binary, "datastore", "list", "--store", store], env=environment, capture_output=True, timeout=60)
datastore = json.loads(listed.stdout)["datastoreSummaries"][0]["datastoreId"]

port, orthanc_port = free_port(), free_port()
config_path = os.path.join(work, "server.json")
json.dump({"unauthenticatedLoopbackReads": True}, open(config_path, "w"))
server = subprocess.Popen([binary, "serve", "--store", store, "--host", "127.0.0.1", "--port", str(port), "--config", config_path],
                          env=environment, stdout=open(os.path.join(work, "serve.log"), "w"), stderr=subprocess.STDOUT)
orthanc_config = os.path.join(work, "orthanc.json")
json.dump({
    "Name": "dicom-ingest-e2e", "HttpPort": orthanc_port, "StorageDirectory": os.path.join(work, "orthanc-storage"),
    "IndexDirectory": os.path.join(work, "orthanc-index"), "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
    "DicomServerEnabled": False, "Plugins": ["/usr/share/orthanc/plugins/libOrthancDicomWeb.so"],
    "DicomWeb": {"Enable": True, "Servers": {"ours": [f"http://127.0.0.1:{port}/datastore/{datastore}/"]}},
}, open(orthanc_config, "w"))
orthanc = subprocess.Popen(["Orthanc", orthanc_config], stdout=open(os.path.join(work, "orthanc.log"), "w"),
                           stderr=subprocess.STDOUT)
try:
    wait_for(f"http://127.0.0.1:{port}/healthz", server, "serve")
    orthanc_url = f"http://127.0.0.1:{orthanc_port}"
    wait_for(orthanc_url + "/system", orthanc, "Orthanc")
    studies = {pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID for path in sources.values()}
    listed = requests.post(f"{orthanc_url}/dicom-web/servers/ours/get", json={"Uri": "/studies"}, timeout=120)
    check(listed.status_code == 200, f"Orthanc's QIDO-RS study search: {listed.status_code} {listed.text[:300]}")
    check({item["0020000D"]["Value"][0] for item in listed.json()} == studies, f"Orthanc finds every study: {listed.text[:500]}")
    for study in sorted(studies):
        answer = requests.post(f"{orthanc_url}/dicom-web/servers/ours/retrieve", json={"Resources": [{"Study": study}]}, timeout=300)
        check(answer.status_code == 200, f"Orthanc retrieves study {study}: {answer.status_code} {answer.text[:300]}")
    seen["studies"] = len(studies)
    found = requests.post(f"{orthanc_url}/tools/find", json={"Level": "Instance", "Query": {}}, timeout=60).json()
    check(len(found) == len(sources), f"Orthanc holds every instance: {len(found)} of {len(sources)}")
    compared = 0
    for orthanc_id in found:
        copy = pydicom.dcmread(io.BytesIO(requests.get(f"{orthanc_url}/instances/{orthanc_id}/file", timeout=60).content))
        source = pydicom.dcmread(sources[copy.SOPInstanceUID])
        for element in source:
            if element.tag.group == 0x0002 or element.tag == 0x7FE00010:
                continue
            if element.tag == 0x00080005 and copy.get("SpecificCharacterSet") == "ISO_IR 192":
                continue
            if element.tag == 0x00280006 and copy.file_meta.TransferSyntaxUID.startswith("1.2.840.10008.1.2.4.20") and copy[element.tag].value == 0:
                continue
            check(element.tag in copy, f"{copy.SOPInstanceUID}: {element.keyword or element.tag} missing in Orthanc's copy")
            mine, theirs = element.value, copy[element.tag].value
            if element.VR in ("DS", "IS"):
                listify = lambda value: value if isinstance(value, (list, pydicom.multival.MultiValue)) else [value]
                check([float(a) for a in listify(mine)] == [float(b) for b in listify(theirs)], f"{element.keyword} differs")
            elif element.VR != "SQ":
                check(mine == theirs, f"{copy.SOPInstanceUID}: {element.keyword or element.tag} {mine!r} != {theirs!r}")
        if copy.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.202" and source.PixelRepresentation == 1:
            # OpenJPEG (behind pydicom) mis-decodes signed HTJ2K: Orthanc's frames must be the server's stored
            # frames (which wado_e2e.py proves bit-exact) byte for byte.
            frames = [bytes(f).rstrip(b"\0") for f in generate_frames(copy.PixelData, number_of_frames=int(copy.get("NumberOfFrames", 1)))]
            for number, frame in enumerate(frames, start=1):
                served = requests.get(
                    f"http://127.0.0.1:{port}/datastore/{datastore}/studies/{copy.StudyInstanceUID}/series/{copy.SeriesInstanceUID}"
                    f"/instances/{copy.SOPInstanceUID}/frames/{number}",
                    headers={"Accept": "multipart/related; type=application/octet-stream; transfer-syntax=*"}, timeout=60)
                check(served.status_code == 200 and frame in served.content, f"{copy.SOPInstanceUID} frame {number} is the stored one")
        else:
            source.pixel_array_options(as_rgb=False)
            copy.pixel_array_options(as_rgb=False)
            check(numpy.array_equal(source.pixel_array, copy.pixel_array), f"{copy.SOPInstanceUID}: pixels differ")
        seen.setdefault("syntaxes", []).append(str(copy.file_meta.TransferSyntaxUID))
        compared += 1
    seen.update(instances=compared, ok=True)
finally:
    # Orthanc may take long to stop under load; a throwaway instance can be killed.
    for process in (orthanc, server):
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
print(json.dumps(seen))
