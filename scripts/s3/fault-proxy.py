#!/usr/bin/env python3
"""An HTTP proxy on loopback that fails a share of requests, for S3 fault-injection tests.

Usage: fault-proxy.py TARGET_URL FAILURE_RATE SEED
Prints the port it listens on, then forwards every request to TARGET_URL unchanged (Host header included, so
signatures still verify), except that with probability FAILURE_RATE it answers 503 SlowDown or resets the
connection without answering (alternately). Deterministic for a given seed and request order. Stops when its
standard input closes, printing how many requests it failed.
"""
import http.client
import random
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

target = urlparse(sys.argv[1])
rate = float(sys.argv[2])
rng = random.Random(int(sys.argv[3]))
lock = threading.Lock()
counter = {"failures": 0}

SLOW_DOWN = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
             b'<Message>Please reduce your request rate.</Message></Error>')


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with lock:
            fail = rng.random() < rate
            if fail:
                counter["failures"] += 1
                reset = counter["failures"] % 2 == 0
        if fail and reset:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.connection.close()
            self.close_connection = True
            return
        if fail:
            self.send_response(503)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(SLOW_DOWN)))
            self.end_headers()
            self.wfile.write(SLOW_DOWN)
            return
        upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
        headers = {k: v for k, v in self.headers.items()}
        upstream.request(self.command, self.path, body=body, headers=headers)
        response = upstream.getresponse()
        data = response.read()
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        upstream.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
threading.Thread(target=server.serve_forever, daemon=True).start()
sys.stdin.read()
server.shutdown()
print(counter["failures"], flush=True)
