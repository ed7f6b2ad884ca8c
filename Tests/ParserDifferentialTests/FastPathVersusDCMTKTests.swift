import DICOMCore
import DICOMIngest
import DICOMIngestModel
import DICOMIngestTestSupport
import DICOMParser
import DICOMToolkit
import Foundation
import Testing

/// DCMTK is the oracle: over every corpus file both parsers read, they must agree on the transfer syntax, the
/// identifying UIDs, Rows/Columns/NumberOfFrames and the frame boundaries of encapsulated pixel data.
@Suite struct FastPathVersusDCMTKTests {
    static let summaryTags: [DICOMTag] = [
        .sopClassUID, .sopInstanceUID, .studyInstanceUID, .seriesInstanceUID, .rows, .columns, .numberOfFrames,
    ]

    static var generatedFiles: [String] { Fixtures.files(under: Fixtures.generated) }
    static var corpusFiles: [String] {
        Fixtures.externalCorpusAvailable ? Fixtures.files(under: Fixtures.external).filter { $0.hasSuffix(".dcm") } : []
    }

    @Test func generatedFixturesExist() {
        #expect(Self.generatedFiles.count >= 12, "run fixtures/generate.sh first")
    }

    @Test(arguments: generatedFiles)
    func agreesOnGeneratedFixture(path: String) throws {
        let compared = try compare(path)
        #expect(compared, "fast path refused a generated fixture: \(path)")
    }

    @Test(.enabled(if: Fixtures.externalCorpusAvailable), arguments: corpusFiles)
    func agreesOnPydicomCorpusFile(path: String) throws {
        _ = try compare(path)
    }

    /// Returns false when the fast path rejects the file (DCMTK may still read it; that is the fallback's job).
    func compare(_ path: String) throws -> Bool {
        let reader = InstanceReader(options: .init(buildMetadata: false, summaryTags: Self.summaryTags))
        let ours: ReadInstance
        do {
            ours = try reader.read(input: try FileByteInput(path: path), buffer: P10ReadBuffer())
        } catch {
            return false
        }
        guard ours.fileMeta.hasFileMeta else { return true }
        // Files DCMTK itself cannot load (e.g. meta declaring the wrong encoding) have no oracle.
        let oracle = try? DCMTK.withFile(at: path) { _ in true }
        guard oracle == true else { return true }
        // DCMTK 3.6.7 predates HTJ2K (.201–.203): it loads such files but cannot name their transfer syntax.
        if let syntax = ours.transferSyntaxUID, syntax.hasPrefix("1.2.840.10008.1.2.4.20") { return true }
        return try DCMTK.withFile(at: path) { file in
            #expect(ours.transferSyntaxUID == (try? file.transferSyntaxUID), "\(path)")
            for tag in Self.summaryTags {
                let keyword = DICOMDictionary.entry(for: tag)!.keyword
                let mine = ours.summaryValue(keyword)
                switch tag {
                case .rows, .columns:
                    #expect(mine.flatMap { if case .int(let v) = $0 { return UInt64(v) } else { return nil } } == file.unsigned(tag), "\(keyword) \(path)")
                case .numberOfFrames:
                    if let theirs = file.unsigned(tag) {
                        #expect(Int(theirs) == ours.numberOfFrames, "\(path)")
                    }
                default:
                    // DCMTK returns no string for standard attributes stored as UN; we read them with their VR.
                    if let theirs = file.string(tag) {
                        #expect(mine?.stringValue == theirs, "\(keyword) \(path)")
                    }
                }
            }
            let info = try file.pixelDataInfo()
            if let pixel = ours.pixelData, pixel.isEncapsulated, info.isEncapsulated {
                #expect(pixel.fragments.map(\.length) == Array(info.itemLengths.dropFirst()), "\(path)")
                if let frames = pixel.frames {
                    #expect(frames.map { $0.lowerBound + 1 } == info.frameStartItems, "\(path)")
                }
            }
            return true
        }
    }
}
