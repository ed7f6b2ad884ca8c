#!/usr/bin/env python3
"""Kills `dicom-ingest serve` with SIGKILL in the middle of an import job, starts it again, and checks that the
resumed job completes with no lost and no doubled instance and no duplicate result lines, the same as a clean run.

Usage: restart_e2e.py BINARY STORE_DIR S3_URL FILE [FILE ...]
Environment: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY. Prints a JSON summary; exits non-zero on a failed check.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid

import boto3
from botocore.config import Config

binary, store, s3_url, files = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
environment = dict(os.environ, AWS_ENDPOINT_URL_S3=s3_url, DICOM_INGEST_LOG_LEVEL="info")
seen = {}


def check(condition, message):
    if not condition:
        print(json.dumps({"failed": message, "seen": seen}, default=str))
        sys.exit(1)


configuration = store + ".config.json"
with open(configuration, "w") as file:
    json.dump({"roles": {"*": {}}}, file)  # any role, on S3 prefixes


def start_server():
    process = subprocess.Popen([binary, "serve", "--port", "0", "--store", store, "--config", configuration], env=environment,
                               stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    deadline = time.time() + 30
    while time.time() < deadline:
        line = process.stderr.readline()
        match = re.search(r"listening on [^:\s]+:(\d+)", line)
        if match:
            return process, f"http://127.0.0.1:{match.group(1)}"
    process.kill()
    check(False, "server did not start")


def client(url):
    return boto3.client("medical-imaging", endpoint_url=url, region_name="us-east-1",
                        config=Config(inject_host_prefix=False, retries={"max_attempts": 1}))


def wait(mi, datastore, job_id, until):
    deadline = time.time() + 180
    while time.time() < deadline:
        status = mi.get_dicom_import_job(datastoreId=datastore, jobId=job_id)["jobProperties"]["jobStatus"]
        if status in until:
            return status
        time.sleep(0.05)
    check(False, f"job {job_id} never reached {until}")


s3 = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1")
bucket = "restart-" + uuid.uuid4().hex[:12]
s3.create_bucket(Bucket=bucket)
for index, path in enumerate(files):
    s3.upload_file(path, bucket, f"in/{index:04d}-{os.path.basename(path)}")
s3.put_object(Bucket=bucket, Key="in/junk.txt", Body=b"junk")


def start_job(mi, datastore, output):
    return mi.start_dicom_import_job(
        datastoreId=datastore, clientToken=str(uuid.uuid4()),
        dataAccessRoleArn="arn:aws:iam::123456789012:role/Importer",
        inputS3Uri=f"s3://{bucket}/in/", outputS3Uri=f"s3://{bucket}/{output}/")["jobId"]


def outcome(mi, datastore, job_id, output):
    folder = f"{output}/{datastore}-DicomImport-{job_id}/"
    read = lambda key: s3.get_object(Bucket=bucket, Key=folder + key)["Body"].read().splitlines()
    success = [json.loads(line)["inputFile"] for line in read("SUCCESS/success.ndjson")]
    failure = [json.loads(line)["inputFile"] for line in read("FAILURE/failure.ndjson")]
    summaries = mi.search_image_sets(datastoreId=datastore)["imageSetsMetadataSummaries"]
    sets = []
    for summary in summaries:
        document = json.loads(__import__("gzip").decompress(
            mi.get_image_set_metadata(datastoreId=datastore, imageSetId=summary["imageSetId"])["imageSetMetadataBlob"].read()))
        instances = sorted(sop for series in document["Study"]["Series"].values() for sop in series["Instances"])
        sets.append((summary["isPrimary"], summary["version"], instances))
    return success, failure, sorted(sets)


server, url = start_server()
mi = client(url)
clean_store = mi.create_datastore(datastoreName="clean")["datastoreId"]
clean_job = start_job(mi, clean_store, "clean")
check(wait(mi, clean_store, clean_job, ("COMPLETED", "FAILED")) == "COMPLETED", "clean run completed")
clean = outcome(mi, clean_store, clean_job, "clean")

datastore = mi.create_datastore(datastoreName="killed")["datastoreId"]
job_id = start_job(mi, datastore, "killed")
status_at_kill = wait(mi, datastore, job_id, ("IN_PROGRESS", "COMPLETED", "FAILED"))
server.send_signal(signal.SIGKILL)
server.wait()
seen["statusAtKill"] = status_at_kill
check(status_at_kill == "IN_PROGRESS", "the server was killed while the job was running")

server, url = start_server()
mi = client(url)
try:
    final = wait(mi, datastore, job_id, ("COMPLETED", "FAILED"))
    seen["finalStatus"] = final
    check(final == "COMPLETED", "resumed job completed")
    success, failure, sets = outcome(mi, datastore, job_id, "killed")
    seen.update(success=len(success), failure=len(failure), imageSets=len(sets))
    check(len(success) == len(set(success)) and len(failure) == len(set(failure)), "no duplicate result lines")
    check(sorted(success) == sorted(clean[0]) and sorted(failure) == sorted(clean[1]), "same result lines as a clean run")
    check([(p, i) for p, _, i in sets] == [(p, i) for p, _, i in clean[2]], "same image sets and instances as a clean run")
    check(len(success) + len(failure) == len(files) + 1, "every object reported once")
finally:
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=30)
seen["ok"] = True
print(json.dumps(seen))
