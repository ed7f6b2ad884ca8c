#!/usr/bin/env python3
"""WADO-RS end to end: `dicomweb-client` against a real `dicom-ingest serve` (SigV4-signed requests), compared with
pydicom's reading of the source files.

Usage: wado_e2e.py BINARY SCENARIO WORK_DIR
Scenarios: sqlite (SQLite catalog, frames in the store folder); postgres-s3 (the PostgreSQL catalog of
$DICOM_INGEST_TEST_POSTGRES, frames in S3 at $S3_TEST_ENDPOINT).
Environment: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, the server's identity.

The input is the bundled fixtures (every transfer syntax the engine reads, multi-frame among them), each given a
SOP Instance UID of its own, plus one instance whose PatientID conflicts with its series' (a non-primary image set).
Checks, for every instance: the series and instance metadata read by `Dataset.from_json` equal the source data set
element by element (Pixel Data and the file meta group aside; TransferSyntaxUID is the stored one); frames in
Explicit VR Little Endian equal pydicom's decoded pixels (bit-exact: every source is lossless or decoded once, as
the import did); frames asked with transfer-syntax=* equal the stored codestream (GetImageFrame through the CLI);
GetDICOMInstance in ELE (one body) and as stored (dicomweb-client's multipart) read by pydicom equal the source's
elements, their Pixel Data the frames above; `export` of every study writes the same bytes, ELE and as stored;
binary values past 1 MB (top level and in a sequence item) are BulkDataURIs whose GetDICOMBulkdata bytes equal them.
Then the refusals: 406, 404 for an unknown series, instance and frame, 400 for a bad frame list and a bad UID, and
`imageSetId` reaching the non-primary image set. OIDC bearer tokens (an RSA key in a JWKS file, tokens from pyjwt):
a valid one reads through dicomweb-client; another key, issuer, audience or data store, an expired token, `alg: none`,
an unknown key ID, garbage, and a token on the REST API are each 403; no token is logged. A key set from a URL is
fetched when a second server starts and again when a token names a key the issuer rotated in (sqlite scenario). Prints one JSON line; exits non-zero on the first failed check.
"""
import glob
import io
import json
import os
import subprocess
import sys
import time

import numpy
import pydicom
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from dicomweb_client.api import DICOMwebClient
from pydicom.encaps import generate_frames
from e2e_common import ROOT, check, fixture, free_port, own_copy, seen, wait_for
import qido_checks

binary, scenario, work = sys.argv[1], sys.argv[2], sys.argv[3]
# OpenJPEG (behind pydicom) mis-decodes signed HTJ2K: that fixture's pixels are its uncompressed sibling's.
SIBLINGS = {"ct_htj2k_lossless.dcm": "ct_explicit_le.dcm"}
root = ROOT
os.makedirs(work, exist_ok=True)
seen["scenario"] = scenario


class SigV4(requests.auth.AuthBase):
    """Signs each request as the AWS SDKs do (service medical-imaging), so the server's SigV4 check applies; the Host
    header dicomweb-client sets (without the port) is signed as sent."""

    def __init__(self):
        self.credentials = Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])

    def __call__(self, request):
        # A form-encoded space (`+`) is sent as `%20`, the form SigV4 signs.
        if "?" in request.url:
            path, query = request.url.split("?", 1)
            request.url = path + "?" + query.replace("+", "%20")
        signed = AWSRequest(method=request.method, url=request.url, data=request.body or b"",
                            headers={k: v for k, v in request.headers.items() if k.lower() in ("accept", "content-type", "host")})
        SigV4Auth(self.credentials, "medical-imaging", "us-east-1").add_auth(signed)
        request.headers.update(dict(signed.headers.items()))
        return request


# The input: every fixture under a SOP Instance UID of its own, and a conflicting patient in the first CT series.
source_folder = os.path.join(work, "input")
os.makedirs(source_folder, exist_ok=True)
sources = {}
for path in sorted(glob.glob(os.path.join(root, "fixtures/generated/*.dcm"))):
    target = os.path.join(source_folder, os.path.basename(path))
    sources[own_copy(pydicom.dcmread(path), target)] = target
conflict = fixture("ct_explicit_le.dcm")
conflict.PatientID = "SOMEONE-ELSE"
conflict_path = os.path.join(source_folder, "zz_conflict.dcm")
conflict_uid = own_copy(conflict, conflict_path)

# Binary values past 1 MB, at the top level and inside a sequence item, come as BulkDataURIs.
bulky = fixture("ct_explicit_le.dcm")
block = bulky.private_block(0x0011, "DICOM-INGEST BULK", create=True)
block.add_new(0x01, "OB", os.urandom(1_500_001) + b"\0")
icon = pydicom.Dataset()
icon.Rows, icon.Columns, icon.SamplesPerPixel, icon.BitsAllocated, icon.BitsStored, icon.HighBit = 800, 800, 1, 16, 16, 15
icon.PhotometricInterpretation, icon.PixelRepresentation = "MONOCHROME2", 0
icon.add_new(0x7FE00010, "OW", os.urandom(800 * 800 * 2))
bulky.IconImageSequence = [icon]
bulky_path = os.path.join(source_folder, "bulky.dcm")
sources[own_copy(bulky, bulky_path)] = bulky_path

# QIDO-RS's own corpus (qido_checks.py), imported with the rest; the WADO checks below leave its studies alone.
corpus = qido_checks.build_corpus(source_folder)
corpus_studies = {dataset.StudyInstanceUID for dataset in corpus.values()}

environment = dict(os.environ, DICOM_INGEST_LOG_LEVEL="info")
store = os.path.join(work, "store")
location = ["--store", store]
if scenario == "postgres-s3":
    import boto3
    check("DICOM_INGEST_TEST_POSTGRES" in os.environ and "S3_TEST_ENDPOINT" in os.environ, "PostgreSQL and S3 given")
    bucket = "wado-" + os.urandom(6).hex()
    boto3.client("s3", endpoint_url=os.environ["S3_TEST_ENDPOINT"], region_name="us-east-1").create_bucket(Bucket=bucket)
    schema = "wado_" + os.urandom(4).hex()
    location += ["--catalog", os.environ["DICOM_INGEST_TEST_POSTGRES"] + f"&schema={schema}", "--frames", f"s3://{bucket}/frames"]
    environment["AWS_ENDPOINT_URL_S3"] = os.environ["S3_TEST_ENDPOINT"]


def cli(*arguments):
    result = subprocess.run([binary, *arguments, *location], env=environment, capture_output=True, timeout=600)
    check(result.returncode == 0, f"{' '.join(arguments[:3])}: {result.stderr.decode(errors='replace')[-2000:]}")
    return result.stdout


cli("import", source_folder, "--output", os.path.join(work, "output"), "--no-progress")
datastore = json.loads(cli("datastore", "list"))["datastoreSummaries"][0]["datastoreId"]
image_sets = json.loads(cli("image-set", "list", "--datastore-id", datastore))["imageSetsMetadataSummaries"]
non_primary = [entry["imageSetId"] for entry in image_sets if not entry["isPrimary"]]
check(len(non_primary) == 1, f"one non-primary image set: {image_sets}")
all_documents = {entry["imageSetId"]: json.loads(cli("image-set", "metadata", "--datastore-id", datastore, entry["imageSetId"]))
                 for entry in image_sets}
image_set_of_series = {series_uid: image_set_id for image_set_id, document in all_documents.items() if image_set_id not in non_primary
                       for series_uid in document["Study"]["Series"]}
documents = {image_set_id: document for image_set_id, document in all_documents.items()
             if document["Study"]["DICOM"]["StudyInstanceUID"] not in corpus_studies}

port = free_port()
log = open(os.path.join(work, "serve.log"), "w")
# OIDC bearer tokens: an issuer's RSA key in a JWKS file, tokens signed by pyjwt.
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
issuer_key, other_key = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2))
public_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(issuer_key.public_key()))
public_jwk.update(kid="issuer-key", alg="RS256", use="sig")
jwks_path = os.path.join(work, "jwks.json")
json.dump({"keys": [public_jwk]}, open(jwks_path, "w"))
config_path = os.path.join(work, "server.json")
json.dump({"oidc": {"issuer": "https://idp.example/", "audience": "dicomweb", "jwks": jwks_path}}, open(config_path, "w"))


def token(key=issuer_key, issuer="https://idp.example/", audience="dicomweb", expires=300, datastores=None, algorithm="RS256", kid="issuer-key"):
    claims = {"iss": issuer, "aud": audience, "sub": "viewer-user", "exp": int(time.time()) + expires,
              "datastores": datastores if datastores is not None else [datastore]}
    return jwt.encode(claims, key if algorithm != "none" else None, algorithm=algorithm, headers={"kid": kid})


server = subprocess.Popen([binary, "serve", *location, "--host", "127.0.0.1", "--port", str(port), "--config", config_path],
                          env=environment, stdout=log, stderr=subprocess.STDOUT)
try:
    base = f"http://127.0.0.1:{port}/datastore/{datastore}"
    wait_for(f"http://127.0.0.1:{port}/healthz", server, "serve")
    session = requests.Session()
    session.auth = SigV4()
    client = DICOMwebClient(url=base, session=session)

    def compare(source, returned, where, unicode_charset=False):
        """Every element of the source data set (file meta and pixel data aside) equals the returned one. A rebuilt
        file writes text as UTF-8: its Specific Character Set may say ISO_IR 192 where the source's said another."""
        for element in source:
            if element.tag.group == 0x0002 or element.tag in (0x7FE00010, 0x7FE00008, 0x7FE00009):
                continue
            if unicode_charset and element.tag == 0x00080005 and returned.get(0x00080005) is not None \
                    and returned[0x00080005].value == "ISO_IR 192":
                continue
            # In a JPEG 2000 or HTJ2K file Planar Configuration is 0 (PS3.5 A.4.4, A.4.6).
            if unicode_charset and element.tag == 0x00280006 and getattr(returned, "file_meta", None) is not None \
                    and returned.file_meta.TransferSyntaxUID.startswith("1.2.840.10008.1.2.4.20") and returned[element.tag].value == 0:
                continue
            check(element.tag in returned, f"{where}: {element.tag} {element.keyword} missing")
            other = returned[element.tag]
            check(other.VR == element.VR or element.tag.is_private and other.VR == "UN",
                  f"{where}: {element.keyword or element.tag} VR {other.VR} is not {element.VR}")
            if element.VR == "SQ":
                check(len(other.value) == len(element.value), f"{where}: {element.keyword} items")
                for index, (mine, theirs) in enumerate(zip(element.value, other.value)):
                    compare(mine, theirs, f"{where} > {element.keyword}[{index}]")
            elif element.VR in ("OB", "OW", "OD", "OF", "OL", "OV", "UN"):
                check(bytes(other.value or b"") == bytes(element.value or b""), f"{where}: {element.keyword} bytes")
            else:
                mine = element.value if element.VM != 1 else [element.value]
                theirs = other.value if other.VM != 1 else [other.value]
                normalise = lambda values: [str(value).rstrip(" \x00") if not isinstance(value, (int, float)) else value
                                            for value in (values if isinstance(values, (list, pydicom.multival.MultiValue)) else [values])]
                if element.VR in ("DS", "IS"):
                    equal = [float(a) for a in mine if str(a).strip() != ""] == [float(b) for b in theirs if str(b).strip() != ""]
                else:
                    equal = normalise(mine) == normalise(theirs)
                check(equal, f"{where}: {element.keyword or element.tag} {mine!r} != {theirs!r}")

    instances_seen = frames_native = frames_stored = instances_rebuilt = 0
    bodies = {}
    bulk_uris = []
    for image_set_id, document in documents.items():
        primary = image_set_id not in non_primary
        for series_uid, series in document["Study"]["Series"].items():
            study_uid = document["Study"]["DICOM"]["StudyInstanceUID"]
            scope = {} if primary else {"imageSetId": image_set_id}
            if primary:
                metadata = client.retrieve_series_metadata(study_uid, series_uid)
            else:
                answer = session.get(f"{base}/studies/{study_uid}/series/{series_uid}/metadata", params=scope)
                check(answer.status_code == 200, f"non-primary series metadata by imageSetId: {answer.status_code} {answer.text[:300]}")
                metadata = answer.json()
                check(all(item["00080018"]["Value"][0] == conflict_uid for item in metadata), "imageSetId reads the non-primary image set")
            def fetch(tag, vr, uri):
                bulk_uris.append(uri)
                check(uri.startswith(base + "/studies/") and "/bulkdata/" in uri, f"an absolute BulkDataURI: {uri}")
                return bytes(client.retrieve_bulkdata(uri)[0])

            by_uid = {item["00080018"]["Value"][0]: pydicom.Dataset.from_json(item, bulk_data_uri_handler=fetch)
                      for item in metadata}
            check(set(by_uid) == set(series["Instances"]), f"series {series_uid}: the instances of the image set")
            for sop_uid, instance in series["Instances"].items():
                source = pydicom.dcmread(sources.get(sop_uid, conflict_path))
                returned = by_uid[sop_uid]
                compare(source, returned, f"series metadata {sop_uid}")
                check(returned[0x00020010].value == instance["StoredTransferSyntaxUID"], "TransferSyntaxUID is the stored one")
                if primary:
                    single = client.retrieve_instance_metadata(study_uid, series_uid, sop_uid)
                    compare(source, pydicom.Dataset.from_json(single, bulk_data_uri_handler=fetch), f"instance metadata {sop_uid}")
                instances_seen += 1
                count = len(instance["ImageFrames"])
                numbers = list(range(1, count + 1))[::-1]
                path = f"{base}/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}/frames/{','.join(map(str, numbers))}"
                if primary:
                    native = client.retrieve_instance_frames(
                        study_uid, series_uid, sop_uid, frame_numbers=numbers,
                        media_types=(("application/octet-stream", "1.2.840.10008.1.2.1"),))
                    stored = client.retrieve_instance_frames(
                        study_uid, series_uid, sop_uid, frame_numbers=numbers, media_types=(("application/octet-stream", "*"),))
                else:
                    native = stored = None
                # The samples as the data set holds them: raw frames of native little-endian sources, else pydicom's
                # decode without colour conversion (PhotometricInterpretation stays what the metadata says).
                reference = source
                if os.path.basename(sources.get(sop_uid, "")) in SIBLINGS:
                    reference = pydicom.dcmread(os.path.join(root, "fixtures/generated", SIBLINGS[os.path.basename(sources[sop_uid])]))
                reference.pixel_array_options(as_rgb=False)
                pixels = reference.pixel_array
                if count == 1:
                    pixels = pixels[numpy.newaxis]
                frame_bytes = source.Rows * source.Columns * source.SamplesPerPixel * source.BitsAllocated // 8
                raw = (source.file_meta.TransferSyntaxUID in ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1")
                       and "PixelData" in source)
                native_by_number, stored_by_number = {}, {}
                for position, number in enumerate(numbers):
                    frame = instance["ImageFrames"][number - 1]
                    codestream = cli("image-set", "frame", "--datastore-id", datastore, image_set_id, frame["ID"])
                    if native is not None:
                        expected = numpy.ascontiguousarray(pixels[number - 1]).astype(pixels.dtype.newbyteorder("<")).tobytes()
                        if raw:
                            expected = source.PixelData[(number - 1) * frame_bytes:number * frame_bytes]
                        elif source.BitsAllocated == 1:
                            # Native Pixel Data packs 1-bit samples eight to a byte, the first in the lowest bit.
                            expected = numpy.packbits(pixels[number - 1].ravel(), bitorder="little").tobytes()
                        check(native[position] == expected,
                              f"{sop_uid} frame {number} in ELE: {len(native[position])} bytes, pydicom's {len(expected)}")
                        check(stored[position] == codestream, f"{sop_uid} frame {number} as stored equals GetImageFrame's")
                        native_by_number[number], stored_by_number[number] = native[position], stored[position]
                        frames_native += 1
                        frames_stored += 1
                if primary:
                    # GetDICOMInstance: as dicomweb-client asks it (multipart, transfer-syntax=*), and as one ELE body.
                    as_stored = client.retrieve_instance(study_uid, series_uid, sop_uid)
                    answer = session.get(f"{base}/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}",
                                         headers={"Accept": "application/dicom; transfer-syntax=1.2.840.10008.1.2.1"})
                    check(answer.status_code == 200 and answer.headers["Content-Type"].startswith("application/dicom"),
                          f"{sop_uid} as one ELE P10 body: {answer.status_code} {answer.text[:200]}")
                    ele = pydicom.dcmread(io.BytesIO(answer.content))
                    bodies[("ele", sop_uid)] = answer.content
                    raw_stored = session.get(f"{base}/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}",
                                             headers={"Accept": "application/dicom; transfer-syntax=*"})
                    check(raw_stored.status_code == 200, f"{sop_uid} as one stored P10 body")
                    bodies[("stored", sop_uid)] = raw_stored.content
                    check(ele.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1", "the ELE answer says ELE")
                    check(as_stored.file_meta.TransferSyntaxUID == instance["StoredTransferSyntaxUID"], "as stored says the stored syntax")
                    for rebuilt, name in ((ele, "ELE"), (as_stored, "as stored")):
                        compare(source, rebuilt, f"GetDICOMInstance {name} {sop_uid}", unicode_charset=True)
                    joined = b"".join(native_by_number[number] for number in range(1, count + 1))
                    check(ele.PixelData[:len(joined)] == joined and len(ele.PixelData) - len(joined) in (0, 1),
                          f"{sop_uid}: the ELE instance's Pixel Data is its ELE frames")
                    if instance["StoredTransferSyntaxUID"] in ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1"):
                        check(as_stored.PixelData == ele.PixelData, f"{sop_uid}: a native instance as stored is its frames")
                    else:
                        fragments = list(generate_frames(as_stored.PixelData, number_of_frames=count))
                        check([bytes(f).rstrip(b"\0") for f in fragments]
                              == [stored_by_number[number].rstrip(b"\0") for number in range(1, count + 1)],
                              f"{sop_uid}: the instance as stored holds its stored frames")
                    instances_rebuilt += 1
    seen.update(instances=instances_seen, nativeFrames=frames_native, storedFrames=frames_stored, rebuilt=instances_rebuilt)
    check(instances_seen == len(sources) + 1, f"every instance read: {instances_seen} of {len(sources) + 1}")
    # The bulky instance's two values, from its series and its instance metadata.
    check(len(bulk_uris) == 4 and len(set(bulk_uris)) == 2, f"two values as BulkDataURIs: {bulk_uris}")
    seen["bulkData"] = len(set(bulk_uris))
    check(session.get(bulk_uris[0][:-5] + "00000").status_code == 404, "an unknown bulk data key is 404")

    # `export` writes the same files GetDICOMInstance answers, byte for byte, for each study, ELE and as stored.
    exported = 0
    for syntax in ("ele", "stored"):
        folder = os.path.join(work, "export-" + syntax)
        for study in {doc["Study"]["DICOM"]["StudyInstanceUID"] for doc in documents.values()}:
            cli("export", "--datastore-id", datastore, "--study", study, "--transfer-syntax", syntax, "--to", folder, "--no-progress")
        for path in glob.glob(os.path.join(folder, "*", "*", "*.dcm")):
            sop = os.path.basename(path)[:-4]
            check(open(path, "rb").read() == bodies[(syntax, sop)], f"export {syntax} of {sop} equals GetDICOMInstance's")
            exported += 1
    check(exported == 2 * instances_rebuilt, f"export wrote every primary instance twice: {exported}")
    seen["exported"] = exported

    # Refusals, each with its status.
    study_uid = documents[[key for key in documents if key not in non_primary][0]]["Study"]["DICOM"]["StudyInstanceUID"]
    some = next((sop, series_uid, doc) for doc in documents.values() for series_uid, series in doc["Study"]["Series"].items()
                for sop, instance in series["Instances"].items() if instance["StoredTransferSyntaxUID"] == "1.2.840.10008.1.2.4.202"
                and doc["ImageSetID"] not in non_primary)
    sop, series_uid, doc = some
    study_uid = doc["Study"]["DICOM"]["StudyInstanceUID"]
    instance_path = f"{base}/studies/{study_uid}/series/{series_uid}/instances/{sop}"
    statuses = {
        "jpegOfHTJ2K": session.get(instance_path + "/frames/1", headers={"Accept": 'multipart/related; type="image/jpeg"'}).status_code,
        "htj2kAsked": session.get(instance_path + "/frames/1", headers={
            "Accept": 'multipart/related; type="image/jphc"; transfer-syntax=1.2.840.10008.1.2.4.202'}).status_code,
        "unknownSeries": session.get(f"{base}/studies/{study_uid}/series/1.2.3.999/metadata").status_code,
        "unknownInstance": session.get(f"{base}/studies/{study_uid}/series/{series_uid}/instances/1.2.3.999/metadata").status_code,
        "frameOutOfRange": session.get(instance_path + "/frames/999").status_code,
        "repeatedFrame": session.get(instance_path + "/frames/1,1").status_code,
        "frameListNotNumbers": session.get(instance_path + "/frames/1,x").status_code,
        "hugeFrameList": session.get(instance_path + "/frames/" + ",".join(str(n) for n in range(1, 20001))).status_code,
        "dotDotUID": session.get(f"{base}/studies/1..2/series/{series_uid}/metadata").status_code,
        "encodedSlash": session.get(f"{base}/studies/{study_uid}%2F..%2F/series/{series_uid}/metadata").status_code,
        "unsigned": requests.get(f"{base}/studies/{study_uid}/series/{series_uid}/metadata").status_code,
        "badImageSetId": session.get(f"{base}/studies/{study_uid}/series/{series_uid}/metadata", params={"imageSetId": "../x"}).status_code,
    }
    seen["statuses"] = statuses
    expected = {"jpegOfHTJ2K": 406, "htj2kAsked": 200, "unknownSeries": 404, "unknownInstance": 404, "frameOutOfRange": 404,
                "repeatedFrame": 400, "frameListNotNumbers": 400, "dotDotUID": 400, "encodedSlash": 400, "unsigned": 403,
                "badImageSetId": 400}
    for name, status in expected.items():
        check(statuses[name] == status, f"{name}: {statuses[name]}, not {status}")
    check(statuses["hugeFrameList"] in (400, 414, 431), f"a list of 20,000 frames is refused: {statuses['hugeFrameList']}")

    # Bearer tokens: a valid one reads DICOMweb (dicomweb-client with a plain session), every bad one is refused.
    series_path = f"{base}/studies/{study_uid}/series/{series_uid}/metadata"
    bearer = requests.Session()
    bearer.headers["Authorization"] = "Bearer " + token()
    read = DICOMwebClient(url=base, session=bearer).retrieve_series_metadata(study_uid, series_uid)
    check(len(read) > 0, "a valid bearer token reads series metadata")
    bad_tokens = {
        "otherKey": token(key=other_key), "otherIssuer": token(issuer="https://evil.example/"),
        "otherAudience": token(audience="something-else"), "expired": token(expires=-120),
        "otherDatastore": token(datastores=["0" * 32]), "algNone": token(algorithm="none"),
        "unknownKid": token(key=other_key, kid="nobody"), "garbage": "not.a.jwt",
    }
    token_statuses = {name: requests.get(series_path, headers={"Authorization": "Bearer " + value}).status_code
                      for name, value in bad_tokens.items()}
    token_statuses["restAPI"] = requests.get(f"http://127.0.0.1:{port}/datastore",
                                             headers={"Authorization": "Bearer " + token()}).status_code
    seen["bearer"] = token_statuses
    for name, status in token_statuses.items():
        check(status == 403, f"bearer token {name}: {status}, not 403")

    # A key set from a URL: fetched when a second server starts, and again when a token names a key the set lacks
    # (the issuer rotated its keys); a token of the key rotated out is then refused.
    if scenario == "sqlite":
        import http.server
        import threading
        served = {"jwks": json.dumps({"keys": [public_jwk]}).encode(), "fetches": 0}

        class KeySet(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                served["fetches"] += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(served["jwks"])))
                self.end_headers()
                self.wfile.write(served["jwks"])

            def log_message(self, *arguments):
                pass

        key_server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), KeySet)
        threading.Thread(target=key_server.serve_forever, daemon=True).start()
        url_config = os.path.join(work, "server-jwks-url.json")
        json.dump({"oidc": {"issuer": "https://idp.example/", "audience": "dicomweb",
                            "jwks": f"http://127.0.0.1:{key_server.server_address[1]}/jwks.json"}}, open(url_config, "w"))
        second_port = free_port()
        second = subprocess.Popen([binary, "serve", *location, "--host", "127.0.0.1", "--port", str(second_port), "--config", url_config],
                                  env=environment, stdout=open(os.path.join(work, "serve-jwks-url.log"), "w"), stderr=subprocess.STDOUT)
        try:
            wait_for(f"http://127.0.0.1:{second_port}/healthz", second, "serve with a key set URL")
            check(served["fetches"] == 1, f"the key set is fetched at start: {served['fetches']}")
            second_path = f"http://127.0.0.1:{second_port}/datastore/{datastore}/studies/{study_uid}/series/{series_uid}/metadata"
            rotated_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            rotated_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rotated_key.public_key()))
            rotated_jwk.update(kid="rotated-key", alg="RS256", use="sig")
            url_statuses = {"beforeRotation": requests.get(second_path, headers={"Authorization": "Bearer " + token()}).status_code}
            served["jwks"] = json.dumps({"keys": [rotated_jwk]}).encode()
            url_statuses["rotatedKey"] = requests.get(
                second_path, headers={"Authorization": "Bearer " + token(key=rotated_key, kid="rotated-key")}).status_code
            url_statuses["keyRotatedOut"] = requests.get(second_path, headers={"Authorization": "Bearer " + token()}).status_code
            url_statuses["fetches"] = served["fetches"]
            seen["jwksURL"] = url_statuses
            check(url_statuses == {"beforeRotation": 200, "rotatedKey": 200, "keyRotatedOut": 403, "fetches": 2},
                  f"keys from a URL follow the issuer's rotation: {url_statuses}")
        finally:
            second.terminate()
            second.wait(timeout=30)
            key_server.shutdown()

    # QIDO-RS, last: its checks end by updating and deleting image sets of its corpus.
    primary = {uid: pydicom.dcmread(path, stop_before_pixels=True) for uid, path in sources.items()}
    primary.update(corpus)
    qido_checks.Searches(client, session, base, primary, non_primary[0], pydicom.dcmread(conflict_path, stop_before_pixels=True),
                         cli, datastore, image_set_of_series, work).run()

    # A stored frame changed behind the catalog's back (a byte of its codestream flipped in its frame pack): ELE
    # is refused with a 500 before a byte is sent (its samples no longer have the CRC-32 recorded at import),
    # and the log says why; as stored, the bytes are what storage holds.
    if scenario == "sqlite":
        frame_id = doc["Study"]["Series"][series_uid]["Instances"][sop]["ImageFrames"][0]["ID"]
        codestream = cli("image-set", "frame", "--datastore-id", datastore, doc["ImageSetID"], frame_id)
        tampered = 0
        for pack in glob.glob(os.path.join(store, "frames", "**", "*"), recursive=True):
            if not os.path.isfile(pack):
                continue
            data = bytearray(open(pack, "rb").read())
            at = data.find(codestream)
            if at >= 0:
                data[at + len(codestream) // 2] ^= 0xFF
                open(pack, "wb").write(bytes(data))
                tampered += 1
        check(tampered == 1, f"the frame's pack was found: {tampered}")
        frame_path = instance_path + "/frames/1"
        ele = session.get(frame_path, headers={"Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.1'})
        as_stored = session.get(frame_path, headers={"Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=*'})
        log.flush()
        seen["tamperedFrame"] = {"ele": ele.status_code, "stored": as_stored.status_code}
        check(ele.status_code == 500, f"a changed frame is not served in ELE: {ele.status_code}")
        check(as_stored.status_code == 200 and codestream not in as_stored.content, "as stored, it is what storage holds")
        check("not served" in open(os.path.join(work, "serve.log")).read(), "the refusal is logged")
    log.flush()
    logged = open(os.path.join(work, "serve.log")).read()
    check(not any(value in logged for value in list(bad_tokens.values()) + [token()]), "no token is logged")
    check(server.poll() is None, "serve is still up")
    seen["ok"] = True
finally:
    server.terminate()
    server.wait(timeout=30)
print(json.dumps(seen))
