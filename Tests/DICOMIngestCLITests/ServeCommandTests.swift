import DICOMIngestTestSupport
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing

/// `dicom-ingest serve` driven by the real boto3 client and aws cli (scripts/server/*.py), against S3 on loopback.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["S3_TEST_ENDPOINT"] != nil, "needs S3_TEST_ENDPOINT (scripts/test.sh)"))
struct ServeCommandTests {
    static let identity = ["AWS_ACCESS_KEY_ID": "e2e-access-key", "AWS_SECRET_ACCESS_KEY": "e2e-secret-key"]

    /// Writes `count` instances in two series and returns their paths.
    func instances(_ count: Int, in folder: TemporaryFolder) throws -> [String] {
        let study = "1.2.826.0.1.3680043.10.66"
        return try (1...count).map { index in
            var instance = SyntheticInstance(study: study, series: "\(study).\(index % 2)", sop: "\(study).\(index % 2).\(index)")
            instance.frames = index % 3 + 1
            let path = folder.sub("files/\(index).dcm")
            try instance.write(to: path)
            return path
        }
    }

    func python(_ script: String, _ arguments: [String], environment extra: [String: String]) throws -> (Int32, [String: Any]?, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", Fixtures.packageRoot.path + "/scripts/server/" + script] + arguments
        process.environment = ProcessInfo.processInfo.environment.merging(extra) { $1 }
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        let errorText = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let lastLine = String(decoding: data, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? ""
        let object = try? JSONSerialization.jsonObject(with: Data(lastLine.utf8)) as? [String: Any]
        return (process.terminationStatus, object, errorText + lastLine)
    }

    /// On the store folder's SQLite catalog, and on PostgreSQL (named by the environment, as a deployment would).
    @Test(arguments: ImportCommandTests.catalogs) func boto3AndTheAwsCliDriveTheServerUnchanged(catalog: String?) throws {
        try #require(FileManager.default.fileExists(atPath: ScanCommandTests.binary.path), "build first (swift build)")
        let folder = try TemporaryFolder("serve-e2e")
        defer { folder.remove() }
        let files = try instances(6, in: folder)
        var environment = Self.identity
        let framesBucket = "frames-" + UUID().uuidString.lowercased()
        if let catalog {
            // The shape several machines share: the catalog in PostgreSQL, the frames in S3.
            environment["DICOM_INGEST_CATALOG"] = catalog + (catalog.contains("?") ? "&" : "?") + "schema=serve_" + UUID().uuidString.prefix(8).lowercased()
            #expect(try Self.s3(method: "PUT", path: framesBucket).status == 200)
            environment["DICOM_INGEST_FRAMES"] = "s3://\(framesBucket)/frames/"
        }
        let server = try RunningServer(store: folder.sub("store"), environment: environment)
        defer { server.stop() }
        let (status, seen, output) = try python(
            "boto3_e2e.py", [server.url, ProcessInfo.processInfo.environment["S3_TEST_ENDPOINT"]!] + files,
            environment: Self.identity)
        #expect(status == 0, "\(output)")
        #expect(seen?["ok"] as? Bool == true)
        #expect(seen?["imported"] as? Int == 6)
        #expect(seen?["frameContentType"] as? String == "image/jph")
        if catalog != nil {
            // GetImageFrame answered from the objects the import wrote, one per instance.
            let listing = try Self.s3(method: "GET", path: framesBucket + "?list-type=2").body
            #expect(listing.components(separatedBy: "<Key>frames/").count - 1 == 6, "\(listing)")
            #expect(!FileManager.default.fileExists(atPath: folder.sub("store/frames")))
        }
    }

    /// One unsigned request to the open moto server.
    static func s3(method: String, path: String) throws -> (status: Int, body: String) {
        var request = URLRequest(url: URL(string: ProcessInfo.processInfo.environment["S3_TEST_ENDPOINT"]! + "/" + path)!)
        request.httpMethod = method
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: (Int, String)?
        URLSession.shared.dataTask(with: request) { data, response, _ in
            result = ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data ?? Data(), as: UTF8.self))
            done.signal()
        }.resume()
        done.wait()
        return try #require(result)
    }

    @Test func aJobKilledMidwayResumesToTheSameOutcomeAsACleanRun() throws {
        try #require(FileManager.default.fileExists(atPath: ScanCommandTests.binary.path), "build first (swift build)")
        let folder = try TemporaryFolder("serve-restart")
        defer { folder.remove() }
        let files = try instances(120, in: folder)
        let (status, seen, output) = try python(
            "restart_e2e.py",
            [ScanCommandTests.binary.path, folder.sub("store"), ProcessInfo.processInfo.environment["S3_TEST_ENDPOINT"]!] + files,
            environment: Self.identity)
        #expect(status == 0, "\(output)")
        #expect(seen?["ok"] as? Bool == true)
        #expect(seen?["success"] as? Int == 120)
    }
}

/// `dicom-ingest serve --port 0` in the background, with its port read from the start-up log line.
final class RunningServer {
    let process = Process()
    let url: String

    /// - Parameter configuration: the `--config` JSON; roles must be configured to be accepted, and the tests
    ///   pass any role (on S3 prefixes only).
    init(store: String, environment: [String: String], configuration: String = #"{"roles": {"*": {}}}"#) throws {
        process.executableURL = ScanCommandTests.binary
        let configurationFile = store + ".config.json"
        try FileManager.default.createDirectory(
            atPath: (store as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(configuration.utf8).write(to: URL(fileURLWithPath: configurationFile))
        process.arguments = ["serve", "--port", "0", "--store", store, "--config", configurationFile]
        var merged = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        merged["AWS_ENDPOINT_URL_S3"] = merged["S3_TEST_ENDPOINT"]
        merged["DICOM_INGEST_LOG_LEVEL"] = "info"
        process.environment = merged
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        var text = ""
        let deadline = Date().addingTimeInterval(30)
        var port: String?
        while port == nil, Date() < deadline, let chunk = try errors.fileHandleForReading.read(upToCount: 1) , !chunk.isEmpty {
            text += String(decoding: chunk, as: UTF8.self)
            // Match only whole lines, or a port still being written would be cut short.
            if chunk.first == 0x0A, let range = text.range(of: #"listening on [^:\s]+:(\d+)"#, options: .regularExpression) {
                port = text[range].split(separator: ":").last.map(String.init)
            }
        }
        url = "http://127.0.0.1:\(try #require(port, "server did not start: \(text)"))"
    }

    func stop() {
        process.terminate()
        process.waitUntilExit()
    }
}
