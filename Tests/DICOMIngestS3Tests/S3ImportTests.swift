import DICOMIngest
import DICOMIngestModel
import DICOMIngestS3
import DICOMIngestSQL
import DICOMIngestSQLite
import DICOMIngestTestSupport
import DICOMParser
import DICOMPixels
import AWSSigV4
import Foundation
import Synchronization
import Testing

/// Import jobs against a real S3 API server on loopback (moto, started by `scripts/test.sh`).
@Suite(.enabled(if: S3TestServer.available, "needs S3_TEST_ENDPOINT (scripts/test.sh starts moto_server)"))
struct S3ImportTests {
    static let study = "1.2.826.0.1.3680043.10.55"

    /// A fresh bucket, a store and an engine.
    struct Environment {
        let client: S3Client
        let bucket: String
        let folder: TemporaryFolder
        let store: SQLiteImageSetStore
        let engine: ImportEngine
        let datastoreId: String

        init(client: S3Client = S3TestServer.openClient()) throws {
            self.client = client
            bucket = "test-" + UUID().uuidString.lowercased()
            _ = try client.send(method: .PUT, bucket: bucket)
            folder = try TemporaryFolder("s3-import")
            store = try SQLiteImageSetStore(directory: folder.sub("store"))
            engine = ImportEngine(store: store, frameStorage: store.frameStorage, configuration: .init(threads: 2))
            datastoreId = try store.createDatastore(name: "s3", now: 0).datastoreId
        }

        func put(_ key: String, _ bytes: [UInt8]) throws {
            _ = try client.send(method: .PUT, bucket: bucket, key: key, body: bytes)
        }

        func get(_ key: String) throws -> [UInt8] {
            try client.send(method: .GET, bucket: bucket, key: key).body
        }

        /// Runs a job from `s3://bucket/in/` to `s3://bucket/out/`.
        func runJob(source: (any ObjectSource)? = nil, input: String = "in/", outputBucket: String? = nil) throws -> ImportOutcome {
            let inputURI = "s3://\(bucket)/\(input)"
            let outputURI = "s3://\(outputBucket ?? bucket)/out/"
            let job = try engine.submit(StartDICOMImportJobRequest(
                datastoreId: datastoreId, dataAccessRoleArn: "arn:aws:iam::123456789012:role/Importer",
                clientToken: UUID().uuidString, inputS3Uri: inputURI, outputS3Uri: outputURI))
            let objects = source ?? S3ObjectSource(client: client, location: S3Location(uri: inputURI)!)
            return try engine.run(job, source: objects) { job in
                try S3ResultSink(client: client, output: S3Location(uri: outputURI)!, datastoreId: job.datastoreId, jobId: job.jobId)
            }
        }

        func lines(_ outcome: ImportOutcome, _ file: ResultFile) throws -> [[String: Any]] {
            let folderURI = try #require(outcome.jobFolderURI)
            let key = String(folderURI.dropFirst("s3://\(bucket)/".count)) + file.rawValue
            return try String(decoding: get(key), as: UTF8.self).split(separator: "\n").map {
                try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
            }
        }

        func remove() {
            folder.remove()
        }
    }

    static func instance(_ index: Int, series: Int = 1) -> SyntheticInstance {
        SyntheticInstance(study: study, series: "\(study).\(series)", sop: "\(study).\(series).\(index)")
    }

    @Test func importsAPrefixOverSeveralListPagesWithUnicodeKeys() throws {
        var configuration = S3TestServer.openConfiguration()
        configuration.listPageSize = 7
        let environment = try Environment(client: S3Client(configuration: configuration))
        defer { environment.remove() }
        var keys: Set<String> = []
        for index in 1...30 {
            let key = "in/séries \(index % 3)/ünïcode ✓ \(index).dcm"
            try environment.put(key, Self.instance(index, series: index % 3).bytes)
            keys.insert(key)
        }
        try environment.put("in/notes.txt", Array("not dicom".utf8))
        try environment.put("in/folder/", [])
        try environment.put("elsewhere/outside.dcm", Self.instance(99).bytes)

        let outcome = try environment.runJob()
        #expect(outcome.job.jobStatus == .completed)
        #expect(outcome.scannedFiles == 31)
        let success = try environment.lines(outcome, .success)
        #expect(Set(success.compactMap { $0["inputFile"] as? String }) == keys)
        let failure = try environment.lines(outcome, .failure)
        #expect(failure.compactMap { $0["inputFile"] as? String } == ["in/notes.txt"])
        #expect(try environment.store.imageSets(datastoreId: environment.datastoreId).count == 3)

        let folderURI = try #require(outcome.jobFolderURI)
        #expect(folderURI == "s3://\(environment.bucket)/out/\(environment.datastoreId)-DicomImport-\(outcome.job.jobId)/")
        let manifestKey = String(folderURI.dropFirst("s3://\(environment.bucket)/".count)) + "job-output-manifest.json"
        let manifest = try #require(try JSONSerialization.jsonObject(with: Data(try environment.get(manifestKey))) as? [String: Any])
        let summary = try #require(manifest["jobSummary"] as? [String: Any])
        #expect(summary["numberOfImportedFiles"] as? Int == 30)
        #expect(summary["inputS3Uri"] as? String == "s3://\(environment.bucket)/in/")
    }

    @Test func streamsLargeObjectsThroughParallelRangedReads() throws {
        let environment = try Environment()
        defer { environment.remove() }
        var instance = Self.instance(1)
        instance.frames = 400
        try environment.put("in/multiframe.dcm", instance.bytes)
        // Tiny windows so this 13 KB object takes the ranged, parallel path of multi-gigabyte ones.
        let source = S3ObjectSource(
            client: environment.client, location: S3Location(uri: "s3://\(environment.bucket)/in/")!,
            wholeObjectLimit: 1024, readAhead: 700, parallelRanges: 3)
        let outcome = try environment.runJob(source: source)
        #expect(outcome.importedFiles == 1)
        let record = try #require(try environment.store.imageSets(datastoreId: environment.datastoreId).first)
        let gzip = try #require(
            try environment.store.metadataDocument(datastoreId: environment.datastoreId, imageSetId: record.imageSetId, version: nil))
        let document = try #require(Compression.gunzip(gzip))
        let text = String(decoding: document, as: UTF8.self)
        let frameIds = text.components(separatedBy: "\"ID\":\"").dropFirst().map { String($0.prefix(32)) }
        #expect(frameIds.count == 400)
        // Every frame came through whole: its stored HTJ2K codestream decodes to the source's samples.
        var decoded: [UInt8] = []
        let description = PixelDescription(
            rows: Int(SyntheticInstance.rows), columns: Int(SyntheticInstance.columns), bitsAllocated: 16, bitsStored: 12)
        let scratch = PixelScratch()
        for id in frameIds {
            let frame = try #require(try environment.store.frame(datastoreId: environment.datastoreId, imageSetId: record.imageSetId, frameId: id))
            let codestream = try environment.store.frameStorage.read(blob: frame.blob, offset: frame.offset, length: frame.length)
            decoded += try codestream.withUnsafeBytes {
                Array(try FrameProcessor.decodeStored($0, transferSyntaxUID: frame.transferSyntaxUID, description: description, scratch: scratch))
            }
        }
        #expect(decoded.count == instance.pixelBytes.count)
        let identical = decoded == instance.pixelBytes
        #expect(identical, "decoded frames differ from the source's Pixel Data")
    }

    @Test func scansAnS3Prefix() throws {
        let environment = try Environment()
        defer { environment.remove() }
        for index in 1...3 { try environment.put("in/séries/\(index).dcm", Self.instance(index).bytes) }
        try environment.put("in/notes.txt", Array("not dicom".utf8))
        let source = S3ObjectSource.forHeaderScans(client: environment.client, location: S3Location(uri: "s3://\(environment.bucket)/in/")!)
        let scan = ArchiveScan(source: source, configuration: .init(threads: 2)) { String($0.key.dropFirst(3)) }
        let results = Mutex<[String: String]>([:])
        let summary = try scan.run { result in results.withLock { $0[result.inputFile] = result.status.rawValue } }
        #expect(results.withLock { $0 } == ["séries/1.dcm": "OK", "séries/2.dcm": "OK", "séries/3.dcm": "OK", "notes.txt": "ERROR"])
        #expect(summary.dicomFiles == 3)
        #expect(summary.notDICOMFiles == 1)
        #expect(summary.series == 1)
    }

    @Test func writesLargeResultFilesWithMultipartUploads() throws {
        let environment = try Environment()
        defer { environment.remove() }
        let sink = try S3ResultSink(
            client: environment.client, output: S3Location(uri: "s3://\(environment.bucket)/out")!,
            datastoreId: String(repeating: "d", count: 32), jobId: String(repeating: "j", count: 32), partSize: 5 << 20)
        let line = [UInt8](repeating: UInt8(ascii: "x"), count: 1 << 20)
        for _ in 0..<11 { try sink.append(line, to: .failure) }
        try sink.append(Array("{\"ok\":true}".utf8), to: .success)
        try sink.finish(manifest: Array("{\"jobSummary\":{}}".utf8))
        let prefix = "out/\(String(repeating: "d", count: 32))-DicomImport-\(String(repeating: "j", count: 32))/"
        let failure = try environment.get(prefix + "FAILURE/failure.ndjson")
        #expect(failure.count == 11 * ((1 << 20) + 1))
        #expect(try environment.get(prefix + "SUCCESS/success.ndjson") == Array("{\"ok\":true}\n".utf8))
        #expect(try environment.get(prefix + "WARNING/warning.ndjson").isEmpty)
        #expect(try environment.get(prefix + "job-output-manifest.json") == Array("{\"jobSummary\":{}}".utf8))
    }

    /// Deletes one object after it was listed and before it is read: that file fails, the job goes on.
    struct DeletingSource: ObjectSource {
        let inner: S3ObjectSource
        let victim: String

        func forEachObject(_ body: (SourceObject) throws -> Void) throws {
            try inner.forEachObject { object in
                if object.key == victim {
                    _ = try inner.client.send(method: .DELETE, bucket: inner.location.bucket, key: object.key)
                }
                try body(object)
            }
        }

        func open(_ object: SourceObject) throws -> any P10ByteInput {
            try inner.open(object)
        }
    }

    @Test func anObjectDeletedBetweenListAndGetFailsAloneNotTheJob() throws {
        let environment = try Environment()
        defer { environment.remove() }
        for index in 1...3 { try environment.put("in/\(index).dcm", Self.instance(index).bytes) }
        let source = DeletingSource(
            inner: S3ObjectSource(client: environment.client, location: S3Location(uri: "s3://\(environment.bucket)/in/")!),
            victim: "in/2.dcm")
        let outcome = try environment.runJob(source: source)
        #expect(outcome.job.jobStatus == .completed)
        #expect(outcome.importedFiles == 2)
        let failure = try environment.lines(outcome, .failure)
        #expect(failure.count == 1)
        #expect(failure.first?["inputFile"] as? String == "in/2.dcm")
    }

    @Test func aMissingBucketFailsTheJobNamingTheBucket() throws {
        let environment = try Environment()
        defer { environment.remove() }
        let missing = "missing-" + UUID().uuidString.lowercased()
        let job = try environment.engine.submit(StartDICOMImportJobRequest(
            datastoreId: environment.datastoreId, dataAccessRoleArn: "arn:aws:iam::123456789012:role/Importer",
            clientToken: UUID().uuidString, inputS3Uri: "s3://\(missing)/in/", outputS3Uri: "s3://\(environment.bucket)/out/"))
        let outcome = try environment.engine.run(job, source: S3ObjectSource(client: environment.client, location: S3Location(uri: "s3://\(missing)/in/")!)) { job in
            try S3ResultSink(client: environment.client, output: S3Location(uri: "s3://\(environment.bucket)/out/")!, datastoreId: job.datastoreId, jobId: job.jobId)
        }
        #expect(outcome.job.jobStatus == .failed)
        #expect(outcome.job.message?.contains(missing) == true)

        let unwritable = try environment.runJob(outputBucket: missing)
        #expect(unwritable.job.jobStatus == .failed)
        #expect(unwritable.job.message?.contains(missing) == true)
    }

    @Test func signsRequestsThatAVerifyingServerAcceptsAndRefusesWrongCredentials() throws {
        let good = S3Client(configuration: S3TestServer.authenticatedConfiguration(secret: S3TestServer.secretAccessKey))
        let environment = try Environment(client: good)
        defer { environment.remove() }
        for index in 1...3 { try environment.put("in/a b/\(index).dcm", Self.instance(index).bytes) }
        // Prefix `in`, not `in/`: moto 5.2.1's verifier miscomputes signatures for a `/` in a query value (boto3's
        // own ListObjectsV2 with Prefix="in/" is refused too), while our signer matches botocore byte for byte.
        let outcome = try environment.runJob(input: "in")
        #expect(outcome.job.jobStatus == .completed, "\(outcome.job.message ?? "")")
        #expect(outcome.importedFiles == 3)

        let bad = S3Client(configuration: S3TestServer.authenticatedConfiguration(secret: "wrong-secret"))
        do {
            _ = try bad.send(method: .GET, bucket: environment.bucket, query: [("list-type", "2")])
            Issue.record("wrong credentials accepted")
        } catch let error as S3Error {
            #expect(error.status == 403)
        }
        let refused = S3ObjectSource(client: bad, location: S3Location(uri: "s3://\(environment.bucket)/in/")!)
        do {
            try refused.forEachObject { _ in }
            Issue.record("listing with wrong credentials succeeded")
        } catch let error as ObjectIOError {
            #expect(error.kind == .accessDenied)
            #expect(IngestServiceError(error).code == .accessDeniedException)
        }
    }

    /// A proxy fails a fifth of the requests (503 SlowDown or connection resets): the job must end with the same
    /// image sets and result lines as a clean run.
    @Test func faultsAreRetriedToTheSameOutcomeAsACleanRun() throws {
        let environment = try Environment()
        defer { environment.remove() }
        for index in 1...12 {
            var instance = Self.instance(index, series: index % 2)
            if index == 5 { instance.patientID = "CONFLICT" }
            try environment.put("in/\(index).dcm", instance.bytes)
        }
        try environment.put("in/junk.bin", Array("junk".utf8))
        let clean = try environment.runJob()

        let proxy = try FaultProxy(target: S3TestServer.endpoint, failureRate: 0.2, seed: 7)
        var configuration = S3TestServer.openConfiguration()
        configuration.endpoint = URL(string: "http://127.0.0.1:\(proxy.port)")!
        configuration.maxAttempts = 10
        let faulty = try Environment(client: S3Client(configuration: configuration))
        defer { faulty.remove() }
        for index in 1...12 {
            var instance = Self.instance(index, series: index % 2)
            if index == 5 { instance.patientID = "CONFLICT" }
            try faulty.put("in/\(index).dcm", instance.bytes)
        }
        try faulty.put("in/junk.bin", Array("junk".utf8))
        let retried = try faulty.runJob()

        #expect(retried.job.jobStatus == .completed)
        func shape(_ environment: Environment, _ outcome: ImportOutcome) throws -> [String] {
            try environment.lines(outcome, .success).map { line in
                let response = line["importResponse"] as? [String: Any]
                return "\(line["inputFile"] ?? "") \(response?["isPrimary"] ?? "") \(response?["imageSetVersion"] ?? "")"
            }.sorted() + environment.lines(outcome, .failure).map { "\($0["inputFile"] ?? "") failed" }.sorted()
        }
        #expect(try shape(faulty, retried) == shape(environment, clean))
        let cleanSets = try environment.store.imageSets(datastoreId: environment.datastoreId).map { "\($0.isPrimary) \($0.instanceCount)" }.sorted()
        let retriedSets = try faulty.store.imageSets(datastoreId: faulty.datastoreId).map { "\($0.isPrimary) \($0.instanceCount)" }.sorted()
        #expect(retriedSets == cleanSets)
        #expect(proxy.stop() > 0, "the proxy injected no fault")
    }
}

/// The S3 servers `scripts/test.sh` starts (see `scripts/s3/start-moto.py`).
enum S3TestServer {
    static let environment = ProcessInfo.processInfo.environment
    static var available: Bool { environment["S3_TEST_ENDPOINT"] != nil }
    static var endpoint: String { environment["S3_TEST_ENDPOINT"] ?? "" }
    static var secretAccessKey: String { environment["S3_TEST_SECRET_ACCESS_KEY"] ?? "" }

    static func openConfiguration() -> S3Configuration {
        S3Configuration(
            endpoint: URL(string: endpoint)!, region: "us-east-1",
            credentials: AWSCredentials(accessKeyId: "testing", secretAccessKey: "testing"), usePathStyle: true)
    }

    static func openClient() -> S3Client {
        S3Client(configuration: openConfiguration())
    }

    static func authenticatedConfiguration(secret: String) -> S3Configuration {
        S3Configuration(
            endpoint: URL(string: environment["S3_TEST_AUTH_ENDPOINT"] ?? endpoint)!, region: "us-east-1",
            credentials: AWSCredentials(accessKeyId: environment["S3_TEST_ACCESS_KEY_ID"] ?? "", secretAccessKey: secret),
            usePathStyle: true, maxAttempts: 2)
    }
}

/// `scripts/s3/fault-proxy.py`, run for one test.
final class FaultProxy {
    let process = Process()
    let input = Pipe()
    let output = Pipe()
    let port: Int

    init(target: String, failureRate: Double, seed: Int) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", Fixtures.packageRoot.path + "/scripts/s3/fault-proxy.py", target, String(failureRate), String(seed)]
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        var line: [UInt8] = []
        while let byte = try output.fileHandleForReading.read(upToCount: 1)?.first, byte != 0x0A { line.append(byte) }
        port = try #require(Int(String(decoding: line, as: UTF8.self)))
    }

    deinit {
        if process.isRunning { process.terminate() }
    }

    /// Stops the proxy and returns how many requests it failed.
    @discardableResult
    func stop() -> Int {
        try? input.fileHandleForWriting.close()
        let rest = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Int(String(decoding: rest, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    }
}
