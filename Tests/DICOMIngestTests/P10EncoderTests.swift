import DICOMCore
@testable import DICOMIngest
import DICOMIngestModel
import DICOMIngestTestSupport
import DICOMParser
import Foundation
import Testing

/// GetDICOMInstance's P10 files: read back by the engine's own reader, they give the metadata they were written from.
@Suite struct P10EncoderTests {
    static func read(_ bytes: [UInt8]) throws -> InstanceMetadata {
        let reader = InstanceReader(options: .init(buildMetadata: true, summaryTags: InstanceReader.scanSummaryTags))
        return try #require(try reader.read(input: MemoryByteInput(bytes), buffer: P10ReadBuffer()).metadata)
    }

    static func instance(_ metadata: InstanceMetadata) -> StoredInstance {
        StoredInstance(
            sopInstanceUID: "1.2.3.4", attributes: metadata.patient + metadata.study + metadata.series + metadata.instance,
            vrs: Dictionary(uniqueKeysWithValues: metadata.vrs.compactMap { key, value in
                if case .string(let vr) = value { return (key, vr) } else { return nil }
            }),
            storedTransferSyntaxUID: "1.2.840.10008.1.2.1", frames: [])
    }

    /// Every attribute but the file meta group and the character set comes back as it was; native Pixel Data follows
    /// the header with the length it declares.
    @Test(arguments: ["ct_explicit_le.dcm", "ct_explicit_be.dcm", "mr_multiframe_le.dcm", "rgb_planar.dcm"])
    func aRebuiltFileReadsBackAsItsSource(name: String) throws {
        let path = Fixtures.generated(name)
        try #require(FileManager.default.fileExists(atPath: path), "run fixtures/generate.sh first")
        let source = try Self.read(Array(try Data(contentsOf: URL(fileURLWithPath: path))))
        let instance = Self.instance(source)
        let frameBytes = try #require(DICOMwebReader.nativeFrameBytes(instance.pixelDescription))
        let frames = max(1, instance.integer("NumberOfFrames") ?? 1)
        var file = try P10Encoder.header(
            instance, sopClassUID: "1.2.840.10008.5.1.4.1.1.2", transferSyntaxUID: "1.2.840.10008.1.2.1", encapsulated: false,
            pixelDataLength: (frameBytes * frames + 1) & ~1)
        file += [UInt8](repeating: 7, count: (frameBytes * frames + 1) & ~1)
        let rebuilt = try Self.read(file)
        func withoutMeta(_ members: [(String, JSONValue)]) -> JSONValue {
            .object(members.filter { key, _ in
                guard let tag = DICOMDictionary.tag(forKeyword: key) else { return true }
                return tag.group != 0x0002 && tag != .specificCharacterSet
            })
        }
        #expect(withoutMeta(rebuilt.patient) == withoutMeta(source.patient))
        #expect(withoutMeta(rebuilt.study) == withoutMeta(source.study))
        #expect(withoutMeta(rebuilt.series) == withoutMeta(source.series))
        #expect(withoutMeta(rebuilt.instance) == withoutMeta(source.instance))
        #expect(rebuilt["TransferSyntaxUID"] == .string("1.2.840.10008.1.2.1"))
        #expect(rebuilt["MediaStorageSOPInstanceUID"] == .string("1.2.3.4"))
    }

    @Test func textThatIsNotASCIIIsWrittenAsUTF8() throws {
        let instance = StoredInstance(
            sopInstanceUID: "1.2", attributes: [("SpecificCharacterSet", .string("ISO_IR 100")), ("PatientName", .string("Müller^Jürgen"))],
            vrs: [:], storedTransferSyntaxUID: "1.2.840.10008.1.2.1", frames: [])
        let rebuilt = try Self.read(try P10Encoder.header(
            instance, sopClassUID: "1.2.840.10008.5.1.4.1.1.7", transferSyntaxUID: "1.2.840.10008.1.2.1", encapsulated: false,
            pixelDataLength: nil))
        #expect(rebuilt["SpecificCharacterSet"] == .array([.string("ISO_IR 192")]))
        #expect(rebuilt["PatientName"] == .string("Müller^Jürgen"))
    }

    /// Sizes no DICOM element can hold are refused, never trapped on: native Pixel Data past 4 GiB (ask as stored),
    /// a short-VR value past 64 KiB (written as UN, as CP-1066 has it).
    @Test func sizesPastAnElementsLengthFieldAreRefusedOrWrittenAsUN() throws {
        let instance = StoredInstance(
            sopInstanceUID: "1.2", attributes: [("InstitutionName", .string(String(repeating: "x", count: 70_000)))],
            vrs: [:], storedTransferSyntaxUID: "1.2.840.10008.1.2.1", frames: [])
        #expect(throws: IngestServiceError.self) {
            try P10Encoder.header(
                instance, sopClassUID: "1.2", transferSyntaxUID: "1.2.840.10008.1.2.1", encapsulated: false,
                pixelDataLength: P10Encoder.maximumNativePixelDataBytes + 2)
        }
        let header = try P10Encoder.header(
            instance, sopClassUID: "1.2", transferSyntaxUID: "1.2.840.10008.1.2.1", encapsulated: false, pixelDataLength: nil)
        let rebuilt = try Self.read(header)
        #expect(rebuilt["InstitutionName"] == .string(String(repeating: "x", count: 70_000)))
        // (0008,0080) UN with a 32-bit length.
        let element: [UInt8] = [0x08, 0x00, 0x80, 0x00, 0x55, 0x4E, 0, 0]
        #expect(header.indices.contains { header[$0...].starts(with: element) })
    }

    @Test func encapsulatedFramesAreOneFragmentEachAfterAnEmptyOffsetTable() throws {
        let instance = StoredInstance(
            sopInstanceUID: "1.2", attributes: [("Rows", .int(1)), ("Columns", .int(1)), ("BitsAllocated", .int(8))],
            vrs: [:], storedTransferSyntaxUID: "1.2.840.10008.1.2.4.202", frames: [])
        let header = try P10Encoder.header(
            instance, sopClassUID: "1.2.840.10008.5.1.4.1.1.7", transferSyntaxUID: "1.2.840.10008.1.2.4.202", encapsulated: true,
            pixelDataLength: nil)
        #expect(Array(header.suffix(20)) == [0xE0, 0x7F, 0x10, 0x00, 0x4F, 0x42, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0])
        #expect(P10Encoder.fragment([1, 2, 3]) == [0xFE, 0xFF, 0x00, 0xE0, 4, 0, 0, 0, 1, 2, 3, 0])
    }
}
