import DICOMIngestTestSupport
import Foundation
import Testing

/// Every pixel file of pydicom's corpus and of the generated fixtures, imported one by one by the built binary and
/// checked by `scripts/pixels/oracle.py` against pydicom's decoded pixels, with OpenJPEG and OpenJPH decoding what
/// was stored (pixel-exact for lossless sources, CRC-32 recomputed independently, .202 structure and resolution
/// prefixes checked; kept lossy frames byte-identical).
@Suite struct PixelOracleTests {
    @Test func storedFramesMatchPydicomsPixelsForEveryTransferSyntax() throws {
        try #require(FileManager.default.fileExists(atPath: ScanCommandTests.binary.path), "build first (swift build)")
        try #require(Fixtures.externalCorpusAvailable, "run fixtures/fetch-pydicom-corpus.sh first")
        let files = (Fixtures.files(under: Fixtures.generated) + Fixtures.files(under: Fixtures.external.appendingPathComponent("test_files")))
            .filter { $0.hasSuffix(".dcm") }
        let oracle = try ScanCommandTests().run(
            ["python3", Fixtures.packageRoot.appendingPathComponent("scripts/pixels/oracle.py").path,
             ScanCommandTests.binary.path,
             // pydicom's HTJ2K decoder (OpenJPEG) mis-reads signed 16-bit HTJ2K: use the native sibling's pixels.
             "--reference", "ct_htj2k_lossless.dcm=" + Fixtures.generated("ct_explicit_le.dcm")] + files,
            executable: URL(fileURLWithPath: "/usr/bin/env"))
        let text = oracle.stdout
        let lines = text.split(separator: "\n").map(String.init)
        #expect(oracle.status == 0, "\(lines.filter { !$0.hasPrefix("OK") }.joined(separator: "\n"))")
        // Every transfer syntax with pixels in the corpus and fixtures was checked and stored as expected.
        for (source, stored) in [
            ("1.2.840.10008.1.2 ", "1.2.840.10008.1.2.4.202"), ("1.2.840.10008.1.2.1 ", "1.2.840.10008.1.2.4.202"),
            ("1.2.840.10008.1.2.2 ", "1.2.840.10008.1.2.4.202"), ("1.2.840.10008.1.2.1.99 ", "1.2.840.10008.1.2.4.202"),
            ("1.2.840.10008.1.2.5 ", "1.2.840.10008.1.2.4.202"), ("1.2.840.10008.1.2.4.51 ", "1.2.840.10008.1.2.4.202"),
            ("1.2.840.10008.1.2.4.70 ", "1.2.840.10008.1.2.4.202"), ("1.2.840.10008.1.2.4.80 ", "1.2.840.10008.1.2.4.202"),
            ("1.2.840.10008.1.2.4.81 ", "1.2.840.10008.1.2.4.202"), ("1.2.840.10008.1.2.4.90 ", "1.2.840.10008.1.2.4.202"),
            ("1.2.840.10008.1.2.4.201 ", "1.2.840.10008.1.2.4.202"), ("1.2.840.10008.1.2.4.50 ", "1.2.840.10008.1.2.4.50"),
            ("1.2.840.10008.1.2.4.91 ", "1.2.840.10008.1.2.4.91"),
            // BitsAllocated 1 (seg_1bit.dcm) and 32 (rtdose) are kept as they arrived, with a warning.
            ("1.2.840.10008.1.2.1 ", "1.2.840.10008.1.2.1"), ("1.2.840.10008.1.2 ", "1.2.840.10008.1.2"),
        ] {
            #expect(lines.contains { $0.hasPrefix("OK") && $0.contains(": \(source)-> \(stored),") }, "no checked file \(source)→ \(stored)")
        }
        let passed = lines.filter { $0.hasPrefix("OK") }.count
        #expect(passed >= 70, "\(passed) files checked")
    }
}
