import DICOMIngestTestSupport
import Foundation
import Testing

/// The built binary: `import`, then the store commands on what it wrote.
@Suite struct ImportCommandTests {
    let runner = ScanCommandTests()

    func json(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    /// The catalogs to run the store commands against: the store folder's SQLite file, and PostgreSQL when
    /// `DICOM_INGEST_TEST_POSTGRES` names a server (`scripts/test.sh` starts one), in a schema of the test's own.
    static let catalogs: [String?] = {
        guard let url = ProcessInfo.processInfo.environment["DICOM_INGEST_TEST_POSTGRES"], !url.isEmpty else { return [nil] }
        return [nil, url]
    }()

    @Test(arguments: Self.catalogs) func importsThenListsAndPrintsMetadata(catalog: String?) throws {
        try #require(FileManager.default.fileExists(atPath: ScanCommandTests.binary.path), "build first (swift build)")
        let folder = try TemporaryFolder("cli-import")
        defer { folder.remove() }
        let study = "1.2.826.0.1.3680043.10.77"
        for index in 1...3 {
            try SyntheticInstance(study: study, series: study + ".1", sop: study + ".1.\(index)")
                .write(to: folder.sub("in/séries/\(index).dcm"))
        }
        try Data("junk".utf8).write(to: URL(fileURLWithPath: folder.sub("in/junk.bin")))
        let store = folder.sub("store")
        let schema = "cli_" + UUID().uuidString.prefix(8).lowercased()
        let catalogURL = catalog.map { $0 + ($0.contains("?") ? "&" : "?") + "schema=" + schema }
        let storeArguments = ["--store", store] + (catalogURL.map { ["--catalog", $0] } ?? [])

        let imported = try runner.run(["import", "file://" + folder.sub("in"), "--output", folder.sub("out")] + storeArguments + ["--json", "--threads", "2"])
        #expect(imported.status == 0, "\(imported.stderr)")
        let summary = try json(imported.stdout)
        #expect(summary["jobStatus"] as? String == "COMPLETED")
        #expect(summary["numberOfScannedFiles"] as? Int == 4)
        #expect(summary["numberOfImportedFiles"] as? Int == 3)
        #expect(summary["numberOfFilesWithCustomerError"] as? Int == 1)
        let jobFolder = try #require(summary["jobOutputFolder"] as? String)
        #expect(FileManager.default.fileExists(atPath: jobFolder + "/job-output-manifest.json"))
        let jobId = try #require(summary["jobId"] as? String)

        let job = try json(try runner.run(["job", "get", jobId] + storeArguments).stdout)
        #expect((job["jobProperties"] as? [String: Any])?["jobStatus"] as? String == "COMPLETED")
        let progress = try #require((job["jobProperties"] as? [String: Any])?["jobSummary"] as? [String: Any])
        #expect(progress["numberOfScannedFiles"] as? Int == 4)
        #expect(progress["numberOfImportedFiles"] as? Int == 3)
        #expect(progress["numberOfFilesWithCustomerError"] as? Int == 1)

        let listed = try json(try runner.run(["image-set", "list"] + storeArguments).stdout)
        let sets = try #require(listed["imageSetsMetadataSummaries"] as? [[String: Any]])
        #expect(sets.count == 1)
        let imageSetId = try #require(sets.first?["imageSetId"] as? String)

        let metadata = try json(try runner.run(["image-set", "metadata", imageSetId] + storeArguments).stdout)
        #expect(metadata["SchemaVersion"] as? String == "1.1")
        let got = try json(try runner.run(["image-set", "get", imageSetId] + storeArguments).stdout)
        #expect(got["versionId"] as? String == "1")
        #expect((got["imageSetArn"] as? String)?.hasSuffix("/imageset/" + imageSetId) == true)

        // The environment names the catalog as the flag does.
        let datastores = try json(try runner.run(
            ["datastore", "list", "--store", store], environment: ["DICOM_INGEST_CATALOG": catalogURL ?? ""]).stdout)
        #expect((datastores["datastoreSummaries"] as? [Any])?.count == 1)

        // UpdateImageSetMetadata from the command line: a new version, an answer to a stale one, a revert.
        try Data(#"{"SchemaVersion":1.1,"Study":{"DICOM":{"StudyDescription":"CLI UPDATED"}}}"#.utf8)
            .write(to: URL(fileURLWithPath: folder.sub("updates.json")))
        let updated = try runner.run(["image-set", "update", imageSetId, "--latest-version", "1", "--updatable", folder.sub("updates.json")] + storeArguments)
        #expect(updated.status == 0, "\(updated.stderr)")
        #expect(try json(updated.stdout)["versionId"] as? String == "2")
        let studyLevel = try json(try runner.run(["image-set", "metadata", imageSetId] + storeArguments).stdout)["Study"] as? [String: Any]
        #expect((studyLevel?["DICOM"] as? [String: Any])?["StudyDescription"] as? String == "CLI UPDATED")
        let stale = try runner.run(["image-set", "update", imageSetId, "--latest-version", "1", "--revert-to", "1"] + storeArguments)
        #expect(stale.status == 4, "\(stale.stderr)")
        #expect(stale.stderr.contains("ConflictException"))
        // Refused as HealthImaging documents (issue 22): exit status 2, a ValidationException naming what is wrong.
        let refused: [([UInt8], String)] = [
            (Array(#"{"Study":{"DICOM":{"StudyDescription":"a"#.utf8) + [0xFF] + Array(#""}}}"#.utf8), "not valid UTF-8"),
            (Array(#"{"Study":{"DICOM":{"StudyDescription":"a\u0000b"}}}"#.utf8), "holds a NUL character"),
            (Array(#"{"Study":{"DICOM":{"__proto__":{"polluted":true}}}}"#.utf8), "__proto__ is not a DICOM attribute"),
            (Array(#"{"Study":{"DICOM":{"StudyDescription":"a","StudyDescription":"b"}}}"#.utf8), "gives StudyDescription twice"),
            (Array(#"{"Study":{"DICOM":{"StudyDate":"2024-01-01"}}}"#.utf8), "StudyDate does not fit its VR DA"),
            (Array(#"{"Study":{"DICOM":{"ReferencedStudySequence":[{}]}}}"#.utf8), "ReferencedStudySequence is a sequence"),
            (Array(#"{"Study":{"DICOM":{"NameOfPhysiciansReadingStudy":["A^B","C^D"]}}}"#.utf8), "multi-valued changes need force=true"),
            (Array(#"{"Study":{"DICOM":{"Modality":"MR"}}}"#.utf8), "Modality belongs at the series level"),
            (Array(#"{"Study":{"DICOM":{"00091010":"AQA="}}}"#.utf8), "Private attribute 00091010"),
        ]
        for (body, words) in refused {
            try Data(body).write(to: URL(fileURLWithPath: folder.sub("refused.json")))
            let answer = try runner.run(
                ["image-set", "update", imageSetId, "--latest-version", "2", "--updatable", folder.sub("refused.json")] + storeArguments)
            #expect(answer.status == 2, "\(words): \(answer.stderr)")
            #expect(answer.stderr.contains("ValidationException") && answer.stderr.contains(words), "\(answer.stderr)")
        }
        let reverted = try runner.run(["image-set", "update", imageSetId, "--latest-version", "2", "--revert-to", "1"] + storeArguments)
        #expect(try json(reverted.stdout)["versionId"] as? String == "3", "\(reverted.stderr)")
        let copied = try runner.run(["image-set", "copy", imageSetId, "--latest-version", "3"] + storeArguments)
        let copy = try json(copied.stdout)
        #expect(copy["versionId"] as? String == "1", "\(copied.stderr)")
        #expect(copy["isPrimary"] as? Bool == false)
        #expect(copy["imageSetId"] as? String != imageSetId)
        // Two image sets now: a page of one, then the rest through its token.
        let first = try json(try runner.run(["image-set", "list", "--max-results", "1"] + storeArguments).stdout)
        let token = try #require(first["nextToken"] as? String)
        let second = try json(try runner.run(["image-set", "list", "--max-results", "1", "--next-token", token] + storeArguments).stdout)
        #expect(second["nextToken"] == nil)
        let paged = [first, second].flatMap { ($0["imageSetsMetadataSummaries"] as? [[String: Any]] ?? []).compactMap { $0["imageSetId"] as? String } }
        #expect(Set(paged) == [imageSetId, copy["imageSetId"] as? String ?? ""])

        let missing = try runner.run(["image-set", "get", String(repeating: "0", count: 32)] + storeArguments)
        #expect(missing.status == 3)
        #expect(missing.stderr.contains("ResourceNotFoundException"))
        if catalogURL != nil {
            // The catalog is PostgreSQL's: the store folder holds frames and journals, no SQLite file.
            #expect(!FileManager.default.fileExists(atPath: store + "/catalog.sqlite"))
            #expect(FileManager.default.fileExists(atPath: store + "/frames"))
        }
    }

    @Test func servesFramesAsCodestreamLowerResolutionAndPNG() throws {
        try #require(FileManager.default.fileExists(atPath: ScanCommandTests.binary.path), "build first (swift build)")
        try #require(Fixtures.externalCorpusAvailable, "run fixtures/fetch-pydicom-corpus.sh first")
        let folder = try TemporaryFolder("cli-frame")
        defer { folder.remove() }
        // pydicom's CT_small: 128×128 signed 16-bit, so one wavelet level and two resolutions.
        try FileManager.default.createDirectory(atPath: folder.sub("in"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(
            atPath: Fixtures.external.appendingPathComponent("test_files/CT_small.dcm").path, toPath: folder.sub("in/ct.dcm"))
        let store = folder.sub("store")
        #expect(try runner.run(["import", folder.sub("in"), "--output", folder.sub("out"), "--store", store, "--no-progress"]).status == 0)
        let sets = try #require(try json(try runner.run(["image-set", "list", "--store", store]).stdout)["imageSetsMetadataSummaries"] as? [[String: Any]])
        let imageSetId = try #require(sets.first?["imageSetId"] as? String)
        let document = try runner.run(["image-set", "metadata", imageSetId, "--store", store]).stdout
        let frameId = try #require(document.components(separatedBy: "\"ID\":\"").dropFirst().first.map { String($0.prefix(32)) })

        func fetch(_ extra: [String]) throws -> [UInt8] {
            let path = folder.sub("frame-\(extra.joined())")
            let result = try runner.run(["image-set", "frame", imageSetId, frameId, "--store", store, "-o", path] + extra)
            #expect(result.status == 0, "\(result.stderr)")
            return Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        }
        func pngSize(_ png: [UInt8]) -> (Int, Int) {
            let word = { (offset: Int) in png[offset..<(offset + 4)].reduce(0) { $0 << 8 | Int($1) } }
            return (word(16), word(20))
        }
        let full = try fetch([])
        #expect(full.starts(with: [0xFF, 0x4F, 0xFF, 0x51]))
        let half = try fetch(["--resolution", "1"])
        #expect(half.starts(with: [0xFF, 0x4F, 0xFF, 0x51]) && half.count < full.count)
        let png = try fetch(["--png"])
        #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]))
        #expect(pngSize(png) == (128, 128))
        #expect(pngSize(try fetch(["--png", "--resolution", "1"])) == (64, 64))
        let tooFar = try runner.run(["image-set", "frame", imageSetId, frameId, "--store", store, "--resolution", "2"])
        #expect(tooFar.status == 2)
        let unknown = try runner.run(["image-set", "frame", imageSetId, String(repeating: "0", count: 32), "--store", store])
        #expect(unknown.status == 3)
    }

    /// A 2 GiB native multi-frame file (4,096 CT frames) is transcoded frame by frame: peak RSS stays within the
    /// 300 MB budget, far below the file's size.
    /// Runs the built binary under `/usr/bin/time` and returns its result and peak RSS in kilobytes.
    func runMeasured(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String, peakKilobytes: Int) {
        let result = try runner.run(
            ["-f", "maxrss=%M", ScanCommandTests.binary.path] + arguments, executable: URL(fileURLWithPath: "/usr/bin/time"))
        let kilobytes = try #require(
            result.stderr.components(separatedBy: "maxrss=").last.flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) })
        return (result.status, result.stdout, result.stderr, kilobytes)
    }

    /// One native multi-frame instance of about `megabytes` MB in `folder` (Benchmarks/generate_archive.py).
    func generateMultiFrame(megabytes: Int, into folder: String) throws {
        let generated = try runner.run(
            ["python3", Fixtures.packageRoot.appendingPathComponent("Benchmarks/generate_archive.py").path, folder,
             "--studies", "0", "--big-multiframe-mb", String(megabytes)], executable: URL(fileURLWithPath: "/usr/bin/env"))
        try #require(generated.status == 0, "\(generated.stderr)")
    }

    @Test func importsA2GiBMultiFrameFileWithinTheMemoryBound() throws {
        try #require(FileManager.default.fileExists(atPath: ScanCommandTests.binary.path), "build first (swift build)")
        let folder = try TemporaryFolder("cli-big")
        defer { folder.remove() }
        try generateMultiFrame(megabytes: 2048, into: folder.sub("in"))
        let imported = try runMeasured(
            ["import", folder.sub("in"), "--output", folder.sub("out"), "--store", folder.sub("store"), "--json", "--no-progress"])
        #expect(imported.status == 0, "\(imported.stderr)")
        let summary = try json(imported.stdout)
        #expect(summary["numberOfImportedFiles"] as? Int == 1)
        #expect(imported.peakKilobytes < 300 * 1024, "peak RSS \(imported.peakKilobytes / 1024) MB")
        let sets = try #require(try json(try runner.run(["image-set", "list", "--store", folder.sub("store")]).stdout)["imageSetsMetadataSummaries"] as? [[String: Any]])
        let document = try runner.run(["image-set", "metadata", try #require(sets.first?["imageSetId"] as? String), "--store", folder.sub("store")]).stdout
        #expect(document.components(separatedBy: "\"StoredTransferSyntaxUID\":\"1.2.840.10008.1.2.4.202\"").count == 2)
        #expect(document.components(separatedBy: "\"PixelDataChecksumFromBaseToFullResolution\"").count - 1 == 4096)
    }

    /// A 192 MB multi-frame file inside a `.tar.gz`, and a deflated data set: inflated as streams into bounded
    /// memory (a temporary file past 8 MiB), never whole, so peak RSS stays far below what holding them would take
    /// (issue 10).
    @Test func compressedArchivesAndDataSetsInflateInBoundedMemory() throws {
        try #require(FileManager.default.fileExists(atPath: ScanCommandTests.binary.path), "build first (swift build)")
        let folder = try TemporaryFolder("cli-inflate")
        defer { folder.remove() }
        try generateMultiFrame(megabytes: 192, into: folder.sub("big"))
        let env = URL(fileURLWithPath: "/usr/bin/env")
        let packed = try runner.run(["python3", "-c", """
            import os, sys, tarfile
            os.makedirs(sys.argv[2])
            with tarfile.open(sys.argv[2] + '/big.tar.gz', 'w:gz', compresslevel=1) as t:
                t.add(sys.argv[1] + '/multiframe/big-multiframe.dcm', 'big-multiframe.dcm')
            """, folder.sub("big"), folder.sub("in")], executable: env)
        try #require(packed.status == 0, "\(packed.stderr)")
        let imported = try runMeasured(
            ["import", folder.sub("in"), "--output", folder.sub("out"), "--store", folder.sub("store"), "--json", "--no-progress"])
        #expect(imported.status == 0, "\(imported.stderr)")
        #expect(try json(imported.stdout)["numberOfImportedFiles"] as? Int == 1)
        // Holding the inflated archive and its member would take more than 384 MB.
        #expect(imported.peakKilobytes < 160 * 1024, "peak RSS \(imported.peakKilobytes / 1024) MB")

        // The same file as a Deflated Explicit VR Little Endian data set: a scan inflates it past the spill
        // threshold, to a temporary file.
        let deflated = try runner.run(
            ["sh", "-c", "mkdir -p \"$2\" && dcmconv +td \"$1\" \"$2/big.dcm\"", "deflate", folder.sub("big/multiframe/big-multiframe.dcm"), folder.sub("deflated")], executable: env)
        try #require(deflated.status == 0, "\(deflated.stderr)")
        let scanned = try runMeasured(["scan", folder.sub("deflated"), "--no-progress"])
        #expect(scanned.status == 0, "\(scanned.stderr)")
        #expect(scanned.stdout.contains("\"status\":\"OK\""))
        #expect(scanned.peakKilobytes < 100 * 1024, "peak RSS \(scanned.peakKilobytes / 1024) MB")
    }

    @Test func refusesInvalidRequestsWithDistinctExitCodes() throws {
        try #require(FileManager.default.fileExists(atPath: ScanCommandTests.binary.path), "build first (swift build)")
        let folder = try TemporaryFolder("cli-refuse")
        defer { folder.remove() }
        let badName = try runner.run(["import", folder.path, "--output", folder.sub("out"), "--store", folder.sub("store"), "--job-name", "no spaces allowed"])
        #expect(badName.status == 2)
        #expect(badName.stderr.contains("ValidationException"))
        let unknown = try runner.run(["import", folder.path, "--output", folder.sub("out"), "--store", folder.sub("store"), "--datastore-id", String(repeating: "a", count: 32)])
        #expect(unknown.status == 3)
        let failed = try runner.run(["import", folder.sub("missing"), "--output", folder.sub("out"), "--store", folder.sub("store"), "--json"])
        #expect(failed.status == 1)
        #expect(try json(failed.stdout)["jobStatus"] as? String == "FAILED")
    }
}
