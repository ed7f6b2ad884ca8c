import DICOMIngest
import DICOMIngestModel
import DICOMIngestSQL
import DICOMIngestSQLite
import DICOMIngestTestSupport
import Foundation
import Synchronization
import Testing

/// Catalog writes that race: concurrent submits of one token, the job quota, concurrent jobs on one new series.
/// Two stores open the same catalog, as two processes would (two connection pools, one SQLite file or one
/// PostgreSQL schema).
@Suite struct ConcurrentCommitTests {
    struct TwoProcesses {
        let folder: TemporaryFolder
        let stores: [any SQLBackedImageSetStore]
        let engines: [ImportEngine]
        let datastoreId: String

        init(backend: StoreBackend) throws {
            folder = try TemporaryFolder("concurrent")
            stores = [try backend.open(folder.sub("store")), try backend.open(folder.sub("store"))]
            engines = stores.map { ImportEngine(store: $0, frameStorage: $0.frameStorage, configuration: .init(threads: 1)) }
            datastoreId = try stores[0].createDatastore(name: "race", now: 0).datastoreId
        }

        func request(token: String, input: String = "/tmp/in", output: String = "/tmp/out") -> StartDICOMImportJobRequest {
            StartDICOMImportJobRequest(
                datastoreId: datastoreId, jobName: "race", dataAccessRoleArn: "arn:aws:iam::123456789012:role/Importer",
                clientToken: token, inputS3Uri: URL(fileURLWithPath: input).absoluteString,
                outputS3Uri: URL(fileURLWithPath: output).absoluteString)
        }
    }

    /// Runs `count` calls at once on threads of their own, released together, and returns their results in order.
    static func together<T: Sendable>(_ count: Int, _ call: @escaping @Sendable (Int) -> T) -> [T] {
        let results = Mutex<[Int: T]>([:])
        let start = DispatchSemaphore(value: 0)
        let done = DispatchGroup()
        for index in 0..<count {
            done.enter()
            Thread {
                start.wait()
                let result = call(index)
                results.withLock { $0[index] = result }
                done.leave()
            }.start()
        }
        for _ in 0..<count { start.signal() }
        done.wait()
        return results.withLock { all in (0..<count).map { all[$0]! } }
    }

    @Test(arguments: StoreBackend.all) func concurrentStartsWithOneClientTokenRecordOneJob(backend: StoreBackend) throws {
        let processes = try TwoProcesses(backend: backend)
        let engines = processes.engines
        let request = processes.request(token: "one-token")
        let jobIds = Self.together(50) { index in
            Result { () throws(IngestServiceError) in try engines[index % 2].submit(request).jobId }
        }
        let ids = Set(try jobIds.map { try $0.get() })
        #expect(ids.count == 1)
        #expect(try processes.stores[1].jobs(datastoreId: processes.datastoreId, status: nil, limit: 50, after: nil).items.count == 1)
    }

    @Test(arguments: StoreBackend.all) func theActiveJobQuotaHoldsUnderConcurrentStarts(backend: StoreBackend) throws {
        let processes = try TwoProcesses(backend: backend)
        let engines = processes.engines
        let requests = (0..<30).map { processes.request(token: "token-\($0)") }
        let results = Self.together(30) { index in
            Result { () throws(IngestServiceError) in try engines[index % 2].submit(requests[index], maxActiveJobs: 5) }
        }
        let started = results.compactMap { try? $0.get() }
        let refused = results.compactMap { result -> IngestServiceError? in
            if case .failure(let error) = result { return error }
            return nil
        }
        #expect(started.count == 5)
        #expect(refused.count == 25)
        #expect(refused.allSatisfy { $0.code == .serviceQuotaExceededException })
        // A repeated token is answered with its job even at the quota.
        let first = try #require(results.firstIndex { (try? $0.get()) != nil })
        #expect(try engines[0].submit(requests[first], maxActiveJobs: 5).jobId == (try results[first].get()).jobId)

        // A data store with jobs to run is not deleted from under them.
        #expect(throws: ImageSetStoreError.self) {
            _ = try processes.stores[0].deleteDatastore(id: processes.datastoreId, now: 1)
        }
        for var job in started {
            job.jobStatus = .completed
            job.endedAt = 1
            try processes.stores[1].updateJob(job)
        }
        #expect(try processes.stores[0].deleteDatastore(id: processes.datastoreId, now: 2).datastoreStatus == .deleting)
        #expect(throws: IngestServiceError.self) { _ = try engines[1].submit(processes.request(token: "late")) }
    }

    /// Two jobs, each with one instance of the same 60 new series, commit at once: each series ends with one
    /// primary image set holding both instances, at version 2, and no other image set.
    @Test(arguments: StoreBackend.all) func twoJobsOnTheSameNewSeriesShareOnePrimaryImageSet(backend: StoreBackend) throws {
        let processes = try TwoProcesses(backend: backend)
        let seriesCount = 60
        let study = "1.2.826.0.1.3680043.11.1"
        for job in 0..<2 {
            for series in 0..<seriesCount {
                try SyntheticInstance(study: study, series: "\(study).\(series)", sop: "\(study).\(series).\(job)")
                    .write(to: processes.folder.sub("input\(job)/s\(series).dcm"))
            }
        }
        let jobs = try (0..<2).map { job in
            try processes.engines[job].submit(
                processes.request(token: "job-\(job)", input: processes.folder.sub("input\(job)"), output: processes.folder.sub("output")))
        }
        let folder = processes.folder
        let engines = processes.engines
        let outcomes = Self.together(2) { index in
            try? engines[index].run(jobs[index], source: LocalDirectorySource(root: folder.sub("input\(index)"))) { job in
                try LocalDirectorySink(outputRoot: folder.sub("output"), datastoreId: job.datastoreId, jobId: job.jobId)
            }
        }.compactMap { $0 }
        #expect(outcomes.map(\.job.jobStatus) == [.completed, .completed])
        #expect(outcomes.map(\.importedFiles) == [seriesCount, seriesCount])

        let imageSets = try processes.stores[0].imageSets(datastoreId: processes.datastoreId)
        #expect(imageSets.count == seriesCount)
        let bySeries = Dictionary(grouping: imageSets, by: \.key.seriesInstanceUID)
        #expect(bySeries.count == seriesCount)
        for (series, sets) in bySeries {
            #expect(sets.count == 1, "\(series)")
            #expect(sets.allSatisfy { $0.isPrimary && $0.instanceCount == 2 && $0.latestVersion == 2 }, "\(series): \(sets)")
            let document = try #require(
                try processes.stores[1].metadataDocument(datastoreId: processes.datastoreId, imageSetId: sets[0].imageSetId, version: nil))
            let text = String(decoding: try #require(Compression.gunzip(document)), as: UTF8.self)
            #expect(text.contains("\(series).0") && text.contains("\(series).1"))
        }
    }

    /// The decision is taken inside the write transaction: a second process that commits the same new series
    /// while the first one's transaction is open waits, then sees the image set the first one created.
    @Test(arguments: StoreBackend.all) func aSecondCommitOfANewSeriesSeesTheFirstOnesPrimary(backend: StoreBackend) throws {
        let processes = try TwoProcesses(backend: backend)
        let stores = processes.stores
        let datastoreId = processes.datastoreId
        let key = ImageSetKey(studyInstanceUID: "1.2.3", seriesInstanceUID: "1.2.3.4")
        @Sendable func commit(_ sop: String, into primary: ImageSetRecord?) -> ImageSetCommit {
            let instance = PreparedInstance(
                inputKey: sop + ".dcm", sopInstanceUID: sop, key: key, patientJSON: Array("{}".utf8),
                studyJSON: Array("{}".utf8), seriesJSON: Array("{}".utf8), instanceJSON: Array("{}".utf8), frames: [],
                warnings: [])
            return ImageSetCommit(
                datastoreId: datastoreId, jobId: sop, imageSetId: primary?.imageSetId, key: key, isPrimary: true,
                instances: [instance], committedAt: 1)
        }
        let seenBySecond = Mutex<ImageSetRecord??>(nil)
        let second = DispatchGroup()
        let first = try stores[0].commitSeries(
            datastoreId: datastoreId, jobId: "a", seriesInstanceUID: key.seriesInstanceUID,
            plan: { primary in
                #expect(primary == nil)
                second.enter()
                Thread {
                    let records = try? stores[1].commitSeries(
                        datastoreId: datastoreId, jobId: "b", seriesInstanceUID: key.seriesInstanceUID,
                        plan: { primary in
                            seenBySecond.withLock { $0 = .some(primary) }
                            return [commit("1.2.3.4.2", into: primary)]
                        }, lines: { _ in ([], ImportJobProgress()) })
                    #expect(records?.count == 1)
                    second.leave()
                }.start()
                Thread.sleep(forTimeInterval: 0.3)
                #expect(seenBySecond.withLock { $0 } == nil)
                return [commit("1.2.3.4.1", into: primary)]
            }, lines: { _ in ([], ImportJobProgress()) })
        second.wait()
        let seen = try #require(seenBySecond.withLock { $0 })
        #expect(seen?.imageSetId == first.first?.imageSetId)
        let imageSets = try stores[0].imageSets(datastoreId: datastoreId)
        #expect(imageSets.count == 1)
        #expect(imageSets.first?.instanceCount == 2)
        #expect(imageSets.first?.latestVersion == 2)
    }
}
