#!/usr/bin/env python3
"""Crafted codestreams against the built CLI: the decoders of outside input run in codec helper processes, so a
failed assertion, a spin, a memory blow-up or a killed helper costs one frame and nothing else (issue 22).

Usage: codec_helpers_e2e.py BINARY SCENARIO WORK_DIR
Scenarios:
  assertions  40 HTJ2K frames that fail an assertion inside the decoder + 10 valid files: one line each, peak RSS of
              the engine and its helpers together <= 300 MB
  tiles       a 980 KB JPEG 2000 frame of 65,280 tiles (opj_compress -t 2,2) + a valid file: one line each,
              peak RSS <= 300 MB
  spin-kill   a JPEG-LS frame that makes CharLS spin fails after the CPU limit while the rest imports; a helper
              killed with SIGKILL mid-frame costs that frame only
  serve       `serve` given three jobs of 40 assertion-tripping frames each (S3 on loopback, boto3) stays within
              80 MB of its starting RSS (needs S3_TEST_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)
Prints a JSON summary as its last line; exits non-zero on a failed check.
"""
import glob
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import uuid

binary, scenario, work = sys.argv[1], sys.argv[2], sys.argv[3]
root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
regressions = os.path.join(root, "Fuzz/regressions/instance")
generated = os.path.join(root, "fixtures/generated")
seen = {"scenario": scenario}


def check(condition, message):
    if not condition:
        print(json.dumps({"failed": message, "seen": seen}, default=str))
        sys.exit(1)


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid):
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(entry))
        except (OSError, IndexError, ValueError):
            pass
    return found


class TreeSampler:
    """The peak of the summed resident sets of a process and its children, sampled every 10 ms."""

    def __init__(self, pid):
        self.pid, self.peak_kb, self.helpers_seen, self.running = pid, 0, set(), True
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while self.running:
            helpers = children(self.pid)
            self.helpers_seen.update(helpers)
            total = rss_kb(self.pid) + sum(rss_kb(helper) for helper in helpers)
            self.peak_kb = max(self.peak_kb, total)
            time.sleep(0.01)

    def stop(self):
        self.running = False
        self.thread.join()
        return self.peak_kb / 1024


def run_import(input_folder, name, threads=2, during=None):
    output, store = os.path.join(work, name, "out"), os.path.join(work, name, "store")
    process = subprocess.Popen([binary, "import", input_folder, "--output", output, "--store", store, "--threads", str(threads),
                                "--json", "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = TreeSampler(process.pid)
    if during:
        during(process)
    stdout, stderr = process.communicate(timeout=600)
    peak = sampler.stop()
    check(process.returncode == 0, f"import exited {process.returncode}: {stderr[-2000:]}")
    summary = json.loads(stdout.strip().splitlines()[-1])
    folder = summary["jobOutputFolder"]

    def lines(kind):
        path = os.path.join(folder, kind.upper(), kind + ".ndjson")
        return [json.loads(line) for line in open(path)] if os.path.exists(path) else []

    return summary, lines("success"), lines("failure"), lines("warning"), peak, sampler.helpers_seen


def one_line_each(names, success, failure):
    reported = [os.path.basename(line["inputFile"]) for line in success + failure]
    check(sorted(reported) == sorted(names), f"one line per file: {sorted(reported)} vs {sorted(names)}")


def message(line):
    return line["exception"]["message"]


def valid_files(folder, count):
    """`count` valid native files (copies of the fixtures with their own SOP Instance UIDs)."""
    import pydicom
    source = pydicom.dcmread(os.path.join(generated, "ct_explicit_le.dcm"))
    names = []
    for index in range(count):
        source.SOPInstanceUID = f"{source.SOPInstanceUID}.9{index}"
        source.file_meta.MediaStorageSOPInstanceUID = source.SOPInstanceUID
        name = f"valid-{index:02d}.dcm"
        source.save_as(os.path.join(folder, name), enforce_file_format=True)
        names.append(name)
    return names


def assertions():
    folder = os.path.join(work, "assertions-in")
    os.makedirs(folder)
    crafted = open(os.path.join(regressions, "htj2k-openjph-assertion.dcm"), "rb").read()
    names = []
    for index in range(40):
        name = f"crafted-{index:02d}.dcm"
        open(os.path.join(folder, name), "wb").write(crafted)
        names.append(name)
    names += valid_files(folder, 10)
    summary, success, failure, _, peak, helpers = run_import(folder, "assertions")
    one_line_each(names, success, failure)
    seen.update(imported=summary["numberOfImportedFiles"], failed=len(failure), peakMB=round(peak), helpersSeen=len(helpers))
    check(summary["numberOfImportedFiles"] == 10, "the 10 valid files imported")
    check(len(failure) == 40 and all("the decoder failed an internal check" in message(line) and "Assertion" in message(line)
                                     for line in failure), f"each crafted frame names the assertion: {failure[:2]}")
    check(peak <= 300, f"peak RSS of the engine and its helpers {peak:.0f} MB <= 300 MB")


def tiled_codestream():
    """A lossless 16-bit 512 x 510 frame cut into 2 x 2 tiles (65,280 of them) by OpenJPEG's own encoder."""
    pgm = os.path.join(work, "tiles.pgm")
    with open(pgm, "wb") as file:
        file.write(b"P5\n512 510\n65535\n")
        file.write(b"".join(struct.pack(">H", (x + y) & 0xFF) for y in range(510) for x in range(512)))
    codestream = os.path.join(work, "tiles.j2k")
    subprocess.run(["opj_compress", "-i", pgm, "-o", codestream, "-t", "2,2", "-n", "1"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return open(codestream, "rb").read()


def tiles():
    import pydicom
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000Lossless
    folder = os.path.join(work, "tiles-in")
    os.makedirs(folder)
    codestream = tiled_codestream()
    tile_parts = len(re.findall(b"\xff\x90\x00\x0a", codestream))
    seen.update(codestreamBytes=len(codestream), tileParts=tile_parts)
    check(tile_parts == 65280, f"the codestream has 65,280 tiles, not {tile_parts}")
    dataset = pydicom.dcmread(os.path.join(generated, "ct_explicit_le.dcm"))
    dataset.Rows, dataset.Columns, dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 510, 512, 16, 16, 15
    dataset.PixelRepresentation, dataset.SamplesPerPixel, dataset.PhotometricInterpretation = 0, 1, "MONOCHROME2"
    dataset.PixelData = encapsulate([codestream])
    dataset["PixelData"].VR = "OB"
    dataset.file_meta.TransferSyntaxUID = JPEG2000Lossless
    dataset.SOPInstanceUID = dataset.SOPInstanceUID + ".65280"
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.save_as(os.path.join(folder, "tiles.dcm"), enforce_file_format=True)
    names = ["tiles.dcm"] + valid_files(folder, 1)
    summary, success, failure, _, peak, _ = run_import(folder, "tiles")
    one_line_each(names, success, failure)
    seen.update(peakMB=round(peak), tilesOutcome=message(failure[0]) if failure else "imported")
    check(any(os.path.basename(line["inputFile"]) == "valid-00.dcm" for line in success), "the valid file imported")
    check(peak <= 300, f"peak RSS of the engine and its helpers {peak:.0f} MB <= 300 MB")


def spin_kill():
    # The spin: CharLS loops for ~13 s of CPU on this frame; the helper's CPU limit ends it after about 3 s.
    folder = os.path.join(work, "spin-in")
    os.makedirs(folder)
    shutil.copy(os.path.join(regressions, "jpegls-charls-slow-loop.dcm"), os.path.join(folder, "0-spin.dcm"))
    names = ["0-spin.dcm"] + valid_files(folder, 5)
    started = time.time()
    summary, success, failure, _, _, _ = run_import(folder, "spin", threads=1)
    seen.update(spinSeconds=round(time.time() - started, 1))
    one_line_each(names, success, failure)
    check(len(success) == 5, "the rest of the job imported")
    check(len(failure) == 1 and "the decoder used more than" in message(failure[0]) and "s of CPU on this frame" in message(failure[0]),
          f"the spinning frame fails with the CPU limit: {failure}")

    # The kill: the same spinning frame, its helper killed with SIGKILL while it works on it.
    folder = os.path.join(work, "kill-in")
    os.makedirs(folder)
    shutil.copy(os.path.join(regressions, "jpegls-charls-slow-loop.dcm"), os.path.join(folder, "0-victim.dcm"))
    names = ["0-victim.dcm"] + valid_files(folder, 5)
    killed = []

    def kill_helper(process):
        deadline = time.time() + 30
        while time.time() < deadline and not killed:
            for helper in children(process.pid):
                try:
                    if b"codec-helper" in open(f"/proc/{helper}/cmdline", "rb").read():
                        time.sleep(0.5)  # well inside the frame's 3 s
                        os.kill(helper, signal.SIGKILL)
                        killed.append(helper)
                        break
                except OSError:
                    pass
            time.sleep(0.01)

    summary, success, failure, _, _, _ = run_import(folder, "kill", threads=1, during=kill_helper)
    check(killed, "a helper was found and killed")
    one_line_each(names, success, failure)
    check(len(success) == 5, "the rest of the job imported after the kill")
    check(len(failure) == 1 and "died of signal 9 (SIGKILL)" in message(failure[0]), f"the killed frame says so: {failure}")
    seen.update(killedMessage=message(failure[0]))


def serve():
    import boto3
    from botocore.config import Config
    s3_url = os.environ["S3_TEST_ENDPOINT"]
    configuration = os.path.join(work, "server.json")
    json.dump({"roles": {"*": {}}}, open(configuration, "w"))
    environment = dict(os.environ, AWS_ENDPOINT_URL_S3=s3_url, DICOM_INGEST_LOG_LEVEL="info")
    server = subprocess.Popen([binary, "serve", "--port", "0", "--store", os.path.join(work, "store"), "--config", configuration],
                              env=environment, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    url = None
    deadline = time.time() + 30
    while time.time() < deadline and url is None:
        match = re.search(r"listening on [^:\s]+:(\d+)", server.stderr.readline())
        if match:
            url = f"http://127.0.0.1:{match.group(1)}"
    check(url, "the server started")
    threading.Thread(target=lambda: [None for _ in server.stderr], daemon=True).start()
    try:
        s3 = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1")
        bucket = "codecs-" + uuid.uuid4().hex[:12]
        s3.create_bucket(Bucket=bucket)
        crafted = open(os.path.join(regressions, "htj2k-openjph-assertion.dcm"), "rb").read()
        for index in range(40):
            s3.put_object(Bucket=bucket, Key=f"in/crafted-{index:02d}.dcm", Body=crafted)
        mi = boto3.client("medical-imaging", endpoint_url=url, region_name="us-east-1",
                          config=Config(inject_host_prefix=False, retries={"max_attempts": 1}))
        datastore = mi.create_datastore(datastoreName="codecs")["datastoreId"]
        time.sleep(0.5)
        starting = rss_kb(server.pid) / 1024
        jobs = [mi.start_dicom_import_job(datastoreId=datastore, clientToken=str(uuid.uuid4()),
                                          dataAccessRoleArn="arn:aws:iam::123456789012:role/Importer",
                                          inputS3Uri=f"s3://{bucket}/in/", outputS3Uri=f"s3://{bucket}/out{n}/")["jobId"]
                for n in range(3)]
        peak = starting
        deadline = time.time() + 300
        statuses = {}
        while time.time() < deadline:
            peak = max(peak, rss_kb(server.pid) / 1024)
            statuses = {job: mi.get_dicom_import_job(datastoreId=datastore, jobId=job)["jobProperties"]["jobStatus"] for job in jobs}
            if all(status in ("COMPLETED", "FAILED") for status in statuses.values()):
                break
            time.sleep(0.1)
        ending = rss_kb(server.pid) / 1024
        seen.update(startingMB=round(starting), peakMB=round(peak), endingMB=round(ending), statuses=list(statuses.values()))
        check(all(status == "COMPLETED" for status in statuses.values()), "the three jobs completed")
        for n, job in enumerate(jobs):
            body = s3.get_object(Bucket=bucket, Key=f"out{n}/{datastore}-DicomImport-{job}/FAILURE/failure.ndjson")["Body"].read()
            check(len(body.splitlines()) == 40, f"job {n} reported each of its 40 frames")
        check(ending - starting <= 80, f"the server's RSS grew {ending - starting:.0f} MB (at most 80)")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


os.makedirs(work, exist_ok=True)
{"assertions": assertions, "tiles": tiles, "spin-kill": spin_kill, "serve": serve}[scenario]()
seen["ok"] = True
print(json.dumps(seen))
