import DICOMIngestTestSupport
import Foundation
import Glibc
import Testing

/// `import` killed with SIGKILL and run again: the job resumes and ends exactly as a run that was never stopped.
@Suite struct ResumeTests {
    let runner = ScanCommandTests()

    /// What must not depend on where a run was stopped: result lines with image sets named by their series,
    /// the manifest's counts and summaries, the catalog's image sets and versions, and the job record's counts
    /// (bytes included: those of objects read again are counted once).
    struct Result: Equatable, CustomStringConvertible {
        var success: [String]
        var warning: [String]
        var failure: [String]
        var manifest: [String]
        var imageSets: [String]
        var record: [String]

        var description: String {
            "success \(success.count), warning \(warning.count), failure \(failure.count), manifest \(manifest), image sets \(imageSets.count), record \(record)"
        }
    }

    /// The first few lines that one result has and the other lacks, file by file.
    static func differences(_ got: Result, _ expected: Result) -> String {
        let pairs = [("success", got.success, expected.success), ("warning", got.warning, expected.warning),
            ("failure", got.failure, expected.failure), ("manifest", got.manifest, expected.manifest),
            ("image sets", got.imageSets, expected.imageSets), ("record", got.record, expected.record)]
        return pairs.compactMap { name, got, expected -> String? in
            guard got != expected else { return nil }
            let extra = Set(got).subtracting(expected).sorted().prefix(3).map { "+ \($0)" }
            let missing = Set(expected).subtracting(got).sorted().prefix(3).map { "- \($0)" }
            return "\(name) (\(got.count) lines, \(expected.count) expected): " + (extra + missing).joined(separator: " ")
        }.joined(separator: "; ")
    }

    func json(_ text: some StringProtocol) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    func result(store: String, output: String) throws -> Result {
        let listed = try json(try runner.run(["image-set", "list", "--store", store]).stdout)
        let summaries = try #require(listed["imageSetsMetadataSummaries"] as? [[String: Any]])
        var seriesOf: [String: String] = [:]
        var imageSets: [String] = []
        for summary in summaries {
            let id = try #require(summary["imageSetId"] as? String)
            let series = try #require((summary["DICOMTags"] as? [String: Any])?["DICOMSeriesInstanceUID"] as? String)
            seriesOf[id] = series
            imageSets.append("\(series) v\(summary["version"] ?? "?") primary \(summary["isPrimary"] ?? "?")")
        }
        let jobs = try FileManager.default.contentsOfDirectory(atPath: output)
        #expect(jobs.count == 1, "\(jobs)")
        let folder = output + "/" + (jobs.first ?? "")
        func lines(_ file: String) throws -> [String] {
            let text = try String(contentsOfFile: folder + "/" + file, encoding: .utf8)
            return try text.split(separator: "\n").map { line in
                var object = try json(line)
                if var response = object["importResponse"] as? [String: Any], let id = response["imageSetId"] as? String {
                    response["imageSetId"] = seriesOf[id] ?? "unknown image set \(id)"
                    if var warnings = response["warnings"] as? [[String: Any]] {
                        for index in warnings.indices {
                            var message = warnings[index]["message"] as? String ?? ""
                            for (id, series) in seriesOf { message = message.replacingOccurrences(of: id, with: series) }
                            warnings[index]["message"] = message
                        }
                        response["warnings"] = warnings
                    }
                    object["importResponse"] = response
                }
                let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                return String(decoding: data, as: UTF8.self)
            }.sorted()
        }
        let manifestData = try Data(contentsOf: URL(fileURLWithPath: folder + "/job-output-manifest.json"))
        let summary = try #require((try JSONSerialization.jsonObject(with: manifestData) as? [String: Any])?["jobSummary"] as? [String: Any])
        var manifest = summary.filter { $0.key.hasPrefix("numberOf") }.map { "\($0.key)=\($0.value)" }
        for entry in summary["imageSetsSummary"] as? [[String: Any]] ?? [] {
            let id = entry["imageSetId"] as? String ?? ""
            manifest.append("\(seriesOf[id] ?? id) v\(entry["imageSetVersion"] ?? "?") primary \(entry["isPrimary"] ?? "?") matched \(entry["numberOfMatchedSOPInstances"] ?? "?")")
        }
        let jobId = try #require(summary["jobId"] as? String)
        let job = try json(try runner.run(["job", "get", jobId, "--store", store]).stdout)
        let record = try #require((job["jobProperties"] as? [String: Any])?["jobSummary"] as? [String: Any])
        return Result(
            success: try lines("SUCCESS/success.ndjson"), warning: try lines("WARNING/warning.ndjson"),
            failure: try lines("FAILURE/failure.ndjson"), manifest: manifest.sorted(), imageSets: imageSets.sorted(),
            record: record.map { "\($0.key)=\($0.value)" }.sorted())
    }

    /// 2,000 instances in 20 series, a zip of 10 more and a junk member, 20 junk files and two copies of one
    /// instance (a duplicate warning). A run that is never stopped gives the reference; then, 20 times, a run on
    /// a fresh store is killed at a point spread over the reference's duration (listing, workers, commit,
    /// results) and run again, by its client token or by `--resume`: each ends with the reference's image sets,
    /// versions, lines (none doubled) and manifest.
    @Test func aJobKilledAtAnyPointResumesToTheSameResult() throws {
        try #require(FileManager.default.fileExists(atPath: ScanCommandTests.binary.path), "build first (swift build)")
        let folder = try TemporaryFolder("resume")
        defer { folder.remove() }
        let study = "1.2.826.0.1.3680043.14.1"
        for series in 0..<20 {
            for index in 0..<100 {
                try SyntheticInstance(study: study, series: "\(study).\(series)", sop: "\(study).\(series).\(index)")
                    .write(to: folder.sub("in/s\(series)/\(index).dcm"))
            }
        }
        try FileManager.default.createDirectory(atPath: folder.sub("in/junk"), withIntermediateDirectories: true)
        for index in 0..<20 { try Data("junk \(index)".utf8).write(to: URL(fileURLWithPath: folder.sub("in/junk/\(index).bin"))) }
        try FileManager.default.copyItem(atPath: folder.sub("in/s0/0.dcm"), toPath: folder.sub("in/s0/copy-of-0.dcm"))
        var members: [String] = []
        for index in 0..<10 {
            let path = folder.sub("zip/\(index).dcm")
            try SyntheticInstance(study: study, series: "\(study).99", sop: "\(study).99.\(index)").write(to: path)
            members.append(path)
        }
        let zipped = try runner.run(
            ["-c", "import sys, zipfile\nwith zipfile.ZipFile(sys.argv[1], 'w') as z:\n  [z.write(p, p.split('/')[-1]) for p in sys.argv[2:]]\n  z.writestr('junk.bin', b'junk')",
             folder.sub("in/archive.zip")] + members,
            executable: URL(fileURLWithPath: "/usr/bin/python3"))
        #expect(zipped.status == 0, "\(zipped.stderr)")

        func arguments(_ run: String, token: String) -> [String] {
            ["import", folder.sub("in"), "--output", folder.sub("out-\(run)"), "--store", folder.sub("store-\(run)"),
             "--client-token", token, "--threads", "2", "--json", "--no-progress"]
        }
        let started = Date()
        let reference = try runner.run(arguments("reference", token: "reference"))
        let duration = Date().timeIntervalSince(started)
        #expect(reference.status == 0, "\(reference.stderr)")
        let expected = try result(store: folder.sub("store-reference"), output: folder.sub("out-reference"))
        #expect(expected.success.count == 2_011)
        #expect(expected.failure.count == 21)
        #expect(expected.imageSets.count == 21)

        var generator = SystemRandomNumberGenerator()
        for point in 0..<20 {
            let run = "kill-\(point)"
            let process = Process()
            process.executableURL = ScanCommandTests.binary
            process.arguments = arguments(run, token: run)
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            let delay = (Double(point) + Double.random(in: 0..<1, using: &generator)) / 20 * duration
            Thread.sleep(forTimeInterval: delay)
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()

            let again: (status: Int32, stdout: String, stderr: String)
            if point % 2 == 0 {
                again = try runner.run(arguments(run, token: run))
            } else {
                // Killed before the job was recorded (nothing to resume) or after it ended (nothing left to do): the
                // token answers.
                // Killed before even the data store was created, `job list` has none to list.
                let listing = try runner.run(["job", "list", "--store", folder.sub("store-\(run)")])
                let jobs = listing.status == 0 ? try json(listing.stdout)["jobSummaries"] as? [[String: Any]] : nil
                if let jobId = jobs?.first?["jobId"] as? String, jobs?.first?["jobStatus"] as? String == "IN_PROGRESS" {
                    again = try runner.run(["import", "--resume", jobId, "--store", folder.sub("store-\(run)"), "--json", "--no-progress", "--threads", "2"])
                } else {
                    again = try runner.run(arguments(run, token: run))
                }
            }
            #expect(again.status == 0, "kill after \(delay) s: \(again.stderr)")
            let got = try result(store: folder.sub("store-\(run)"), output: folder.sub("out-\(run)"))
            #expect(got == expected, "kill after \(delay) s: \(got) instead of \(expected); \(Self.differences(got, expected))")
        }
    }

    /// An object in a worker's hands when the process died, twice, is not read a third time: the job reports it
    /// (InternalServerException) and imports the rest. The process is killed while the journal shows a large
    /// object started and not finished, as a crash inside that object's codec would leave it.
    @Test func anObjectInFlightAtTwoStopsIsReportedNotReadAgain() throws {
        try #require(FileManager.default.fileExists(atPath: ScanCommandTests.binary.path), "build first (swift build)")
        let folder = try TemporaryFolder("crash-loop")
        defer { folder.remove() }
        let study = "1.2.826.0.1.3680043.14.2"
        var large = SyntheticInstance(study: study, series: study + ".1", sop: study + ".1.0")
        large.matrix = 512
        large.frames = 120
        try large.write(to: folder.sub("in/a-large.dcm"))
        for index in 1...30 {
            try SyntheticInstance(study: study, series: study + ".1", sop: study + ".1.\(index)").write(to: folder.sub("in/b/\(index).dcm"))
        }
        let arguments = ["import", folder.sub("in"), "--output", folder.sub("out"), "--store", folder.sub("store"),
            "--client-token", "crash-loop", "--threads", "1", "--json", "--no-progress"]
        for stop in 1...2 {
            let process = Process()
            process.executableURL = ScanCommandTests.binary
            process.arguments = arguments
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            let deadline = Date().addingTimeInterval(120)
            var holding = false
            while !holding && Date() < deadline && process.isRunning {
                Thread.sleep(forTimeInterval: 0.02)
                let journals = (try? FileManager.default.contentsOfDirectory(atPath: folder.sub("store/jobs"))) ?? []
                let text = journals.compactMap { try? String(contentsOfFile: folder.sub("store/jobs/\($0)"), encoding: .utf8) }.joined()
                let lines = text.split(separator: "\n")
                holding = lines.contains { $0.hasPrefix("S\(stop) ") && $0.contains("a-large.dcm") }
                    && !lines.contains { $0.hasPrefix("F\(stop) ") && $0.contains("a-large.dcm") }
            }
            #expect(holding, "attempt \(stop) never held the large object")
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        let last = try runner.run(arguments)
        #expect(last.status == 0, "\(last.stderr)")
        let summary = try json(last.stdout)
        #expect(summary["numberOfImportedFiles"] as? Int == 30)
        #expect(summary["numberOfFilesWithServerError"] as? Int == 1)
        let jobFolder = try #require(summary["jobOutputFolder"] as? String)
        let failures = try String(contentsOfFile: jobFolder + "/FAILURE/failure.ndjson", encoding: .utf8).split(separator: "\n")
        #expect(failures.count == 1)
        let failure = try json(try #require(failures.first))
        #expect((failure["inputFile"] as? String)?.hasSuffix("in/a-large.dcm") == true)
        let exception = failure["exception"] as? [String: Any]
        #expect(exception?["exceptionType"] as? String == "InternalServerException")
        #expect((exception?["message"] as? String)?.contains("stopped 2 times while this object was being read") == true)
        let successes = try String(contentsOfFile: jobFolder + "/SUCCESS/success.ndjson", encoding: .utf8).split(separator: "\n")
        #expect(successes.count == 30)
        #expect(!FileManager.default.fileExists(atPath: folder.sub("store/jobs/\(summary["jobId"] as? String ?? "").journal")))
    }
}
