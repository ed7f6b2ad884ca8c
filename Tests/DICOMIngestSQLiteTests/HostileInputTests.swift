import DICOMCore
import DICOMIngest
import DICOMIngestModel
import DICOMIngestSQL
import DICOMIngestSQLite
import DICOMIngestTestSupport
import DICOMParser
import Foundation
import Synchronization
import Testing

/// Crafted objects that used to kill the process (issue 10): each ends in exactly one FAILURE line with a specific
/// reason, and the job completes.
@Suite struct HostileInputTests {
    static func identified(_ builder: inout P10Builder) {
        builder.string(.sopClassUID, .UI, "1.2.840.10008.5.1.4.1.1.2")
        builder.string(.sopInstanceUID, .UI, "1.2.826.0.1.3680043.10.99.1")
        builder.string(.patientID, .LO, "P")
        builder.string(.studyInstanceUID, .UI, "1.2.826.0.1.3680043.10.99")
        builder.string(.seriesInstanceUID, .UI, "1.2.826.0.1.3680043.10.99.2")
    }

    /// Imports `files` (name → bytes) and returns each file's failure message.
    static func importFailures(_ files: [String: [UInt8]]) throws -> [String: String] {
        let environment = try ImportJobTests.Environment()
        defer { environment.folder.remove() }
        for (name, bytes) in files {
            try FileManager.default.createDirectory(atPath: environment.input, withIntermediateDirectories: true)
            try Data(bytes).write(to: URL(fileURLWithPath: environment.input + "/" + name))
        }
        let (outcome, folder) = try environment.runJob()
        #expect(outcome.job.jobStatus == .completed)
        #expect(outcome.scannedFiles == files.count)
        var messages: [String: String] = [:]
        for line in try folder.lines(.failure) {
            let name = String((line["inputFile"] as? String ?? "").split(separator: "/").last ?? "")
            messages[name] = (line["exception"] as? [String: Any])?["message"] as? String
        }
        return messages
    }

    static func pixelModule(
        rows: UInt16, columns: UInt16, samples: UInt16, bits: UInt16, frames: String?, pixelBytes: Int = 16
    ) -> [UInt8] {
        var builder = P10Builder(transferSyntaxUID: TransferSyntax.explicitVRLittleEndian.uid)
        identified(&builder)
        builder.uint16(.samplesPerPixel, samples)
        builder.string(.photometricInterpretation, .CS, samples == 3 ? "RGB" : "MONOCHROME2")
        if let frames { builder.string(.numberOfFrames, .IS, frames) }
        builder.uint16(.rows, rows)
        builder.uint16(.columns, columns)
        builder.uint16(.bitsAllocated, bits)
        builder.uint16(.bitsStored, bits)
        builder.element(.pixelData, .OW, bytes: [UInt8](repeating: 0, count: pixelBytes))
        return builder.build()
    }

    @Test func pixelModuleProductsThatOverflowFailTheirFile() throws {
        let failures = try Self.importFailures([
            "all65535.dcm": Self.pixelModule(rows: 65535, columns: 65535, samples: 65535, bits: 65535, frames: nil),
            "frames.dcm": Self.pixelModule(rows: 65535, columns: 65535, samples: 1, bits: 16, frames: "1100000000"),
        ])
        #expect(failures["all65535.dcm"]?.contains("is not a frame size") == true)
        #expect(failures["frames.dcm"]?.contains("NumberOfFrames 1100000000 is more than the 100000 frames") == true)
    }

    @Test func extendedOffsetTableEntriesPastIntMaxFailTheirFile() throws {
        var builder = P10Builder(transferSyntaxUID: "1.2.840.10008.1.2.4.70")
        Self.identified(&builder)
        builder.uint16(.samplesPerPixel, 1)
        builder.string(.photometricInterpretation, .CS, "MONOCHROME2")
        builder.string(.numberOfFrames, .IS, "2")
        builder.uint16(.rows, 2)
        builder.uint16(.columns, 2)
        builder.uint16(.bitsAllocated, 8)
        builder.uint16(.bitsStored, 8)
        let entries: [UInt64] = [0, 1 << 63]
        builder.element(.extendedOffsetTable, .OV, bytes: entries.flatMap { value in (0..<8).map { UInt8((value >> (8 * $0)) & 0xFF) } })
        builder.element(.extendedOffsetTableLengths, .OV, bytes: [UInt8](repeating: 0, count: 16))
        builder.encapsulatedPixelData(basicOffsetTable: [], fragments: [[0xFF, 0xD8, 0xFF, 0xD9], [0xFF, 0xD8, 0xFF, 0xD9]])
        let failures = try Self.importFailures(["eot.dcm": builder.build()])
        #expect(failures["eot.dcm"]?.contains("Frame 1 cannot be decoded") == true)
    }

    /// 1,000,000 frames of one byte each: refused at NumberOfFrames, before any frame is laid out.
    @Test func frameCountsPastTheLimitFailTheirFile() throws {
        let file = Self.pixelModule(rows: 1, columns: 1, samples: 1, bits: 8, frames: "1000000", pixelBytes: 1_000_000)
        let failures = try Self.importFailures(["frames.dcm": file])
        #expect(failures["frames.dcm"]?.hasPrefix("LIMIT_EXCEEDED: NumberOfFrames 1000000 is more than the 100000") == true)
    }

    @Test func nestingDeeperThanTheLimitFailsItsFile() throws {
        var builder = P10Builder(transferSyntaxUID: TransferSyntax.explicitVRLittleEndian.uid)
        Self.identified(&builder)
        builder.nestedSequences(depth: 25_000)
        let failures = try Self.importFailures(["deep.dcm": builder.build()])
        #expect(failures["deep.dcm"]?.hasPrefix("NESTING_TOO_DEEP: sequences nest deeper than 128 levels") == true)
    }
}

/// Archives built to loop, bomb or hide members (issue 10): every member and every broken header ends in exactly
/// one line, in bounded time and memory.
@Suite struct HostileArchiveTests {
    /// Runs a job over archives written by Python's standard library (`script` gets the staging folder, where
    /// `x.dcm` is a valid instance, and the input folder) and returns its lines by input file.
    static func importArchives(_ script: String) throws -> (success: Set<String>, failures: [String: String]) {
        let environment = try ImportJobTests.Environment()
        defer { environment.folder.remove() }
        let staging = environment.folder.sub("staging")
        try SyntheticInstance(study: ImportJobTests.study1, series: ImportJobTests.study1 + ".6", sop: ImportJobTests.study1 + ".6.1")
            .write(to: staging + "/x.dcm")
        try ImportJobTests.run(script, arguments: [staging, environment.input], makeFolders: [environment.input])
        let (outcome, folder) = try environment.runJob()
        #expect(outcome.job.jobStatus == .completed)
        let prefix = LocalDirectorySource.key(forPath: environment.input + "/")
        func name(_ line: [String: Any]) -> String { String((line["inputFile"] as? String ?? "").dropFirst(prefix.count)) }
        let success = Set(try folder.lines(.success).map(name))
        var failures: [String: String] = [:]
        for line in try folder.lines(.failure) {
            #expect(failures[name(line)] == nil, "two lines for \(name(line))")
            failures[name(line)] = (line["exception"] as? [String: Any])?["message"] as? String
        }
        #expect(outcome.scannedFiles == success.count + failures.count)
        return (success, failures)
    }

    static let tarHelpers = #"""
        import io, sys, tarfile, zipfile, gzip
        staging, target = sys.argv[1], sys.argv[2]
        data = open(staging + '/x.dcm', 'rb').read()
        def header(name, size_field, kind=b'0', link=b''):
            block = bytearray(512)
            block[0:len(name)] = name
            block[100:108] = b'0000644\0'
            block[124:136] = size_field
            block[136:148] = b'00000000000\0'
            block[156:157] = kind
            block[157:157 + len(link)] = link
            block[257:263] = b'ustar\0'
            block[263:265] = b'00'
            block[148:156] = b' ' * 8
            block[148:156] = b'%06o\0 ' % sum(block)
            return bytes(block)
        def pad(body):
            return body + b'\0' * ((512 - len(body) % 512) % 512)

        """#

    @Test func tarSizeFieldsThatAreNegativeOrNotOctalEndTheArchive() throws {
        let (success, failures) = try Self.importArchives(Self.tarHelpers + #"""
            for name, field in [('negative', b'-0000001000\0'), ('verynegative', b'-7777777777\0'), ('hex', b'0x100000000\0'),
                                ('base256negative', b'\xff' * 12)]:
                open(target + '/' + name + '.tar', 'wb').write(header(b'a.dcm', field) + pad(data) + b'\0' * 1024)
            # GNU base-256 for a size that octal cannot hold is read (here, the real size).
            size = b'\x80' + len(data).to_bytes(11, 'big')
            open(target + '/base256.tar', 'wb').write(header(b'b256.dcm', size) + pad(data) + b'\0' * 1024)
            """#)
        #expect(success == ["base256.tar!b256.dcm"])
        for name in ["negative.tar", "verynegative.tar", "hex.tar", "base256negative.tar"] {
            #expect(failures[name]?.contains("invalid size field") == true, "\(name): \(failures[name] ?? "no line")")
        }
        #expect(failures.count == 4)
    }

    @Test func tarContiguousFilesImportAndLinksAndDevicesAreReported() throws {
        let (success, failures) = try Self.importArchives(Self.tarHelpers + #"""
            body = header(b'contiguous.dcm', b'%011o\0' % len(data), b'7') + pad(data)
            body += header(b'hard.dcm', b'00000000000\0', b'1', b'contiguous.dcm')
            body += header(b'soft.dcm', b'00000000000\0', b'2', b'/etc/passwd')
            body += header(b'fifo', b'00000000000\0', b'6')
            body += header(b'folder/', b'00000000000\0', b'5')
            open(target + '/kinds.tar', 'wb').write(body + b'\0' * 1024)
            """#)
        #expect(success == ["kinds.tar!contiguous.dcm"])
        #expect(failures["kinds.tar!hard.dcm"]?.contains("a hard link to contiguous.dcm") == true)
        #expect(failures["kinds.tar!soft.dcm"]?.contains("a symbolic link to /etc/passwd") == true)
        #expect(failures["kinds.tar!fifo"]?.contains("a FIFO, not a regular file") == true)
        #expect(failures.count == 3)
    }

    /// One deflated member listed 2,000 times by the central directory: it is read once; every other entry fails
    /// without inflating anything.
    @Test func zipEntriesSharingTheirDataAreNotInflatedAgain() throws {
        let (success, failures) = try Self.importArchives(Self.tarHelpers + #"""
            import struct
            with zipfile.ZipFile(target + '/bomb.zip', 'w', zipfile.ZIP_DEFLATED) as z:
                z.writestr('m0.dcm', data)
            raw = bytearray(open(target + '/bomb.zip', 'rb').read())
            start = raw.rindex(b'PK\x01\x02')
            end = raw.rindex(b'PK\x05\x06')
            entry = bytes(raw[start:end])
            # Same-length names, so only the name differs between the entries.
            entries = b''.join(entry.replace(b'm0.dcm', ('m%05d' % i).encode()) for i in range(2000))
            eocd = bytearray(raw[end:end + 22])
            eocd[8:10] = struct.pack('<H', 2000); eocd[10:12] = struct.pack('<H', 2000)
            eocd[12:16] = struct.pack('<I', len(entries)); eocd[16:20] = struct.pack('<I', start)
            open(target + '/bomb.zip', 'wb').write(bytes(raw[:start]) + entries + bytes(eocd))
            """#)
        #expect(success.count == 1)
        #expect(failures.count == 1999)
        #expect(failures.values.allSatisfy { $0.contains("overlaps another member's") })
    }

    @Test func zipMembersThatInflatePastTheirDeclaredSizeAreRefused() throws {
        let (success, failures) = try Self.importArchives(Self.tarHelpers + #"""
            import struct
            with zipfile.ZipFile(target + '/liar.zip', 'w', zipfile.ZIP_DEFLATED) as z:
                z.writestr('liar.dcm', data + b'\0' * 10_000_000)
            raw = bytearray(open(target + '/liar.zip', 'rb').read())
            central = raw.rindex(b'PK\x01\x02')
            raw[central + 24:central + 28] = struct.pack('<I', 1000)
            open(target + '/liar.zip', 'wb').write(raw)
            """#)
        #expect(success.isEmpty)
        #expect(failures["liar.zip!liar.dcm"]?.contains("inflates to more than its declared 1000 bytes") == true)
    }

    /// Two members of one name (a tar appended to, a zip written twice): each gets a key of its own.
    @Test func membersOfTheSameNameGetKeysOfTheirOwn() throws {
        let (success, failures) = try Self.importArchives(Self.tarHelpers + #"""
            body = header(b'a.dcm', b'%011o\0' % len(data)) + pad(data)
            body += header(b'a.dcm', b'%011o\0' % len(data)) + pad(data)
            open(target + '/twice.tar', 'wb').write(body + b'\0' * 1024)
            import warnings
            warnings.simplefilter('ignore')
            with zipfile.ZipFile(target + '/twice.zip', 'w') as z:
                z.writestr('b.dcm', data)
                z.writestr('b.dcm', b'not dicom')
            """#)
        #expect(success == ["twice.tar!a.dcm", "twice.tar!a.dcm%002", "twice.zip!b.dcm"])
        #expect(failures.keys.sorted() == ["twice.zip!b.dcm%002"])
    }

    /// A small gzip or deflated data set that inflates more than 200 times its size stops at the cap.
    @Test func decompressionBombsStopAtTheRatioCap() throws {
        let (success, failures) = try Self.importArchives(Self.tarHelpers + #"""
            with gzip.open(target + '/zeros.dcm.gz', 'wb', compresslevel=9) as f:
                for _ in range(100):
                    f.write(b'\0' * (1 << 20))
            """#)
        #expect(success.isEmpty)
        #expect(failures["zeros.dcm.gz"]?.contains("a decompression bomb") == true)
    }
}

/// Local folders as old archives and careless users leave them (issue 10): every object gets one line under a
/// key of its own, and nothing outside the input prefix is read.
@Suite struct HostileFolderTests {
    @Test func namesThatAreNotUTF8KeepTheirBytesAndLinksStayInsideThePrefix() throws {
        let environment = try ImportJobTests.Environment()
        defer { environment.folder.remove() }
        let staging = environment.folder.sub("staging")
        for index in 1...6 {
            try SyntheticInstance(study: ImportJobTests.study1, series: ImportJobTests.study1 + ".5", sop: ImportJobTests.study1 + ".5.\(index)")
                .write(to: staging + "/\(index).dcm")
        }
        try ImportJobTests.run(#"""
            import os, shutil, sys
            staging, target = sys.argv[1].encode(), sys.argv[2].encode()
            def put(name, index):
                shutil.copyfile(staging + b'/%d.dcm' % index, target + b'/' + name)
            put(b'caf\xe9.dcm', 1)             # Latin-1
            put(b'caf\xe8.dcm', 2)
            put(b'caf%E9.dcm', 3)              # valid UTF-8 that reads like the first one's key
            os.mkdir(target + b'/d\xe9j\xe0')
            put(b'd\xe9j\xe0/x.dcm', 4)
            put(b'real.dcm', 5)
            os.symlink(target + b'/real.dcm', target + b'/inside-link.dcm')
            os.symlink(staging + b'/6.dcm', target + b'/outside-link.dcm')
            os.symlink(target + b'/d\xe9j\xe0', target + b'/folder-link')
            os.symlink(target + b'/missing.dcm', target + b'/broken-link.dcm')
            os.mkfifo(target + b'/pipe')
            """#, arguments: [staging, environment.input], makeFolders: [environment.input])
        let (outcome, folder) = try environment.runJob()
        #expect(outcome.job.jobStatus == .completed)
        let prefix = LocalDirectorySource.key(forPath: environment.input + "/")
        func name(_ line: [String: Any]) -> String { String((line["inputFile"] as? String ?? "").dropFirst(prefix.count)) }
        let success = try folder.lines(.success).map(name)
        #expect(Set(success) == ["caf%E9.dcm", "caf%E9.dcm%002", "caf%E8.dcm", "d%E9j%E0/x.dcm", "real.dcm", "inside-link.dcm"])
        #expect(success.count == 6)
        var failures: [String: String] = [:]
        for line in try folder.lines(.failure) {
            failures[name(line)] = (line["exception"] as? [String: Any])?["message"] as? String
        }
        #expect(failures.count == 4)
        #expect(failures["outside-link.dcm"]?.contains("leads out of the input prefix") == true)
        #expect(failures["folder-link"]?.contains("links to folders are not followed") == true)
        #expect(failures["broken-link.dcm"]?.contains("broken") == true)
        #expect(failures["pipe"]?.contains("a FIFO") == true)
        #expect(outcome.scannedFiles == 10)
    }
}

/// The job-wide bounds on memory and time (issue 10).
@Suite struct JobBoundsTests {
    @Test func aReservationWaitsUntilTheBudgetHasRoom() async throws {
        let budget = MemoryBudget(limit: 100)
        budget.reserve(80)
        let granted = Mutex(false)
        let thread = Thread {
            budget.reserve(50)
            granted.withLock { $0 = true }
        }
        thread.start()
        try await Task.sleep(for: .milliseconds(200))
        #expect(granted.withLock { $0 } == false)
        budget.release(80)
        for _ in 0..<100 where !granted.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(20)) }
        #expect(granted.withLock { $0 })
        #expect(budget.inUse == 50)
        // Larger than the whole budget: let through once nothing else is reserved.
        budget.release(50)
        budget.reserve(1_000)
        #expect(budget.inUse == 1_000)
    }

    /// A one-byte budget lets one reservation through at a time: the job still completes with every line.
    @Test func aJobCompletesWithinATinyBudget() throws {
        let environment = try ImportJobTests.Environment()
        defer { environment.folder.remove() }
        let (instances, failures) = try ImportJobTests.writeArchive(in: environment)
        let engine = ImportEngine(
            store: environment.store, frameStorage: environment.store.frameStorage,
            configuration: .init(threads: 2, stagingBatchSize: 2, memoryBudget: 1))
        let job = try engine.submit(environment.request())
        let outcome = try engine.run(job, source: LocalDirectorySource(root: environment.input)) { job in
            try LocalDirectorySink(outputRoot: environment.output, datastoreId: job.datastoreId, jobId: job.jobId)
        }
        #expect(outcome.job.jobStatus == .completed)
        #expect(outcome.importedFiles == instances.count)
        #expect(outcome.customerErrors == failures.count)
    }

    @Test func anObjectPastItsTimeLimitFailsAlone() throws {
        let environment = try ImportJobTests.Environment()
        defer { environment.folder.remove() }
        var multiFrame = SyntheticInstance(study: ImportJobTests.study1, series: ImportJobTests.study1 + ".4", sop: ImportJobTests.study1 + ".4.1")
        multiFrame.frames = 3
        try multiFrame.write(to: environment.input + "/slow.dcm")
        let engine = ImportEngine(
            store: environment.store, frameStorage: environment.store.frameStorage,
            configuration: .init(threads: 1, objectTimeLimit: 1e-9))
        let job = try engine.submit(environment.request())
        let outcome = try engine.run(job, source: LocalDirectorySource(root: environment.input)) { job in
            try LocalDirectorySink(outputRoot: environment.output, datastoreId: job.datastoreId, jobId: job.jobId)
        }
        #expect(outcome.job.jobStatus == .completed)
        #expect(outcome.customerErrors == 1)
        let folder = ImportJobTests.JobFolder(path: environment.output + "/\(environment.datastoreId)-DicomImport-\(job.jobId)")
        let message = (try folder.lines(.failure).first?["exception"] as? [String: Any])?["message"] as? String
        #expect(message?.hasPrefix("The object took longer than the 0 s an object may take (stopped before frame 1 of 3)") == true)
    }
}

/// Codec libraries on crafted codestreams (issue 10).
@Suite struct HostileCodestreamTests {
    /// Found by the `instance` fuzz target: an HTJ2K frame that trips an assertion in Debian's OpenJPEG, which
    /// aborted the process; the assertion now ends a codec helper process and fails that file only, naming it.
    @Test func aCodecAssertionFailsItsFileInsteadOfAbortingTheProcess() throws {
        let crafted = Array(try Data(contentsOf: Fixtures.packageRoot.appendingPathComponent("Fuzz/regressions/instance/htj2k-openjph-assertion.dcm")))
        let failures = try HostileInputTests.importFailures(["crafted.dcm": crafted, "good.dcm": SyntheticInstance(
            study: ImportJobTests.study1, series: ImportJobTests.study1 + ".3", sop: ImportJobTests.study1 + ".3.9").bytes])
        #expect(failures.count == 1)
        #expect(failures["crafted.dcm"]?.contains("HTJ2K: the decoder failed an internal check (") == true, "\(failures)")
        #expect(failures["crafted.dcm"]?.contains("Assertion `") == true, "\(failures)")
    }

    /// Found by the `instance` fuzz target: a tile origin below the image origin (YTOsiz 4, YOsiz 0) made OpenJPH
    /// loop for ever in `codestream::pull`. Incoming HTJ2K is decoded by OpenJPEG now, which refuses the SIZ marker.
    @Test func anInvalidTileOriginFailsItsFileInsteadOfHanging() throws {
        let crafted = Array(try Data(contentsOf: Fixtures.packageRoot.appendingPathComponent("Fuzz/regressions/instance/htj2k-tile-origin-openjph-hang.dcm")))
        let failures = try HostileInputTests.importFailures(["crafted.dcm": crafted])
        #expect(failures["crafted.dcm"]?.contains("Frame 1 cannot be decoded: HTJ2K: ") == true, "\(failures)")
        #expect(failures["crafted.dcm"]?.contains("illegal tile offset") == true, "\(failures)")
    }

    /// Found by the `instance` fuzz target (address sanitizer): a 32 × 32 HTJ2K frame whose SIZ marker declares
    /// 251,674,656 × 32 samples made OpenJPEG allocate 32 GB. A codestream that declares more than its frame holds
    /// is refused: the decoder's address-space limit in its helper process fails the allocation.
    @Test func aCodestreamLargerThanItsFrameIsRefusedBeforeDecoding() throws {
        let crafted = Array(try Data(contentsOf: Fixtures.packageRoot.appendingPathComponent("Fuzz/regressions/instance/j2k-siz-larger-than-frame-openjpeg-32gb.dcm")))
        let failures = try HostileInputTests.importFailures(["crafted.dcm": crafted])
        #expect(failures["crafted.dcm"]?.contains("Not enough memory") == true, "\(failures)")
        #expect(failures["crafted.dcm"]?.contains("(the decoder may take 48 MiB for this frame)") == true, "\(failures)")
    }

    /// Found by the `instance` fuzz target (address sanitizer): a crafted packet header made OpenJPH 0.9 write 2 GB
    /// past a 1 MiB buffer in `precinct::parse`, which would have corrupted the process. Incoming HTJ2K is decoded
    /// by OpenJPEG, which checks packet headers; the file fails with its reason.
    @Test func aCraftedHTJ2KPacketHeaderFailsItsFile() throws {
        let crafted = Array(try Data(contentsOf: Fixtures.packageRoot.appendingPathComponent("Fuzz/regressions/instance/htj2k-openjph-precinct-overflow.dcm")))
        let failures = try HostileInputTests.importFailures(["crafted.dcm": crafted])
        #expect(failures["crafted.dcm"]?.contains("Frame 1 cannot be decoded: HTJ2K: ") == true, "\(failures)")
    }

    /// Found by the `instance` fuzz target: a sampling factor of 0 made OpenJPH divide by zero (SIGFPE, the
    /// process died). The frame is lossy HTJ2K, kept as it arrived: the file imports with a FrameNotDecoded warning.
    @Test func aZeroSamplingFactorNoLongerKillsTheProcess() throws {
        let crafted = Array(try Data(contentsOf: Fixtures.packageRoot.appendingPathComponent("Fuzz/regressions/instance/htj2k-zero-sampling-factor-openjph-fpe.dcm")))
        let failures = try HostileInputTests.importFailures(["crafted.dcm": crafted])
        #expect(failures.isEmpty)
    }

    /// Found by the `instance` fuzz target: CharLS 2.4.1 spins for about 13 s of CPU on this file's first crafted
    /// JPEG-LS frame (1 KB of samples) before it reports the stream invalid. The helper's CPU limit (2 s plus a
    /// second per 4 MiB of samples) ends it, and the file fails with that reason.
    @Test func aCodecCallThatSpinsIsStoppedByItsCPULimit() throws {
        let crafted = try Data(contentsOf: Fixtures.packageRoot.appendingPathComponent("Fuzz/regressions/instance/jpegls-charls-slow-loop.dcm"))
        let folder = try TemporaryFolder("watchdog")
        defer { folder.remove() }
        let store = try SQLiteImageSetStore(directory: folder.sub("store"))
        let preparer = InstancePreparer(frameStorage: store.frameStorage, datastoreId: "watchdog")
        let result = preparer.prepare(key: "crafted.dcm", input: MemoryByteInput(Array(crafted)), scratch: WorkerScratch())
        guard case .failure(let failure) = result else {
            Issue.record("the crafted file was imported")
            return
        }
        #expect(failure.message.contains("JPEG-LS: the decoder used more than 3 s of CPU on this frame and was stopped"), "\(failure.message)")
    }
}
