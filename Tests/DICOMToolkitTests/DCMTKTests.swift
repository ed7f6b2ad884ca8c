import DICOMCore
import DICOMIngestTestSupport
@testable import DICOMToolkit
import Foundation
import Testing

@Suite struct DCMTKTests {
    @Test func bootstrapsOnceAndReadsAGeneratedFile() throws {
        try DCMTK.bootstrap()
        try DCMTK.bootstrap()
        let path = Fixtures.generated("ct_explicit_le.dcm")
        try #require(FileManager.default.fileExists(atPath: path), "run fixtures/generate.sh first")
        try DCMTK.withFile(at: path) { file in
            let syntax = try file.transferSyntaxUID
            #expect(syntax == "1.2.840.10008.1.2.1")
            #expect(file.string(.sopInstanceUID) == "1.2.826.0.1.3680043.8.498.1001.1")
            #expect(file.unsigned(.rows) == 64)
            #expect(file.string(.patientName) == "Müller^Jürgen")
        }
    }

    @Test func visitsNestedSequencesDepthFirst() throws {
        try DCMTK.withFile(at: Fixtures.generated("ct_implicit_le.dcm")) { file in
            var kinds: [DCMTKFile.Node.Kind] = []
            var tags: [DICOMTag] = []
            try file.visit { node in
                kinds.append(node.kind)
                tags.append(node.tag)
                return true
            }
            #expect(tags.contains(.sopInstanceUID))
            #expect(kinds.filter { $0 == .sequenceStart }.count == 1)
            #expect(kinds.filter { $0 == .itemStart }.count == kinds.filter { $0 == .itemEnd }.count)
        }
    }

    @Test func failsCleanlyOnJunk() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("junk-\(UUID().uuidString).dcm")
        try Data("definitely not DICOM".utf8).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        #expect(throws: DCMTKError.self) { try DCMTK.withFile(at: url.path) { _ in } }
    }

    /// The lossless codecs must give back exactly the native pixels.
    @Test(arguments: [
        ("ct_rle.dcm", "ct_explicit_le.dcm", 0), ("ct_jpegls.dcm", "ct_explicit_le.dcm", 0),
        ("ct_jpeg_lossless.dcm", "ct_explicit_le.dcm", 0), ("mr_multiframe_rle.dcm", "mr_multiframe_le.dcm", 3),
        ("mr_multiframe_jpeg_no_bot.dcm", "mr_multiframe_le.dcm", 2),
    ])
    func decodesCompressedFramesBitExact(compressed: String, native: String, frame: Int) throws {
        let decoded = try DCMTK.withFile(at: Fixtures.generated(compressed)) { try $0.decodeFrame(frame) }
        let reference = try DCMTK.withFile(at: Fixtures.generated(native)) { try $0.decodeFrame(frame) }
        #expect(!decoded.isEmpty)
        #expect(decoded == reference)
        let info = try DCMTK.withFile(at: Fixtures.generated(compressed)) { try $0.pixelDataInfo() }
        #expect(info.isEncapsulated)
    }

    /// The Item-tag count (the guard in front of DCMTK's recursive reader) finds tags in either byte order,
    /// wherever they fall against the 1 MiB read chunks, as a byte-by-byte scan would.
    @Test func countsItemTagsAcrossReadChunks() throws {
        var generator = SystemRandomNumberGenerator()
        var bytes = [UInt8](repeating: 0, count: (1 << 20) * 3 + 17)
        for index in bytes.indices { bytes[index] = [0xFE, 0xFF, 0x00, 0xE0, 0x42][Int.random(in: 0..<5, using: &generator)] }
        for start in [(1 << 20) - 2, (1 << 20) - 1, 2 << 20, (3 << 20) + 13] {
            bytes.replaceSubrange(start..<start + 4, with: start % 2 == 0 ? [0xFE, 0xFF, 0x00, 0xE0] : [0xFF, 0xFE, 0xE0, 0x00])
        }
        var expected = 0
        for index in 0..<(bytes.count - 3) {
            let word = Array(bytes[index..<index + 4])
            if word == [0xFE, 0xFF, 0x00, 0xE0] || word == [0xFF, 0xFE, 0xE0, 0x00] { expected += 1 }
        }
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("items-\(UUID().uuidString).bin")
        try Data(bytes).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        #expect(expected > 1_000)
        #expect(try DCMTK.itemTagCount(path: url.path, stoppingAfter: .max) == expected)
        #expect(try DCMTK.itemTagCount(path: url.path, stoppingAfter: 10) > 10)
    }
}
