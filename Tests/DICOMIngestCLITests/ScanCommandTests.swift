import DICOMIngestTestSupport
import Foundation
import Synchronization
import Testing

/// End-to-end runs of the built `dicom-ingest` binary.
@Suite struct ScanCommandTests {
    static var binary: URL {
        Fixtures.packageRoot.appendingPathComponent(".build/debug/dicom-ingest")
    }

    /// Runs the built binary (or `executable`) to its end; returns its exit status, stdout and stderr.
    func run(
        _ arguments: [String], executable: URL = binary, environment: [String: String] = [:]
    ) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        }
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Drain stderr beside stdout, so a child that writes more than a pipe holds to either never blocks.
        let stderrData = Mutex(Data())
        let drained = DispatchGroup()
        DispatchQueue.global().async(group: drained) {
            let data = err.fileHandleForReading.readDataToEndOfFile()
            stderrData.withLock { $0 = data }
        }
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        drained.wait()
        let stderr = stderrData.withLock { $0 }
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
    }

    @Test func scansMixedNestedFolderOneLinePerFile() throws {
        try #require(FileManager.default.fileExists(atPath: Self.binary.path), "build first (swift build)")
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("scan-cli-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        var deep = root
        for level in 0..<20 { deep.appendPathComponent("level \(level)") }
        try FileManager.default.createDirectory(at: deep, withIntermediateDirectories: true)
        let dicom = Fixtures.files(under: Fixtures.generated)
        try #require(dicom.count >= 12, "run fixtures/generate.sh first")
        for (index, path) in dicom.enumerated() {
            let target = (index % 2 == 0 ? root : deep).appendingPathComponent("ünïcode \(index).dcm")
            try FileManager.default.copyItem(atPath: path, toPath: target.path)
        }
        try Data("not dicom".utf8).write(to: root.appendingPathComponent("notes.txt"))
        try Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + [UInt8](repeating: 0, count: 300)).write(to: deep.appendingPathComponent("image.png"))
        let truncated = try Data(contentsOf: URL(fileURLWithPath: dicom[0])).prefix(400)
        try truncated.write(to: deep.appendingPathComponent("truncated.dcm"))

        let (status, stdout, stderr) = try run(["scan", "file://" + root.path, "--threads", "2"])
        #expect(status == 0)
        let lines = stdout.split(separator: "\n")
        #expect(lines.count == dicom.count + 3)
        var statuses: [String: String] = [:]
        for line in lines {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let file = try #require(object["inputFile"] as? String)
            statuses[file] = object["status"] as? String
            #expect(object["warnings"] is [Any])
            #expect(object["attributes"] is [String: Any])
        }
        #expect(statuses["notes.txt"] == "ERROR")
        let deepPrefix = (0..<20).map { "level \($0)" }.joined(separator: "/")
        #expect(statuses[deepPrefix + "/image.png"] == "ERROR")
        #expect(statuses[deepPrefix + "/truncated.dcm"] == "ERROR")
        #expect(statuses["ünïcode 0.dcm"] == "OK")
        #expect(statuses.values.filter { $0 == "OK" }.count == dicom.count)
        #expect(stderr.contains("files \(dicom.count + 3)"))
        #expect(stderr.contains("studies 2"))
        #expect(stderr.contains("not DICOM 2"))
    }

    @Test func rejectsUnsupportedPrefixAndBadThreads() throws {
        try #require(FileManager.default.fileExists(atPath: Self.binary.path), "build first (swift build)")
        #expect(try run(["scan", "ftp://host/x"]).status != 0)
        #expect(try run(["scan", "/tmp", "--threads", "0"]).status != 0)
        #expect(try run(["scan", "/nonexistent/folder/here"]).status == 1)
    }
}
