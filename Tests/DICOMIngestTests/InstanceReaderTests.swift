import DICOMCore
import DICOMIngest
import DICOMIngestModel
import DICOMIngestTestSupport
import DICOMParser
import Foundation
import Testing

@Suite struct InstanceReaderTests {
    func metadata(_ name: String) throws -> (InstanceMetadata, ReadInstance) {
        let path = Fixtures.generated(name)
        try #require(FileManager.default.fileExists(atPath: path), "run fixtures/generate.sh first")
        let reader = InstanceReader(options: .init(buildMetadata: true, summaryTags: InstanceReader.scanSummaryTags))
        let read = try reader.read(input: try FileByteInput(path: path), buffer: P10ReadBuffer())
        return (try #require(read.metadata), read)
    }

    static func keys(_ members: [(String, JSONValue)]) -> [String] { members.map(\.0) }

    @Test(arguments: ["ct_explicit_le.dcm", "ct_implicit_le.dcm", "ct_explicit_be.dcm", "ct_deflated.dcm", "ct_rle.dcm"])
    func splitsAttributesIntoLevels(name: String) throws {
        let (metadata, _) = try metadata(name)
        #expect(Self.keys(metadata.patient) == ["PatientName", "PatientID", "PatientBirthDate", "PatientSex"])
        #expect(Self.keys(metadata.study).contains("StudyInstanceUID"))
        #expect(Self.keys(metadata.study).contains("ProcedureCodeSequence"))
        #expect(Self.keys(metadata.series).contains("Modality"))
        #expect(Self.keys(metadata.instance).contains("TransferSyntaxUID"))
        #expect(Self.keys(metadata.instance).contains("SOPInstanceUID"))
        #expect(metadata["PatientName"] == .string("Müller^Jürgen"))
    }

    @Test func encodesValuesAsTheMetadataDocumentDoes() throws {
        let (metadata, _) = try metadata("ct_explicit_be.dcm")
        #expect(metadata["ImageType"] == .array([.string("ORIGINAL"), .string("PRIMARY"), .string("AXIAL")]))
        #expect(metadata["SeriesNumber"] == .string("1 "))
        #expect(metadata["Rows"] == .int(64))
        #expect(metadata["ImagePositionPatient"] == .array([.string("-100.0"), .string("-100.0"), .string("50.0")]))
        #expect(metadata["PixelData"] == .null)
        #expect(metadata["FileMetaInformationVersion"] == .string("AAE="))
        #expect(metadata["00091001"] == .string("private value"))
        #expect(metadata.vrs.contains { $0.0 == "00091001" && $0.1 == .string("LO") })
        let sequence = try #require(metadata["ProcedureCodeSequence"])
        #expect(sequence == .array([.object([("CodeValue", .string("71250")), ("CodingSchemeDesignator", .string("SRT")), ("CodeMeaning", .string("CT Chest"))])]))
    }

    @Test func usesTheExtendedOffsetTable() throws {
        var builder = P10Builder(transferSyntaxUID: "1.2.840.10008.1.2.4.50")
        builder.string(.numberOfFrames, .IS, "2")
        // Frame 0 = fragments 0 and 1 (item offsets 0 and 12), frame 1 = fragment 2 (offset 22).
        let offsets: [UInt64] = [0, 22]
        builder.element(.extendedOffsetTable, .OV, bytes: offsets.flatMap { value in (0..<8).map { UInt8((value >> (8 * $0)) & 0xFF) } })
        builder.element(.extendedOffsetTableLengths, .OV, bytes: [UInt8](repeating: 0, count: 16))
        builder.encapsulatedPixelData(basicOffsetTable: [], fragments: [[0xFF, 0xD8, 1, 2], [3, 4], [0xFF, 0xD8, 5, 6]])
        let reader = InstanceReader(options: .init(buildMetadata: false, summaryTags: []))
        let read = try reader.read(input: MemoryByteInput(builder.build()), buffer: P10ReadBuffer())
        let pixel = try #require(read.pixelData)
        #expect(pixel.frames == [0..<2, 2..<3])
        #expect(pixel.frameSource == .extendedOffsetTable)
    }

    @Test(arguments: ["mr_multiframe_rle.dcm", "mr_multiframe_jpeg_lossless.dcm", "mr_multiframe_jpegls.dcm", "mr_multiframe_jpeg_no_bot.dcm"])
    func findsEveryFrameOfMultiFrameFiles(name: String) throws {
        let (_, read) = try metadata(name)
        #expect(read.numberOfFrames == 4)
        let pixel = try #require(read.pixelData)
        #expect(pixel.isEncapsulated)
        #expect(pixel.frames?.count == 4)
    }
}
