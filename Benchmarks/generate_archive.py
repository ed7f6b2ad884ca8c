#!/usr/bin/env python3
"""Writes a deterministic archive of realistic CT slices for benchmarks (no network needed).

Usage: Benchmarks/generate_archive.py OUT_DIR [--studies N] [--series N] [--instances N] [--size 512]

Each file is a CT Image Storage instance, 16-bit, explicit VR little endian, about 0.5 MB at 512×512, with the
header a typical scanner writes (a few hundred bytes of patient/study/series/image attributes and a nested
sequence). Files go to OUT_DIR/study-S/series-R/IMG-I.dcm. Same arguments, same bytes.
"""
import argparse
import os
import random

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, CTImageStorage

parser = argparse.ArgumentParser()
parser.add_argument("out")
parser.add_argument("--studies", type=int, default=10)
parser.add_argument("--series", type=int, default=3)
parser.add_argument("--instances", type=int, default=100)
parser.add_argument("--size", type=int, default=512)
args = parser.parse_args()

rng = random.Random(20261129)
pixels = bytes(rng.getrandbits(8) for _ in range(args.size * args.size * 2))
root = "1.2.826.0.1.3680043.8.498.77"
count = 0
for study in range(args.studies):
    for series in range(args.series):
        folder = os.path.join(args.out, f"study-{study:04d}", f"series-{series:02d}")
        os.makedirs(folder, exist_ok=True)
        for instance in range(args.instances):
            sop = f"{root}.{study}.{series}.{instance + 1}"
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = CTImageStorage
            meta.MediaStorageSOPInstanceUID = sop
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            meta.ImplementationClassUID = "1.2.826.0.1.3680043.8.498.1"
            ds = Dataset()
            ds.file_meta = meta
            ds.SpecificCharacterSet = "ISO_IR 100"
            ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
            ds.SOPClassUID = CTImageStorage
            ds.SOPInstanceUID = sop
            ds.StudyDate = "20240115"
            ds.StudyTime = "101500"
            ds.AccessionNumber = f"ACC{study:06d}"
            ds.Modality = "CT"
            ds.Manufacturer = "Generated"
            ds.StudyDescription = "CT CHEST W/O CONTRAST"
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
            ds.KVP = "120"
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
            ds.Rows = args.size
            ds.Columns = args.size
            ds.PixelSpacing = ["0.7", "0.7"]
            ds.BitsAllocated = 16
            ds.BitsStored = 12
            ds.HighBit = 11
            ds.PixelRepresentation = 1
            ds.RescaleIntercept = "-1024"
            ds.RescaleSlope = "1"
            ds.WindowCenter = "40"
            ds.WindowWidth = "400"
            ds.PixelData = pixels
            ds.save_as(os.path.join(folder, f"IMG-{instance + 1:05d}.dcm"), enforce_file_format=True)
            count += 1
print(f"{count} files in {args.out}")
