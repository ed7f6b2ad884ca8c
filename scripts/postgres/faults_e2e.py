#!/usr/bin/env python3
"""Imports on a PostgreSQL catalog whose backends are terminated again and again and whose server is restarted
mid-import (issue 22): each completes in one run with every file reported once and every instance in an image set
once. The cluster is this script's own (scripts/postgres/start-throwaway.sh), so restarting it disturbs no other test.

Usage: faults_e2e.py BINARY SCENARIO WORK_DIR
Scenarios:
  import   a single-process `dicom-ingest import --catalog postgres://…`
  serve    `dicom-ingest serve --catalog …`, the job started with boto3 (input and output in S3 on loopback)
  workers  `import --submit-only --wait` and two `dicom-ingest worker` processes (frames in S3)
Environment: S3_TEST_ENDPOINT (serve, workers), AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
Prints a JSON summary as its last line; exits non-zero on a failed check.
"""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid

binary, scenario, work = sys.argv[1], sys.argv[2], sys.argv[3]
root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
seen = {"scenario": scenario}
os.makedirs(work, exist_ok=True)
postgres_bin = "/usr/lib/postgresql/15/bin"


def check(condition, message):
    if not condition:
        print(json.dumps({"failed": message, "seen": seen}, default=str))
        sys.exit(1)


def as_postgres(*command):
    return (["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []) + list(command)


env_file = os.path.join(work, "postgres.env")
subprocess.run([os.path.join(root, "scripts/postgres/start-throwaway.sh"), env_file], check=True)
cluster = dict(re.findall(r"export (\w+)='?([^'\n]*)'?", open(env_file).read()))
postgres_url = cluster["DICOM_INGEST_TEST_POSTGRES"]
catalog_url = postgres_url + "&schema=faults_" + uuid.uuid4().hex[:8] + "&retry=90"
base_url = postgres_url.split("?")[0]


def stop_cluster():
    subprocess.run(as_postgres(os.path.join(postgres_bin, "pg_ctl"), "-D", cluster["POSTGRES_TEST_DIR"] + "/data", "stop", "-m",
                               "immediate"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    subprocess.run(["rm", "-rf", cluster["POSTGRES_TEST_DIR"]])


def psql(query):
    result = subprocess.run(["psql", base_url, "-Atc", query], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else None


def terminate_backends():
    count = psql("SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name LIKE 'dicom-ingest/%'")
    return int(count or 0)


def restart_server():
    started = time.time()
    # The new server writes to the log file: a pipe held open by it would never end pg_ctl's output.
    result = subprocess.run(as_postgres(os.path.join(postgres_bin, "pg_ctl"), "-D", cluster["POSTGRES_TEST_DIR"] + "/data",
                                        "-l", cluster["POSTGRES_TEST_DIR"] + "/server.log", "restart", "-m", "fast", "-w"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    check(result.returncode == 0, f"pg_ctl restart exited {result.returncode}")
    return round(time.time() - started, 1)


class Faults:
    """Terminates the catalog's backends every 0.5 s, restarts PostgreSQL after the fourth time, terminates twice more."""

    def __init__(self, still_running):
        self.still_running, self.terminated, self.restarts, self.during = still_running, [], [], True
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        time.sleep(1.0)
        for round in range(7):
            if not self.still_running():
                self.during = False
                return
            if round == 4:
                self.restarts.append(restart_server())
            else:
                self.terminated.append(terminate_backends())
            time.sleep(0.5)

    def finish(self):
        self.thread.join()
        seen.update(terminatedBackends=self.terminated, restartSeconds=self.restarts)
        check(self.during and len(self.restarts) == 1, "every fault landed while the import ran (the import was too fast)")
        check(sum(self.terminated) >= 3, f"backends were terminated while the import ran: {self.terminated}")


def write_files(count, folder):
    import numpy
    import pydicom
    source = pydicom.dcmread(os.path.join(root, "fixtures/generated/ct_explicit_le.dcm"))
    source.Rows, source.Columns = 192, 192
    generator = numpy.random.default_rng(22)
    study = "1.2.826.0.1.3680043.10.2222"
    os.makedirs(folder, exist_ok=True)
    for index in range(count):
        source.StudyInstanceUID = study
        source.SeriesInstanceUID = f"{study}.{index % 24}"
        source.SOPInstanceUID = f"{study}.{index % 24}.{index}"
        source.file_meta.MediaStorageSOPInstanceUID = source.SOPInstanceUID
        source.PixelData = generator.integers(0, 4096, size=(192, 192), dtype=numpy.uint16).tobytes()
        source.save_as(os.path.join(folder, f"{index:05d}.dcm"), enforce_file_format=True)
    return sorted(os.listdir(folder))


def instances_in_image_sets():
    schema = dict(item.split("=", 1) for item in catalog_url.split("?")[1].split("&"))["schema"]
    return int(psql(f"SELECT COALESCE(SUM(instance_count), 0) FROM {schema}.image_sets WHERE state != 'DELETED'") or -1)


def check_lines(success, failure, names):
    reported = [os.path.basename(line["inputFile"]) for line in success + failure]
    seen.update(success=len(success), failure=len(failure))
    check(len(reported) == len(set(reported)), "no file reported twice")
    check(sorted(reported) == sorted(names), f"every file reported: {len(reported)} of {len(names)}")
    check(not failure, f"no file failed: {failure[:3]}")
    instances = instances_in_image_sets()
    seen["instancesInImageSets"] = instances
    check(instances == len(names), f"every instance in an image set once: {instances} of {len(names)}")


def run_import():
    folder = os.path.join(work, "in")
    names = write_files(2000, folder)
    output, store = os.path.join(work, "out"), os.path.join(work, "store")
    started = time.time()
    process = subprocess.Popen([binary, "import", folder, "--output", output, "--store", store, "--catalog", catalog_url,
                                "--threads", "2", "--json", "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    faults = Faults(lambda: process.poll() is None)
    stdout, stderr = process.communicate(timeout=900)
    faults.finish()
    seen["seconds"] = round(time.time() - started, 1)
    seen["retryLogLines"] = stderr.count("catalog connection lost; trying again")
    check(process.returncode == 0, f"import exited {process.returncode}: {stderr[-3000:]}")
    summary = json.loads(stdout.strip().splitlines()[-1])
    check(summary["jobStatus"] == "COMPLETED" and summary["numberOfImportedFiles"] == len(names), f"summary: {summary}")
    folder = summary["jobOutputFolder"]
    lines = lambda kind: [json.loads(line) for line in open(os.path.join(folder, kind.upper(), kind + ".ndjson"))]
    check_lines(lines("success"), lines("failure"), names)


def s3_setup(names_folder, count):
    import boto3
    s3 = boto3.client("s3", endpoint_url=os.environ["S3_TEST_ENDPOINT"], region_name="us-east-1")
    bucket = "faults-" + uuid.uuid4().hex[:12]
    s3.create_bucket(Bucket=bucket)
    names = write_files(count, names_folder)
    for name in names:
        s3.upload_file(os.path.join(names_folder, name), bucket, "in/" + name)
    return s3, bucket, names


def s3_lines(s3, bucket, prefix, kind):
    body = s3.get_object(Bucket=bucket, Key=f"{prefix}{kind.upper()}/{kind}.ndjson")["Body"].read()
    return [json.loads(line) for line in body.splitlines() if line]


def run_serve():
    import boto3
    from botocore.config import Config
    s3, bucket, names = s3_setup(os.path.join(work, "in"), 600)
    configuration = os.path.join(work, "server.json")
    json.dump({"roles": {"*": {}}}, open(configuration, "w"))
    environment = dict(os.environ, AWS_ENDPOINT_URL_S3=os.environ["S3_TEST_ENDPOINT"], DICOM_INGEST_LOG_LEVEL="info")
    log = open(os.path.join(work, "serve.log"), "w")
    server = subprocess.Popen([binary, "serve", "--port", "0", "--store", os.path.join(work, "store"), "--catalog", catalog_url,
                               "--threads", "2", "--config", configuration], env=environment, stderr=log, stdout=subprocess.DEVNULL)
    url = None
    deadline = time.time() + 60
    while time.time() < deadline and url is None:
        match = re.search(r"listening on [^:\s]+:(\d+)", open(log.name).read())
        url = f"http://127.0.0.1:{match.group(1)}" if match else None
        time.sleep(0.1)
    check(url, "the server started")
    try:
        mi = boto3.client("medical-imaging", endpoint_url=url, region_name="us-east-1",
                          config=Config(inject_host_prefix=False, retries={"max_attempts": 8, "mode": "standard"}))
        datastore = mi.create_datastore(datastoreName="faults")["datastoreId"]
        job = mi.start_dicom_import_job(datastoreId=datastore, clientToken=str(uuid.uuid4()),
                                        dataAccessRoleArn="arn:aws:iam::123456789012:role/Importer",
                                        inputS3Uri=f"s3://{bucket}/in/", outputS3Uri=f"s3://{bucket}/out/")["jobId"]
        status = {"value": "SUBMITTED"}

        def running():
            try:
                status["value"] = mi.get_dicom_import_job(datastoreId=datastore, jobId=job)["jobProperties"]["jobStatus"]
            except Exception:
                pass  # the server's answer during a restart of its catalog
            return status["value"] in ("SUBMITTED", "IN_PROGRESS")

        faults = Faults(running)
        deadline = time.time() + 600
        while time.time() < deadline and running():
            time.sleep(0.3)
        faults.finish()
        check(status["value"] == "COMPLETED", f"the job ended {status['value']}")
        seen["retryLogLines"] = open(log.name).read().count("catalog connection lost; trying again")
        prefix = f"out/{datastore}-DicomImport-{job}/"
        check_lines(s3_lines(s3, bucket, prefix, "success"), s3_lines(s3, bucket, prefix, "failure"), names)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)


def run_workers():
    s3, bucket, names = s3_setup(os.path.join(work, "in"), 600)
    environment = dict(os.environ, AWS_ENDPOINT_URL_S3=os.environ["S3_TEST_ENDPOINT"], DICOM_INGEST_LOG_LEVEL="info")
    shared = ["--store", os.path.join(work, "store"), "--catalog", catalog_url, "--frames", f"s3://{bucket}/frames/"]
    waiting = subprocess.Popen([binary, "import", f"s3://{bucket}/in/", "--output", f"s3://{bucket}/out/", "--json",
                                "--submit-only", "--wait", *shared], env=environment, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    logs = [open(os.path.join(work, f"w{index}.log"), "w") for index in range(2)]
    workers = [subprocess.Popen([binary, "worker", *shared, "--worker-id", f"w{index}", "--probe-port", "0", "--poll-seconds",
                                 "0.2", "--threads", "1", "--chunk-objects", "32", "--lease-seconds", "10"],
                                env=environment, stdout=subprocess.DEVNULL, stderr=logs[index]) for index in range(2)]
    try:
        faults = Faults(lambda: waiting.poll() is None)
        stdout, stderr = waiting.communicate(timeout=900)
        faults.finish()
        check(waiting.returncode == 0, f"import --submit-only --wait exited {waiting.returncode}: {stderr[-3000:]}")
        summary = json.loads(stdout.strip().splitlines()[-1])
        check(summary["jobStatus"] == "COMPLETED", f"summary: {summary}")
        seen["workersAlive"] = sum(worker.poll() is None for worker in workers)
        check(seen["workersAlive"] == 2, "both workers rode through the faults")
        prefix = f"out/{summary['datastoreId']}-DicomImport-{summary['jobId']}/"
        check_lines(s3_lines(s3, bucket, prefix, "success"), s3_lines(s3, bucket, prefix, "failure"), names)
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                worker.kill()


try:
    {"import": run_import, "serve": run_serve, "workers": run_workers}[scenario]()
finally:
    stop_cluster()
seen["ok"] = True
print(json.dumps(seen))
