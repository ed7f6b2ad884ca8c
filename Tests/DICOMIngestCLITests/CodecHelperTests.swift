import DICOMIngestTestSupport
import Foundation
import Testing

/// Crafted codestreams against the built CLI (scripts/codecs/codec_helpers_e2e.py): the decoders of outside input
/// run in codec helper processes, so an assertion, a spin, a memory blow-up or a killed helper costs one frame.
@Suite(.serialized) struct CodecHelperTests {
    func scenario(_ name: String) throws {
        try #require(FileManager.default.fileExists(atPath: ScanCommandTests.binary.path), "build first (swift build)")
        let folder = try TemporaryFolder("codec-helpers-" + name)
        defer { folder.remove() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", Fixtures.packageRoot.path + "/scripts/codecs/codec_helpers_e2e.py", ScanCommandTests.binary.path,
            name, folder.sub("work"),
        ]
        process.environment = ProcessInfo.processInfo.environment.merging(ServeCommandTests.identity) { $1 }
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let lastLine = text.split(separator: "\n").last.map(String.init) ?? ""
        #expect(process.terminationStatus == 0, "\(text.suffix(3000))")
        #expect(lastLine.contains(#""ok": true"#), "\(lastLine)")
        // What the scenario measured (peak RSS, messages), for the test log.
        print("codec_helpers_e2e \(name): \(lastLine)")
    }

    @Test func fortyAssertionTrippingFramesCostTheirFilesAndStayUnder300MB() throws { try scenario("assertions") }

    @Test func aFrameOf65280TilesStaysUnder300MB() throws { try scenario("tiles") }

    @Test func aSpinningDecoderIsStoppedAndAKilledHelperCostsOneFrame() throws { try scenario("spin-kill") }

    @Test(.enabled(if: ProcessInfo.processInfo.environment["S3_TEST_ENDPOINT"] != nil, "needs S3_TEST_ENDPOINT (scripts/test.sh)"))
    func aServerGivenThreeJobsOfCraftedFramesDoesNotGrow() throws { try scenario("serve") }
}
