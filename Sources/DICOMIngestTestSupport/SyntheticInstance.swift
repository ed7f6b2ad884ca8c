public import DICOMCore
import Foundation

/// Small but complete CT instances built in code, for import tests: explicit VR LE, 4×4 16-bit native pixels
/// (one or more frames) whose values derive from the SOP Instance UID, so every file's frames differ.
public struct SyntheticInstance: Sendable {
    public var studyInstanceUID: String
    public var seriesInstanceUID: String
    public var sopInstanceUID: String
    public var patientID = "PAT1"
    public var patientName = "Doe^Jane"
    public var studyDate = "20240101"
    public var accessionNumber = "ACC1"
    public var studyID = "S1"
    public var seriesNumber = "1"
    /// InstanceNumber (0020,0013), written when set: tells copies of one SOP instance apart.
    public var instanceNumber: String?
    public var frames = 1
    /// Rows and Columns (default `rows` × `columns`); larger matrices make objects that take a while to import.
    public var matrix = SyntheticInstance.rows

    public init(study: String, series: String, sop: String) {
        studyInstanceUID = study
        seriesInstanceUID = series
        sopInstanceUID = sop
    }

    public static let rows: UInt16 = 4
    public static let columns: UInt16 = 4

    /// The native pixel bytes of all frames, little endian.
    public var pixelBytes: [UInt8] {
        let seed = sopInstanceUID.utf8.reduce(0) { ($0 &* 31 &+ Int($1)) & 0xFFFF }
        let samples = Int(matrix) * Int(matrix) * frames
        var bytes = [UInt8](repeating: 0, count: samples * 2)
        bytes.withUnsafeMutableBufferPointer { out in
            for index in 0..<samples {
                let value = (seed + index * 7) & 0x0FFF
                out[2 * index] = UInt8(value & 0xFF)
                out[2 * index + 1] = UInt8(value >> 8)
            }
        }
        return bytes
    }

    public var bytes: [UInt8] {
        var builder = P10Builder(transferSyntaxUID: "1.2.840.10008.1.2.1")
        builder.string(.specificCharacterSet, .CS, "ISO_IR 192")
        builder.string(.sopClassUID, .UI, "1.2.840.10008.5.1.4.1.1.2")
        builder.string(.sopInstanceUID, .UI, sopInstanceUID)
        builder.string(.studyDate, .DA, studyDate)
        builder.string(.accessionNumber, .SH, accessionNumber)
        builder.string(.modality, .CS, "CT")
        builder.string(.patientName, .PN, patientName)
        builder.string(.patientID, .LO, patientID)
        builder.string(.studyInstanceUID, .UI, studyInstanceUID)
        builder.string(.seriesInstanceUID, .UI, seriesInstanceUID)
        builder.string(.studyID, .SH, studyID)
        builder.string(.seriesNumber, .IS, seriesNumber)
        if let instanceNumber { builder.string(.instanceNumber, .IS, instanceNumber) }
        builder.uint16(.samplesPerPixel, 1)
        builder.string(.photometricInterpretation, .CS, "MONOCHROME2")
        if frames > 1 { builder.string(.numberOfFrames, .IS, String(frames)) }
        builder.uint16(.rows, matrix)
        builder.uint16(.columns, matrix)
        builder.uint16(.bitsAllocated, 16)
        builder.uint16(.bitsStored, 12)
        builder.uint16(.pixelRepresentation, 0)
        builder.element(.pixelData, .OW, bytes: pixelBytes)
        return builder.build()
    }

    /// Writes the instance to `path`, creating folders.
    public func write(to path: String) throws {
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }
}

/// A fresh temporary folder, removed by `remove()`.
public struct TemporaryFolder: Sendable {
    public let path: String

    public init(_ label: String = "test") throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("\(label)-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    public func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }

    public func sub(_ relative: String) -> String { path + "/" + relative }
}
