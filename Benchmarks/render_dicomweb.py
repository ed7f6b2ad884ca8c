#!/usr/bin/env python3
"""The "DICOMweb" section of BENCHMARKS.md, from Benchmarks/dicomweb.sh's results. render_report.py includes it; run
alone it prints the section.

Usage: render_dicomweb.py RESULTS_DIR
"""
import json
import os
import sys

ROWS = [
    ("framesStored", "frames/s, as stored (`transfer-syntax=*`), 8 connections", "perSecond"),
    ("framesELE", "frames/s, Explicit VR Little Endian, 8 connections", "perSecond"),
    ("framesELE64", "frames/s, Explicit VR Little Endian, 64 connections", "perSecond"),
    ("metadata500", "series metadata, 500 instances, p50 / p99 ms", "latency"),
    ("metadata5000", "series metadata, 5,000 instances, p50 / p99 ms", "latency"),
    ("qidoStudies", "QIDO-RS study search (limit 101, OHIF's fields), p50 / p99 ms", "latency"),
    ("qidoInstances", "QIDO-RS a series' 500 instances, p50 / p99 ms", "latency"),
    ("peakRSSServer", "peak RSS of the server process under 64 concurrent ELE frame requests, MB", "rss"),
    ("peakRSS", "peak RSS, the server and its codec helpers summed (shared libraries counted in each), MB", "rss"),
    ("pssAfter", "PSS of the server and its codec helpers after that run, MB", "rss"),
]


def section(results_dir):
    path = os.path.join(results_dir, "dicomweb.json")
    if not os.path.exists(path):
        return []
    results = json.load(open(path))
    ours, theirs = results["dicom-ingest"], results["Orthanc"]
    lines = [
        "",
        "## DICOMweb",
        "",
        f"`Benchmarks/dicomweb.sh` (release build; {results['orthanc']} with its DICOMweb plugin, storage uncompressed;",
        f"`wrk` for both, keep-alive, {results['seconds']} s per row): a 500-slice CT series (512×512, 16-bit), stored by us as",
        "HTJ2K and by Orthanc as sent, frame 1 of every slice round robin; a 5,000-instance series of the same header.",
        "Our ELE frames are decoded from HTJ2K and checked against their CRC-32 on every request; Orthanc's are its",
        f"stored bytes. OpenJPH's own decode rate of these codestreams (the decode time `ojph_expand` reports, two cores):",
        f"{results['ojphDecodePerSecond']:.0f} frames/s.",
        "",
        "| measure | dicom-ingest | Orthanc | dicom-ingest ÷ Orthanc |",
        "|---|---|---|---|",
    ]
    for key, label, kind in ROWS:
        if kind == "perSecond":
            a, b = ours[key]["perSecond"], theirs[key]["perSecond"]
            lines.append(f"| {label} | {a:,.0f} | {b:,.0f} | {a / b:.2f} |")
        elif kind == "latency":
            a, b = ours[key], theirs[key]
            lines.append(f"| {label} | {a['p50']:.1f} / {a['p99']:.1f} | {b['p50']:.1f} / {b['p99']:.1f} | {a['p50'] / b['p50']:.2f} |")
        else:
            a, b = ours[key] / 1e6, theirs[key] / 1e6
            lines.append(f"| {label} | {a:,.0f} | {b:,.0f} | {a / b:.2f} |")
    ele = max(ours["framesELE"]["perSecond"], ours["framesELE64"]["perSecond"]) / results["ojphDecodePerSecond"]
    targets = [
        ("stored frames/s ≥ 3× Orthanc's", ours["framesStored"]["perSecond"] / theirs["framesStored"]["perSecond"], 3, True),
        ("ELE frames/s ≥ 0.8× OpenJPH's own decode rate", ele, 0.8, True),
        ("series metadata of 5,000 instances ≤ 100 ms (p50)", ours["metadata5000"]["p50"], 100, False),
        ("peak RSS of the server under 64 concurrent frame requests ≤ 300 MB", ours["peakRSSServer"] / 1e6, 300, False),
        ("PSS of the server and its helpers ≤ 300 MB", ours["pssAfter"] / 1e6, 300, False),
    ]
    lines += ["", "| target | measured | met |", "|---|---|---|"]
    for name, value, goal, higher in targets:
        met = value >= goal if higher else value <= goal
        lines.append(f"| {name} | {value:.2f} (goal {goal}) | {'yes' if met else 'no'} |")
    lines += [
        "",
        "QIDO-RS at 1,000,000 instances (where no Orthanc comparison runs here) is in the catalog table above: p99",
        "under 10 ms for every search on both catalogs (goal ≤ 50 ms).",
    ]
    return lines


if __name__ == "__main__":
    print("\n".join(section(sys.argv[1])))
