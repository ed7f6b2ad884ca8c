#!/usr/bin/env python3
"""The "Codec helpers" section of BENCHMARKS.md, from Benchmarks/codec_helpers.sh's results. render_report.py includes
it; run alone it prints the section.

Usage: render_codec_helpers.py RESULTS_DIR
"""
import json
import os
import sys

NAMES = {"jpeg-lossless": "JPEG lossless .70 (DCMTK)", "jpeg-ls": "JPEG-LS .80 (CharLS)", "j2k": "JPEG 2000 lossless .90 (OpenJPEG)"}


def section(results_dir):
    path = os.path.join(results_dir, "codec-helpers.json")
    if not os.path.exists(path):
        return []
    results = json.load(open(path))
    lines = [
        "",
        "## Codec helpers",
        "",
        "`Benchmarks/codec_helpers.sh` (release builds side by side, warm cache, median of the runs): 200 CT slices",
        f"(512×512, 16-bit) of each syntax imported with {results['threads']} threads, every frame decoded, HTJ2K-encoded and",
        "verified; the decoders of outside input in codec helper processes (shared memory, per-call CPU and address-space",
        f"limits) against the same import decoding in-process at `{results['before']}`, the last commit that did.",
        "",
        "| input | MB | in-process s | codec helpers s | helpers ÷ in-process (time) | within 5 % |",
        "|---|---|---|---|---|---|",
    ]
    for syntax, run in results["syntaxes"].items():
        ratio = run["helpers"] / run["inProcess"]
        lines.append(
            f"| {NAMES[syntax]} | {run['bytes'] / 1e6:.0f} | {run['inProcess']:.3f} ± {run['inProcessStddev']:.3f} | "
            f"{run['helpers']:.3f} ± {run['helpersStddev']:.3f} | {ratio:.3f} | {'yes' if ratio <= 1.05 else 'no'} |")
    return lines


if __name__ == "__main__":
    print("\n".join(section(sys.argv[1])))
