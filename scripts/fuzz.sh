#!/usr/bin/env bash
# libFuzzer on the engine's parsers (address sanitizer on).
#
#   scripts/fuzz.sh TARGET SECONDS [libFuzzer options...]   fuzz one target (p10, instance, archive, sigv4, s3xml,
#                                                            request, dicomweb, qido)
#   scripts/fuzz.sh replay                                   run every input of Fuzz/regressions/ once
#   scripts/fuzz.sh ci RUNS                                  replay, then fuzz every target for RUNS inputs with a
#                                                            fixed seed (repeatable: CI's result does not vary)
#
# Seeds come from the fixtures (fixtures/generate.sh) and small built examples; the working corpus lives in
# .build-fuzz/corpus/TARGET. A crash writes its input to Fuzz/crashes/: commit it under Fuzz/regressions/TARGET/
# with the fix, so every later run replays it.
set -euo pipefail
cd "$(dirname "$0")/.."
targets="p10 instance archive sigv4 s3xml request dicomweb qido"
# FUZZ_CONFIGURATION=release for long runs (several times the executions per second).
configuration=${FUZZ_CONFIGURATION:-debug}
# FUZZ_BINARY=path runs a copy built earlier (a long run then does not pick up, or wait for, later source edits).
binary=${FUZZ_BINARY:-.build-fuzz/$configuration/fuzz-dicom-ingest}
if [ -z "${FUZZ_BINARY:-}" ]; then
  DICOM_INGEST_FUZZ=1 swift build -c "$configuration" --scratch-path .build-fuzz --product fuzz-dicom-ingest \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -enable-testing -Xswiftc -use-ld=lld >&2
fi
# The decoders of outside input run in codec helper processes (DICOMPixels' CodecHelperPool): the fuzzed engine
# starts the CLI's own build as its helpers, built here if missing.
export DICOM_INGEST_CODEC_HELPER=${DICOM_INGEST_CODEC_HELPER:-$PWD/.build/debug/dicom-ingest}
[ -x "$DICOM_INGEST_CODEC_HELPER" ] || swift build --product dicom-ingest >&2
# Leak detection is off: DCMTK's and the codecs' process-wide tables are never freed.
options=(-rss_limit_mb=1536 -timeout=20 -max_len=1048576 -detect_leaks=0)
export ASAN_OPTIONS=detect_leaks=0

seeds() {
  local target=$1 folder=.build-fuzz/seeds-$2/$1
  rm -rf "$folder" && mkdir -p "$folder"
  case $target in
    p10|instance)
      [ -d fixtures/generated ] || fixtures/generate.sh >&2
      find fixtures/generated -name '*.dcm' -size -256k -exec cp {} "$folder/" \; ;;
    archive)
      [ -d fixtures/generated ] || fixtures/generate.sh >&2
      python3 - "$folder" fixtures/generated/ct_explicit_le.dcm <<'PY'
import gzip, io, sys, tarfile, zipfile
folder, dicom = sys.argv[1], sys.argv[2]
data = open(dicom, 'rb').read()
with zipfile.ZipFile(folder + '/deflated.zip', 'w', zipfile.ZIP_DEFLATED) as z: z.writestr('a.dcm', data)
with zipfile.ZipFile(folder + '/stored.zip', 'w') as z: z.writestr('b.dcm', data)
for name, mode in [('plain.tar', 'w'), ('packed.tar.gz', 'w:gz')]:
    with tarfile.open(folder + '/' + name, mode) as t:
        info = tarfile.TarInfo('dir/' + 'x' * 120 + '.dcm'); info.size = len(data); t.addfile(info, io.BytesIO(data))
open(folder + '/single.gz', 'wb').write(gzip.compress(data))
PY
      ;;
    sigv4)
      printf 'POST\n/datastore/abc/start-import\n\nAWS4-HMAC-SHA256 Credential=AKID/20251130/us-east-1/medical-imaging/aws4_request, SignedHeaders=host;x-amz-date, Signature=%064d\n20251130T000000Z\n%064d\n' 0 0 > "$folder/request" ;;
    request)
      printf '{"jobName":"my-job","dataAccessRoleArn":"arn:aws:iam::123456789012:role/Importer","clientToken":"90ece54b-9b35-4a01-a5a1-842646445383","inputS3Uri":"s3://in/dicom/","outputS3Uri":"s3://out/","filters":[{"operator":"BETWEEN","values":[{"createdAt":1.5},{"createdAt":2}]},{"operator":"EQUAL","values":[{"DICOMStudyDateAndTime":{"DICOMStudyDate":"19990101"}}]}]}' > "$folder/request.json"
      printf '{"SchemaVersion":1.1,"Patient":{"DICOM":{"PatientName":"A\\u00e9^B"}},"Study":{"DICOM":{"StudyID":"7"},"Series":{"1.2":{"DICOM":{"Modality":"CT"},"Instances":{"1.2.3":{"DICOM":{"Rows":2,"ImageType":["DERIVED","SECONDARY"],"WindowCenter":"4.5e1","00090010":"ACME","00091010":"AQA=","ReferencedImageSequence":[{"ReferencedSOPInstanceUID":"1.2"}]}},"1.2.4":{}}}}}}' > "$folder/update.json"
      printf '{"Study":{"DICOM":{"StudyDescription":"a\\ud800\\u0000","StudyDate":"2024-01-01","StudyDate":"x"}}}' > "$folder/refused.json" ;;
    dicomweb)
      printf 'multipart/related; type="application/octet-stream"; transfer-syntax=*, image/jphc;q=0.5\n3,1,2\n{"PatientName":"A=B=C","SeriesNumber":" 4","PixelSpacing":["0.5","1e2"],"SmallestImagePixelValue":-3,"00091001":"AAE=","IconImageSequence":[{"Rows":2,"PixelData":"AAAA"}],"ImageType":["A",""],"SpecificCharacterSet":"ISO_IR 100","InstitutionName":"K\\u00f6ln","Rows":2,"Columns":3,"BitsAllocated":16}' > "$folder/wado.txt"
      printf 'application/dicom; transfer-syntax="1.2.840.10008.1.2.1"; q=0.9, */*; q=0\n1\n{}' > "$folder/instance.txt" ;;
    qido)
      printf 'PatientName=D*%%5EJ%%3F&fuzzymatching=true&StudyDate=20240101-&limit=2&offset=1&includefield=00081030,all,00081032.00080100' > "$folder/studies.txt"
      printf 'StudyInstanceUID=1.2.826.0.1.3680043.17.0%%5C1.2&StudyTime=-1000&ModalitiesInStudy=CT%%5CMR&00100020=P1&SeriesNumber=1&InstanceNumber=+2&StudyDescription=a%%5B*&imageSetId=0123456789abcdef0123456789abcdef' > "$folder/keys.txt"
      printf 'SOPInstanceUID=1.2%%5C1.3&PatientName=%%25_%%5C*&ReferringPhysicianName=x?&NoSuchKey=1&limit=5000' > "$folder/instances.txt" ;;
    s3xml)
      printf '<?xml version="1.0"?><ListBucketResult><Contents><Key>a/b&amp;c.dcm</Key><Size>12</Size></Contents><Contents><Key>d/</Key><Size>0</Size></Contents><IsTruncated>true</IsTruncated><NextContinuationToken>t&#x41;</NextContinuationToken></ListBucketResult>' > "$folder/list.xml" ;;
  esac
  echo "$folder"
}

replay() {
  local status=0
  for target in $targets; do
    local inputs=(Fuzz/regressions/$target/*)
    [ -e "${inputs[0]}" ] || continue
    echo "replaying ${#inputs[@]} input(s) of $target" >&2
    DICOM_INGEST_FUZZ_TARGET=$target "$binary" "${options[@]}" "${inputs[@]}" >/dev/null 2>"/tmp/fuzz-replay-$target.log" || {
      echo "FAILED: $target regression corpus (see /tmp/fuzz-replay-$target.log)" >&2; tail -30 "/tmp/fuzz-replay-$target.log" >&2; status=1; }
  done
  return $status
}

fuzz() {
  local target=$1 seconds=$2; shift 2
  fuzz_for "$target" -max_total_time="$seconds" "$@"
}

fuzz_for() {
  local target=$1; shift
  local corpus=.build-fuzz/${FUZZ_CORPUS:-corpus}/$target
  mkdir -p "$corpus" Fuzz/crashes
  local seed_folder; seed_folder=$(seeds "$target" "${FUZZ_CORPUS:-corpus}")
  local regressions=Fuzz/regressions/$target
  mkdir -p "$regressions"
  local log=/tmp/fuzz-${FUZZ_CORPUS:-corpus}-$target.log
  echo "fuzzing $target ($*)" >&2
  DICOM_INGEST_FUZZ_TARGET=$target "$binary" "$corpus" "$seed_folder" "$regressions" "${options[@]}" \
    -artifact_prefix="Fuzz/crashes/$target-" -print_final_stats=1 "$@" 2>"$log" || {
      echo "FAILED: $target (see $log; inputs in Fuzz/crashes/)" >&2; tail -40 "$log" >&2; return 1; }
  grep -E "stat::number_of_executed_units|Done [0-9]+ runs" "$log" | tail -1 >&2
}

case ${1:-} in
  replay) replay ;;
  ci)
    replay
    # A corpus of its own, so a long run's corpus is neither used nor wiped.
    export FUZZ_CORPUS=ci-corpus
    for target in $targets; do rm -rf ".build-fuzz/ci-corpus/$target"; fuzz_for "$target" -runs="${2:-5000}" -seed=1; done ;;
  p10|instance|archive|sigv4|s3xml|request|dicomweb|qido) fuzz "$@" ;;
  *) echo "usage: scripts/fuzz.sh TARGET SECONDS | replay | ci RUNS   (targets: $targets)" >&2; exit 2 ;;
esac
