import DICOMIngest
import DICOMIngestModel
import DICOMIngestSQL
import DICOMIngestSQLite
import DICOMIngestTestSupport
import Foundation
import Glibc
import Synchronization
import Testing

/// What a job leaves on disk when things go wrong: unreferenced frame packs, result files that cannot be written.
@Suite struct DurabilityTests {
    typealias Environment = ImportJobTests.Environment

    static func writeSeries(_ count: Int, in folder: String, study: String = "1.2.826.0.1.3680043.12.1") throws {
        for index in 0..<count {
            try SyntheticInstance(study: study, series: "\(study).1", sop: "\(study).1.\(index)")
                .write(to: folder + "/i\(index).dcm")
        }
    }

    /// Writes a pack the catalog does not know, last modified `age` seconds ago.
    static func strayPack(in environment: Environment, age: Double) throws -> String {
        let name = "\(environment.datastoreId)/zz/\(ResourceID.make()).frames"
        let path = environment.store.frameStorage.root + "/" + name
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(repeating: 7, count: 4096).write(to: URL(fileURLWithPath: path))
        let then = Date().timeIntervalSince1970 - age
        var times = [timespec(tv_sec: Int(then), tv_nsec: 0), timespec(tv_sec: Int(then), tv_nsec: 0)]
        #expect(utimensat(AT_FDCWD, path, &times, 0) == 0)
        return path
    }

    @Test(arguments: StoreBackend.all) func packsNoFrameOrStagedInstanceNamesAreReclaimed(backend: StoreBackend) throws {
        let environment = try Environment(backend: backend)
        try Self.writeSeries(5, in: environment.input)
        let (outcome, _) = try environment.runJob()
        #expect(outcome.job.jobStatus == .completed)
        let old = try Self.strayPack(in: environment, age: 3_600)
        // A killed job's staged instance names its pack: kept for the job's resume.
        let staged = try Self.strayPack(in: environment, age: 3_600)
        let stagedName = String(staged.dropFirst(environment.store.frameStorage.root.count + 1))
        try environment.store.stage(
            [PreparedInstance(
                inputKey: "killed.dcm", sopInstanceUID: "1.2.3", key: ImageSetKey(studyInstanceUID: "1.2", seriesInstanceUID: "1.2.3"),
                patientJSON: [], studyJSON: [], seriesJSON: [], instanceJSON: [],
                frames: [StoredFrame(id: ResourceID.make(), blob: stagedName, offset: 0, length: 4096, transferSyntaxUID: "1.2.840.10008.1.2.4.202")],
                warnings: [])],
            lines: [], jobId: "killed-job", progress: ImportJobProgress())
        // A job submitted before the recent pack was written may be writing it: only the old one goes.
        let waiting = try environment.engine.submit(environment.request())
        let recent = try Self.strayPack(in: environment, age: 0)
        var reclaimed = try environment.store.reclaimUnreferencedFramePacks()
        #expect(reclaimed == .init(packs: 1, bytes: 4096))
        #expect(!FileManager.default.fileExists(atPath: old))
        #expect(FileManager.default.fileExists(atPath: recent))

        var ended = waiting
        ended.jobStatus = .failed
        ended.endedAt = Date().timeIntervalSince1970
        try environment.store.updateJob(ended)
        reclaimed = try environment.store.reclaimUnreferencedFramePacks(now: Date().timeIntervalSince1970 + 5)
        #expect(reclaimed.packs == 1)
        #expect(!FileManager.default.fileExists(atPath: recent))
        #expect(FileManager.default.fileExists(atPath: staged))

        // Every committed frame is still there and readable.
        let imageSet = try #require(try environment.store.imageSets(datastoreId: environment.datastoreId).first)
        #expect(imageSet.instanceCount == 5)
        let document = try #require(
            try environment.store.metadataDocument(datastoreId: environment.datastoreId, imageSetId: imageSet.imageSetId, version: nil))
        let text = String(decoding: try #require(Compression.gunzip(document)), as: UTF8.self)
        let frameIds = text.matches(of: /"ID":"([0-9a-f]{32})"/).map { String($0.output.1) }
        #expect(frameIds.count == 5)
        for id in frameIds {
            let frame = try #require(try environment.store.frame(datastoreId: environment.datastoreId, imageSetId: imageSet.imageSetId, frameId: id))
            let bytes = try environment.store.frameStorage.read(blob: frame.blob, offset: frame.offset, length: frame.length)
            #expect(bytes.count == frame.length)
        }
        #expect(try environment.store.reclaimUnreferencedFramePacks().packs == 0)
    }

    /// Result lines that do not fit on the output's file system fail the job, with the system's reason; the
    /// manifest is not written beside incomplete result files.
    /// Frame storage that checks, at each sync, that every frame staged so far lay within bytes synced before.
    final class CheckedStorage: FrameStorage {
        let storage: DirectoryFrameStorage
        let store: any SQLBackedImageSetStore
        let jobId = Mutex("")
        /// Durable bytes per blob, and how many syncs found staged frames to check.
        let state = Mutex<(durable: [String: Int], checks: Int, uncovered: [String])>(([:], 0, []))

        init(store: any SQLBackedImageSetStore) {
            self.store = store
            storage = store.frameStorage
        }

        func makeBlobWriter(datastoreId: String) throws -> any FrameBlobWriter {
            try storage.makeBlobWriter(datastoreId: datastoreId)
        }

        func read(blob: String, offset: Int, length: Int) throws -> [UInt8] {
            try storage.read(blob: blob, offset: offset, length: length)
        }

        func makeDurable(blob: String, withName: Bool) throws -> Int {
            let job = jobId.withLock { $0 }
            let staged = try store.stagedSeries(jobId: job).flatMap { try store.stagedInstances(jobId: job, seriesInstanceUID: $0) }
            let size = try storage.makeDurable(blob: blob, withName: withName)
            state.withLock { state in
                if !staged.isEmpty { state.checks += 1 }
                for frame in staged.flatMap(\.frames) where frame.offset + frame.length > state.durable[frame.blob, default: 0] {
                    state.uncovered.append("\(frame.blob) @\(frame.offset)")
                }
                state.durable[blob] = size
            }
            return size
        }
    }

    @Test func framesAreDurableBeforeTheInstancesNamingThemAreStaged() throws {
        let environment = try Environment()
        try Self.writeSeries(300, in: environment.input)
        let storage = CheckedStorage(store: environment.store)
        let engine = ImportEngine(
            store: environment.store, frameStorage: storage, configuration: .init(threads: 2, stagingBatchSize: 16))
        let job = try engine.submit(environment.request())
        storage.jobId.withLock { $0 = job.jobId }
        let output = environment.output
        let outcome = try engine.run(job, source: LocalDirectorySource(root: environment.input)) { job in
            try LocalDirectorySink(outputRoot: output, datastoreId: job.datastoreId, jobId: job.jobId)
        }
        #expect(outcome.importedFiles == 300)
        let state = storage.state.withLock { $0 }
        #expect(state.checks > 5)
        #expect(state.uncovered.isEmpty, "staged before durable: \(state.uncovered.prefix(5))")
        // Every frame the catalog now names lies in bytes that were synced.
        for imageSet in try environment.store.imageSets(datastoreId: environment.datastoreId) {
            let document = try #require(
                try environment.store.metadataDocument(datastoreId: environment.datastoreId, imageSetId: imageSet.imageSetId, version: nil))
            let text = String(decoding: try #require(Compression.gunzip(document)), as: UTF8.self)
            for match in text.matches(of: /"ID":"([0-9a-f]{32})"/) {
                let frame = try #require(try environment.store.frame(
                    datastoreId: environment.datastoreId, imageSetId: imageSet.imageSetId, frameId: String(match.output.1)))
                #expect(frame.offset + frame.length <= state.durable[frame.blob, default: 0])
            }
        }
    }

    @Test func resultFilesThatCannotBeWrittenFailTheJob() throws {
        let environment = try Environment()
        try Self.writeSeries(200, in: environment.input)
        let output = environment.folder.sub("small-output")
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        // A 64 KiB file system, nearly full before the job starts (root can mount here, as in CI).
        #expect(mount("tmpfs", output, "tmpfs", 0, "size=64k") == 0, "mount: \(String(cString: strerror(errno)))")
        defer { umount(output) }
        try Data(repeating: 0, count: 52 << 10).write(to: URL(fileURLWithPath: output + "/filler"))

        let (outcome, folder) = try environment.runJob(output: output)
        #expect(outcome.job.jobStatus == .failed)
        #expect(outcome.job.message?.contains("No space left on device") == true, "\(outcome.job.message ?? "")")
        #expect(!FileManager.default.fileExists(atPath: folder.path + "/job-output-manifest.json"))
        let job = try #require(try environment.store.job(datastoreId: environment.datastoreId, jobId: outcome.job.jobId))
        #expect(job.jobStatus == .failed)
    }

    /// A frame is reached only through its own image set and data store, and not once the image set is deleted.
    @Test(arguments: StoreBackend.all) func framesAreReachedOnlyThroughTheirImageSet(backend: StoreBackend) throws {
        let environment = try Environment(backend: backend)
        try Self.writeSeries(2, in: environment.input + "/a", study: "1.2.826.0.1.3680043.12.2")
        try Self.writeSeries(2, in: environment.input + "/b", study: "1.2.826.0.1.3680043.12.3")
        let (outcome, _) = try environment.runJob()
        #expect(outcome.importedFiles == 4)
        let imageSets = try environment.store.imageSets(datastoreId: environment.datastoreId)
        #expect(imageSets.count == 2)
        let (first, second) = (imageSets[0].imageSetId, imageSets[1].imageSetId)
        let document = try #require(
            try environment.store.metadataDocument(datastoreId: environment.datastoreId, imageSetId: first, version: nil))
        let text = String(decoding: try #require(Compression.gunzip(document)), as: UTF8.self)
        let frameId = try #require(text.matches(of: /"ID":"([0-9a-f]{32})"/).first.map { String($0.output.1) })
        let other = try environment.store.createDatastore(name: "other", now: 1).datastoreId

        #expect(try environment.store.frame(datastoreId: environment.datastoreId, imageSetId: first, frameId: frameId) != nil)
        #expect(try environment.store.frame(datastoreId: environment.datastoreId, imageSetId: second, frameId: frameId) == nil)
        #expect(try environment.store.frame(datastoreId: other, imageSetId: first, frameId: frameId) == nil)
        _ = try environment.store.deleteImageSet(datastoreId: environment.datastoreId, imageSetId: first, now: 2)
        #expect(try environment.store.frame(datastoreId: environment.datastoreId, imageSetId: first, frameId: frameId) == nil)
    }
}
