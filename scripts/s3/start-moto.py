#!/usr/bin/env python3
"""Starts two moto_server instances on free loopback ports for the S3 tests.

Usage: start-moto.py ENV_FILE
- S3_TEST_ENDPOINT: an open server (any credentials), for listing, reading and writing with any key names.
- S3_TEST_AUTH_ENDPOINT: a server that checks credentials and SigV4 signatures. An IAM user allowed s3:* gets an
  access key (S3_TEST_ACCESS_KEY_ID / S3_TEST_SECRET_ACCESS_KEY), then moto's request authentication is turned on
  (POST /moto-api/reset-auth), so wrong credentials and bad signatures are refused as real S3 refuses them.
  (moto 5.2.1's own verifier miscomputes signatures for keys with characters such as `+`, `~` or non-ASCII,
  which is why the open server exists.)
Writes shell `export` lines to ENV_FILE, including S3_TEST_SERVER_PIDS; stop with `kill $S3_TEST_SERVER_PIDS`.
"""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import boto3

env_file = sys.argv[1]
log = open(os.path.join(os.path.dirname(os.path.abspath(env_file)), "moto.log"), "w")


def start_server():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log,
                              start_new_session=True)
    for _ in range(200):
        try:
            urllib.request.urlopen(endpoint + "/", timeout=1)
            return endpoint, server
        except Exception:
            time.sleep(0.1)
    server.kill()
    sys.exit("moto_server did not start")


open_endpoint, open_server = start_server()
endpoint, server = start_server()
iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                   aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
iam.create_user(UserName="dicom-ingest-tests")
iam.put_user_policy(UserName="dicom-ingest-tests", PolicyName="s3",
                    PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
                        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
key = iam.create_access_key(UserName="dicom-ingest-tests")["AccessKey"]
request = urllib.request.Request(endpoint + "/moto-api/reset-auth", data=b"0", method="POST",
                                 headers={"Content-Type": "text/plain"})
urllib.request.urlopen(request, timeout=5)

with open(env_file, "w") as out:
    out.write(f"export S3_TEST_ENDPOINT={open_endpoint}\n")
    out.write(f"export S3_TEST_AUTH_ENDPOINT={endpoint}\n")
    out.write(f"export S3_TEST_ACCESS_KEY_ID={key['AccessKeyId']}\n")
    out.write(f"export S3_TEST_SECRET_ACCESS_KEY={key['SecretAccessKey']}\n")
    out.write(f"export S3_TEST_SERVER_PIDS='{open_server.pid} {server.pid}'\n")
print(f"moto_server: open {open_endpoint}, authenticated {endpoint}")
