#!/usr/bin/env python3
"""Checks deploy/kubernetes against the binary it runs: every container's subcommand and flags are ones the
binary accepts (`dicom-ingest <command> --help`), every ConfigMap and Secret a pod names is defined, every volume
mounted is declared, probes use the endpoints the processes serve, and the HPA reads the gauge the workers export.

Usage: check_manifests.py BINARY MANIFEST_DIR. Prints a JSON summary as its last line; exits non-zero on a failure.
Needs PyYAML (installed with moto[server] by scripts/install-deps.sh).
"""
import glob
import json
import os
import re
import subprocess
import sys

import yaml

binary, folder = sys.argv[1], sys.argv[2]
failures = []
documents = []
for path in sorted(glob.glob(os.path.join(folder, "*.yaml"))):
    with open(path) as file:
        documents += [(os.path.basename(path), document) for document in yaml.safe_load_all(file) if document]

defined = {(document["kind"], document["metadata"]["name"]) for _, document in documents if "metadata" in document}
helps = {}


def help_of(command):
    if command not in helps:
        result = subprocess.run([binary, command, "--help"], capture_output=True, text=True)
        helps[command] = result.stdout if result.returncode == 0 else None
    return helps[command]


containers = 0
for name, document in documents:
    spec = document.get("spec", {}).get("template", {}).get("spec")
    if not spec:
        continue
    volumes = {volume["name"] for volume in spec.get("volumes", [])}
    for container in spec.get("initContainers", []) + spec.get("containers", []):
        containers += 1
        where = f"{name}: {container['name']}"
        args = [str(arg) for arg in container.get("args", [])]
        text = help_of(args[0]) if args else None
        if text is None:
            failures.append(f"{where}: `{args[:1]}` is not a dicom-ingest command")
            continue
        for flag in (arg for arg in args if arg.startswith("--")):
            if not re.search(re.escape(flag) + r"\b", text):
                failures.append(f"{where}: {args[0]} has no option {flag}")
        for source in container.get("envFrom", []):
            for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                if key in source and (kind, source[key]["name"]) not in defined:
                    failures.append(f"{where}: {kind} {source[key]['name']} is not defined")
        for mount in container.get("volumeMounts", []):
            if mount["name"] not in volumes:
                failures.append(f"{where}: volume {mount['name']} is not declared")
        for probe in ("livenessProbe", "readinessProbe"):
            path = container.get(probe, {}).get("httpGet", {}).get("path")
            if path is not None and path not in ("/healthz", "/readyz"):
                failures.append(f"{where}: {probe} on {path}, which no process serves")

metrics = [metric["external"]["metric"]["name"] for _, document in documents if document.get("kind") == "HorizontalPodAutoscaler"
           for metric in document["spec"]["metrics"]]
exported = subprocess.run(["grep", "-rho", "dicom_ingest_work_queue_[a-z_]*", "Sources"], capture_output=True, text=True).stdout.split()
for metric in metrics:
    if metric not in exported:
        failures.append(f"the HPA reads {metric}, which no process exports")

summary = {"documents": len(documents), "containers": containers, "hpaMetrics": metrics, "failures": failures}
print(json.dumps(summary))
sys.exit(1 if failures or containers == 0 else 0)
