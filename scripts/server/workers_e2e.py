#!/usr/bin/env python3
"""Imports run by `dicom-ingest worker` processes sharing a PostgreSQL catalog, with input, output and frames in S3.

Usage: workers_e2e.py SCENARIO BINARY WORK_DIR S3_URL POSTGRES_URL FILES_DIR
  identical  one job run by 3 workers gives the image sets, versions and result lines of a single-process run;
             probes and the queue-depth metric answer on the workers and the submitting server
  kill       one worker SIGKILLed mid-chunk, then one SIGTERMed: no file lost or reported twice, the dead
             worker's chunks are claimed again once their leases expire, the stopped one releases its chunk
  fair       two jobs on two data stores at once (submitted through `serve --submit-only` with boto3) share the
             workers: they end together, not one after the other
  poison     a worker killed three times while it holds one object (as a crash in its codec would): the next
             worker reports that object instead of reading it a fourth time, and imports the rest
FILES_DIR holds the DICOM files (and junk) to upload. Environment: AWS credentials for the server's identity.
Prints a JSON summary as its last line; exits non-zero on a failed check.
"""
import collections
import gzip
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

scenario, binary, work, s3_url, postgres_url, files_dir = sys.argv[1:7]
environment = dict(os.environ, AWS_ENDPOINT_URL_S3=s3_url, DICOM_INGEST_LOG_LEVEL="info")
seen = {"scenario": scenario}
s3 = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1")
bucket = "workers-" + uuid.uuid4().hex[:12]
s3.create_bucket(Bucket=bucket)
os.makedirs(work, exist_ok=True)


def check(condition, message):
    if not condition:
        print(json.dumps({"failed": message, "seen": seen}, default=str))
        sys.exit(1)


def catalog(name):
    return postgres_url + ("&" if "?" in postgres_url else "?") + "schema=" + name + "_" + uuid.uuid4().hex[:8]


def sql(catalog_url, query):
    """One query on the catalog's schema, with psql; its rows as lists of fields."""
    base, _, options = catalog_url.partition("?")
    schema = dict(option.split("=", 1) for option in options.split("&"))["schema"]
    result = subprocess.run(["psql", base, "-Atc", f"SET search_path TO {schema}; {query}"], capture_output=True, text=True)
    check(result.returncode == 0, f"psql: {result.stderr}")
    return [line.split("|") for line in result.stdout.splitlines() if line and line != "SET"]


def upload(prefix, names=None):
    keys = []
    for name in sorted(names if names is not None else os.listdir(files_dir)):
        s3.upload_file(os.path.join(files_dir, name), bucket, prefix + name)
        keys.append(prefix + name)
    return keys


def cli(*arguments, check_status=True):
    result = subprocess.run([binary, *arguments], env=environment, capture_output=True, text=True, timeout=600)
    check(not check_status or result.returncode == 0, f"{arguments[0]} failed: {result.stderr[-2000:]}")
    return result


def store_arguments(name, catalog_url):
    return ["--store", os.path.join(work, name), "--catalog", catalog_url, "--frames", f"s3://{bucket}/frames-{name}/"]


def start_worker(name, store, *extra):
    log = open(os.path.join(work, name + ".log"), "w")
    process = subprocess.Popen(
        [binary, "worker", *store, "--worker-id", name, "--probe-port", "0", "--poll-seconds", "0.2", *extra],
        env=environment, stdout=subprocess.DEVNULL, stderr=log)
    process.log_path = log.name
    return process


def log_of(process):
    with open(process.log_path) as file:
        return file.read()


def probe_port(process):
    deadline = time.time() + 30
    while time.time() < deadline:
        match = re.search(r"listening on [^:\s]+:(\d+)", log_of(process))
        if match:
            return int(match.group(1))
        time.sleep(0.1)
    check(False, "worker probe server did not start: " + log_of(process)[-2000:])


def http_get(url):
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def job_record(store, datastore, job_id):
    return json.loads(cli("job", "get", job_id, "--datastore-id", datastore, *store).stdout)["jobProperties"]


def wait_exit(process, seconds, what):
    try:
        return process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        check(False, f"{what} did not exit in {seconds} s: " + log_of(process)[-3000:])


def result_lines(output_prefix, datastore, job_id):
    """The job's result files, with image set IDs replaced by the sorted input files of the image set."""
    folder = f"{output_prefix}{datastore}-DicomImport-{job_id}/"
    read = lambda key: [json.loads(line) for line in s3.get_object(Bucket=bucket, Key=folder + key)["Body"].read().splitlines()]
    files = {name: read(name) for name in ("SUCCESS/success.ndjson", "FAILURE/failure.ndjson", "WARNING/warning.ndjson")}
    members = collections.defaultdict(list)
    for line in files["SUCCESS/success.ndjson"]:
        members[line["importResponse"]["imageSetId"]].append(line["inputFile"])
    names = {image_set: "|".join(sorted(keys)) for image_set, keys in members.items()}

    def canonical(value):
        text = json.dumps(value, sort_keys=True)
        for image_set, name in names.items():
            text = text.replace(image_set, "<" + name + ">")
        return text

    manifest = json.loads(s3.get_object(Bucket=bucket, Key=folder + "job-output-manifest.json")["Body"].read())
    summary = manifest["jobSummary"]
    shape = {name: sorted(canonical(line) for line in lines) for name, lines in files.items()}
    shape["counts"] = {key: value for key, value in summary.items() if key.startswith("numberOf")}
    shape["imageSetsSummary"] = sorted(canonical(entry) for entry in summary["imageSetsSummary"])
    return shape, files


def image_sets(store):
    """Each image set: its input files' canonical name (from its metadata), version and primary flag."""
    listed = json.loads(cli("image-set", "list", *store).stdout)["imageSetsMetadataSummaries"]
    shapes = []
    for entry in listed:
        document = json.loads(cli("image-set", "metadata", entry["imageSetId"], *store).stdout)
        sops = sorted(sop for series in document["Study"]["Series"].values() for sop in series["Instances"])
        shapes.append((entry["version"], entry.get("isPrimary"), sops))
    return sorted(shapes, key=json.dumps)


if scenario == "identical":
    keys = upload("in/")
    single = store_arguments("single", catalog("single"))
    ran = json.loads(cli("import", f"s3://{bucket}/in/", "--output", f"s3://{bucket}/single/", "--json", "--threads", "2",
                         "--no-progress", *single).stdout)
    check(ran["jobStatus"] == "COMPLETED", f"single-process run completed: {ran}")
    seen["singleSeconds"] = ran["seconds"]

    shared = store_arguments("shared", catalog("shared"))
    # Submitted for the workers, waiting for them to end it: the command reports the job as a local run would.
    started = time.time()
    waiting = subprocess.Popen([binary, "import", f"s3://{bucket}/in/", "--output", f"s3://{bucket}/workers/", "--json",
                                "--submit-only", "--wait", *shared], env=environment, stdout=subprocess.PIPE, text=True)
    workers = [start_worker(f"w{index}", shared, "--threads", "1", "--chunk-objects", "64") for index in range(3)]
    port = probe_port(workers[0])
    status, text = http_get(f"http://127.0.0.1:{port}/healthz")
    check(status == 200, f"worker /healthz: {status} {text}")
    status, text = http_get(f"http://127.0.0.1:{port}/readyz")
    check(status == 200, f"worker /readyz: {status} {text}")
    status, text = http_get(f"http://127.0.0.1:{port}/metrics")
    check(status == 200 and "dicom_ingest_work_queue_open_chunks" in text, f"worker /metrics has the queue depth: {text[:500]}")
    try:
        output, _ = waiting.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        waiting.kill()
        check(False, "import --submit-only --wait never returned")
    check(waiting.returncode == 0, f"import --submit-only --wait exited {waiting.returncode}: {output}")
    submitted = json.loads(output)
    seen["workersSeconds"] = round(time.time() - started, 1)
    check(submitted["jobStatus"] == "COMPLETED" and submitted["numberOfScannedFiles"] == len(keys),
          f"--wait reported the job the workers ended: {submitted}")
    # Idle workers stop at once on SIGTERM.
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    for worker in workers:
        check(wait_exit(worker, 60, "SIGTERMed idle worker") == 0, "worker exited cleanly: " + log_of(worker)[-2000:])
    for index, worker in enumerate(workers):
        seen[f"w{index}ChunksDone"] = log_of(worker).count("chunk done")
    job = job_record(shared, submitted["datastoreId"], submitted["jobId"])
    check(job["jobStatus"] == "COMPLETED", f"job run by workers completed: {job}")

    expected, expected_files = result_lines("single/", ran["datastoreId"], ran["jobId"])
    got, got_files = result_lines("workers/", submitted["datastoreId"], submitted["jobId"])
    for name in expected:
        seen[name] = len(expected[name]) if isinstance(expected[name], list) else expected[name]
        check(got[name] == expected[name], f"{name} identical to the single-process run")
    inputs = [line["inputFile"] for name in ("SUCCESS/success.ndjson", "FAILURE/failure.ndjson") for line in got_files[name]]
    check(sorted(inputs) == sorted(keys), "every object reported exactly once")
    check(image_sets(shared) == image_sets(single), "image sets, versions and instances identical to the single-process run")
    busy = [index for index in range(3) if seen[f"w{index}ChunksDone"] > 0]
    check(len(busy) >= 2, f"the work was shared between workers: {seen}")

elif scenario == "kill":
    keys = upload("in/")
    shared = store_arguments("shared", catalog("kill"))
    submitted = json.loads(cli("import", f"s3://{bucket}/in/", "--output", f"s3://{bucket}/out/", "--json", "--submit-only",
                               *shared).stdout)
    datastore, job_id = submitted["datastoreId"], submitted["jobId"]
    lease = ["--lease-seconds", "3", "--threads", "1", "--chunk-objects", "8"]
    killed = start_worker("killed", shared, *lease)
    stopped = start_worker("stopped", shared, *lease)

    def wait_progress(files):
        deadline = time.time() + 300
        while time.time() < deadline:
            job = job_record(shared, datastore, job_id)
            if job["jobSummary"]["numberOfScannedFiles"] >= files or job["jobStatus"] not in ("SUBMITTED", "IN_PROGRESS"):
                return job
            time.sleep(0.2)
        check(False, f"no progress to {files} files")

    at_kill = wait_progress(len(keys) // 5)
    check(at_kill["jobStatus"] == "IN_PROGRESS", "the worker was killed while the job ran")
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    seen["filesAtKill"] = at_kill["jobSummary"]["numberOfScannedFiles"]
    at_stop = wait_progress(len(keys) // 2)
    check(at_stop["jobStatus"] == "IN_PROGRESS", "the worker was stopped while the job ran")
    stopped.send_signal(signal.SIGTERM)
    check(wait_exit(stopped, 60, "SIGTERMed worker") == 0, "the SIGTERMed worker exited 0: " + log_of(stopped)[-2000:])
    seen["filesAtStop"] = at_stop["jobSummary"]["numberOfScannedFiles"]
    seen["released"] = log_of(stopped).count("chunk released at stop")
    check(seen["released"] >= 1, "the SIGTERMed worker released its chunk: " + log_of(stopped)[-2000:])
    last = start_worker("last", shared, *lease, "--exit-when-idle")
    check(wait_exit(last, 600, "last worker") == 0, "the last worker exited cleanly: " + log_of(last)[-2000:])
    # By the stopped worker (before its stop) or the last one, once the killed worker's leases expired.
    seen["claimedAgain"] = log_of(stopped).count("chunk claimed again") + log_of(last).count("chunk claimed again")
    check(seen["claimedAgain"] >= 1, "the killed worker's chunks were claimed again: " + log_of(last)[-3000:])
    job = job_record(shared, datastore, job_id)
    check(job["jobStatus"] == "COMPLETED", f"job completed: {job}")
    _, files = result_lines("out/", datastore, job_id)
    success = [line["inputFile"] for line in files["SUCCESS/success.ndjson"]]
    failure = [line["inputFile"] for line in files["FAILURE/failure.ndjson"]]
    seen.update(success=len(success), failure=len(failure))
    check(len(success) == len(set(success)) and len(failure) == len(set(failure)), "no file reported twice")
    check(sorted(success + failure) == sorted(keys), "every file reported exactly once")
    check(all("junk" in key for key in failure), f"only junk failed: {failure[:5]}")
    sets = image_sets(shared)
    instances = [sop for _, _, sops in sets for sop in sops]
    check(len(instances) == len(set(instances)) == len(success), "every imported instance in one image set, once")
    check(job["jobSummary"]["numberOfScannedFiles"] == len(keys), f"progress counts every file once: {job['jobSummary']}")

elif scenario == "fair":
    names = sorted(os.listdir(files_dir))
    half = len(names) // 2
    keys = {"a": upload("in/a/", names[:half]), "b": upload("in/b/", names[half:])}
    configuration = os.path.join(work, "server.json")
    with open(configuration, "w") as file:
        json.dump({"roles": {"*": {}}}, file)
    shared = store_arguments("shared", catalog("fair"))
    server = subprocess.Popen([binary, "serve", "--port", "0", "--config", configuration, "--submit-only", *shared],
                              env=environment, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    url = None
    deadline = time.time() + 30
    while url is None and time.time() < deadline:
        match = re.search(r"listening on [^:\s]+:(\d+)", server.stderr.readline())
        url = match and f"http://127.0.0.1:{match.group(1)}"
    check(url is not None, "server started")
    try:
        check(http_get(url + "/healthz")[0] == 200, "server /healthz answers without signing")
        check(http_get(url + "/readyz")[0] == 200, "server /readyz answers without signing")
        check(http_get(url + "/metrics")[0] == 403, "server /metrics still needs a signature")
        mi = boto3.client("medical-imaging", endpoint_url=url, region_name="us-east-1",
                          config=Config(inject_host_prefix=False, retries={"max_attempts": 1}))
        jobs = {}
        for name in ("a", "b"):
            datastore = mi.create_datastore(datastoreName="fair-" + name)["datastoreId"]
            job_id = mi.start_dicom_import_job(
                datastoreId=datastore, clientToken=str(uuid.uuid4()), dataAccessRoleArn="arn:aws:iam::123456789012:role/Importer",
                inputS3Uri=f"s3://{bucket}/in/{name}/", outputS3Uri=f"s3://{bucket}/out/{name}/")["jobId"]
            jobs[name] = (datastore, job_id)
        # A third job whose input bucket does not exist: the listing fails, and so does the job, once.
        missing = mi.start_dicom_import_job(
            datastoreId=jobs["a"][0], clientToken=str(uuid.uuid4()), dataAccessRoleArn="arn:aws:iam::123456789012:role/Importer",
            inputS3Uri="s3://no-such-bucket-" + uuid.uuid4().hex[:8] + "/in/", outputS3Uri=f"s3://{bucket}/out/missing/")["jobId"]
        time.sleep(1)
        for name, (datastore, job_id) in jobs.items():
            status = mi.get_dicom_import_job(datastoreId=datastore, jobId=job_id)["jobProperties"]["jobStatus"]
            check(status == "SUBMITTED", f"the submitting server does not run job {name}: {status}")
        workers = [start_worker(f"w{index}", shared, "--threads", "1", "--chunk-objects", "8", "--exit-when-idle")
                   for index in range(2)]
        for worker in workers:
            check(wait_exit(worker, 600, "worker") == 0, "worker exited cleanly: " + log_of(worker)[-2000:])
        ended = {}
        for name, (datastore, job_id) in jobs.items():
            properties = mi.get_dicom_import_job(datastoreId=datastore, jobId=job_id)["jobProperties"]
            check(properties["jobStatus"] == "COMPLETED", f"job {name} completed: {properties}")
            ended[name] = properties["endedAt"].timestamp()
            _, files = result_lines(f"out/{name}/", datastore, job_id)
            reported = sorted(line["inputFile"] for file in ("SUCCESS/success.ndjson", "FAILURE/failure.ndjson") for line in files[file])
            check(reported == sorted(keys[name]), f"job {name} reported every file once")
        failed = mi.get_dicom_import_job(datastoreId=jobs["a"][0], jobId=missing)["jobProperties"]
        seen["missingBucketMessage"] = failed.get("message")
        check(failed["jobStatus"] == "FAILED" and "no-such-bucket" in failed.get("message", ""),
              f"a job whose input cannot be listed fails, naming the bucket: {failed}")
        first_submitted = min(mi.get_dicom_import_job(datastoreId=d, jobId=j)["jobProperties"]["submittedAt"].timestamp()
                              for d, j in jobs.values())
        total = max(ended.values()) - first_submitted
        gap = abs(ended["a"] - ended["b"])
        seen.update(totalSeconds=round(total, 1), endGapSeconds=round(gap, 1))
        # One after the other, the first would end halfway; shared, they end within a few chunks of each other.
        check(gap < 0.25 * total, f"the jobs shared the workers: they ended {gap:.1f} s apart in {total:.1f} s")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
elif scenario == "poison":
    keys = upload("in/")
    poison = next(key for key in keys if "a-large" in key)
    catalog_url = catalog("poison")
    shared = store_arguments("shared", catalog_url)
    submitted = json.loads(cli("import", f"s3://{bucket}/in/", "--output", f"s3://{bucket}/out/", "--json", "--submit-only",
                               *shared).stdout)
    lease = ["--lease-seconds", "2", "--threads", "1", "--chunk-objects", "64"]

    def held(claim):
        """The chunk's `claim`-th claim holds the large object (it is listed first; one thread reads it first)."""
        if claim == 1:
            rows = sql(catalog_url, "SELECT claims FROM job_chunks WHERE kind = 'objects'")
            return bool(rows) and int(rows[0][0]) >= 1
        return bool(sql(catalog_url, f"SELECT 1 FROM chunk_in_flight WHERE claim = {claim} AND input_key = '{poison}'"))

    for claim in (1, 2, 3):
        worker = start_worker(f"dies-{claim}", shared, *lease)
        deadline = time.time() + 120
        while not held(claim) and time.time() < deadline and worker.poll() is None:
            time.sleep(0.05)
        check(held(claim), f"claim {claim} never held the large object: " + log_of(worker)[-2000:])
        time.sleep(0.3)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    last = start_worker("last", shared, *lease, "--exit-when-idle")
    check(wait_exit(last, 300, "last worker") == 0, "the last worker exited cleanly: " + log_of(last)[-2000:])
    job = job_record(shared, submitted["datastoreId"], submitted["jobId"])
    check(job["jobStatus"] == "COMPLETED", f"job completed: {job}")
    _, files = result_lines("out/", submitted["datastoreId"], submitted["jobId"])
    failures = files["FAILURE/failure.ndjson"]
    seen.update(success=len(files["SUCCESS/success.ndjson"]), failure=len(failures))
    check(len(failures) == 1 and failures[0]["inputFile"] == poison, f"only the object in hand at the deaths failed: {failures}")
    exception = failures[0]["exception"]
    seen["message"] = exception["message"]
    check(exception["exceptionType"] == "InternalServerException" and "stopped 2 times" in exception["message"],
          f"reported as read at two deaths, not read again: {exception}")
    check(sorted(line["inputFile"] for line in files["SUCCESS/success.ndjson"]) == sorted(k for k in keys if k != poison),
          "every other object imported once")
else:
    check(False, "unknown scenario " + scenario)

seen["ok"] = True
print(json.dumps(seen))
