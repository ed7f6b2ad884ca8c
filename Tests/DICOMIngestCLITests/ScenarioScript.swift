import DICOMIngestTestSupport
import Foundation
import Testing

/// A scenario of an end-to-end script under scripts/ (`SCRIPT BINARY SCENARIO WORK_DIR`) that prints a JSON summary
/// as its last line: the script must exit 0 and say `"ok": true`; what it measured goes to the test log.
enum ScenarioScript {
    static func run(_ script: String, scenario: String) throws {
        try #require(FileManager.default.fileExists(atPath: ScanCommandTests.binary.path), "build first (swift build)")
        let folder = try TemporaryFolder("scenario-" + scenario)
        defer { folder.remove() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", Fixtures.packageRoot.path + "/" + script, ScanCommandTests.binary.path, scenario, folder.sub("work"),
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
        print("\(script) \(scenario): \(lastLine)")
    }
}
