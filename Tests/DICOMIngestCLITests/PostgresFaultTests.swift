import DICOMIngestTestSupport
import Foundation
import Testing

/// Imports on a PostgreSQL catalog whose backends are terminated again and again and whose server restarts
/// mid-import (scripts/postgres/faults_e2e.py, on a cluster of its own): each completes in one run with every file
/// once, as a single process, through `serve`, and on workers.
@Suite(
    .enabled(
        if: FileManager.default.fileExists(atPath: "/usr/lib/postgresql/15/bin/initdb"),
        "needs PostgreSQL 15 (scripts/test.sh installs it)"),
    .serialized)
struct PostgresFaultTests {
    func scenario(_ name: String) throws {
        try #require(FileManager.default.fileExists(atPath: ScanCommandTests.binary.path), "build first (swift build)")
        let folder = try TemporaryFolder("postgres-faults-" + name)
        defer { folder.remove() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", Fixtures.packageRoot.path + "/scripts/postgres/faults_e2e.py", ScanCommandTests.binary.path, name,
            folder.sub("work"),
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
        print("faults_e2e \(name): \(lastLine)")
    }

    @Test func aSingleProcessImportRidesThroughKilledBackendsAndARestart() throws { try scenario("import") }

    @Test(.enabled(if: ProcessInfo.processInfo.environment["S3_TEST_ENDPOINT"] != nil, "needs S3_TEST_ENDPOINT (scripts/test.sh)"))
    func aServerJobRidesThroughKilledBackendsAndARestart() throws { try scenario("serve") }

    @Test(.enabled(if: ProcessInfo.processInfo.environment["S3_TEST_ENDPOINT"] != nil, "needs S3_TEST_ENDPOINT (scripts/test.sh)"))
    func workersRideThroughKilledBackendsAndARestart() throws { try scenario("workers") }
}
