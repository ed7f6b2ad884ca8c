import DICOMIngestTestSupport
import Foundation
import Testing

/// Hundreds of broken objects (bit flips, corrupted lengths, truncation at every header byte, deep nesting, bombs,
/// evil archives, links, names that are not UTF-8) through the built `import` and `scan`, checked by
/// `scripts/mutation/run.py`: both exit 0, every object has lines and no input file two, failure messages are
/// specific, peak RSS stays under 300 MB, and nothing is written outside the output prefix and the store.
@Suite struct MutationTests {
    @Test func brokenObjectsNeverCrashHangOrEscape() throws {
        try #require(FileManager.default.fileExists(atPath: ScanCommandTests.binary.path), "build first (swift build)")
        let result = try ScanCommandTests().run(
            ["python3", Fixtures.packageRoot.appendingPathComponent("scripts/mutation/run.py").path,
             ScanCommandTests.binary.path, "--count", "400", "--seed", "20261130", "--rss-mb", "300"],
            executable: URL(fileURLWithPath: "/usr/bin/env"))
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("mutation: 400 mutants"))
    }
}
