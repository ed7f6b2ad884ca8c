import DICOMIngest
import DICOMIngestModel
import DICOMIngestSQL
import DICOMIngestSQLite
import DICOMIngestTestSupport
import DICOMParser
import DICOMPixels
import Foundation
import Testing

/// Import jobs end to end: real files on disk, the store (SQLite, and PostgreSQL where marked), the local result sink.
@Suite struct ImportJobTests {
    static let study1 = "1.2.826.0.1.3680043.10.1"
    static let study2 = "1.2.826.0.1.3680043.10.2"

    struct Environment {
        let folder: TemporaryFolder
        let store: any SQLBackedImageSetStore
        let engine: ImportEngine
        let datastoreId: String

        init(backend: StoreBackend = .sqlite, losslessStorageFormat: LosslessStorageFormat = .htj2k, threads: Int = 2) throws {
            folder = try TemporaryFolder("import")
            store = try backend.open(folder.sub("store"))
            engine = ImportEngine(store: store, frameStorage: store.frameStorage, configuration: .init(threads: threads))
            datastoreId = try store.createDatastore(name: "test", losslessStorageFormat: losslessStorageFormat, now: 0).datastoreId
        }

        var input: String { folder.sub("input") }
        var output: String { folder.sub("output") }

        func request(token: String = UUID().uuidString, input: String? = nil, output: String? = nil) -> StartDICOMImportJobRequest {
            StartDICOMImportJobRequest(
                datastoreId: datastoreId, jobName: "test-job",
                dataAccessRoleArn: "arn:aws:iam::123456789012:role/Importer", clientToken: token,
                inputS3Uri: URL(fileURLWithPath: input ?? self.input).absoluteString,
                outputS3Uri: URL(fileURLWithPath: output ?? self.output).absoluteString)
        }

        func runJob(input: String? = nil, output: String? = nil, listedInReverse: Bool = false) throws -> (ImportOutcome, JobFolder) {
            let job = try engine.submit(request(input: input, output: output))
            let outputRoot = output ?? self.output
            let local = LocalDirectorySource(root: input ?? self.input)
            let source: any ObjectSource = listedInReverse ? ReversedListing(source: local) : local
            let outcome = try engine.run(job, source: source) { job in
                try LocalDirectorySink(outputRoot: outputRoot, datastoreId: job.datastoreId, jobId: job.jobId)
            }
            return (outcome, JobFolder(path: outputRoot + "/\(datastoreId)-DicomImport-\(job.jobId)"))
        }
    }

    /// A source that lists the objects of another in reverse order, to show that the result does not depend on it.
    struct ReversedListing: ObjectSource {
        let source: any ObjectSource

        func forEachObject(_ body: (SourceObject) throws -> Void) throws {
            var objects: [SourceObject] = []
            try source.forEachObject { objects.append($0) }
            for object in objects.reversed() { try body(object) }
        }

        func open(_ object: SourceObject) throws -> any P10ByteInput { try source.open(object) }
    }

    /// The files of one job's output folder, parsed.
    struct JobFolder {
        let path: String

        func lines(_ file: ResultFile) throws -> [[String: Any]] {
            let text = try String(contentsOfFile: path + "/" + file.rawValue, encoding: .utf8)
            return try text.split(separator: "\n").map { line in
                try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            }
        }

        func manifest() throws -> [String: Any] {
            let data = try Data(contentsOf: URL(fileURLWithPath: path + "/job-output-manifest.json"))
            let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            return try #require(object["jobSummary"] as? [String: Any])
        }
    }

    /// Writes the mixed input folder the import issue asks for and returns the keys expected in each outcome.
    static func writeArchive(in environment: Environment) throws -> (instances: [String: SyntheticInstance], failures: Set<String>) {
        let input = environment.input
        var instances: [String: SyntheticInstance] = [:]
        func add(_ relative: String, _ instance: SyntheticInstance) throws {
            try instance.write(to: input + "/" + relative)
            instances[LocalDirectorySource.key(forPath: input + "/" + relative)] = instance
        }
        for index in 1...3 {
            try add("study1/series1/\(index).dcm", SyntheticInstance(study: study1, series: study1 + ".1", sop: study1 + ".1.\(index)"))
        }
        var multiFrame = SyntheticInstance(study: study1, series: study1 + ".2", sop: study1 + ".2.1")
        multiFrame.frames = 3
        try add("study1/series2/multiframe.dcm", multiFrame)
        // Series with one instance whose PatientName conflicts: it goes to a non-primary image set.
        for index in 1...2 {
            try add("study2/series1/\(index).dcm", SyntheticInstance(study: study2, series: study2 + ".1", sop: study2 + ".1.\(index)"))
        }
        var conflicting = SyntheticInstance(study: study2, series: study2 + ".1", sop: study2 + ".1.3")
        conflicting.patientName = "Other^Name"
        try add("study2/series1/3-conflicting.dcm", conflicting)
        // The same SOP instance twice: both are imported, the copy whose key sorts last overwrites the other.
        try add("dup/a.dcm", SyntheticInstance(study: study2, series: study2 + ".9", sop: study2 + ".9.1"))
        try add("dup/b.dcm", SyntheticInstance(study: study2, series: study2 + ".9", sop: study2 + ".9.1"))
        // 20 levels deep, with a unicode name.
        let deep = (1...20).map { "level\($0)" }.joined(separator: "/")
        try add("\(deep)/ünïcödé ✓.dcm", SyntheticInstance(study: study1, series: study1 + ".3", sop: study1 + ".3.1"))

        // Junk and a truncated file.
        try Data("not dicom".utf8).write(to: URL(fileURLWithPath: input + "/notes.txt"))
        let truncated = SyntheticInstance(study: study1, series: study1 + ".4", sop: study1 + ".4.1").bytes.dropLast(10)
        try Data(truncated).write(to: URL(fileURLWithPath: input + "/truncated.dcm"))
        var failures: Set<String> = [input + "/notes.txt", input + "/truncated.dcm"]

        // Archives: zip, tar.gz, tar and gz, one instance each, made with Python's standard library.
        let zipped = SyntheticInstance(study: study1, series: study1 + ".5", sop: study1 + ".5.1")
        let tarGzipped = SyntheticInstance(study: study1, series: study1 + ".5", sop: study1 + ".5.2")
        let tarred = SyntheticInstance(study: study1, series: study1 + ".5", sop: study1 + ".5.3")
        let gzipped = SyntheticInstance(study: study1, series: study1 + ".5", sop: study1 + ".5.4")
        let staging = environment.folder.sub("staging")
        try zipped.write(to: staging + "/inner/zipped.dcm")
        try tarGzipped.write(to: staging + "/inner/targz.dcm")
        try tarred.write(to: staging + "/inner/tarred.dcm")
        try gzipped.write(to: staging + "/single.dcm")
        try run("""
            import gzip, shutil, sys, zipfile, tarfile
            staging, target = sys.argv[1], sys.argv[2]
            with zipfile.ZipFile(target + '/bundle.zip', 'w', zipfile.ZIP_DEFLATED) as z:
                z.write(staging + '/inner/zipped.dcm', 'inner/zipped.dcm')
            with tarfile.open(target + '/bundle.tar.gz', 'w:gz') as t:
                t.add(staging + '/inner/targz.dcm', 'inner/targz.dcm')
            with tarfile.open(target + '/bundle.tar', 'w') as t:
                t.add(staging + '/inner/tarred.dcm', 'deep/' + 'x' * 120 + '/tarred.dcm')
            with open(staging + '/single.dcm', 'rb') as source, gzip.open(target + '/single.dcm.gz', 'wb') as out:
                shutil.copyfileobj(source, out)
            """, arguments: [staging, input])
        instances[LocalDirectorySource.key(forPath: input + "/bundle.zip") + "!inner/zipped.dcm"] = zipped
        instances[LocalDirectorySource.key(forPath: input + "/bundle.tar.gz") + "!inner/targz.dcm"] = tarGzipped
        // A member path over 100 characters exercises the tar long-name records.
        instances[LocalDirectorySource.key(forPath: input + "/bundle.tar") + "!deep/" + String(repeating: "x", count: 120) + "/tarred.dcm"] = tarred
        instances[LocalDirectorySource.key(forPath: input + "/single.dcm.gz") + "!single.dcm"] = gzipped

        failures = Set(failures.map(LocalDirectorySource.key(forPath:)))
        for failure in failures { instances.removeValue(forKey: failure) }
        return (instances, failures)
    }

    static func run(_ python: String, arguments: [String], makeFolders: [String] = []) throws {
        for folder in makeFolders { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", python] + arguments
        try process.run()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "python3 failed")
    }

    @Test(arguments: StoreBackend.all) func importsAMixedArchiveExactlyAsHealthImagingReportsIt(backend: StoreBackend) throws {
        let environment = try Environment(backend: backend)
        defer { environment.folder.remove() }
        let (instances, failures) = try Self.writeArchive(in: environment)
        let (outcome, folder) = try environment.runJob()

        #expect(outcome.job.jobStatus == .completed)
        let success = try folder.lines(.success)
        let failure = try folder.lines(.failure)
        let warning = try folder.lines(.warning)

        // Every object appears exactly once across SUCCESS and FAILURE.
        let successKeys = success.compactMap { $0["inputFile"] as? String }
        let failureKeys = failure.compactMap { $0["inputFile"] as? String }
        #expect(Set(successKeys) == Set(instances.keys))
        #expect(Set(failureKeys) == failures)
        #expect(successKeys.count + failureKeys.count == instances.count + failures.count)

        // Line shapes (spec §2.3–2.5).
        for line in success {
            let response = try #require(line["importResponse"] as? [String: Any])
            let imageSetId = try #require(response["imageSetId"] as? String)
            #expect(Validation.isResourceId(imageSetId))
            #expect(response["isPrimary"] is Bool)
            #expect(response["imageSetVersion"] as? Int == 1)
        }
        for line in failure {
            let exception = try #require(line["exception"] as? [String: Any])
            #expect(exception["exceptionType"] as? String == "ValidationException")
            #expect((exception["message"] as? String)?.isEmpty == false)
        }
        let messages = Dictionary(uniqueKeysWithValues: failure.map {
            ($0["inputFile"] as! String, ($0["exception"] as! [String: Any])["message"] as! String)
        })
        let key = { (relative: String) in LocalDirectorySource.key(forPath: environment.input + "/" + relative) }
        #expect(messages[key("notes.txt")]?.contains("Not a DICOM P10 file") == true)
        #expect(messages[key("truncated.dcm")]?.contains("TRUNCATED") == true)
        #expect(messages[key("truncated.dcm")]?.contains("(7FE0,0010)") == true)
        let overwritten = String(describing: warning.first { $0["inputFile"] as? String == key("dup/a.dcm") } ?? [:])
        #expect(overwritten.contains("DuplicateSOPInstance") && overwritten.contains(key("dup/b.dcm")))

        // The conflicting instance landed in a non-primary image set, with a warning line.
        let conflictingKey = key("study2/series1/3-conflicting.dcm")
        let conflicting = try #require(success.first { $0["inputFile"] as? String == conflictingKey })
        #expect((conflicting["importResponse"] as? [String: Any])?["isPrimary"] as? Bool == false)
        let conflictWarning = try #require(warning.first { $0["inputFile"] as? String == conflictingKey })
        let warnings = try #require((conflictWarning["importResponse"] as? [String: Any])?["warnings"] as? [[String: Any]])
        #expect(warnings.contains { ($0["message"] as? String)?.contains("PatientName") == true })
        #expect(warnings.allSatisfy { $0["warning_reason_code"] is Int && $0["type"] is String })

        // Manifest counts add up (spec §2.2).
        let manifest = try folder.manifest()
        #expect(manifest["numberOfScannedFiles"] as? Int == instances.count + failures.count)
        #expect(manifest["numberOfImportedFiles"] as? Int == instances.count)
        #expect(manifest["numberOfFilesWithCustomerError"] as? Int == failures.count)
        #expect(manifest["numberOfFilesWithServerError"] as? Int == 0)
        let summaries = try #require(manifest["imageSetsSummary"] as? [[String: Any]])
        #expect(manifest["numberOfGeneratedImageSets"] as? Int == summaries.count)
        // study1: series 1, 2, 3, 5; study2: series 1 (primary + non-primary), 9.
        #expect(summaries.count == 7)
        // dup/a.dcm and dup/b.dcm hold one SOP instance.
        #expect(summaries.reduce(0) { $0 + ($1["numberOfMatchedSOPInstances"] as? Int ?? 0) } == instances.count - 1)
        #expect((manifest["outputS3Uri"] as? String)?.hasSuffix("-DicomImport-\(outcome.job.jobId)/") == true)
        #expect((manifest["successOutputS3Uri"] as? String)?.hasSuffix("/SUCCESS/") == true)

        // Job record.
        let job = try #require(try environment.store.job(datastoreId: environment.datastoreId, jobId: outcome.job.jobId))
        #expect(job.jobStatus == .completed)
        #expect(job.endedAt != nil)
    }

    @Test(arguments: StoreBackend.all) func storesMetadataDocumentsAndFramesThatReadBack(backend: StoreBackend) throws {
        let environment = try Environment(backend: backend)
        defer { environment.folder.remove() }
        var instance = SyntheticInstance(study: Self.study1, series: Self.study1 + ".2", sop: Self.study1 + ".2.1")
        instance.frames = 3
        instance.patientName = "Müller^Jürgen"
        try instance.write(to: environment.input + "/mf.dcm")
        let (outcome, _) = try environment.runJob()
        #expect(outcome.importedFiles == 1)

        let record = try #require(try environment.store.imageSets(datastoreId: environment.datastoreId).first)
        let gzip = try #require(try environment.store.metadataDocument(datastoreId: environment.datastoreId, imageSetId: record.imageSetId, version: nil))
        let json = try #require(Compression.gunzip(gzip))
        let document = try #require(try JSONSerialization.jsonObject(with: Data(json)) as? [String: Any])
        #expect(document["SchemaVersion"] as? String == "1.1")
        #expect(document["DatastoreID"] as? String == environment.datastoreId)
        #expect(document["ImageSetID"] as? String == record.imageSetId)
        let patient = try #require((document["Patient"] as? [String: Any])?["DICOM"] as? [String: Any])
        #expect(patient["PatientName"] as? String == "Müller^Jürgen")
        let study = try #require(document["Study"] as? [String: Any])
        #expect((study["DICOM"] as? [String: Any])?["StudyInstanceUID"] as? String == Self.study1)
        let series = try #require((study["Series"] as? [String: Any])?[Self.study1 + ".2"] as? [String: Any])
        let entry = try #require((series["Instances"] as? [String: Any])?[Self.study1 + ".2.1"] as? [String: Any])
        #expect(entry["StoredTransferSyntaxUID"] as? String == "1.2.840.10008.1.2.4.202")
        #expect(entry["ChecksumType"] as? String == "DECOMPRESSED")
        let dicom = try #require(entry["DICOM"] as? [String: Any])
        #expect(dicom["TransferSyntaxUID"] as? String == "1.2.840.10008.1.2.1")
        #expect(dicom.keys.contains("PixelData"))
        let frames = try #require(entry["ImageFrames"] as? [[String: Any]])
        #expect(frames.count == 3)

        let frameSize = Int(SyntheticInstance.rows) * Int(SyntheticInstance.columns) * 2
        for (index, frame) in frames.enumerated() {
            let id = try #require(frame["ID"] as? String)
            let stored = try #require(try environment.store.frame(datastoreId: environment.datastoreId, imageSetId: record.imageSetId, frameId: id))
            #expect(stored.transferSyntaxUID == "1.2.840.10008.1.2.4.202")
            let codestream = try environment.store.frameStorage.read(blob: stored.blob, offset: stored.offset, length: stored.length)
            #expect(try codestream.withUnsafeBytes { try HTJ2KCodestream(parsing: $0).conformanceProblem() } == nil)
            let description = PixelDescription(
                rows: Int(SyntheticInstance.rows), columns: Int(SyntheticInstance.columns), bitsAllocated: 16, bitsStored: 12)
            let scratch = PixelScratch()
            let decoded = try codestream.withUnsafeBytes {
                Array(try FrameProcessor.decodeStored($0, transferSyntaxUID: stored.transferSyntaxUID, description: description, scratch: scratch))
            }
            let expected = Array(instance.pixelBytes[(index * frameSize)..<((index + 1) * frameSize)])
            #expect(decoded == expected)
            let checksums = try #require(frame["PixelDataChecksumFromBaseToFullResolution"] as? [[String: Any]])
            let checksum = expected.withUnsafeBytes { FrameStatistics.crc32($0) }
            #expect(checksums.last?["Checksum"] as? Int == Int(checksum))
            #expect(checksums.last?["Width"] as? Int == Int(SyntheticInstance.columns))
            let samples = stride(from: 0, to: expected.count, by: 2).map { Int(expected[$0]) | Int(expected[$0 + 1]) << 8 }
            #expect(frame["MinPixelValue"] as? Int == samples.min())
            #expect(frame["MaxPixelValue"] as? Int == samples.max())
            #expect(frame["FrameSizeInBytes"] as? Int == codestream.count)
        }
    }

    @Test func aJPEG2000LosslessDatastoreStoresFramesAsJPEG2000() throws {
        let environment = try Environment(losslessStorageFormat: .jpeg2000Lossless)
        defer { environment.folder.remove() }
        #expect(try environment.store.datastore(id: environment.datastoreId)?.losslessStorageFormat == .jpeg2000Lossless)
        let ct = Fixtures.generated("ct_explicit_le.dcm")
        try FileManager.default.createDirectory(atPath: environment.input, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: ct, toPath: environment.input + "/ct.dcm")
        let (outcome, _) = try environment.runJob()
        #expect(outcome.importedFiles == 1)
        let record = try #require(try environment.store.imageSets(datastoreId: environment.datastoreId).first)
        let gzip = try #require(try environment.store.metadataDocument(datastoreId: environment.datastoreId, imageSetId: record.imageSetId, version: nil))
        let text = String(decoding: try #require(Compression.gunzip(gzip)), as: UTF8.self)
        #expect(text.contains("\"StoredTransferSyntaxUID\":\"1.2.840.10008.1.2.4.90\""))
        let frameId = try #require(text.components(separatedBy: "\"ID\":\"").dropFirst().first.map { String($0.prefix(32)) })
        let frame = try #require(try environment.store.frame(datastoreId: environment.datastoreId, imageSetId: record.imageSetId, frameId: frameId))
        #expect(frame.transferSyntaxUID == "1.2.840.10008.1.2.4.90")
        let codestream = try environment.store.frameStorage.read(blob: frame.blob, offset: frame.offset, length: frame.length)
        // The fixture's pixels, from its uncompressed Pixel Data: 64×64 signed, 12 bits stored.
        let description = PixelDescription(rows: 64, columns: 64, bitsAllocated: 16, bitsStored: 12, isSigned: true)
        let source = try Data(contentsOf: URL(fileURLWithPath: ct))
        let expected = Array(source.suffix(64 * 64 * 2))
        let scratch = PixelScratch()
        let decoded = try codestream.withUnsafeBytes {
            Array(try FrameProcessor.decodeStored($0, transferSyntaxUID: frame.transferSyntaxUID, description: description, scratch: scratch))
        }
        let identical = decoded == expected
        #expect(identical, "the JPEG 2000 frame does not decode to the fixture's pixels")
    }

    /// A lossless frame that does not decode fails its instance; a lossy one that does not decode is kept as it
    /// arrived with a warning (HealthImaging stores lossy frames as they are).
    @Test func framesThatDoNotDecodeFailLosslessAndWarnLossy() throws {
        try #require(Fixtures.externalCorpusAvailable, "run fixtures/fetch-pydicom-corpus.sh first")
        let environment = try Environment()
        defer { environment.folder.remove() }
        try FileManager.default.createDirectory(atPath: environment.input, withIntermediateDirectories: true)
        /// Copies a file with its first JPEG SOI marker (FF D8 FF) overwritten, so its frame is not a JPEG stream.
        func copyWithoutSOI(_ source: String, to name: String) throws {
            var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: source)))
            let start = try #require((0..<(bytes.count - 2)).first { bytes[$0] == 0xFF && bytes[$0 + 1] == 0xD8 && bytes[$0 + 2] == 0xFF })
            bytes[start] = 0
            bytes[start + 1] = 0
            try Data(bytes).write(to: URL(fileURLWithPath: environment.input + "/" + name))
        }
        try copyWithoutSOI(Fixtures.generated("ct_jpeg_lossless.dcm"), to: "lossless.dcm")
        try copyWithoutSOI(Fixtures.external.appendingPathComponent("test_files/SC_rgb_jpeg_dcmtk.dcm").path, to: "lossy.dcm")
        let (outcome, folder) = try environment.runJob()
        #expect(outcome.importedFiles == 1)
        let failures = try folder.lines(.failure)
        #expect(failures.count == 1)
        #expect((failures.first?["inputFile"] as? String)?.hasSuffix("lossless.dcm") == true)
        let failure = failures.first?["exception"] as? [String: Any]
        #expect(failure?["exceptionType"] as? String == "ValidationException")
        #expect((failure?["message"] as? String)?.hasPrefix("Frame 1 cannot be decoded: JPEG:") == true)
        let warnings = try folder.lines(.warning)
        #expect(warnings.count == 1)
        #expect((warnings.first?["inputFile"] as? String)?.hasSuffix("lossy.dcm") == true)
        let text = String(describing: warnings.first ?? [:])
        #expect(text.contains("FrameNotDecoded") && text.contains("90201"))
    }

    /// Native YBR_FULL_422 holds two samples per pixel (PS3.3 C.7.6.3.1.2): the file imports, and its frame is
    /// stored as .202 with all three samples of every pixel, each pair's Cb and Cr repeated (issue 14).
    @Test func nativeYBRFull422ImportsWithTwoSamplesPerPixel() throws {
        try #require(Fixtures.externalCorpusAvailable, "run fixtures/fetch-pydicom-corpus.sh first")
        let environment = try Environment()
        defer { environment.folder.remove() }
        try FileManager.default.createDirectory(atPath: environment.input, withIntermediateDirectories: true)
        let path = Fixtures.external.appendingPathComponent("test_files/SC_ybr_full_422_uncompressed.dcm").path
        try FileManager.default.copyItem(atPath: path, toPath: environment.input + "/ybr422.dcm")
        let (outcome, folder) = try environment.runJob()
        #expect(try folder.lines(.failure).isEmpty)
        #expect(try folder.lines(.warning).isEmpty)
        let success = try folder.lines(.success)
        #expect(success.count == 1)
        #expect((success.first?["importResponse"] as? [String: Any])?["imageSetVersion"] as? Int == 1)
        #expect(outcome.generatedImageSets == 1)

        let record = try #require(try environment.store.imageSets(datastoreId: environment.datastoreId).first)
        let gzip = try #require(try environment.store.metadataDocument(datastoreId: environment.datastoreId, imageSetId: record.imageSetId, version: nil))
        let text = String(decoding: try #require(Compression.gunzip(gzip)), as: UTF8.self)
        #expect(text.contains("\"StoredTransferSyntaxUID\":\"1.2.840.10008.1.2.4.202\""))
        let frameId = try #require(text.components(separatedBy: "\"ID\":\"").dropFirst().first.map { String($0.prefix(32)) })
        let frame = try #require(try environment.store.frame(datastoreId: environment.datastoreId, imageSetId: record.imageSetId, frameId: frameId))
        let codestream = try environment.store.frameStorage.read(blob: frame.blob, offset: frame.offset, length: frame.length)
        let description = PixelDescription(
            rows: 100, columns: 100, samplesPerPixel: 3, bitsAllocated: 8, photometricInterpretation: "YBR_FULL_422")
        let decoded = try FrameRendering.decodeStored(codestream, transferSyntaxUID: frame.transferSyntaxUID, description: description).samples
        // The source's Pixel Data is the last 100 × 100 × 2 bytes of the file: Y1 Y2 Cb Cr per pair of pixels.
        let source = Array(try Data(contentsOf: URL(fileURLWithPath: path)).suffix(100 * 100 * 2))
        var expected: [UInt8] = []
        for pair in stride(from: 0, to: source.count, by: 4) {
            let (y1, y2, cb, cr) = (source[pair], source[pair + 1], source[pair + 2], source[pair + 3])
            expected += [y1, cb, cr, y2, cb, cr]
        }
        let identical = decoded == expected
        #expect(identical, "the stored frame is not the expanded 4:2:2 samples")
        let checksum = expected.withUnsafeBytes { FrameStatistics.crc32($0) }
        #expect(text.contains("\"Checksum\":\(checksum)"))
    }

    /// A writer's block padding (zero bytes after the last element) ends the data set with a warning (issue 14).
    @Test func aFileFollowedByZeroPaddingImportsWithAWarning() throws {
        let environment = try Environment()
        defer { environment.folder.remove() }
        try FileManager.default.createDirectory(atPath: environment.input, withIntermediateDirectories: true)
        let source = Array(try Data(contentsOf: URL(fileURLWithPath: Fixtures.generated("ct_explicit_le.dcm"))))
        try Data(source + [UInt8](repeating: 0, count: 2048)).write(to: URL(fileURLWithPath: environment.input + "/padded.dcm"))
        let (outcome, folder) = try environment.runJob()
        #expect(outcome.importedFiles == 1)
        #expect(try folder.lines(.failure).isEmpty)
        let warning = String(describing: try folder.lines(.warning))
        #expect(warning.contains("TRAILING_BYTES") && warning.contains("90012") && warning.contains("2048 bytes of zero padding"))
    }

    /// Copies of one SOP instance in one job (a re-encoding, copies in sub-folders, an archive member) are all
    /// imported (spec §4.3): those with the primary's key overwrite one another in it, the copy whose input key
    /// sorts last wins, and a copy with another key goes to a non-primary image set. Run with the files listed in
    /// two orders, the image sets are the same (issue 14).
    @Test(arguments: StoreBackend.all) func copiesOfOneSOPInstanceAreAllImportedWhateverTheOrder(backend: StoreBackend) throws {
        let series = Self.study1 + ".7"
        func instance(_ number: Int, copy: String) -> SyntheticInstance {
            var instance = SyntheticInstance(study: Self.study1, series: series, sop: series + ".\(number)")
            instance.instanceNumber = copy
            return instance
        }
        /// (image set isPrimary, SOP Instance UID → InstanceNumber of the copy the image set holds) per image set.
        var results: [[String]] = []
        for listedInReverse in [false, true] {
            let environment = try Environment(backend: backend, threads: listedInReverse ? 1 : 2)
            defer { environment.folder.remove() }
            let input = environment.input
            for number in 1...3 { try instance(number, copy: "\(number)0").write(to: input + "/series/\(number).dcm") }
            try instance(2, copy: "21").write(to: input + "/copies/a/2.dcm")
            try instance(2, copy: "22").write(to: environment.folder.sub("staging/2.dcm"))
            try Self.run(
                """
                import subprocess, sys, zipfile
                staging, target = sys.argv[1], sys.argv[2]
                subprocess.run(['dcmconv', '+ti', staging + '/2.dcm', target + '/reencoded/2.dcm'], check=True)
                with zipfile.ZipFile(target + '/z.zip', 'w', zipfile.ZIP_DEFLATED) as z:
                    z.write(staging + '/2.dcm', '2.dcm')
                """, arguments: [environment.folder.sub("staging"), input], makeFolders: [input + "/reencoded"])
            var conflicting = instance(3, copy: "31")
            conflicting.patientID = "OTHER"
            try conflicting.write(to: input + "/zz-conflict/3.dcm")

            let (outcome, folder) = try environment.runJob(listedInReverse: listedInReverse)
            let key = { (relative: String) in LocalDirectorySource.key(forPath: input + "/" + relative) }
            let all = ["series/1.dcm", "series/2.dcm", "series/3.dcm", "copies/a/2.dcm", "reencoded/2.dcm", "z.zip!2.dcm", "zz-conflict/3.dcm"]
            #expect(outcome.job.jobStatus == .completed)
            #expect(try folder.lines(.failure).isEmpty)
            let success = try folder.lines(.success)
            #expect(Set(success.compactMap { $0["inputFile"] as? String }) == Set(all.map(key)))
            #expect(success.count == all.count)

            // Every copy's line names the image set that holds the SOP instance now.
            let records = try environment.store.imageSets(datastoreId: environment.datastoreId).sorted { $0.isPrimary && !$1.isPrimary }
            #expect(records.map(\.isPrimary) == [true, false])
            #expect(records.map(\.instanceCount) == [3, 1])
            #expect(records.map(\.latestVersion) == [1, 1])
            for line in success {
                let response = try #require(line["importResponse"] as? [String: Any])
                let isConflict = line["inputFile"] as? String == key("zz-conflict/3.dcm")
                #expect(response["imageSetId"] as? String == records[isConflict ? 1 : 0].imageSetId)
                #expect(response["isPrimary"] as? Bool == !isConflict)
            }

            // Warning lines: each overwritten copy names the winner, the winner names what it overwrote.
            let warnings = Dictionary(uniqueKeysWithValues: try folder.lines(.warning).map {
                ($0["inputFile"] as! String, String(describing: $0))
            })
            #expect(Set(warnings.keys) == Set(["copies/a/2.dcm", "reencoded/2.dcm", "series/2.dcm", "z.zip!2.dcm", "zz-conflict/3.dcm"].map(key)))
            for copy in ["copies/a/2.dcm", "reencoded/2.dcm", "series/2.dcm"] {
                let text = warnings[key(copy)] ?? ""
                #expect(text.contains("DuplicateSOPInstance") && text.contains("90101") && text.contains("overwritten"))
                #expect(text.contains(key("z.zip!2.dcm")))
            }
            let winner = warnings[key("z.zip!2.dcm")] ?? ""
            #expect(["copies/a/2.dcm", "reencoded/2.dcm", "series/2.dcm"].allSatisfy { winner.contains(key($0)) })
            #expect(warnings[key("zz-conflict/3.dcm")]?.contains("NonPrimaryImageSet") == true)

            // Manifest: every file imported; the image sets count SOP instances.
            let manifest = try folder.manifest()
            #expect(manifest["numberOfScannedFiles"] as? Int == all.count)
            #expect(manifest["numberOfImportedFiles"] as? Int == all.count)
            #expect(manifest["numberOfGeneratedImageSets"] as? Int == 2)
            let summaries = try #require(manifest["imageSetsSummary"] as? [[String: Any]])
            #expect(Set(summaries.compactMap { $0["numberOfMatchedSOPInstances"] as? Int }) == [3, 1])

            for record in records {
                let gzip = try #require(try environment.store.metadataDocument(datastoreId: environment.datastoreId, imageSetId: record.imageSetId, version: nil))
                let json = try #require(Compression.gunzip(gzip))
                let document = try #require(try JSONSerialization.jsonObject(with: Data(json)) as? [String: Any])
                let study = try #require(document["Study"] as? [String: Any])
                let seriesEntry = try #require((study["Series"] as? [String: Any])?[series] as? [String: Any])
                let entries = try #require(seriesEntry["Instances"] as? [String: [String: Any]])
                let numbers = entries.map { sop, entry in "\(sop)=\((entry["DICOM"] as? [String: Any])?["InstanceNumber"] ?? "none")" }.sorted()
                results.append(["\(record.isPrimary)"] + numbers)
            }
        }
        // The archive member sorts last among the primary copies of instance 2: its InstanceNumber (22) is stored.
        let expected = [
            ["true", "\(series).1=10", "\(series).2=22", "\(series).3=30"],
            ["false", "\(series).3=31"],
        ]
        #expect(results == expected + expected)
    }

    @Test(arguments: StoreBackend.all) func reimportingBumpsVersionsWithoutDuplicatingInstances(backend: StoreBackend) throws {
        let environment = try Environment(backend: backend)
        defer { environment.folder.remove() }
        for index in 1...3 {
            try SyntheticInstance(study: Self.study1, series: Self.study1 + ".1", sop: Self.study1 + ".1.\(index)")
                .write(to: environment.input + "/\(index).dcm")
        }
        let (first, _) = try environment.runJob()
        let (second, folder) = try environment.runJob()
        #expect(first.generatedImageSets == 1)
        #expect(second.generatedImageSets == 1)
        let records = try environment.store.imageSets(datastoreId: environment.datastoreId)
        #expect(records.count == 1)
        #expect(records[0].latestVersion == 2)
        #expect(records[0].instanceCount == 3)
        #expect(try folder.lines(.success).allSatisfy { ($0["importResponse"] as? [String: Any])?["imageSetVersion"] as? Int == 2 })
        // Version 1 stays readable.
        let version1 = try #require(try environment.store.metadataDocument(datastoreId: environment.datastoreId, imageSetId: records[0].imageSetId, version: 1))
        #expect(Compression.gunzip(version1) != nil)

        // A later job whose instance conflicts with the primary's keys makes a non-primary set.
        var conflicting = SyntheticInstance(study: Self.study1, series: Self.study1 + ".1", sop: Self.study1 + ".1.1")
        conflicting.patientID = "SOMEONE-ELSE"
        let other = environment.folder.sub("input2")
        try conflicting.write(to: other + "/1.dcm")
        let (third, thirdFolder) = try environment.runJob(input: other)
        #expect(third.importedFiles == 1)
        let line = try #require(try thirdFolder.lines(.success).first)
        #expect((line["importResponse"] as? [String: Any])?["isPrimary"] as? Bool == false)
        #expect(try environment.store.imageSets(datastoreId: environment.datastoreId).count == 2)
        #expect(try environment.store.imageSet(datastoreId: environment.datastoreId, imageSetId: records[0].imageSetId)?.latestVersion == 2)
    }

    @Test func archiveMemberNamesNeverBecomePaths() throws {
        let environment = try Environment()
        defer { environment.folder.remove() }
        let staging = environment.folder.sub("staging")
        let instance = SyntheticInstance(study: Self.study1, series: Self.study1 + ".7", sop: Self.study1 + ".7.1")
        try instance.write(to: staging + "/x.dcm")
        try FileManager.default.createDirectory(atPath: environment.input, withIntermediateDirectories: true)
        try Self.run("""
            import sys, zipfile
            with zipfile.ZipFile(sys.argv[2] + '/evil.zip', 'w') as z:
                z.write(sys.argv[1] + '/x.dcm', '../../../../escaped.dcm')
            """, arguments: [staging, environment.input])
        let (outcome, folder) = try environment.runJob()
        #expect(outcome.importedFiles == 1)
        let key = try #require(try folder.lines(.success).first?["inputFile"] as? String)
        #expect(key.hasSuffix("evil.zip!../../../../escaped.dcm"))
        // Member names are only reported, never used as paths: nothing named after them exists anywhere.
        let written = FileManager.default.enumerator(atPath: environment.folder.path)?.allObjects as? [String] ?? []
        #expect(!written.contains { $0.hasSuffix("escaped.dcm") })
        #expect(!FileManager.default.fileExists(atPath: (environment.folder.path as NSString).deletingLastPathComponent + "/escaped.dcm"))
    }

    /// Each broken archive ends in one FAILURE line naming what is wrong (at archive or member level), and the
    /// job carries on to import the good file next to them.
    @Test func corruptArchivesEndInOneFailureLineEach() throws {
        let environment = try Environment()
        defer { environment.folder.remove() }
        let staging = environment.folder.sub("staging")
        let good = SyntheticInstance(study: Self.study1, series: Self.study1 + ".8", sop: Self.study1 + ".8.1")
        try good.write(to: environment.input + "/good.dcm")
        try good.write(to: staging + "/x.dcm")
        try Self.run(#"""
            import io, sys, tarfile, zipfile
            staging, target = sys.argv[1], sys.argv[2]
            open(target + '/junk.zip', 'wb').write(b'PK not really a zip' * 10)
            open(target + '/junk.tar.gz', 'wb').write(b'not gzip data')
            # A central directory entry whose name runs past the end of the directory.
            with zipfile.ZipFile(target + '/longname.zip', 'w') as z:
                z.write(staging + '/x.dcm', 'x.dcm')
            data = bytearray(open(target + '/longname.zip', 'rb').read())
            entry = data.rindex(b'PK\x01\x02')
            data[entry + 28:entry + 30] = b'\xff\xff'
            open(target + '/longname.zip', 'wb').write(data)
            # Deflate data overwritten in the middle.
            with zipfile.ZipFile(target + '/baddeflate.zip', 'w', zipfile.ZIP_DEFLATED) as z:
                z.write(staging + '/x.dcm', 'x.dcm')
            data = bytearray(open(target + '/baddeflate.zip', 'rb').read())
            data[60:120] = b'\xff' * 60
            open(target + '/baddeflate.zip', 'wb').write(data)
            # A tar header whose size field is not octal.
            with tarfile.open(target + '/badsize.tar', 'w') as t:
                t.add(staging + '/x.dcm', 'x.dcm')
            data = bytearray(open(target + '/badsize.tar', 'rb').read())
            data[124:136] = b'zzzzzzzzzzz\x00'
            open(target + '/badsize.tar', 'wb').write(data)
            # A PAX record whose length ends before its key, then a member that is not DICOM.
            with tarfile.open(target + '/badpax.tar', 'w', format=tarfile.USTAR_FORMAT) as t:
                for name, kind, body in [('pax', tarfile.XHDTYPE, b'1 path=evil\n'), ('notes.txt', tarfile.REGTYPE, b'not dicom')]:
                    info = tarfile.TarInfo(name)
                    info.type, info.size = kind, len(body)
                    t.addfile(info, io.BytesIO(body))
            """#, arguments: [staging, environment.input])
        let (outcome, folder) = try environment.runJob()

        #expect(outcome.job.jobStatus == .completed)
        let key = { (relative: String) in LocalDirectorySource.key(forPath: environment.input + "/" + relative) }
        #expect(try folder.lines(.success).compactMap { $0["inputFile"] as? String } == [key("good.dcm")])
        let failures = try folder.lines(.failure)
        let messages = Dictionary(uniqueKeysWithValues: failures.map {
            ($0["inputFile"] as! String, ($0["exception"] as! [String: Any])["message"] as! String)
        })
        let expected = [
            key("junk.zip"): "no usable end of central directory record",
            key("junk.tar.gz"): "The archive cannot be read: the compressed data is corrupt",
            key("longname.zip"): "central directory is corrupt",
            key("baddeflate.zip") + "!x.dcm": "The zip member cannot be read: the compressed data is corrupt",
            key("badsize.tar"): "tar archive is corrupt at offset 0: header checksum mismatch",
            key("badpax.tar") + "!notes.txt": "Not a DICOM P10 file",
        ]
        #expect(failures.count == expected.count)
        #expect(Set(messages.keys) == Set(expected.keys))
        for (inputFile, reason) in expected {
            #expect(messages[inputFile]?.contains(reason) == true, "\(inputFile): \(messages[inputFile] ?? "no line")")
        }
    }

    /// Damaged copies of every generated fixture (bytes overwritten, mostly in the header where the lengths
    /// are, some also cut short), from a fixed seed: the job completes and each file ends in exactly one
    /// SUCCESS or FAILURE line, whatever the damage.
    @Test func damagedFilesEachEndInExactlyOneLine() throws {
        let environment = try Environment()
        defer { environment.folder.remove() }
        let names = try FileManager.default.contentsOfDirectory(atPath: Fixtures.generated.path).filter { $0.hasSuffix(".dcm") }.sorted()
        try #require(names.count >= 10, "run fixtures/generate.sh first")
        try FileManager.default.createDirectory(atPath: environment.input, withIntermediateDirectories: true)
        var random = SplitMix64(seed: 0x5EED)
        var written: Set<String> = []
        for name in names {
            let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Fixtures.generated(name))))
            for copy in 0..<25 {
                var bytes = original
                for _ in 0...(random.next() % 3) {
                    let span = random.next() % 4 == 0 ? bytes.count : min(bytes.count, 2048)
                    bytes[Int(random.next() % UInt64(span))] = UInt8(truncatingIfNeeded: random.next())
                }
                if random.next() % 4 == 0 { bytes.removeLast(Int(random.next() % UInt64(bytes.count))) }
                let path = environment.input + "/\(name)-\(copy).dcm"
                try Data(bytes).write(to: URL(fileURLWithPath: path))
                written.insert(LocalDirectorySource.key(forPath: path))
            }
        }
        let (outcome, folder) = try environment.runJob()

        #expect(outcome.job.jobStatus == .completed)
        let keys = try folder.lines(.success).compactMap { $0["inputFile"] as? String }
            + folder.lines(.failure).compactMap { $0["inputFile"] as? String }
        #expect(keys.count == written.count)
        #expect(Set(keys) == written)
        #expect(try folder.lines(.failure).allSatisfy { (($0["exception"] as? [String: Any])?["message"] as? String)?.isEmpty == false })
    }

    @Test(arguments: StoreBackend.all) func clientTokenIsIdempotentAndRejectsDifferentParameters(backend: StoreBackend) throws {
        let environment = try Environment(backend: backend)
        defer { environment.folder.remove() }
        let first = try environment.engine.submit(environment.request(token: "token-1"))
        let again = try environment.engine.submit(environment.request(token: "token-1"))
        #expect(again.jobId == first.jobId)
        do {
            _ = try environment.engine.submit(environment.request(token: "token-1", output: "/tmp/elsewhere"))
            Issue.record("reused token accepted")
        } catch {
            #expect(error.code == .conflictException)
        }
    }

    @Test(arguments: StoreBackend.all) func unknownOrInactiveDatastoreIsRefused(backend: StoreBackend) throws {
        let environment = try Environment(backend: backend)
        defer { environment.folder.remove() }
        var request = environment.request()
        request.datastoreId = String(repeating: "0", count: 32)
        do {
            _ = try environment.engine.submit(request)
            Issue.record("unknown data store accepted")
        } catch {
            #expect(error.code == .resourceNotFoundException)
            #expect(error.code.httpStatus == 404)
        }
    }

    @Test func unreadableInputOrUnwritableOutputFailsTheJob() throws {
        let environment = try Environment()
        defer { environment.folder.remove() }
        let (missing, _) = try environment.runJob(input: environment.folder.sub("does-not-exist"))
        #expect(missing.job.jobStatus == .failed)
        #expect(missing.job.message?.contains("input prefix") == true)

        try SyntheticInstance(study: Self.study1, series: Self.study1 + ".1", sop: Self.study1 + ".1.1").write(to: environment.input + "/1.dcm")
        let blocker = environment.folder.sub("blocked")
        try Data("a file, not a folder".utf8).write(to: URL(fileURLWithPath: blocker))
        let (unwritable, _) = try environment.runJob(output: blocker)
        #expect(unwritable.job.jobStatus == .failed)
        #expect(unwritable.job.message?.contains("output") == true)
        let stored = try environment.store.job(datastoreId: environment.datastoreId, jobId: unwritable.job.jobId)
        #expect(stored?.jobStatus == .failed)
        #expect(try environment.store.imageSets(datastoreId: environment.datastoreId).isEmpty)
    }

    @Test(arguments: StoreBackend.all) func deletingADatastoreWithImageSetsIsAConflict(backend: StoreBackend) throws {
        let environment = try Environment(backend: backend)
        defer { environment.folder.remove() }
        try SyntheticInstance(study: Self.study1, series: Self.study1 + ".1", sop: Self.study1 + ".1.1").write(to: environment.input + "/1.dcm")
        _ = try environment.runJob()
        #expect(throws: ImageSetStoreError.self) { try environment.store.deleteDatastore(id: environment.datastoreId, now: 1) }
        let empty = try environment.store.createDatastore(name: "empty", now: 1)
        #expect(try environment.store.deleteDatastore(id: empty.datastoreId, now: 2).datastoreStatus == .deleting)
        #expect(try environment.store.datastores().map(\.datastoreId) == [environment.datastoreId])
    }
}


/// A small deterministic generator (SplitMix64), so damaged inputs are the same on every run.
struct SplitMix64 {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
