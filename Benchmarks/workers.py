#!/usr/bin/env python3
"""Imports of one archive by a single process and by worker processes sharing a PostgreSQL catalog, timed.

Usage: workers.py BINARY ARCHIVE POSTGRES_URL RUNS OUT_JSON
Each run starts from an empty store (and a new catalog schema). A worker run is timed from `import --submit-only`
to the exit of the last `worker --exit-when-idle` (the job has ended then). PostgreSQL's transaction commits are
counted around every run (pg_stat_database.xact_commit): catalog commits per file, for the saturation model.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

binary, archive, postgres_url, runs, out = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
files = sum(len(names) for _, _, names in os.walk(archive))


def commits():
    url = postgres_url.split("?")[0]
    result = subprocess.run(["psql", url, "-Atc", "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"],
                            capture_output=True, text=True, check=True)
    return int(result.stdout.strip())


def run_once(name, threads, workers):
    work = tempfile.mkdtemp(prefix="workers-bench-")
    try:
        store = ["--store", os.path.join(work, "store")]
        catalog = []
        if workers or name.startswith("single-postgres"):
            catalog = ["--catalog", postgres_url + "&schema=bench_" + uuid.uuid4().hex[:8]]
        output = ["--output", os.path.join(work, "out")]
        before = commits()
        started = time.monotonic()
        if not workers:
            subprocess.run([binary, "import", archive, *output, *store, *catalog, "--threads", str(threads), "--no-progress"],
                           check=True, stdout=subprocess.DEVNULL)
        else:
            subprocess.run([binary, "import", archive, *output, *store, *catalog, "--submit-only"], check=True,
                           stdout=subprocess.DEVNULL)
            processes = [subprocess.Popen([binary, "worker", *store, *catalog, "--threads", str(threads), "--exit-when-idle",
                                           "--probe-port=-1", "--poll-seconds", "0.1"], stdout=subprocess.DEVNULL)
                         for _ in range(workers)]
            for process in processes:
                if process.wait() != 0:
                    raise SystemExit(f"{name}: a worker failed")
        seconds = time.monotonic() - started
        manifest = next(os.path.join(root, "job-output-manifest.json") for root, _, names in os.walk(os.path.join(work, "out"))
                        if "job-output-manifest.json" in names)
        with open(manifest) as file:
            scanned = json.load(file)["jobSummary"]["numberOfScannedFiles"]
        if scanned != files:
            raise SystemExit(f"{name}: {scanned} files scanned of {files}")
        return seconds, commits() - before
    finally:
        shutil.rmtree(work, ignore_errors=True)


configurations = [
    ("single-sqlite-1-thread", 1, 0), ("single-postgres-1-thread", 1, 0), ("workers-1x1-thread", 1, 1),
    ("workers-2x1-thread", 1, 2), ("single-sqlite-2-threads", 2, 0), ("workers-1x2-threads", 2, 1),
]
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
results = {"commit": commit, "files": files, "bytes": sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(archive)
                                        for name in names), "runs": runs, "configurations": {}}
for name, threads, workers in configurations:
    measured = [run_once(name, threads, workers) for _ in range(runs)]
    seconds = [m[0] for m in measured]
    median = statistics.median(seconds)
    results["configurations"][name] = {
        "threads": threads, "workers": workers, "seconds": seconds, "median": median, "filesPerSecond": files / median,
        "catalogCommitsPerFile": statistics.median(m[1] for m in measured) / files,
    }
    print(f"{name}: median {median:.1f} s, {files / median:.0f} files/s", file=sys.stderr)
with open(out, "w") as file:
    json.dump(results, file, indent=2)
