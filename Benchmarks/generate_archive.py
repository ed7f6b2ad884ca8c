#!/usr/bin/env python3
"""Writes a deterministic, realistic DICOM archive for tests and benchmarks (no network needed).

Usage: Benchmarks/generate_archive.py OUT_DIR [--studies N] [--series N] [--instances N] [--modality CT|MR]
           [--mix SYNTAX=FRACTION,...] [--junk FRACTION] [--truncated FRACTION] [--big-multiframe-mb N]
           [--many-small N] [--seed N]

- Files go to OUT_DIR/study-S/series-R/IMG-I.dcm: CT 512x512 16-bit (about 0.5 MB) or MR 256x256, with the header
  a scanner writes (patient, study, series, equipment and image attributes and a nested code sequence).
- --mix chooses transfer syntaxes by fraction: explicit, implicit, jpeg-lossless, jpeg-ls, j2k, rle (the rest is
  explicit VR little endian). Compressed files are made with DCMTK (dcmcjpeg, dcmcjpls, dcmcrle, dcmconv) and
  OpenJPEG (opj_compress), both Debian packages.
- --junk and --truncated add that fraction of non-DICOM files and DICOM files cut short, in nested folders.
- --big-multiframe-mb writes one native multi-frame file of about that size, streamed (never held in memory).
- --many-small writes N tiny files (hard links to one 8 KB instance under distinct names), for memory tests.
Same arguments, same bytes.
"""
import argparse
import os
import random
import shutil
import struct
import subprocess
import tempfile

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, CTImageStorage, MRImageStorage, JPEG2000Lossless

parser = argparse.ArgumentParser()
parser.add_argument("out")
parser.add_argument("--studies", type=int, default=10)
parser.add_argument("--series", type=int, default=3)
parser.add_argument("--instances", type=int, default=100)
parser.add_argument("--modality", choices=["CT", "MR"], default="CT")
parser.add_argument("--mix", default="")
parser.add_argument("--junk", type=float, default=0.0)
parser.add_argument("--truncated", type=float, default=0.0)
parser.add_argument("--big-multiframe-mb", type=int, default=0)
parser.add_argument("--many-small", type=int, default=0)
parser.add_argument("--seed", type=int, default=20261129)
args = parser.parse_args()

rng = random.Random(args.seed)
size = 512 if args.modality == "CT" else 256
sop_class = CTImageStorage if args.modality == "CT" else MRImageStorage
# A smooth image with noise: compresses like real anatomy, not like random bytes.
pixels = bytearray()
for y in range(size):
    for x in range(size):
        value = (1000 + int(600 * ((x - size / 2) ** 2 + (y - size / 2) ** 2) ** 0.5 / size) + rng.randint(0, 40)) & 0x0FFF
        pixels += struct.pack("<H", value)
pixels = bytes(pixels)
root = "1.2.826.0.1.3680043.8.498.77"
mix = []
for part in filter(None, args.mix.split(",")):
    name, fraction = part.split("=")
    mix.append((name, float(fraction)))


def dataset(study, series, instance, sop):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = "1.2.826.0.1.3680043.8.498.1"
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop
    ds.StudyDate = "20240115"
    ds.StudyTime = "101500"
    ds.AccessionNumber = f"ACC{study:06d}"
    ds.Modality = args.modality
    ds.Manufacturer = "Generated"
    ds.StudyDescription = "CHEST W/O CONTRAST"
    ds.SeriesDescription = f"Series {series}"
    code = Dataset()
    code.CodeValue = "71250"
    code.CodingSchemeDesignator = "SRT"
    code.CodeMeaning = "CT Chest"
    ds.ProcedureCodeSequence = Sequence([code])
    ds.PatientName = f"Patient^{study:04d}"
    ds.PatientID = f"PID{study:06d}"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.SliceThickness = "1.25"
    ds.StudyInstanceUID = f"{root}.{study}"
    ds.SeriesInstanceUID = f"{root}.{study}.{series}"
    ds.StudyID = f"S{study}"
    ds.SeriesNumber = series + 1
    ds.InstanceNumber = instance + 1
    ds.ImagePositionPatient = ["-250.0", "-250.0", f"{instance * 1.25:.2f}"]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.FrameOfReferenceUID = f"{root}.{study}.999"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = size
    ds.Columns = size
    ds.PixelSpacing = ["0.7", "0.7"]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    return ds


def pick_syntax():
    draw = rng.random()
    for name, fraction in mix:
        if draw < fraction:
            return name
        draw -= fraction
    return "explicit"


def convert(path, syntax, work):
    """Re-encodes an explicit VR LE file in place."""
    temporary = os.path.join(work, "converted.dcm")
    quiet = ["--log-level", "error"]
    if syntax == "implicit":
        subprocess.run(["dcmconv", *quiet, "+ti", path, temporary], check=True)
    elif syntax == "jpeg-lossless":
        subprocess.run(["dcmcjpeg", *quiet, "+e1", path, temporary], check=True)
    elif syntax == "jpeg-ls":
        subprocess.run(["dcmcjpls", *quiet, path, temporary], check=True)
    elif syntax == "rle":
        subprocess.run(["dcmcrle", *quiet, path, temporary], check=True)
    elif syntax == "j2k":
        codestream = os.path.join(work, "frame.j2k")
        if not os.path.exists(codestream):
            # Every image has the same pixels: compress them once (lossless 5/3 wavelet, OpenJPEG's default).
            pgm = os.path.join(work, "frame.pgm")
            with open(pgm, "wb") as out:
                out.write(f"P5\n{size} {size}\n4095\n".encode())
                out.write(b"".join(struct.pack(">H", struct.unpack_from("<H", pixels, i)[0]) for i in range(0, len(pixels), 2)))
            subprocess.run(["opj_compress", "-i", pgm, "-o", codestream], check=True, stdout=subprocess.DEVNULL)
        from pydicom import dcmread
        ds = dcmread(path)
        ds.PixelData = encapsulate([open(codestream, "rb").read()])
        ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
        ds.save_as(temporary, enforce_file_format=True)
    else:
        return
    shutil.move(temporary, path)


work = tempfile.mkdtemp()
count = 0
written = []
for study in range(args.studies):
    for series in range(args.series):
        folder = os.path.join(args.out, f"study-{study:04d}", f"series-{series:02d}")
        os.makedirs(folder, exist_ok=True)
        for instance in range(args.instances):
            sop = f"{root}.{study}.{series}.{instance + 1}"
            ds = dataset(study, series, instance, sop)
            ds.PixelData = pixels
            path = os.path.join(folder, f"IMG-{instance + 1:05d}.dcm")
            ds.save_as(path, enforce_file_format=True)
            convert(path, pick_syntax(), work)
            written.append(path)
            count += 1

broken = os.path.join(args.out, "broken", "deeper", "still-deeper")
if written and (args.junk or args.truncated):
    os.makedirs(broken, exist_ok=True)
for index in range(int(round(args.junk * count))):
    kind = index % 3
    with open(os.path.join(broken, f"junk-{index:05d}" + [".txt", ".png", ".bin"][kind]), "wb") as out:
        if kind == 0:
            out.write(b"not a DICOM file\n" * rng.randint(1, 50))
        elif kind == 1:
            out.write(b"\x89PNG\r\n\x1a\n" + bytes(rng.getrandbits(8) for _ in range(2000)))
        else:
            out.write(bytes(rng.getrandbits(8) for _ in range(rng.randint(10, 5000))))
for index in range(int(round(args.truncated * count))):
    source = written[rng.randrange(len(written))]
    data = open(source, "rb").read()
    with open(os.path.join(broken, f"truncated-{index:05d}.dcm"), "wb") as out:
        out.write(data[: rng.randint(200, len(data) - 1)])

if args.big_multiframe_mb:
    frames = max(1, args.big_multiframe_mb * 1024 * 1024 // len(pixels))
    ds = dataset(99999, 0, 0, f"{root}.99999.0.1")
    ds.NumberOfFrames = frames
    ds.FrameIncrementPointer = 0x00180050
    folder = os.path.join(args.out, "multiframe")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "big-multiframe.dcm")
    ds.save_as(path, enforce_file_format=True)
    with open(path, "ab") as out:
        # (7FE0,0010) OW, explicit VR LE: tag, VR, 2 reserved bytes, 32-bit length, then the frames streamed.
        out.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, frames * len(pixels)))
        for _ in range(frames):
            out.write(pixels)
    count += 1

if args.many_small:
    template = os.path.join(work, "small.dcm")
    small = dataset(0, 0, 0, f"{root}.0.0.1")
    small.Rows = small.Columns = 32
    small.PixelData = bytes(32 * 32 * 2)
    small.save_as(template, enforce_file_format=True)
    for index in range(args.many_small):
        folder = os.path.join(args.out, "many-small", f"{index // 1000:04d}")
        if index % 1000 == 0:
            # One copy per folder of 1,000 links: ext4 allows at most 65,000 links to one inode.
            os.makedirs(folder, exist_ok=True)
            shutil.copy(template, os.path.join(work, "small-copy.dcm"))
            os.replace(os.path.join(work, "small-copy.dcm"), os.path.join(work, f"small-{index // 1000}.dcm"))
        os.link(os.path.join(work, f"small-{index // 1000}.dcm"), os.path.join(folder, f"{index:06d}.dcm"))
    count += args.many_small

shutil.rmtree(work)
print(f"{count} files in {args.out}")
