#!/usr/bin/env python3
"""Serves the OHIF v3 viewer against a `dicom-ingest serve`, so that a person can look at imported studies.

    python3 scripts/dicomweb/ohif_viewer.py --server http://127.0.0.1:8080 --datastore-id ID [--port 3000]

then open http://127.0.0.1:3000/ohif/ in a browser. The viewer (the build in the PyPI wheel monailabel==0.8.5,
unpacked by scripts/install-deps.sh into ~/.cache/dicom-ingest/ohif, or --ohif DIR) is served under /ohif/, every
path that is no file answered by its index.html (it is a single-page app). Its DICOMweb data source is /dicomweb on
the same origin, so the browser needs no CORS: each request there is forwarded to the data store's DICOMweb root
(`<server>/datastore/<id>`), signed with SigV4 as the AWS SDKs sign (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY),
or with `Authorization: Bearer $DICOM_INGEST_BEARER_TOKEN` when that is set, or unsigned for a server that allows
unauthenticated loopback reads. Each forwarded request is logged on stdout: `GET <path> <status>`.
"""
import argparse
import http.server
import os
import sys
import urllib.parse
import urllib.request

DEFAULT_OHIF = os.path.join(os.path.expanduser("~"), ".cache", "dicom-ingest", "ohif")

APP_CONFIG = """window.config = {
  routerBasename: '/ohif/',
  showStudyList: true,
  extensions: [],
  modes: [],
  showWarningMessageForCrossOrigin: false,
  showCPUFallbackMessage: false,
  showLoadingIndicator: true,
  investigationalUseDialog: { option: 'never' },
  defaultDataSourceName: 'dicomweb',
  useSharedArrayBuffer: 'FALSE',
  dataSources: [
    {
      namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
      sourceName: 'dicomweb',
      configuration: {
        friendlyName: 'dicom-ingest %(datastore)s',
        name: 'dicom-ingest',
        wadoUriRoot: '/dicomweb',
        qidoRoot: '/dicomweb',
        wadoRoot: '/dicomweb',
        qidoSupportsIncludeField: true,
        imageRendering: 'wadors',
        thumbnailRendering: 'wadors',
        enableStudyLazyLoad: true,
        supportsFuzzyMatching: true,
        supportsWildcard: true,
        bulkDataURI: { enabled: true },
      },
    },
  ],
};
"""


def canonical_query(query):
    """The query re-encoded as SigV4 signs it (RFC 3986 unreserved characters bare, the rest %XX, `+` a space), so
    that the signature covers exactly what the server reads."""
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    return "&".join(urllib.parse.quote(k, safe="-_.~") + "=" + urllib.parse.quote(v, safe="-_.~") for k, v in pairs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", required=True, help="the dicom-ingest serve URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--datastore-id", required=True)
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--ohif", default=DEFAULT_OHIF, help="the unpacked OHIF build (its index.html and bundles)")
    parser.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"))
    options = parser.parse_args()
    if not os.path.exists(os.path.join(options.ohif, "index.html")):
        sys.exit(f"no OHIF build at {options.ohif}: run scripts/install-deps.sh, or give --ohif")
    root = options.server.rstrip("/") + "/datastore/" + options.datastore_id
    config = (APP_CONFIG % {"datastore": options.datastore_id}).encode()
    credentials = None
    if os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY") and not os.environ.get("DICOM_INGEST_BEARER_TOKEN"):
        from botocore.credentials import Credentials
        credentials = Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"], os.environ.get("AWS_SESSION_TOKEN"))

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):
            pass

        def send(self, status, content_type, body):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            path, _, query = self.path.partition("?")
            if path == "/" or path == "/ohif":
                self.send_response(302)
                self.send_header("Location", "/ohif/")
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif path.startswith("/dicomweb/"):
                self.forward(path[len("/dicomweb"):], query)
            elif path == "/ohif/app-config.js":
                self.send(200, "application/javascript", config)
            elif path.startswith("/ohif/"):
                self.static(path[len("/ohif/"):])
            else:
                self.send(404, "text/plain", b"not found\n")

        def static(self, relative):
            relative = urllib.parse.unquote(relative)
            file = os.path.realpath(os.path.join(options.ohif, relative))
            if not file.startswith(os.path.realpath(options.ohif) + os.sep) or not os.path.isfile(file):
                file = os.path.join(options.ohif, "index.html")
            types = {".js": "application/javascript", ".css": "text/css", ".html": "text/html", ".wasm": "application/wasm",
                     ".json": "application/json", ".svg": "image/svg+xml", ".png": "image/png", ".ico": "image/x-icon",
                     ".woff2": "font/woff2", ".woff": "font/woff", ".ttf": "font/ttf"}
            with open(file, "rb") as handle:
                self.send(200, types.get(os.path.splitext(file)[1], "application/octet-stream"), handle.read())

        def forward(self, rest, query):
            url = root + rest + ("?" + canonical_query(query) if query else "")
            headers = {"Accept": self.headers.get("Accept", "*/*")}
            if os.environ.get("DICOM_INGEST_BEARER_TOKEN"):
                headers["Authorization"] = "Bearer " + os.environ["DICOM_INGEST_BEARER_TOKEN"]
            elif credentials is not None:
                from botocore.auth import SigV4Auth
                from botocore.awsrequest import AWSRequest
                signed = AWSRequest(method="GET", url=url, headers=dict(headers, Host=urllib.parse.urlsplit(url).netloc))
                SigV4Auth(credentials, "medical-imaging", options.region).add_auth(signed)
                headers = dict(signed.headers.items())
            request = urllib.request.Request(url, headers=headers)
            try:
                answer = urllib.request.urlopen(request, timeout=120)
                status = answer.status
            except urllib.error.HTTPError as error:
                answer, status = error, error.code
            body = answer.read()
            print(f"GET {rest}{'?' + query if query else ''} {status}", flush=True)
            self.send(status, answer.headers.get("Content-Type", "application/octet-stream"), body)

    server = http.server.ThreadingHTTPServer((options.host, options.port), Handler)
    print(f"OHIF at http://{options.host}:{server.server_address[1]}/ohif/ reading {root}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
