import DICOMIngest
import DICOMIngestModel
import DICOMIngestSQL
import DICOMIngestSQLite
import DICOMIngestTestSupport
import DICOMParser
import Dispatch
import Foundation
import Glibc
import Synchronization
import Testing

/// Jobs on one engine share its workers, in turn; each keeps its own progress on its record; a failed job stops.
@Suite struct SchedulerTests {
    typealias Environment = ImportJobTests.Environment

    /// A real folder listing whose opens are counted, and slowed when asked (a slow disk or bucket).
    final class CountedSource: ObjectSource {
        let source: LocalDirectorySource
        let delay: Double
        let opened = Atomic<Int>(0)

        init(root: String, delay: Double = 0) {
            source = LocalDirectorySource(root: root)
            self.delay = delay
        }

        func forEachObject(_ body: (SourceObject) throws -> Void) throws { try source.forEachObject(body) }

        func open(_ object: SourceObject) throws -> any P10ByteInput {
            opened.add(1, ordering: .relaxed)
            if delay > 0 { Thread.sleep(forTimeInterval: delay) }
            return try source.open(object)
        }
    }

    @Test func aSmallJobStartedDuringABigOneIsNotQueuedBehindIt() throws {
        let environment = try Environment(threads: 2)
        let (engine, store, output) = (environment.engine, environment.store, environment.output)
        try DurabilityTests.writeSeries(2_000, in: environment.input + "/big", study: "1.2.826.0.1.3680043.13.1")
        try DurabilityTests.writeSeries(10, in: environment.input + "/small", study: "1.2.826.0.1.3680043.13.2")
        let big = try engine.submit(environment.request(input: environment.input + "/big"))
        let bigSource = CountedSource(root: environment.input + "/big", delay: 0.002)
        let bigOutcome = Mutex<ImportOutcome?>(nil)
        let bigDone = DispatchGroup()
        DispatchQueue(label: "big-job").async(group: bigDone) {
            let outcome = try? engine.run(big, source: bigSource) { job in
                try LocalDirectorySink(outputRoot: output, datastoreId: job.datastoreId, jobId: job.jobId)
            }
            bigOutcome.withLock { $0 = outcome }
        }
        // Once the big job's record shows a staged batch, its lane holds hundreds of listed objects.
        let deadline = Date().addingTimeInterval(60)
        while try (store.job(datastoreId: environment.datastoreId, jobId: big.jobId)?.progress.scannedFiles ?? 0) == 0,
            Date() < deadline
        {
            Thread.sleep(forTimeInterval: 0.01)
        }
        let (small, _) = try environment.runJob(input: environment.input + "/small")
        let bigWhenSmallEnded = try #require(engine.progress(of: big.jobId)).scannedFiles
        #expect(small.job.jobStatus == .completed)
        #expect(small.importedFiles == 10)
        // Round robin: the small job's objects went between the big one's batches, not behind its queued objects.
        #expect(bigWhenSmallEnded < 1_000, "the big job had read \(bigWhenSmallEnded) of 2,000 files when the small one ended")

        bigDone.wait()
        let outcome = try #require(bigOutcome.withLock { $0 })
        #expect(outcome.job.jobStatus == .completed)
        #expect(outcome.importedFiles == 2_000)
        #expect(engine.progress(of: big.jobId) == nil)
        for (run, files) in [(outcome, 2_000), (small, 10)] {
            let record = try #require(try store.job(datastoreId: environment.datastoreId, jobId: run.job.jobId))
            #expect(record.progress == ImportJobProgress(
                scannedFiles: files, importedFiles: files, generatedImageSets: 1, bytesRead: run.bytes))
            #expect(run.bytes > files * 500)
        }
        #expect(bigSource.opened.load(ordering: .relaxed) == 2_000)
    }

    @Test func aJobWhoseOutputFailsStopsReadingAtOnce() throws {
        let environment = try Environment(threads: 2)
        try FileManager.default.createDirectory(atPath: environment.input + "/junk", withIntermediateDirectories: true)
        for index in 0..<3_000 {
            try Data("not a DICOM file \(index)".utf8).write(to: URL(fileURLWithPath: environment.input + "/junk/\(index).txt"))
        }
        let output = environment.folder.sub("small-output")
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        // 12 KiB free (root can mount here, as in CI): the first flush of failure lines, at 64 KiB, fails.
        #expect(mount("tmpfs", output, "tmpfs", 0, "size=64k") == 0, "mount: \(String(cString: strerror(errno)))")
        defer { umount(output) }
        try Data(repeating: 0, count: 52 << 10).write(to: URL(fileURLWithPath: output + "/filler"))

        let job = try environment.engine.submit(environment.request(input: environment.input + "/junk", output: output))
        let source = CountedSource(root: environment.input + "/junk")
        let outcome = try environment.engine.run(job, source: source) { job in
            try LocalDirectorySink(outputRoot: output, datastoreId: job.datastoreId, jobId: job.jobId)
        }
        #expect(outcome.job.jobStatus == .failed)
        #expect(outcome.job.message?.contains("No space left on device") == true, "\(outcome.job.message ?? "")")
        // About 64 KiB of failure lines were read before the write failed; the lane stopped there.
        let opened = source.opened.load(ordering: .relaxed)
        #expect(opened < 1_500, "\(opened) of 3,000 objects were read after the job failed")

        // The engine's workers serve the next job as before.
        try DurabilityTests.writeSeries(3, in: environment.input + "/good")
        let (next, _) = try environment.runJob(input: environment.input + "/good")
        #expect(next.job.jobStatus == .completed)
        #expect(next.importedFiles == 3)
    }

    @Test func aJobRunsInOneProcessAtATime() throws {
        let environment = try Environment(threads: 2)
        try DurabilityTests.writeSeries(300, in: environment.input)
        // Two engines on two connections to one store, as two processes would have.
        let engines = try (0..<2).map { _ in
            let store = try SQLiteImageSetStore(directory: environment.folder.sub("store"))
            return ImportEngine(
                store: store, frameStorage: store.frameStorage, configuration: .init(threads: 2, journalFolder: store.journalFolder))
        }
        let job = try engines[0].submit(environment.request())
        let output = environment.output
        let first = Mutex<ImportOutcome?>(nil)
        let running = DispatchGroup()
        DispatchQueue(label: "first-process").async(group: running) {
            let outcome = try? engines[0].run(job, source: CountedSource(root: environment.input, delay: 0.002)) { job in
                try LocalDirectorySink(outputRoot: output, datastoreId: job.datastoreId, jobId: job.jobId)
            }
            first.withLock { $0 = outcome }
        }
        let deadline = Date().addingTimeInterval(30)
        while engines[0].progress(of: job.jobId) == nil && Date() < deadline { Thread.sleep(forTimeInterval: 0.005) }

        let secondSinks = Atomic<Int>(0)
        func runSecond() throws -> ImportOutcome {
            try engines[1].run(job, source: LocalDirectorySource(root: environment.input)) { job in
                secondSinks.add(1, ordering: .relaxed)
                return try LocalDirectorySink(outputRoot: output, datastoreId: job.datastoreId, jobId: job.jobId)
            }
        }
        let refusal = #expect(throws: IngestServiceError.self) { try runSecond() }
        #expect(refusal?.code == .conflictException)
        #expect(refusal?.message.contains("is being run by another process") == true)

        running.wait()
        #expect(first.withLock { $0 }?.importedFiles == 300)
        // Once it has ended, a late resume finds it ended and does nothing.
        let late = try runSecond()
        #expect(late.job.jobStatus == .completed)
        #expect(secondSinks.load(ordering: .relaxed) == 0)
        #expect(!FileManager.default.fileExists(atPath: environment.folder.sub("store/jobs/\(job.jobId).lock")))
    }
}
