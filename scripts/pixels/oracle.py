#!/usr/bin/env python3
"""Pixel oracle for the import's pixel stage.

For every DICOM file given, imports it alone with the built `dicom-ingest` into a scratch store, reads the stored
frames back through `dicom-ingest image-set frame`, and checks each against an independent reference:

- the reference pixels: pydicom's decode of the source (pydicom 3 with its pylibjpeg/pyjpegls plugins), or, for a
  generated fixture, pydicom's decode of its uncompressed sibling (`--reference NAME=SIBLING`), since OpenJPEG
  (behind pylibjpeg) mis-decodes signed HTJ2K;
- frames stored as HTJ2K (.202): decoded by OpenJPEG (pylibjpeg-openjpeg) and by OpenJPH's `ojph_expand`, each
  where it is right (OpenJPEG 2.5 mis-decodes signed 16-bit HTJ2K; ojph_expand's raw writer clips negative
  samples below 16 bits), so every frame has at least one decoder that is not ours; both must equal the reference
  bit for bit; the codestream must carry TLM, RPCL and one tile-part per resolution, and its first k tile-parts
  must decode to the same lower resolution as the whole codestream does;
- the stored `Checksum` must equal zlib's CRC-32 of the reference in the decoded layout (1 byte per sample up to
  8 bits stored, else 16-bit little endian, interleaved);
- frames kept as they arrived (lossy syntaxes) must be byte-identical to the source's frame.

Prints one line per file (OK, RJCT: rejected by an import rule that is not about pixels, such as a missing UID,
SKIP: pydicom cannot decode it, FAIL) and exits 1 if any check fails.
"""
import argparse, json, os, shutil, struct, subprocess, sys, tempfile, zlib

import numpy as np
import pydicom
from pydicom.encaps import generate_frames
from pydicom.pixels import pixel_array

TRANSCODED = "1.2.840.10008.1.2.4.202"
# Lossy sources HealthImaging still transcodes (JPEG extended): decoders may differ by one in the last bit (IDCT
# rounding; DCMTK's and pydicom's libjpeg differ so on this corpus), so they are compared within that tolerance,
# and the stored checksum against the independent decode of what was stored.
LOSSY_TRANSCODED = {"1.2.840.10008.1.2.4.51"}


def decoded_layout(ds, frame):
    """The reference frame as bytes in the engine's decoded layout."""
    bits = int(ds.get("BitsStored", ds.BitsAllocated))
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    array = np.asarray(frame)
    if bits <= 8:
        return array.astype(np.int8 if signed else np.uint8).tobytes()
    return array.astype("<i2" if signed else "<u2").tobytes()


def reference_frames(ds):
    # As stored: no YCbCr to RGB conversion (the engine stores samples as the source holds them).
    array = pixel_array(ds, as_rgb=False)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    return [array] if frames == 1 else [array[i] for i in range(frames)]


def run(cli, *args):
    result = subprocess.run([cli, *args], capture_output=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:2])}: exit {result.returncode}: {result.stderr.decode()[-400:]}")
    return result.stdout


def codestream_layout(data):
    """(decompositions, progression, TLM present, number of SOT markers) of a one-tile codestream."""
    offset, tlm, cod = 2, False, None
    while True:
        marker, length = struct.unpack(">HH", data[offset:offset + 4])
        if marker == 0xFF90:
            break
        if marker == 0xFF55:
            tlm = True
        if marker == 0xFF52:
            cod = data[offset:offset + 2 + length]
        offset += 2 + length
    sots = 0
    while struct.unpack(">H", data[offset:offset + 2])[0] == 0xFF90:
        sots += 1
        offset += struct.unpack(">I", data[offset + 6:offset + 10])[0]
    return cod[9], cod[5], tlm, sots


def ojph_decode(path, skip, work, signed, bits, components):
    out = os.path.join(work, "expand.raw" if components == 1 else "expand.ppm")
    subprocess.run(["ojph_expand", "-i", path, "-o", out, "-skip_res", f"{skip},{skip}"], check=True, capture_output=True)
    data = open(out, "rb").read()
    if components == 1:
        return data
    # PPM: "P6", width, height, maxval separated by white space, one white space, then the samples (big endian
    # above 8 bits).
    fields, offset = 0, 0
    while fields < 4:
        while data[offset:offset + 1].isspace():
            offset += 1
        while not data[offset:offset + 1].isspace():
            offset += 1
        fields += 1
    body = data[offset + 1:]
    if bits > 8:
        body = np.frombuffer(body, ">u2").astype("<u2").tobytes()
    return body


def openjpeg_decode_array(data):
    import openjpeg
    return openjpeg.decode(data)


def openjpeg_decode(data, reduce, ds, work):
    """OpenJPEG's decode: pylibjpeg-openjpeg at full resolution, `opj_decompress -r` for lower ones."""
    if reduce == 0:
        import openjpeg
        return decoded_layout(ds, np.asarray(openjpeg.decode(data)))
    source, target = os.path.join(work, "reduce.j2c"), os.path.join(work, "reduce.rawl")
    open(source, "wb").write(data)
    subprocess.run(["opj_decompress", "-i", source, "-o", target, "-r", str(reduce)], check=True, capture_output=True)
    raw = open(target, "rb").read()
    bits = int(ds.get("BitsStored", ds.BitsAllocated))
    components = int(ds.get("SamplesPerPixel", 1))
    if bits <= 8 and components == 1:
        return raw
    if bits <= 8:  # .rawl keeps planes; interleave them
        planes = np.frombuffer(raw, np.uint8).reshape(components, -1)
        return planes.T.tobytes()
    planes = np.frombuffer(raw, "<u2").reshape(components, -1)
    return planes.T.astype("<u2").tobytes()


def is_pixel_problem(message):
    """A rejection for the pixel stage to answer for (others, like a missing UID, are the importer's rules)."""
    return "Frame" in message or "Pixel Data" in message or "frame" in message


def check_file(cli, path, reference_path, work):
    problems = []
    source = pydicom.dcmread(path)
    reference = pydicom.dcmread(reference_path)
    folder = os.path.join(work, "in")
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        os.remove(os.path.join(folder, name))
    shutil.copyfile(path, os.path.join(folder, "input.dcm"))
    store = os.path.join(work, "store")
    summary = json.loads(run(cli, "import", folder, "--output", os.path.join(work, "out"), "--store", store, "--json",
                             "--no-progress"))
    job_folder = summary["jobOutputFolder"]
    failures = open(os.path.join(job_folder, "FAILURE/failure.ndjson")).read().strip()
    if failures:
        message = json.loads(failures)["exception"]["message"]
        return "REJECTED: " + message, [] if not is_pixel_problem(message) else [message], None
    success = [json.loads(line) for line in open(os.path.join(job_folder, "SUCCESS/success.ndjson"))]
    image_set = success[0]["importResponse"]["imageSetId"]
    datastore = summary["datastoreId"]
    document = json.loads(run(cli, "image-set", "metadata", image_set, "--store", store, "--datastore-id", datastore))
    instance = None
    for series in document["Study"]["Series"].values():
        instance = series["Instances"].get(str(source.SOPInstanceUID).strip(), instance)
    stored_syntax = instance["StoredTransferSyntaxUID"]
    warnings = open(os.path.join(job_folder, "WARNING/warning.ndjson")).read()
    if stored_syntax == source.file_meta.TransferSyntaxUID and not source.file_meta.TransferSyntaxUID.is_compressed \
            and "FrameKeptAsIs" not in warnings:
        problems.append("a lossless frame was kept as it arrived without a FrameKeptAsIs warning")
    expected = reference_frames(reference)
    source_frames = None
    if source.file_meta.TransferSyntaxUID.is_compressed:
        source_frames = list(generate_frames(source.PixelData, number_of_frames=int(source.get("NumberOfFrames", 1) or 1)))
    signed = int(source.get("PixelRepresentation", 0)) == 1
    bits = int(source.get("BitsStored", source.BitsAllocated))
    components = int(source.get("SamplesPerPixel", 1))
    frames = instance["ImageFrames"]
    if len(frames) != len(expected):
        problems.append(f"{len(frames)} frames stored, {len(expected)} expected")
    for index, frame in enumerate(frames):
        stored_path = os.path.join(work, "frame.j2c")
        run(cli, "image-set", "frame", image_set, frame["ID"], "--store", store, "--datastore-id", datastore, "-o",
            stored_path)
        stored = open(stored_path, "rb").read()
        want = decoded_layout(reference, expected[index])
        if stored_syntax == TRANSCODED and source.file_meta.TransferSyntaxUID in LOSSY_TRANSCODED:
            theirs = np.asarray(openjpeg_decode_array(stored)).astype(np.int64)
            difference = np.abs(theirs - np.asarray(expected[index]).astype(np.int64)).max()
            if difference > 1:
                problems.append(f"frame {index + 1}: lossy source decoded {difference} away from pydicom's")
            want = decoded_layout(reference, theirs)
        if stored_syntax == TRANSCODED:
            checksum = frame["PixelDataChecksumFromBaseToFullResolution"][-1]["Checksum"]
            if checksum != zlib.crc32(want):
                problems.append(f"frame {index + 1}: stored CRC-32 {checksum}, reference {zlib.crc32(want)}")
            use_openjpeg = not (signed and bits == 16)
            use_ojph = not (signed and bits < 16)
            if use_ojph and ojph_decode(stored_path, 0, work, signed, bits, components) != want:
                problems.append(f"frame {index + 1}: ojph_expand's decode differs from the reference")
            if use_openjpeg and openjpeg_decode(stored, 0, reference, work) != want:
                problems.append(f"frame {index + 1}: OpenJPEG's decode differs from the reference")
            levels, progression, tlm, tile_parts = codestream_layout(stored)
            rows, columns = int(source.Rows), int(source.Columns)
            if progression != 2 or not tlm or tile_parts != levels + 1 or max(rows - 1, columns - 1) >> levels >= 64:
                problems.append(f"frame {index + 1}: not .202 (levels {levels}, progression {progression}, TLM {tlm}, "
                                f"{tile_parts} tile-parts)")
            for skip in range(1, levels + 1):
                prefix_path = os.path.join(work, "prefix.j2c")
                run(cli, "image-set", "frame", image_set, frame["ID"], "--store", store, "--datastore-id", datastore,
                    "--resolution", str(skip), "-o", prefix_path)
                prefix = open(prefix_path, "rb").read()
                if use_openjpeg:
                    same = openjpeg_decode(prefix, skip, reference, work) == openjpeg_decode(stored, skip, reference, work)
                else:
                    same = ojph_decode(prefix_path, skip, work, signed, bits, components) == \
                        ojph_decode(stored_path, skip, work, signed, bits, components)
                if not same or len(prefix) >= len(stored):
                    problems.append(f"frame {index + 1}: the first {levels + 1 - skip} tile-parts do not decode to "
                                    f"resolution {skip}")
        elif source_frames is not None and stored != source_frames[index]:
            problems.append(f"frame {index + 1}: kept frame differs from the source's bytes")
        elif source_frames is None:
            size = int(source.Rows) * int(source.Columns) * components * int(source.BitsAllocated) // 8
            if stored != source.PixelData[index * size:(index + 1) * size]:
                problems.append(f"frame {index + 1}: kept native frame differs from the source's Pixel Data")
    return stored_syntax, problems, len(frames)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("cli")
    parser.add_argument("files", nargs="+")
    parser.add_argument("--reference", action="append", default=[], help="NAME=SIBLING: reference pixels for NAME")
    args = parser.parse_args()
    references = dict(item.split("=", 1) for item in args.reference)
    failed = 0
    checked = 0
    with tempfile.TemporaryDirectory() as work:
        for path in args.files:
            name = os.path.basename(path)
            reference = references.get(name, path)
            try:
                pixel_array(pydicom.dcmread(reference), as_rgb=False)
            except Exception as error:  # pydicom cannot decode it: no reference, not checked
                print(f"SKIP  {name}: pydicom cannot decode the reference ({type(error).__name__})")
                continue
            try:
                syntax, problems, frames = check_file(args.cli, path, reference, work)
            except Exception as error:
                syntax, problems, frames = "ERROR", [repr(error)], None
            checked += 1
            status = ("OK  " if not syntax.startswith("REJECTED") else "RJCT") if not problems else "FAIL"
            failed += bool(problems)
            print(f"{status}  {name}: {pydicom.dcmread(path).file_meta.TransferSyntaxUID} -> {syntax}, {frames} frames"
                  + "".join(f"\n      {problem}" for problem in problems))
    print(f"pixels: {checked - failed} passed, {failed} failed")
    sys.exit(1 if failed or checked == 0 else 0)


main()
