#!/usr/bin/env python3
"""The "Many workers" section of BENCHMARKS.md, from Benchmarks/workers.py's results (and catalog.md's PostgreSQL
commit rate, for the model). render_report.py includes it; run alone it prints the section.

Usage: render_workers.py RESULTS_DIR
"""
import json
import math
import os
import sys

DAY = 86_400
ARCHIVE = 100_000_000


def postgres_commit_rate(results_dir):
    """Instances/s PostgreSQL commits in Benchmarks/CatalogScale at its largest size, if it ran."""
    path = os.path.join(results_dir, "catalog.md")
    if not os.path.exists(path):
        return None
    rows = [line.split("|") for line in open(path) if line.startswith("| PostgreSQL")]
    return float(rows[-1][4].strip().replace(",", "")) if rows else None


def section(results_dir):
    path = os.path.join(results_dir, "workers.json")
    if not os.path.exists(path):
        return []
    results = json.load(open(path))
    runs = results["configurations"]
    files = results["files"]
    rate = lambda name: runs[name]["filesPerSecond"]
    lines = [
        "",
        "## Many workers",
        "",
        f"`Benchmarks/workers.sh` (release build): the archive above ({files:,} files, {results['bytes'] / 1e6:,.0f} MB,",
        "every lossless frame transcoded to HTJ2K) imported from a local folder by a single process (`import`) and by",
        "worker processes sharing a PostgreSQL 15 catalog on loopback (durable defaults), timed from `import",
        "--submit-only` to the exit of the last `worker --exit-when-idle` (the job has ended: listed, every chunk",
        f"prepared and staged, every series committed, the result files written); median of {results['runs']} runs, each",
        f"at commit `{results.get('commit', '?')}`,",
        "from an empty store. Catalog transactions are PostgreSQL's count of committed transactions (reads and writes,",
        "idle workers' looks for work included) over the run.",
        "",
        "| run | processes × threads | median s | files/s | catalog transactions per file |",
        "|---|---|---|---|---|",
    ]
    for name, run in runs.items():
        commits = f"{run['catalogCommitsPerFile']:.3f}" if name != "single-sqlite-1-thread" and name != "single-sqlite-2-threads" else "(SQLite)"
        processes = max(1, run["workers"])
        lines.append(f"| {name} | {processes} × {run['threads']} | {run['median']:.1f} | {run['filesPerSecond']:.1f} | {commits} |")
    scaling = rate("workers-2x1-thread") / rate("workers-1x1-thread")
    overhead = (runs["workers-1x1-thread"]["median"] - runs["single-sqlite-1-thread"]["median"]) / files * 1000
    postgres_only = (runs["single-postgres-1-thread"]["median"] - runs["single-sqlite-1-thread"]["median"]) / files * 1000
    baseline = runs["single-sqlite-1-thread"]["seconds"]
    spread = (max(baseline) - min(baseline)) / files * 1000
    per_file = runs["single-sqlite-1-thread"]["median"] / files * 1000
    per_worker = rate("workers-1x2-threads")
    needed_rate = ARCHIVE / DAY
    workers = math.ceil(needed_rate / per_worker)
    commits_per_file = runs["workers-1x2-threads"]["catalogCommitsPerFile"]
    commit_rate = postgres_commit_rate(results_dir)
    lines += [
        "",
        f"- Two worker processes of one thread each import {scaling:.2f}× as many files per second as one (goal ≥ 1.8×,",
        f"  {'met' if scaling >= 1.8 else 'not met'}): the work splits by chunks of 256 objects with no shared state but the catalog.",
        f"- Coordination through PostgreSQL (listing into chunks, claims, fenced staging, chunks of series commits)",
        f"  costs {overhead:+.2f} ms per file against the single process on SQLite, one thread each ({postgres_only:+.2f} ms for",
        f"  a single process on the PostgreSQL catalog): within the spread between runs ({spread:.2f} ms per file). A file",
        f"  takes {per_file:.1f} ms of a core to read, transcode and verify; its share of the queue's transactions is a",
        "  fraction of a millisecond.",
        "",
        "### Where a large deployment saturates",
        "",
        f"An archive of {ARCHIVE / 1e6:,.0f} million instances in a day is {needed_rate:,.0f} instances per second. From the",
        "figures above:",
        "",
        f"- **Workers.** One worker process with two threads (two cores) imports {per_worker:,.0f} files/s here, so",
        f"  {workers} such workers ({2 * workers} cores) keep the pace, if nothing else saturates first; workers share nothing",
        "  but the catalog, so they scale until it does.",
        f"- **Catalog transactions.** A file costs {commits_per_file:.3f} PostgreSQL transactions here (staging batches of up to 64",
        "  instances, chunk claims and completions, series commits, heartbeats, looks for work), so the day's rate needs",
        f"  {commits_per_file * needed_rate:,.0f} transactions/s, well within what one PostgreSQL server sustains with durable",
        "  commits (group commit batches concurrent transactions into one WAL flush).",
    ]
    if commit_rate:
        hours = ARCHIVE / commit_rate / 3600
        lines += [
            f"- **Series commits.** One catalog connection commits about {commit_rate:,.0f} instances/s (CatalogScale,",
            f"  PostgreSQL): {hours:.1f} h for {ARCHIVE / 1e6:,.0f} million instances if one process committed them all. Workers",
            "  commit a job's series in parallel, a chunk of about 2,000 instances per claim, each series under a lock of",
            "  its own, so the commits of a day's archive spread over the workers' connections; they start once every",
            "  object of the job is staged, so a single job's commits are a tail after its last chunk of objects: with",
            f"  {workers} workers committing at once, {ARCHIVE / (commit_rate * workers) / 3600:.1f} h if PostgreSQL keeps up with",
            f"  {workers} connections' commits (on a server with the cores for it; on this 2-core machine it would not).",
            "  Splitting the archive into several jobs (one per top-level prefix, say) overlaps one job's commits with",
            "  another's objects and removes the tail.",
        ]
    lines += [
        f"- **S3.** An instance costs one GET of its object (larger objects: ranged GETs of 8 MiB in parallel) and one PUT",
        "  of its frames object (multipart above 8 MiB), a LIST per 1,000 input objects and a few multipart parts of",
        f"  result lines: about {2 * needed_rate:,.0f} requests/s for the day's rate. S3 serves 5,500 GET and 3,500 PUT per",
        "  second per prefix partition, and frame objects spread over 256 prefixes per data store",
        "  (`<datastoreId>/<2 hex>/`), so the object store is not the bound; bandwidth is (instances × their size).",
    ]
    if commit_rate:
        # Objects then commits, each spread over the workers: the smallest fleet whose two phases fit in a day.
        fleet = math.ceil(needed_rate * (1 / per_worker + 1 / commit_rate))
        preparing = ARCHIVE / (per_worker * fleet) / 3600
        committing = ARCHIVE / (commit_rate * fleet) / 3600
        lines += [
            f"- **So:** {fleet} two-core workers import {ARCHIVE / 1e6:,.0f} million instances in a day as one job: {preparing:.1f} h",
            f"  preparing ({per_worker * fleet:,.0f} files/s) and {committing:.1f} h committing, provided the PostgreSQL server",
            f"  sustains {fleet} connections committing at once and about {commits_per_file * per_worker * fleet:,.0f} transactions/s",
            "  (a server of a few more cores than this one, on fast storage); with the archive split into several jobs, the",
            f"  {math.ceil(needed_rate / per_worker)} workers that the preparing alone needs are enough.",
        ]
    return lines


if __name__ == "__main__":
    print("\n".join(section(sys.argv[1])))
