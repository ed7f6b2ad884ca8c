import DICOMIngest
import DICOMIngestModel
import DICOMIngestSQL
import DICOMIngestTestSupport
import Dispatch
import Foundation
import Synchronization
import Testing

/// The catalog's work queue for worker processes (`ImportWorkQueue` on `SQLCatalog`), on both backends: claims,
/// leases, fencing, the order work is handed out in, and what a chunk claimed again knows.
@Suite struct WorkQueueTests {
    let lease = 10.0

    struct Fixture {
        let folder: TemporaryFolder
        let store: any SQLBackedImageSetStore
        var queue: SQLCatalog { store.catalog }

        init(_ backend: StoreBackend, _ name: String) throws {
            folder = try TemporaryFolder("work-queue-" + name)
            store = try backend.open(folder.sub("store"))
        }

        /// A job submitted for workers in a new data store.
        func submit(_ name: String = "job", at time: Double = 1) throws -> DICOMImportJobProperties {
            let datastore = try store.createDatastore(name: name, losslessStorageFormat: .htj2k, now: time)
            let job = DICOMImportJobProperties(
                jobId: ResourceID.make(), jobName: name, jobStatus: .submitted, datastoreId: datastore.datastoreId,
                dataAccessRoleArn: "arn:aws:iam::000000000000:role/r", clientToken: UUID().uuidString, submittedAt: time,
                inputS3Uri: "file:///in/", outputS3Uri: "file:///out/", runsOnWorkers: true)
            return try store.insertJob(job, maxActiveJobs: .max).job
        }

        /// Lists `chunks` chunks of two objects into the job (claiming its listing) and ends the listing.
        func list(_ job: DICOMImportJobProperties, chunks: Int, now: Double = 2) throws {
            guard case .list(_, let lease, let listed)? = try queue.claimJobTask(holder: "lister-\(job.jobId)", leaseSeconds: 10, now: now)
            else { throw ImageSetStoreError(.notFound, "no listing to claim") }
            #expect(listed == 0)
            for chunk in 0..<chunks {
                let objects = (0..<2).map { SourceObject(key: "\(job.jobId)/\(chunk)-\($0).dcm", size: 10, location: "/in/\(chunk)-\($0).dcm") }
                try queue.addChunk(objects, listedObjects: 2 * (chunk + 1), under: lease)
            }
            try queue.endListing(failure: nil, under: lease)
        }

        func remove() { folder.remove() }
    }

    @Test(arguments: StoreBackend.all) func aClaimIsExclusiveUntilItsLeaseExpiresAndFencesItsHolder(backend: StoreBackend) throws {
        let fixture = try Fixture(backend, "exclusive")
        defer { fixture.remove() }
        let queue = fixture.queue
        let job = try fixture.submit()
        #expect(try fixture.store.unfinishedJobs().isEmpty, "a process resuming its own jobs leaves the workers' alone")

        guard case .list(let listing, let listingLease, 0)? = try queue.claimJobTask(holder: "a#1", leaseSeconds: lease, now: 2) else {
            Issue.record("the new job's listing is claimed first")
            return
        }
        #expect(listing.jobStatus == .inProgress)
        #expect(try fixture.store.job(datastoreId: job.datastoreId, jobId: job.jobId)?.jobStatus == .inProgress)
        #expect(try queue.claimJobTask(holder: "b#1", leaseSeconds: lease, now: 3) == nil, "the listing is leased")
        let objects = [SourceObject(key: "in/a.dcm", size: 3, location: "/in/a.dcm", rawLocation: [0x2F, 0xE9], unreadableReason: "why")]
        try queue.addChunk(objects, listedObjects: 1, under: listingLease)
        try queue.addChunk([SourceObject(key: "in/b.dcm", size: nil, location: "/in/b.dcm")], listedObjects: 2, under: listingLease)

        // A lister that stalled past its lease loses the listing to the next, which skips what was chunked.
        guard case .list(_, let second, 2)? = try queue.claimJobTask(holder: "b#2", leaseSeconds: lease, now: 2 + lease + 1) else {
            Issue.record("an expired listing lease is claimed again, after the objects already chunked")
            return
        }
        #expect(throws: ImageSetStoreError.self) { try queue.addChunk(objects, listedObjects: 3, under: listingLease) }
        #expect(try queue.extend([listingLease, second], leaseSeconds: lease, now: 14) == [listingLease])
        try queue.endListing(failure: nil, under: second)

        let first = try #require(try queue.claimChunk(holder: "a#2", leaseSeconds: lease, now: 20))
        #expect(first.objects == objects, "a chunk's objects come back as listed")
        #expect(first.earlierClaims == 0 && first.abandonedClaims == 0)
        let other = try #require(try queue.claimChunk(holder: "b#3", leaseSeconds: lease, now: 20))
        #expect(other.lease.chunk != first.lease.chunk)
        #expect(try queue.claimChunk(holder: "c#1", leaseSeconds: lease, now: 21) == nil, "every chunk is leased")
        #expect(try queue.claimJobTask(holder: "c#2", leaseSeconds: lease, now: 21) == nil, "the job is not finished while chunks are open")

        // The first holder stalls; its chunk is taken over and its writes are refused from then on.
        let takenOver = try #require(try queue.claimChunk(holder: "c#3", leaseSeconds: lease, now: 20 + lease + 1))
        #expect(takenOver.lease.chunk == first.lease.chunk)
        #expect(takenOver.earlierClaims == 1 && takenOver.abandonedClaims == 1)
        #expect(throws: ImageSetStoreError.self) {
            try queue.stage([], lines: [Self.failureLine("in/a.dcm")], progress: ImportJobProgress(scannedFiles: 1), under: first.lease)
        }
        #expect(throws: ImageSetStoreError.self) { try queue.completeChunk(under: first.lease) }
        try queue.stage([], lines: [Self.failureLine("in/a.dcm")], progress: ImportJobProgress(scannedFiles: 1, customerErrors: 1), under: takenOver.lease)
        #expect(try fixture.store.isDone(jobId: job.jobId, inputKey: "in/a.dcm"))
        try queue.completeChunk(under: takenOver.lease)

        // Released, not abandoned: the next claim skips what was staged but blames nothing.
        try queue.release(other.lease)
        let again = try #require(try queue.claimChunk(holder: "d#1", leaseSeconds: lease, now: 40))
        #expect(again.lease.chunk == other.lease.chunk)
        #expect(again.earlierClaims == 1 && again.abandonedClaims == 0)
        try queue.completeChunk(under: again.lease)

        guard case .planCommits(_, let planning, nil)? = try queue.claimJobTask(holder: "d#2", leaseSeconds: lease, now: 41) else {
            Issue.record("the job's commits are planned once every object is staged")
            return
        }
        #expect(try queue.stagedSeries(jobId: job.jobId, after: nil, limit: 10).isEmpty, "only a failure was recorded")
        try queue.endCommitPlanning(under: planning)
        guard case .finish(let finishing, let finishLease, nil)? = try queue.claimJobTask(holder: "d#3", leaseSeconds: lease, now: 41) else {
            Issue.record("the job is finished once every chunk is done")
            return
        }
        #expect(finishing.progress.scannedFiles == 1 && finishing.progress.customerErrors == 1, "progress adds up across chunks")
        var ended = finishing
        ended.jobStatus = .completed
        ended.endedAt = 42
        try queue.endJob(ended, under: finishLease)
        #expect(try fixture.store.job(datastoreId: job.datastoreId, jobId: job.jobId)?.jobStatus == .completed)
        #expect(try queue.depth(now: 43) == WorkQueueDepth(openChunks: 0, claimedChunks: 0, activeJobs: 0))
        #expect(try queue.claimJobTask(holder: "e#1", leaseSeconds: lease, now: 43) == nil)
    }

    @Test(arguments: StoreBackend.all) func jobsRunningAtOnceTakeTurns(backend: StoreBackend) throws {
        let fixture = try Fixture(backend, "turns")
        defer { fixture.remove() }
        let first = try fixture.submit("first", at: 1)
        let second = try fixture.submit("second", at: 2)
        try fixture.list(first, chunks: 4)
        try fixture.list(second, chunks: 4)
        var order: [String] = []
        for claim in 0..<8 {
            let chunk = try #require(try fixture.queue.claimChunk(holder: "w#\(claim)", leaseSeconds: lease, now: 10 + Double(claim)))
            order.append(chunk.lease.jobId == first.jobId ? "first" : "second")
        }
        #expect(order == ["first", "second", "first", "second", "first", "second", "first", "second"])
        #expect(try fixture.queue.depth(now: 20) == WorkQueueDepth(openChunks: 8, claimedChunks: 8, activeJobs: 2))
    }

    @Test(arguments: StoreBackend.all) func aKeyInHandAtTwoAbandonedClaimsIsBlamed(backend: StoreBackend) throws {
        let fixture = try Fixture(backend, "blame")
        defer { fixture.remove() }
        let queue = fixture.queue
        let job = try fixture.submit()
        try fixture.list(job, chunks: 1)
        var now = 10.0
        func claim(_ holder: String) throws -> ClaimedChunk {
            now += lease + 1
            return try #require(try queue.claimChunk(holder: holder, leaseSeconds: lease, now: now))
        }
        // The first claim journals nothing: it dies without a trace.
        _ = try claim("a#1")
        let second = try claim("b#1")
        #expect(second.abandonedClaims == 1 && second.inFlightAtAbandonedClaims.isEmpty)
        try queue.recordInFlight("poison.dcm", under: second.lease)
        try queue.recordInFlight("fine.dcm", under: second.lease)
        try queue.clearInFlight("fine.dcm", under: second.lease)
        try queue.recordInFlight("archive.zip", under: second.lease)
        try queue.recordInFlight("archive.zip/member.dcm", under: second.lease)
        let third = try claim("c#1")
        #expect(third.inFlightAtAbandonedClaims == ["poison.dcm": 1, "archive.zip/member.dcm": 1], "an archive's member is blamed, not the archive")
        try queue.recordInFlight("poison.dcm", under: third.lease)
        let fourth = try claim("d#1")
        #expect(fourth.abandonedClaims == 3)
        #expect(fourth.inFlightAtAbandonedClaims["poison.dcm"] == JobJournal.maxStopsInFlight)
        // A release blames nothing it had in hand.
        try queue.recordInFlight("innocent.dcm", under: fourth.lease)
        try queue.release(fourth.lease)
        let fifth = try #require(try queue.claimChunk(holder: "e#1", leaseSeconds: lease, now: now))
        #expect(fifth.abandonedClaims == 3 && fifth.earlierClaims == 4)
        #expect(fifth.inFlightAtAbandonedClaims["innocent.dcm"] == nil)
    }

    @Test(arguments: StoreBackend.all) func aFailedListingEndsTheJobOnceNoChunkIsWorked(backend: StoreBackend) throws {
        let fixture = try Fixture(backend, "failed")
        defer { fixture.remove() }
        let queue = fixture.queue
        let job = try fixture.submit()
        guard case .list(_, let listing, _)? = try queue.claimJobTask(holder: "a#1", leaseSeconds: lease, now: 2) else {
            Issue.record("listing claimed")
            return
        }
        try queue.addChunk([SourceObject(key: "in/1.dcm", size: 1, location: "/in/1.dcm")], listedObjects: 1, under: listing)
        try queue.addChunk([SourceObject(key: "in/2.dcm", size: 1, location: "/in/2.dcm")], listedObjects: 2, under: listing)
        let working = try #require(try queue.claimChunk(holder: "b#1", leaseSeconds: lease, now: 3))
        try queue.endListing(failure: "The prefix cannot be listed", under: listing)
        #expect(try queue.claimChunk(holder: "c#1", leaseSeconds: lease, now: 4) == nil, "a failed job's chunks are not handed out")
        #expect(try queue.claimJobTask(holder: "c#2", leaseSeconds: lease, now: 4) == nil, "not finished while a chunk is worked")
        guard case .finish(_, _, let failure)? = try queue.claimJobTask(holder: "c#3", leaseSeconds: lease, now: 3 + lease + 1) else {
            Issue.record("finished once the worked chunk's lease expired")
            return
        }
        #expect(failure == "The prefix cannot be listed")
        #expect(throws: ImageSetStoreError.self) { try queue.stage([], lines: [], progress: ImportJobProgress(), under: working.lease) }
        #expect(try fixture.store.job(datastoreId: job.datastoreId, jobId: job.jobId)?.jobStatus == .inProgress)
    }

    @Test(arguments: StoreBackend.all) func aChunkThatIsNeverCompletedFailsItsJob(backend: StoreBackend) throws {
        let fixture = try Fixture(backend, "never")
        defer { fixture.remove() }
        let queue = fixture.queue
        let job = try fixture.submit()
        try fixture.list(job, chunks: 1)
        for claim in 0..<SQLCatalog.maxClaimsPerChunk {
            let chunk = try #require(try queue.claimChunk(holder: "w#\(claim)", leaseSeconds: lease, now: 10))
            try queue.release(chunk.lease)
        }
        #expect(try queue.claimChunk(holder: "w#last", leaseSeconds: lease, now: 10) == nil)
        guard case .finish(_, _, let failure?)? = try queue.claimJobTask(holder: "f#1", leaseSeconds: lease, now: 10) else {
            Issue.record("the job is finished, failed")
            return
        }
        #expect(failure.contains("claimed \(SQLCatalog.maxClaimsPerChunk) times"))
    }

    /// A chunk whose objects do not come back whole is never handed out short: its job fails, saying why.
    @Test(arguments: StoreBackend.all) func aChunkThatCannotBeReadBackFailsItsJob(backend: StoreBackend) throws {
        let fixture = try Fixture(backend, "unreadable")
        defer { fixture.remove() }
        let queue = fixture.queue
        let job = try fixture.submit()
        try fixture.list(job, chunks: 1)
        try queue.database.write { db in
            try db.execute("UPDATE job_chunks SET objects = $1 WHERE job_id = $2", Array("[[\"only-one\"]]".utf8), job.jobId)
        }
        #expect(try queue.claimChunk(holder: "w#1", leaseSeconds: lease, now: 10) == nil)
        guard case .finish(_, _, let failure?)? = try queue.claimJobTask(holder: "f#1", leaseSeconds: lease, now: 10) else {
            Issue.record("the job is finished, failed")
            return
        }
        #expect(failure.contains("cannot be read back"))
    }

    /// Staged series are cut into chunks of commits; each is committed once, under its chunk's lease, adding to
    /// the job's progress; a holder whose chunk was taken over commits nothing.
    @Test(arguments: StoreBackend.all) func seriesAreCommittedInChunksUnderTheirLeases(backend: StoreBackend) throws {
        let fixture = try Fixture(backend, "series")
        defer { fixture.remove() }
        let queue = fixture.queue
        let job = try fixture.submit()
        try fixture.list(job, chunks: 1)
        let objects = try #require(try queue.claimChunk(holder: "a#1", leaseSeconds: lease, now: 10))
        let study = "1.2.826.0.1.3680043.10.95"
        let instances = (0..<6).map { index in
            PreparedInstance(
                inputKey: "in/\(index).dcm", sopInstanceUID: "\(study).\(index % 3).\(index)",
                key: ImageSetKey(studyInstanceUID: study, seriesInstanceUID: "\(study).\(index % 3)"),
                patientJSON: Array("{}".utf8), studyJSON: Array("{}".utf8), seriesJSON: Array("{}".utf8),
                instanceJSON: Array("{}".utf8), frames: [], warnings: [])
        }
        try queue.stage(instances, lines: [], progress: ImportJobProgress(scannedFiles: 6, bytesRead: 60), under: objects.lease)
        try queue.completeChunk(under: objects.lease)
        guard case .planCommits(_, let planning, nil)? = try queue.claimJobTask(holder: "p#1", leaseSeconds: lease, now: 11) else {
            Issue.record("commits planned")
            return
        }
        let staged = try queue.stagedSeries(jobId: job.jobId, after: nil, limit: 2)
        #expect(staged.map(\.series) == ["\(study).0", "\(study).1"] && staged.map(\.instances) == [2, 2])
        #expect(try queue.stagedSeries(jobId: job.jobId, after: "\(study).1", limit: 2).map(\.series) == ["\(study).2"])
        try queue.addSeriesChunk(["\(study).0", "\(study).1"], under: planning)
        try queue.addSeriesChunk(["\(study).2"], under: planning)
        try queue.endCommitPlanning(under: planning)

        let first = try #require(try queue.claimChunk(holder: "c#1", leaseSeconds: lease, now: 12))
        #expect(first.series == ["\(study).0", "\(study).1"] && first.objects.isEmpty)
        let second = try #require(try queue.claimChunk(holder: "c#2", leaseSeconds: lease, now: 12))
        #expect(second.series == ["\(study).2"])
        #expect(try queue.claimJobTask(holder: "f#1", leaseSeconds: lease, now: 12) == nil, "not finished while commits are open")
        let engine = ImportEngine(store: fixture.store, frameStorage: fixture.store.frameStorage)
        let takenOver = try #require(try queue.claimChunk(holder: "c#3", leaseSeconds: lease, now: 12 + lease + 1))
        #expect(takenOver.lease.chunk == first.lease.chunk)
        // The first holder's commit is refused, and the series stays staged for the holder now.
        #expect(throws: ImageSetStoreError.self) { try engine.commitQueued("\(study).0", job: first.job, queue: queue, lease: first.lease) }
        for series in takenOver.series { try engine.commitQueued(series, job: takenOver.job, queue: queue, lease: takenOver.lease) }
        try queue.completeChunk(under: takenOver.lease)
        let third = try #require(try queue.claimChunk(holder: "c#4", leaseSeconds: lease, now: 12 + lease + 1))
        #expect(third.lease.chunk == second.lease.chunk)
        for series in third.series { try engine.commitQueued(series, job: third.job, queue: queue, lease: third.lease) }
        try queue.completeChunk(under: third.lease)

        guard case .finish(let finishing, _, nil)? = try queue.claimJobTask(holder: "f#2", leaseSeconds: lease, now: 30) else {
            Issue.record("finished once every series is committed")
            return
        }
        #expect(finishing.progress.importedFiles == 6 && finishing.progress.generatedImageSets == 3, "each commit added its own")
        #expect(try fixture.store.stagedInstanceCount(jobId: job.jobId) == 0)
        let sets = try fixture.store.imageSets(datastoreId: job.datastoreId)
        #expect(sets.count == 3 && sets.allSatisfy { $0.instanceCount == 2 && $0.latestVersion == 1 }, "each series committed once")
    }

    /// Workers claiming at once, each on connections of its own: every chunk is claimed once (PostgreSQL's
    /// `SKIP LOCKED`; SQLite's single writer).
    @Test(arguments: StoreBackend.all) func workersClaimingAtOnceNeverShareAChunk(backend: StoreBackend) throws {
        let fixture = try Fixture(backend, "concurrent")
        defer { fixture.remove() }
        let job = try fixture.submit()
        try fixture.list(job, chunks: 60)
        let stores = try (0..<4).map { _ in try backend.open(fixture.folder.sub("store")) }
        let claimed = Mutex<[Int]>([])
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            let queue = stores[worker % stores.count].catalog
            var claim = 0
            do {
                while let chunk = try queue.claimChunk(holder: "w\(worker)#\(claim)", leaseSeconds: 60, now: 10) {
                    claim += 1
                    claimed.withLock { $0.append(chunk.lease.chunk ?? -1) }
                    try queue.completeChunk(under: chunk.lease)
                }
            } catch {
                failures.withLock { $0.append("\(error)") }
            }
        }
        #expect(failures.withLock { $0 }.isEmpty)
        #expect(claimed.withLock { $0 }.sorted() == Array(0..<60))
    }

    @Test(arguments: StoreBackend.all) func aProcessDoesNotRunAJobSubmittedForWorkers(backend: StoreBackend) throws {
        let fixture = try Fixture(backend, "not-here")
        defer { fixture.remove() }
        let job = try fixture.submit()
        let engine = ImportEngine(store: fixture.store, frameStorage: fixture.store.frameStorage)
        #expect(throws: IngestServiceError.self) {
            _ = try engine.run(job, source: LocalDirectorySource(root: fixture.folder.sub("in"))) { _ in
                throw ObjectIOError(.io, "not reached")
            }
        }
        #expect(try fixture.store.job(datastoreId: job.datastoreId, jobId: job.jobId)?.jobStatus == .submitted)
    }

    static func failureLine(_ key: String) -> JobLine {
        JobLine(kind: .customerError, inputKey: key, json: Array("{\"inputFile\":\"\(key)\"}".utf8))
    }
}
