#!/usr/bin/env python3
"""Drives a running `dicom-ingest serve` with the unmodified boto3 `medical-imaging` client and the aws cli.

Usage: boto3_e2e.py SERVER_URL S3_URL FILE [FILE ...]
Environment: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (the server's identity; the S3 server accepts any).
Uploads the files to a new bucket on the S3 server, imports them through StartDICOMImportJob, polls the job,
reads the manifest and result files from S3, searches image sets, fetches metadata (gunzip) and a frame,
repeats the start with the same clientToken, checks modeled exceptions, and runs `aws medical-imaging`.
Prints one JSON object with what it saw; exits non-zero on the first failed check.
"""
import gzip
import json
import os
import subprocess
import sys
import time
import uuid

import boto3
from botocore.config import Config

server, s3_url, files = sys.argv[1], sys.argv[2], sys.argv[3:]
region = "us-east-1"
s3 = boto3.client("s3", endpoint_url=s3_url, region_name=region)
mi = boto3.client("medical-imaging", endpoint_url=server, region_name=region,
                  config=Config(inject_host_prefix=False, retries={"max_attempts": 2}))
seen = {}


def check(condition, message):
    if not condition:
        print(json.dumps({"failed": message, "seen": seen}, default=str))
        sys.exit(1)


bucket = "e2e-" + uuid.uuid4().hex[:12]
s3.create_bucket(Bucket=bucket)
for index, path in enumerate(files):
    s3.upload_file(path, bucket, f"dicom_input/séries {index % 2}/{os.path.basename(path)}")
s3.put_object(Bucket=bucket, Key="dicom_input/notes.txt", Body=b"not dicom")

datastore = mi.create_datastore(datastoreName="e2e")["datastoreId"]
check(mi.get_datastore(datastoreId=datastore)["datastoreProperties"]["datastoreStatus"] == "ACTIVE", "datastore ACTIVE")
token = str(uuid.uuid4())
request = dict(datastoreId=datastore, jobName="e2e-job", clientToken=token,
               dataAccessRoleArn="arn:aws:iam::123456789012:role/ImportJobDataAccessRole",
               inputS3Uri=f"s3://{bucket}/dicom_input/", outputS3Uri=f"s3://{bucket}/job_output/")
started = mi.start_dicom_import_job(**request)
check(started["jobStatus"] == "SUBMITTED", "SUBMITTED")
job_id = started["jobId"]
deadline = time.time() + 120
while True:
    job = mi.get_dicom_import_job(datastoreId=datastore, jobId=job_id)["jobProperties"]
    if job["jobStatus"] in ("COMPLETED", "FAILED") or time.time() > deadline:
        break
    time.sleep(0.3)
seen["jobStatus"] = job["jobStatus"]
check(job["jobStatus"] == "COMPLETED", f"job COMPLETED: {job}")
check(hasattr(job["submittedAt"], "year") and hasattr(job["endedAt"], "year"), "timestamps parse as datetimes")
# Our jobSummary extension is not in the service model: the SDK skips it, as it must.
check("jobSummary" not in job, "boto3 skips the jobSummary extension")
again = mi.start_dicom_import_job(**request)
check(again["jobId"] == job_id, "same clientToken, same job")

folder = f"job_output/{datastore}-DicomImport-{job_id}/"
manifest = json.loads(s3.get_object(Bucket=bucket, Key=folder + "job-output-manifest.json")["Body"].read())["jobSummary"]
success = [json.loads(line) for line in s3.get_object(Bucket=bucket, Key=folder + "SUCCESS/success.ndjson")["Body"].read().splitlines()]
failure = [json.loads(line) for line in s3.get_object(Bucket=bucket, Key=folder + "FAILURE/failure.ndjson")["Body"].read().splitlines()]
seen.update(scanned=manifest["numberOfScannedFiles"], imported=manifest["numberOfImportedFiles"],
            failures=[line["inputFile"] for line in failure])
check(manifest["numberOfScannedFiles"] == len(files) + 1, "scanned count")
check(manifest["numberOfImportedFiles"] == len(success), "imported count")
check([line["inputFile"] for line in failure] == ["dicom_input/notes.txt"], "junk reported")

jobs = mi.list_dicom_import_jobs(datastoreId=datastore)["jobSummaries"]
check(any(j["jobId"] == job_id for j in jobs), "job listed")
paginator = mi.get_paginator("search_image_sets")
summaries = [s for page in paginator.paginate(datastoreId=datastore, PaginationConfig={"PageSize": 1})
             for s in page["imageSetsMetadataSummaries"]]
seen["imageSets"] = len(summaries)
check(len(summaries) == len({line["importResponse"]["imageSetId"] for line in success}), "search finds every image set")
study = summaries[0]["DICOMTags"]["DICOMStudyInstanceUID"]
filtered = mi.search_image_sets(datastoreId=datastore, searchCriteria={
    "filters": [{"values": [{"DICOMStudyInstanceUID": study}], "operator": "EQUAL"}],
    "sort": {"sortOrder": "ASC", "sortField": "updatedAt"}})["imageSetsMetadataSummaries"]
check(len(filtered) >= 1 and all(s["DICOMTags"]["DICOMStudyInstanceUID"] == study for s in filtered), "filtered search")

image_set = summaries[0]["imageSetId"]
got = mi.get_image_set(datastoreId=datastore, imageSetId=image_set)
check(got["versionId"] == "1" and got["imageSetState"] == "ACTIVE", "GetImageSet")
metadata = mi.get_image_set_metadata(datastoreId=datastore, imageSetId=image_set)
check(metadata["contentEncoding"] == "gzip", "gzip content encoding")
document = json.loads(gzip.decompress(metadata["imageSetMetadataBlob"].read()))
check(document["ImageSetID"] == image_set and document["SchemaVersion"] == "1.1", "metadata document")
frames = [frame["ID"] for series in document["Study"]["Series"].values()
          for instance in series["Instances"].values() for frame in instance.get("ImageFrames", [])]
check(frames, "frames listed")
frame = mi.get_image_frame(datastoreId=datastore, imageSetId=image_set, imageFrameInformation={"imageFrameId": frames[0]})
seen["frameContentType"] = frame["contentType"]
check(len(frame["imageFrameBlob"].read()) > 0, "frame bytes")
versions = mi.list_image_set_versions(datastoreId=datastore, imageSetId=image_set)["imageSetPropertiesList"]
check(versions[0]["versionId"] == "1", "versions")

# UpdateImageSetMetadata: boto3 base64-encodes the blobs itself.
series_uid = next(iter(document["Study"]["Series"]))
sop = next(iter(document["Study"]["Series"][series_uid]["Instances"]))
# The image set is primary: its study and instance levels change; its patient level does not (spec §4.2).
updates = {"SchemaVersion": 1.1, "Study": {"DICOM": {"StudyDescription": "UPDATED BY BOTO3"},
                                           "Series": {series_uid: {"Instances": {sop: {"DICOM": {"ImageComments": "edited"}}}}}}}
updated = mi.update_image_set_metadata(datastoreId=datastore, imageSetId=image_set, latestVersionId="1",
                                       updateImageSetMetadataUpdates={"DICOMUpdates": {
                                           "updatableAttributes": json.dumps(updates).encode()}})
check(updated["latestVersionId"] == "2" and updated["imageSetWorkflowStatus"] == "UPDATED", f"update: {updated}")
document2 = json.loads(gzip.decompress(mi.get_image_set_metadata(
    datastoreId=datastore, imageSetId=image_set)["imageSetMetadataBlob"].read()))
check(document2["Study"]["DICOM"]["StudyDescription"] == "UPDATED BY BOTO3", "updated study description")
check(document2["Study"]["Series"][series_uid]["Instances"][sop]["DICOM"]["ImageComments"] == "edited", "updated instance")
document1 = json.loads(gzip.decompress(mi.get_image_set_metadata(
    datastoreId=datastore, imageSetId=image_set, versionId="1")["imageSetMetadataBlob"].read()))
check(document1 == document, "version 1 unchanged")
try:
    mi.update_image_set_metadata(datastoreId=datastore, imageSetId=image_set, latestVersionId="1",
                                 updateImageSetMetadataUpdates={"revertToVersionId": "1"})
    check(False, "stale latestVersionId accepted")
except mi.exceptions.ConflictException:
    pass
try:
    mi.update_image_set_metadata(datastoreId=datastore, imageSetId=image_set, latestVersionId="2",
                                 updateImageSetMetadataUpdates={"DICOMUpdates": {"updatableAttributes": json.dumps(
                                     {"Patient": {"DICOM": {"PatientName": "X^Y"}}}).encode()}})
    check(False, "patient-level update of a primary image set accepted")
except mi.exceptions.ValidationException:
    pass
# Refused as HealthImaging documents (issue 22): each a ValidationException naming what is wrong; nothing changes.
refused = [
    (b'{"Study":{"DICOM":{"StudyDescription":"a\xff"}}}', "not valid UTF-8"),
    (b'{"Study":{"DICOM":{"StudyDescription":"a\\u0000b"}}}', "NUL"),
    (b'{"Study":{"DICOM":{"__proto__":{"polluted":true}}}}', "__proto__ is not a DICOM attribute"),
    (b'{"Study":{"DICOM":{"StudyDescription":"a","StudyDescription":"b"}}}', "gives StudyDescription twice"),
    (b'{"Study":{"DICOM":{"StudyDate":"2024-01-01"}}}', "StudyDate does not fit its VR DA"),
    (b'{"Study":{"DICOM":{"ReferencedStudySequence":[{"ReferencedSOPInstanceUID":"1.2"}]}}}', "is a sequence"),
    (b'{"Study":{"DICOM":{"NameOfPhysiciansReadingStudy":["A^B","C^D"]}}}', "multi-valued changes need force=true"),
    (b'{"Study":{"DICOM":{"Modality":"MR"}}}', "Modality belongs at the series level"),
    (b'{"Study":{"DICOM":{"00091010":"AQA="}}}', "Private attribute 00091010"),
]
for body, words in refused:
    try:
        mi.update_image_set_metadata(datastoreId=datastore, imageSetId=image_set, latestVersionId="2",
                                     updateImageSetMetadataUpdates={"DICOMUpdates": {"updatableAttributes": body}})
        check(False, f"refused update accepted: {body}")
    except mi.exceptions.ValidationException as error:
        check(words in error.response["Error"]["Message"], f"{body}: {error.response['Error']['Message']}")
seen["refusedUpdates"] = len(refused)
check(mi.get_image_set(datastoreId=datastore, imageSetId=image_set)["versionId"] == "2", "refused updates made no version")
reverted = mi.update_image_set_metadata(datastoreId=datastore, imageSetId=image_set, latestVersionId="2",
                                        updateImageSetMetadataUpdates={"revertToVersionId": "1"})
check(reverted["latestVersionId"] == "3", "revert is a new version")
document3 = json.loads(gzip.decompress(mi.get_image_set_metadata(
    datastoreId=datastore, imageSetId=image_set)["imageSetMetadataBlob"].read()))
check(document3["Patient"] == document["Patient"] and document3["Study"] == document["Study"], "revert restores version 1")
# CopyImageSet: into a new (non-primary) image set, then a promotion refused while the series has a primary.
copied = mi.copy_image_set(datastoreId=datastore, sourceImageSetId=image_set, copyImageSetInformation={
    "sourceImageSet": {"latestVersionId": "3", "DICOMCopies": {"copiableAttributes": json.dumps(
        {"SchemaVersion": 1.1, "Study": {"Series": {series_uid: {"Instances": {sop: {}}}}}})}}})
copy_id = copied["destinationImageSetProperties"]["imageSetId"]
check(copy_id != image_set and copied["destinationImageSetProperties"]["latestVersionId"] == "1", f"copy: {copied}")
check(copied["sourceImageSetProperties"]["latestVersionId"] == "3", "source unchanged")
check(mi.get_image_set(datastoreId=datastore, imageSetId=copy_id)["isPrimary"] is False, "copy is not primary")
copy_document = json.loads(gzip.decompress(mi.get_image_set_metadata(
    datastoreId=datastore, imageSetId=copy_id)["imageSetMetadataBlob"].read()))
check(list(copy_document["Study"]["Series"][series_uid]["Instances"]) == [sop], "copy holds the chosen instance")
copy_frames = [frame["ID"] for frame in copy_document["Study"]["Series"][series_uid]["Instances"][sop].get("ImageFrames", [])]
source_frames = [frame["ID"] for frame in document["Study"]["Series"][series_uid]["Instances"][sop].get("ImageFrames", [])]
check(copy_frames == source_frames, "the copy names its instance's frames by the source's frame IDs (README, CopyImageSet)")
if copy_frames:
    frame = mi.get_image_frame(datastoreId=datastore, imageSetId=copy_id, imageFrameInformation={"imageFrameId": copy_frames[0]})
    check(len(frame["imageFrameBlob"].read()) > 0, "frame of the copy")
try:
    mi.copy_image_set(datastoreId=datastore, sourceImageSetId=copy_id, promoteToPrimary=True,
                      copyImageSetInformation={"sourceImageSet": {"latestVersionId": "1"}})
    check(False, "a second primary image set for the series accepted")
except mi.exceptions.ConflictException:
    pass
seen["versionsAfterUpdates"] = len(mi.list_image_set_versions(datastoreId=datastore, imageSetId=image_set)["imageSetPropertiesList"])

# includeStudyImageSets: a study-level change made on the copy reaches the primary image set of the study too.
before = int(mi.get_image_set(datastoreId=datastore, imageSetId=image_set)["versionId"])
study_update = json.dumps({"SchemaVersion": 1.1, "Study": {"DICOM": {"StudyDescription": "STUDY WIDE"}}}).encode()
mi.update_image_set_metadata(datastoreId=datastore, imageSetId=copy_id, latestVersionId="1", includeStudyImageSets=True,
                             updateImageSetMetadataUpdates={"DICOMUpdates": {"updatableAttributes": study_update}})
primary_document = json.loads(gzip.decompress(mi.get_image_set_metadata(
    datastoreId=datastore, imageSetId=image_set)["imageSetMetadataBlob"].read()))
check(primary_document["Study"]["DICOM"].get("StudyDescription") == "STUDY WIDE", "study-wide update reached the primary")
check(int(mi.get_image_set(datastoreId=datastore, imageSetId=image_set)["versionId"]) == before + 1, "one new primary version")
# ListImageSetVersions through boto3's paginator, a version a page: every version once, newest first.
pages = mi.get_paginator("list_image_set_versions").paginate(
    datastoreId=datastore, imageSetId=image_set, PaginationConfig={"PageSize": 1})
listed = [item["versionId"] for page in pages for item in page["imageSetPropertiesList"]]
check(listed == [str(v) for v in range(before + 1, 0, -1)], f"versions by page: {listed}")

try:
    mi.get_datastore(datastoreId="0" * 32)
    check(False, "unknown data store accepted")
except mi.exceptions.ResourceNotFoundException:
    pass
try:
    mi.start_dicom_import_job(**dict(request, clientToken=token, outputS3Uri=f"s3://{bucket}/elsewhere/"))
    check(False, "reused token with other parameters accepted")
except mi.exceptions.ConflictException:
    pass
try:
    mi.start_dicom_import_job(**dict(request, clientToken=str(uuid.uuid4()), inputS3Uri="not-an-s3-uri"))
    check(False, "bad inputS3Uri accepted")
except mi.exceptions.ValidationException as error:
    check("inputS3Uri" in str(error), "validation names the field")

environment = dict(os.environ, AWS_DISABLE_HOST_PREFIX_INJECTION="true", AWS_DEFAULT_REGION=region)
cli = subprocess.run(["aws", "medical-imaging", "list-datastores", "--endpoint-url", server, "--output", "json"],
                     capture_output=True, text=True, env=environment)
check(cli.returncode == 0, f"aws cli list-datastores: {cli.stderr}")
check(any(d["datastoreId"] == datastore for d in json.loads(cli.stdout)["datastoreSummaries"]), "aws cli sees the datastore")
cli = subprocess.run(["aws", "medical-imaging", "get-image-set", "--datastore-id", datastore, "--image-set-id", image_set,
                      "--endpoint-url", server, "--output", "json"], capture_output=True, text=True, env=environment)
check(cli.returncode == 0 and json.loads(cli.stdout)["imageSetId"] == image_set, f"aws cli get-image-set: {cli.stderr}")
seen["ok"] = True
print(json.dumps(seen, default=str))
