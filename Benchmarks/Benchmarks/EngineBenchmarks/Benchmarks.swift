import Benchmark
import DICOMCore
import DICOMIngest
import DICOMIngestSQL
import DICOMIngestSQLite
import DICOMIngestTestSupport
import DICOMParser
import Foundation

/// Micro benchmarks of the hot paths: header tokenizing, metadata building, grouping and catalog staging.
/// Deterministic metrics (instructions, mallocs) are the ones to compare across changes; wall clock is for
/// local runs only.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.instructions, .mallocCountTotal, .wallClock, .throughput], warmupIterations: 3)

    /// A CT slice as a scanner writes it: 512×512 16-bit, explicit VR LE, about 0.5 MB.
    let ct = SyntheticCT.bytes

    Benchmark("P10Scan.headerOnly.ct512") { benchmark in
        let buffer = P10ReadBuffer()
        for _ in benchmark.scaledIterations {
            var scanner = P10Scanner(input: MemoryByteInput(ct), buffer: buffer, options: ParseOptions(stopBeforePixelData: true))
            var count = 0
            while let token = try scanner.next() {
                if case .element = token { count += 1 }
            }
            blackHole(count)
        }
    }

    /// The same header with 200 more elements: its malloc count must equal the plain header's (no per-element
    /// allocation in the tokenizer).
    let wide = SyntheticCT.bytes(extraElements: 200)
    Benchmark("P10Scan.headerOnly.ct512.200moreElements") { benchmark in
        let buffer = P10ReadBuffer()
        for _ in benchmark.scaledIterations {
            var scanner = P10Scanner(input: MemoryByteInput(wide), buffer: buffer, options: ParseOptions(stopBeforePixelData: true))
            var count = 0
            while let token = try scanner.next() {
                if case .element = token { count += 1 }
            }
            blackHole(count)
        }
    }

    Benchmark("Metadata.build.ct512") { benchmark in
        let buffer = P10ReadBuffer()
        let reader = InstanceReader(options: .init(buildMetadata: true, summaryTags: InstanceReader.scanSummaryTags))
        for _ in benchmark.scaledIterations {
            blackHole(try reader.read(input: MemoryByteInput(ct), buffer: buffer).metadata)
        }
    }

    Benchmark("Grouping.decide.100000instances", configuration: .init(scalingFactor: .one)) { benchmark in
        let candidates = (0..<100_000).map { index in
            ImageSetGrouping.Candidate(
                inputKey: "in/\(index % 977)/\(index).dcm", sopInstanceUID: "1.2.3.\(index)",
                key: ImageSetKey(studyInstanceUID: "1.2", seriesInstanceUID: "1.2.3", patientID: index % 50 == 0 ? "OTHER" : "P1"))
        }
        benchmark.startMeasurement()
        blackHole(ImageSetGrouping.decide(candidates, existingPrimaryKey: nil))
        benchmark.stopMeasurement()
    }

    Benchmark("Catalog.stage.1000instances", configuration: .init(scalingFactor: .one)) { benchmark in
        let folder = try TemporaryFolder("catalog-benchmark")
        defer { folder.remove() }
        let store = try SQLiteImageSetStore(directory: folder.path)
        let instances = (0..<1000).map { index in
            PreparedInstance(
                inputKey: "in/\(index).dcm", sopInstanceUID: "1.2.3.\(index)",
                key: ImageSetKey(studyInstanceUID: "1.2", seriesInstanceUID: "1.2.3"),
                patientJSON: Array(#"{"PatientName":"Doe^Jane"}"#.utf8), studyJSON: Array(#"{"StudyInstanceUID":"1.2"}"#.utf8),
                seriesJSON: Array(#"{"SeriesInstanceUID":"1.2.3"}"#.utf8), instanceJSON: [UInt8](repeating: 0x20, count: 3000),
                frames: [StoredFrame(id: ResourceID.make(), blob: "b", offset: index * 512, length: 512, transferSyntaxUID: "1.2.840.10008.1.2.1")],
                warnings: [])
        }
        benchmark.startMeasurement()
        for batch in stride(from: 0, to: instances.count, by: 64) {
            try store.stage(Array(instances[batch..<min(batch + 64, instances.count)]), jobId: "benchmark")
        }
        benchmark.stopMeasurement()
    }
}

enum SyntheticCT {
    static let bytes: [UInt8] = bytes(extraElements: 0)

    static func bytes(extraElements: Int) -> [UInt8] {
        var builder = P10Builder(transferSyntaxUID: "1.2.840.10008.1.2.1")
        builder.string(.specificCharacterSet, .CS, "ISO_IR 100")
        builder.string(.imageType, .CS, "ORIGINAL\\PRIMARY\\AXIAL")
        builder.string(.sopClassUID, .UI, "1.2.840.10008.5.1.4.1.1.2")
        builder.string(.sopInstanceUID, .UI, "1.2.826.0.1.3680043.8.498.77.1.1.1")
        builder.string(.studyDate, .DA, "20240115")
        builder.string(.studyTime, .TM, "101500")
        builder.string(.accessionNumber, .SH, "ACC000001")
        builder.string(.modality, .CS, "CT")
        builder.string(.studyDescription, .LO, "CHEST W/O CONTRAST")
        builder.beginSequence(DICOMTag(group: 0x0008, element: 0x1032))
        builder.beginItem()
        builder.string(DICOMTag(group: 0x0008, element: 0x0100), .SH, "71250")
        builder.string(DICOMTag(group: 0x0008, element: 0x0102), .SH, "SRT")
        builder.string(DICOMTag(group: 0x0008, element: 0x0104), .LO, "CT Chest")
        builder.endItem()
        builder.endSequence()
        builder.string(.patientName, .PN, "Patient^0001")
        builder.string(.patientID, .LO, "PID000001")
        builder.string(.studyInstanceUID, .UI, "1.2.826.0.1.3680043.8.498.77.1")
        builder.string(.seriesInstanceUID, .UI, "1.2.826.0.1.3680043.8.498.77.1.1")
        builder.string(.seriesNumber, .IS, "1")
        builder.string(.instanceNumber, .IS, "1")
        builder.uint16(.samplesPerPixel, 1)
        builder.string(.photometricInterpretation, .CS, "MONOCHROME2")
        builder.uint16(.rows, 512)
        builder.uint16(.columns, 512)
        builder.uint16(.bitsAllocated, 16)
        builder.uint16(.bitsStored, 12)
        builder.uint16(.pixelRepresentation, 0)
        for index in 0..<extraElements {
            // Private elements in group 0x0029, after the image attributes and before Pixel Data.
            builder.string(DICOMTag(group: 0x0029, element: UInt16(0x1000 + index)), .LO, "value \(index)")
        }
        builder.element(.pixelData, .OW, bytes: [UInt8](repeating: 7, count: 512 * 512 * 2))
        return builder.build()
    }
}
