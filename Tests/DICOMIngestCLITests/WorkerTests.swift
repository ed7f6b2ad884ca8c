import DICOMIngestTestSupport
import Foundation
import Testing

/// `dicom-ingest worker` processes sharing a PostgreSQL catalog, with input, output and frames in S3 on loopback
/// (scripts/server/workers_e2e.py drives the processes and checks what they produced).
@Suite(
    .enabled(
        if: ProcessInfo.processInfo.environment["S3_TEST_ENDPOINT"] != nil
            && ProcessInfo.processInfo.environment["DICOM_INGEST_TEST_POSTGRES"] != nil,
        "needs S3_TEST_ENDPOINT and DICOM_INGEST_TEST_POSTGRES (scripts/test.sh)"),
    .serialized)
struct WorkerTests {
    /// Runs a scenario of workers_e2e.py on the files `write` puts in a folder.
    func scenario(_ name: String, write: (TemporaryFolder) throws -> Void) throws -> [String: Any]? {
        try #require(FileManager.default.fileExists(atPath: ScanCommandTests.binary.path), "build first (swift build)")
        let folder = try TemporaryFolder("workers-" + name)
        defer { folder.remove() }
        try write(folder)
        let environment = ProcessInfo.processInfo.environment
        let (status, seen, output) = try ServeCommandTests().python(
            "workers_e2e.py",
            [
                name, ScanCommandTests.binary.path, folder.sub("work"), environment["S3_TEST_ENDPOINT"]!,
                environment["DICOM_INGEST_TEST_POSTGRES"]!, folder.sub("files"),
            ],
            environment: ServeCommandTests.identity)
        #expect(status == 0, "\(output)")
        #expect(seen?["ok"] as? Bool == true, "\(output)")
        // What the scenario measured (times, counts), for the test log.
        print("workers_e2e \(name): \(output.split(separator: "\n").last ?? "")")
        return seen
    }

    static func instance(study: Int, series: Int, index: Int) -> SyntheticInstance {
        let studyUID = "1.2.826.0.1.3680043.10.90.\(study)"
        var instance = SyntheticInstance(study: studyUID, series: "\(studyUID).\(series)", sop: "\(studyUID).\(series).\(index)")
        instance.patientID = "PAT\(study)"
        instance.seriesNumber = "\(series + 1)"
        instance.instanceNumber = "\(index)"
        return instance
    }

    static func junk(_ count: Int, in folder: TemporaryFolder) throws {
        for index in 0..<count {
            try Data("not DICOM \(index)".utf8).write(to: URL(fileURLWithPath: folder.sub("files/junk-\(index).bin")))
        }
    }

    /// 2,000 files: 1,800 instances in 30 series of 10 studies, 100 copies of SOP instances (duplicate warnings), 60
    /// instances whose patient conflicts with their series' primary image set (non-primary image sets), 40 junk.
    @Test func threeWorkersImportWhatASingleProcessImports() throws {
        let seen = try scenario("identical") { folder in
            for study in 0..<10 {
                for series in 0..<3 {
                    for index in 0..<60 {
                        try Self.instance(study: study, series: series, index: index)
                            .write(to: folder.sub("files/s\(study)-\(series)-\(index).dcm"))
                    }
                }
            }
            for index in 0..<100 {
                var copy = Self.instance(study: index % 10, series: 0, index: index % 60)
                copy.instanceNumber = "\(1000 + index)"
                try copy.write(to: folder.sub("files/copy-\(index).dcm"))
            }
            for index in 0..<60 {
                var conflicting = Self.instance(study: 0, series: 1, index: 100 + index)
                conflicting.patientID = "OTHER\(index % 3)"
                try conflicting.write(to: folder.sub("files/conflict-\(index).dcm"))
            }
            try Self.junk(40, in: folder)
        }
        #expect(seen?["SUCCESS/success.ndjson"] as? Int == 1960)
        #expect(seen?["FAILURE/failure.ndjson"] as? Int == 40)
    }

    @Test func aKilledAndAStoppedWorkerLoseAndDoubleNothing() throws {
        let seen = try scenario("kill") { folder in
            for index in 0..<400 {
                var instance = Self.instance(study: index % 4, series: index % 8, index: index)
                instance.frames = 2
                instance.matrix = 64
                try instance.write(to: folder.sub("files/i\(index).dcm"))
            }
            try Self.junk(10, in: folder)
        }
        #expect(seen?["success"] as? Int == 400)
        #expect(seen?["failure"] as? Int == 10)
    }

    /// The object a worker held at each of its deaths (a large one, killed mid-transcode, as a crash in its codec
    /// would): after the third, the next claim of its chunk reports it instead of reading it again.
    @Test func anObjectInHandAtEveryDeathIsReportedNotReadAgain() throws {
        let seen = try scenario("poison") { folder in
            let study = "1.2.826.0.1.3680043.10.91"
            var large = SyntheticInstance(study: study, series: study + ".1", sop: study + ".1.0")
            large.matrix = 512
            large.frames = 120
            try large.write(to: folder.sub("files/a-large.dcm"))
            for index in 1...30 {
                try SyntheticInstance(study: study, series: study + ".1", sop: study + ".1.\(index)")
                    .write(to: folder.sub("files/b-\(index).dcm"))
            }
        }
        #expect(seen?["success"] as? Int == 30)
        #expect(seen?["failure"] as? Int == 1)
    }

    @Test func twoJobsOnTwoDataStoresShareTheWorkers() throws {
        _ = try scenario("fair") { folder in
            for index in 0..<400 {
                var instance = Self.instance(study: index % 5, series: index % 10, index: index)
                instance.matrix = 32
                try instance.write(to: folder.sub("files/i\(String(format: "%04d", index)).dcm"))
            }
        }
    }
}

/// deploy/kubernetes runs commands and flags the binary has, with the ConfigMaps, Secrets, volumes, probe
/// endpoints and metrics the manifests and the processes define (scripts/deploy/check_manifests.py).
@Suite struct DeployManifestTests {
    @Test func theManifestsRunWhatTheBinaryAccepts() throws {
        try #require(FileManager.default.fileExists(atPath: ScanCommandTests.binary.path), "build first (swift build)")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.currentDirectoryURL = Fixtures.packageRoot
        process.arguments = [
            "python3", "scripts/deploy/check_manifests.py", ScanCommandTests.binary.path, "deploy/kubernetes",
        ]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(text)")
        #expect(text.contains("\"containers\": 4"), "\(text)")
    }
}
