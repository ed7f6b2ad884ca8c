import DICOMCore
import DICOMIngest
import DICOMIngestModel
import DICOMIngestTestSupport
import DICOMParser
import Foundation
import Testing

/// Crafted objects that used to kill the process (issue 10): each ends in exactly one FAILURE line with a specific
/// reason, and the job completes.
@Suite struct HostileInputTests {
    static func identified(_ builder: inout P10Builder) {
        builder.string(.sopClassUID, .UI, "1.2.840.10008.5.1.4.1.1.2")
        builder.string(.sopInstanceUID, .UI, "1.2.826.0.1.3680043.10.99.1")
        builder.string(.patientID, .LO, "P")
        builder.string(.studyInstanceUID, .UI, "1.2.826.0.1.3680043.10.99")
        builder.string(.seriesInstanceUID, .UI, "1.2.826.0.1.3680043.10.99.2")
    }

    /// Imports `files` (name → bytes) and returns each file's failure message.
    static func importFailures(_ files: [String: [UInt8]]) throws -> [String: String] {
        let environment = try ImportJobTests.Environment()
        defer { environment.folder.remove() }
        for (name, bytes) in files {
            try FileManager.default.createDirectory(atPath: environment.input, withIntermediateDirectories: true)
            try Data(bytes).write(to: URL(fileURLWithPath: environment.input + "/" + name))
        }
        let (outcome, folder) = try environment.runJob()
        #expect(outcome.job.jobStatus == .completed)
        #expect(outcome.scannedFiles == files.count)
        var messages: [String: String] = [:]
        for line in try folder.lines(.failure) {
            let name = String((line["inputFile"] as? String ?? "").split(separator: "/").last ?? "")
            messages[name] = (line["exception"] as? [String: Any])?["message"] as? String
        }
        return messages
    }

    static func pixelModule(rows: UInt16, columns: UInt16, samples: UInt16, bits: UInt16, frames: String?) -> [UInt8] {
        var builder = P10Builder(transferSyntaxUID: TransferSyntax.explicitVRLittleEndian.uid)
        identified(&builder)
        builder.uint16(.samplesPerPixel, samples)
        builder.string(.photometricInterpretation, .CS, samples == 3 ? "RGB" : "MONOCHROME2")
        if let frames { builder.string(.numberOfFrames, .IS, frames) }
        builder.uint16(.rows, rows)
        builder.uint16(.columns, columns)
        builder.uint16(.bitsAllocated, bits)
        builder.uint16(.bitsStored, bits)
        builder.element(.pixelData, .OW, bytes: [UInt8](repeating: 0, count: 16))
        return builder.build()
    }

    @Test func pixelModuleProductsThatOverflowFailTheirFile() throws {
        let failures = try Self.importFailures([
            "all65535.dcm": Self.pixelModule(rows: 65535, columns: 65535, samples: 65535, bits: 65535, frames: nil),
            "frames.dcm": Self.pixelModule(rows: 65535, columns: 65535, samples: 1, bits: 16, frames: "1100000000"),
        ])
        #expect(failures["all65535.dcm"]?.contains("is not a frame size") == true)
        #expect(failures["frames.dcm"]?.contains("NumberOfFrames need more") == true)
    }

    @Test func extendedOffsetTableEntriesPastIntMaxFailTheirFile() throws {
        var builder = P10Builder(transferSyntaxUID: "1.2.840.10008.1.2.4.70")
        Self.identified(&builder)
        builder.uint16(.samplesPerPixel, 1)
        builder.string(.photometricInterpretation, .CS, "MONOCHROME2")
        builder.string(.numberOfFrames, .IS, "2")
        builder.uint16(.rows, 2)
        builder.uint16(.columns, 2)
        builder.uint16(.bitsAllocated, 8)
        builder.uint16(.bitsStored, 8)
        let entries: [UInt64] = [0, 1 << 63]
        builder.element(.extendedOffsetTable, .OV, bytes: entries.flatMap { value in (0..<8).map { UInt8((value >> (8 * $0)) & 0xFF) } })
        builder.element(.extendedOffsetTableLengths, .OV, bytes: [UInt8](repeating: 0, count: 16))
        builder.encapsulatedPixelData(basicOffsetTable: [], fragments: [[0xFF, 0xD8, 0xFF, 0xD9], [0xFF, 0xD8, 0xFF, 0xD9]])
        let failures = try Self.importFailures(["eot.dcm": builder.build()])
        #expect(failures["eot.dcm"]?.contains("Frame 1 cannot be decoded") == true)
    }

    @Test func nestingDeeperThanTheLimitFailsItsFile() throws {
        var builder = P10Builder(transferSyntaxUID: TransferSyntax.explicitVRLittleEndian.uid)
        Self.identified(&builder)
        for _ in 0..<25_000 {
            builder.beginSequence(DICOMTag(group: 0x0040, element: 0xA730))
            builder.beginItem()
        }
        for _ in 0..<25_000 {
            builder.endItem()
            builder.endSequence()
        }
        let failures = try Self.importFailures(["deep.dcm": builder.build()])
        #expect(failures["deep.dcm"]?.hasPrefix("NESTING_TOO_DEEP: sequences nest deeper than 128 levels") == true)
    }
}
