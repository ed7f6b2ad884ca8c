"""What the DICOMweb end-to-end scripts share: the summary they print, the check that ends them, ports, waiting
for a process to answer, and fixtures under SOP Instance UIDs of their own."""
import json
import os
import socket
import sys
import time

import pydicom
import requests
from pydicom.uid import generate_uid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# What the script saw, printed as its last line (ScenarioScript reads "ok").
seen = {}


def check(condition, message):
    """Ends the script with the failure and what it saw so far, unless `condition` holds."""
    if not condition:
        print(json.dumps({"failed": message, "seen": seen}, default=str))
        sys.exit(1)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(url, process, what, seconds=60):
    """Until `url` answers below 500, while `process` lives."""
    deadline = time.time() + seconds
    while True:
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return
        except requests.RequestException:
            pass
        check(time.time() < deadline and process.poll() is None, f"{what} answers")
        time.sleep(0.2)


def own_copy(dataset, path):
    """Saves `dataset` at `path` under a new SOP Instance UID and returns the UID."""
    uid = generate_uid()
    dataset.SOPInstanceUID = uid
    dataset.file_meta.MediaStorageSOPInstanceUID = uid
    dataset.save_as(path, enforce_file_format=True)
    return uid


def fixture(name):
    return pydicom.dcmread(os.path.join(ROOT, "fixtures/generated", name))
