#!/usr/bin/env python3
"""DICOMweb side by side: `dicom-ingest serve` against Orthanc with its DICOMweb plugin, serving the same studies on
this machine, both driven by one load generator (wrk, a Lua list of URLs, keep-alive connections).

Usage: Benchmarks/dicomweb.py BINARY DATA_DIR RESULTS_JSON   (run by Benchmarks/dicomweb.sh)
- A 500-slice CT series (512×512, 16-bit, Benchmarks/generate_archive.py) and a 5,000-instance series of the same
  header with 64×64 pixels (the metadata's size is the header's, not the pixels'), imported into dicom-ingest (frames
  stored as HTJ2K) and uploaded to Orthanc (stored as sent, uncompressed).
- Frames per second over the 500 slices' frame 1, 8 connections for 10 s: as stored (`transfer-syntax=*`: our HTJ2K
  codestreams, Orthanc's native bytes) and in Explicit VR Little Endian (we decode HTJ2K; Orthanc has nothing to
  decode). OpenJPH's own decode rate of the same codestreams (the decode time ojph_expand reports, times 2 cores)
  is the reference for ours in ELE.
- Series metadata latency (500 and 5,000 instances), QIDO-RS study search and a series' instance search: one
  connection for 10 s, p50 and p99.
- Peak RSS of each server (dicom-ingest with its codec helpers) while 64 connections ask ELE frames for 15 s.
Writes RESULTS_JSON; Benchmarks/render_dicomweb.py turns it into BENCHMARKS.md's section.
"""
import glob
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pydicom
import requests

binary, data, results_path = sys.argv[1], sys.argv[2], sys.argv[3]
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
work = tempfile.mkdtemp(prefix="dicomweb-bench-")
DURATION = int(os.environ.get("DURATION", "10"))


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(url, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    sys.exit(f"{url} does not answer")


# MARK: - Inputs
ct_folder = os.path.join(data, "dicomweb-ct-500")
if not os.path.isdir(ct_folder):
    subprocess.run([sys.executable, os.path.join(root, "Benchmarks/generate_archive.py"), ct_folder, "--studies", "1",
                    "--series", "1", "--instances", "500"], check=True)
big_folder = os.path.join(data, "dicomweb-header-5000")
if not os.path.isdir(big_folder):
    os.makedirs(big_folder)
    template = pydicom.dcmread(sorted(glob.glob(os.path.join(ct_folder, "**/*.dcm"), recursive=True))[0])
    template.Rows = template.Columns = 64
    template.PixelData = bytes(64 * 64 * 2)
    template.StudyInstanceUID = pydicom.uid.generate_uid()
    template.SeriesInstanceUID = pydicom.uid.generate_uid()
    for index in range(5000):
        template.SOPInstanceUID = template.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
        template.InstanceNumber = index + 1
        template.save_as(os.path.join(big_folder, f"IMG-{index:05d}.dcm"), enforce_file_format=True)
ct_files = sorted(glob.glob(os.path.join(ct_folder, "**/*.dcm"), recursive=True))
big_files = sorted(glob.glob(os.path.join(big_folder, "*.dcm")))
ct = pydicom.dcmread(ct_files[0], stop_before_pixels=True)
big = pydicom.dcmread(big_files[0], stop_before_pixels=True)
ct_sops = [pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID for path in ct_files]

# MARK: - Servers
environment = dict(os.environ, DICOM_INGEST_LOG_LEVEL="warning")
store = os.path.join(work, "store")
for folder in (ct_folder, big_folder):
    subprocess.run([binary, "import", folder, "--store", store, "--output", os.path.join(work, "out"), "--no-progress"],
                   env=environment, check=True, capture_output=True)
datastore = json.loads(subprocess.run([binary, "datastore", "list", "--store", store], env=environment, check=True,
                                      capture_output=True).stdout)["datastoreSummaries"][0]["datastoreId"]
ours_port, orthanc_port = free_port(), free_port()
json.dump({"unauthenticatedLoopbackReads": True}, open(os.path.join(work, "serve.json"), "w"))
ours = subprocess.Popen([binary, "serve", "--store", store, "--host", "127.0.0.1", "--port", str(ours_port), "--config",
                         os.path.join(work, "serve.json")], env=dict(environment, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench"),
                        stdout=open(os.path.join(work, "serve.log"), "w"), stderr=subprocess.STDOUT)
json.dump({"Name": "bench", "HttpPort": orthanc_port, "StorageDirectory": os.path.join(work, "orthanc-storage"),
           "IndexDirectory": os.path.join(work, "orthanc-index"), "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
           "DicomServerEnabled": False, "StorageCompression": False, "ConcurrentJobs": 2,
           "Plugins": ["/usr/share/orthanc/plugins/libOrthancDicomWeb.so"], "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}},
          open(os.path.join(work, "orthanc.json"), "w"))
orthanc = subprocess.Popen(["Orthanc", os.path.join(work, "orthanc.json")], stdout=open(os.path.join(work, "orthanc.log"), "w"),
                           stderr=subprocess.STDOUT)
results = {}
try:
    wait_for(f"http://127.0.0.1:{ours_port}/healthz")
    wait_for(f"http://127.0.0.1:{orthanc_port}/system")
    with requests.Session() as upload:
        for path in ct_files + big_files:
            answer = upload.post(f"http://127.0.0.1:{orthanc_port}/instances", data=open(path, "rb").read(), timeout=60)
            answer.raise_for_status()
    bases = {"dicom-ingest": f"http://127.0.0.1:{ours_port}/datastore/{datastore}",
             "Orthanc": f"http://127.0.0.1:{orthanc_port}/dicom-web"}
    pids = {"dicom-ingest": ours.pid, "Orthanc": orthanc.pid}

    def wrk(name, paths, accept, connections, seconds=DURATION):
        """wrk over `paths` round robin: requests per second, latency p50/p99 in ms, non-2xx answers."""
        script = os.path.join(work, "paths.lua")
        listing = ",\n".join(json.dumps(path) for path in paths)
        open(script, "w").write(f"""
paths = {{
{listing}
}}
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", paths[(counter % #paths) + 1], {{["Accept"] = {json.dumps(accept)}}})
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %f %f %f %d %d\\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.errors.status, summary.requests))
end
""")
        base = bases[name]
        output = subprocess.run(["wrk", "-t", str(min(2, connections)), "-c", str(connections), "-d", f"{seconds}s",
                                 "--timeout", "30s", "-s", script, base.split("/datastore")[0].split("/dicom-web")[0]],
                                capture_output=True, text=True, check=True).stdout
        match = re.search(r"RESULT (\S+) (\S+) (\S+) (\d+) (\d+)", output)
        rate, p50, p99, errors, count = float(match[1]), float(match[2]), float(match[3]), int(match[4]), int(match[5])
        if errors:
            sys.exit(f"{name}: {errors} of {count} answers were not 2xx for {paths[0]}")
        return {"perSecond": round(rate, 1), "p50": round(p50, 2), "p99": round(p99, 2), "requests": count}

    def path(name, *parts):
        prefix = "/datastore/" + datastore if name == "dicom-ingest" else "/dicom-web"
        return prefix + "".join(parts)

    stored_accept = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
    ele_accept = 'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.1'
    for name in bases:
        frames = [path(name, f"/studies/{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}/instances/{sop}/frames/1") for sop in ct_sops]
        # Both answers are checked once before they are timed: the same count of frames, each the right size in ELE.
        answer = requests.get("http://127.0.0.1:" + str(ours_port if name == "dicom-ingest" else orthanc_port) + frames[0],
                              headers={"Accept": ele_accept}, timeout=60)
        assert answer.status_code == 200 and len(answer.content) >= 512 * 512 * 2, (name, answer.status_code, len(answer.content))
        series = {
            "ct500": path(name, f"/studies/{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}/metadata"),
            "header5000": path(name, f"/studies/{big.StudyInstanceUID}/series/{big.SeriesInstanceUID}/metadata"),
        }
        results[name] = {
            "framesStored": wrk(name, frames, stored_accept, 8),
            "framesELE": wrk(name, frames, ele_accept, 8),
            "metadata500": wrk(name, [series["ct500"]], "application/dicom+json", 1),
            "metadata5000": wrk(name, [series["header5000"]], "application/dicom+json", 1),
            "qidoStudies": wrk(name, [path(name, "/studies?limit=101&includefield=00081030,00080060")], "application/dicom+json", 1),
            "qidoInstances": wrk(name, [path(name, f"/studies/{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}/instances")],
                                 "application/dicom+json", 1),
        }
        # Peak RSS under 64 concurrent ELE frame requests: the high-water mark of the server and its children.
        def tree(pid):
            children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
            return [pid] + [int(child) for child in children]

        def hwm(pid):
            try:
                return int(re.search(r"VmHWM:\s+(\d+)", open(f"/proc/{pid}/status").read())[1]) * 1024
            except (OSError, TypeError):
                return 0
        # The high-water marks are reset first (clear_refs 5), so that the peak is this run's, not the metadata's.
        for pid in tree(pids[name]):
            with open(f"/proc/{pid}/clear_refs", "w") as handle:
                handle.write("5")
        results[name]["framesELE64"] = wrk(name, frames, ele_accept, 64, seconds=15)
        results[name]["peakRSS"] = sum(hwm(pid) for pid in tree(pids[name]))
        results[name]["peakRSSServer"] = hwm(pids[name])

        def pss(pid):
            try:
                return int(re.search(r"Pss:\s+(\d+)", open(f"/proc/{pid}/smaps_rollup").read())[1]) * 1024
            except (OSError, TypeError):
                return 0
        # Shared libraries count in every helper's RSS; PSS divides them among the processes that map them.
        results[name]["pssAfter"] = sum(pss(pid) for pid in tree(pids[name]))

    # OpenJPH's own decode rate of our stored codestreams: the time ojph_expand reports for its decode of each
    # (process start-up aside), one at a time; two cores decode twice as many.
    codestreams = os.path.join(work, "codestreams")
    os.makedirs(codestreams)
    image_sets = json.loads(subprocess.run([binary, "image-set", "list", "--store", store, "--datastore-id", datastore],
                                           capture_output=True, check=True, env=environment).stdout)["imageSetsMetadataSummaries"]
    documents = [json.loads(subprocess.run([binary, "image-set", "metadata", "--store", store, "--datastore-id", datastore, entry["imageSetId"]],
                                           capture_output=True, check=True, env=environment).stdout) for entry in image_sets]
    document = next(d for d in documents if ct.SeriesInstanceUID in d["Study"]["Series"])
    image_set = document["ImageSetID"]
    frame_ids = [instance["ImageFrames"][0]["ID"] for instance in document["Study"]["Series"][ct.SeriesInstanceUID]["Instances"].values()]
    decode_seconds = 0.0
    for index, frame in enumerate(frame_ids[:100]):
        path = os.path.join(codestreams, f"{index:03d}.j2c")
        with open(path, "wb") as out:
            out.write(subprocess.run([binary, "image-set", "frame", "--store", store, "--datastore-id", datastore, image_set, frame],
                                     capture_output=True, check=True, env=environment).stdout)
        expanded = subprocess.run(["ojph_expand", "-i", path, "-o", path + ".raw"], capture_output=True, text=True, check=True)
        decode_seconds += float(re.search(r"Elapsed time = (\S+)", expanded.stdout + expanded.stderr)[1])
    results["ojphDecodePerSecond"] = round(2 * 100 / decode_seconds, 1)
    results["orthanc"] = subprocess.run(["Orthanc", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    results["seconds"] = DURATION
finally:
    for process in (ours, orthanc):
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
    shutil.rmtree(work, ignore_errors=True)
json.dump(results, open(results_path, "w"), indent=1)
print(json.dumps(results))
