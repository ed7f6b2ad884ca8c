import CoreMetrics
import DICOMIngestModel
import DICOMParser
import Dispatch
import Foundation
public import Logging
import Synchronization

/// A worker process's share of the jobs submitted for workers (`dicom-ingest worker`): it claims work from an
/// `ImportWorkQueue` that any number of workers share, and does it on its engine's pool.
///
/// Work comes in these kinds: listing a job's input into chunks; preparing and staging a chunk's objects; once
/// every object is staged, planning the job's commits (its staged series cut into chunks); committing a chunk's
/// series, each once, by whichever worker claims it; and finishing a job whose chunks are all done (writing its
/// result files from the lines its chunks recorded, ending it). Each claim holds a lease that a heartbeat extends; a
/// worker that dies loses its leases and its work is claimed again, resumed where its staged rows and recorded
/// lines say. A chunk claimed again after its holder died journals its keys in the catalog, and a key in hand at
/// `JobJournal.maxStopsInFlight` deaths is reported, never read again: one crafted file cannot take every worker
/// down in turn.
///
/// `stop()` (SIGTERM) is graceful: no new claim, no new object of a chunk; what is in a thread's hands finishes and
/// is staged, the chunk is released for another worker, and `run()` returns.
public final class ImportWorker: Sendable {
    public struct Configuration: Sendable {
        /// Unique among the workers sharing the catalog (host name and process ID by default).
        public var workerId: String
        /// Seconds a claim lasts without a heartbeat; a dead worker's work is claimed again after this.
        public var leaseSeconds: Double
        /// Seconds between looks for work when there was none.
        public var pollSeconds: Double
        /// Objects per chunk of a listing.
        public var chunkObjects: Int
        /// Chunks prepared at once: two keep the threads busy while one chunk's last objects finish.
        public var concurrentChunks: Int
        /// Staged instances per chunk of commits (a larger series is a chunk of its own).
        public var commitChunkInstances: Int
        /// Stop once no job submitted for workers is left (a one-off batch).
        public var exitWhenIdle: Bool
        public var logger: Logger

        public static let defaultLeaseSeconds: Double = 30
        public static let defaultChunkObjects = 256

        public init(
            workerId: String? = nil, leaseSeconds: Double = Configuration.defaultLeaseSeconds, pollSeconds: Double = 1,
            chunkObjects: Int = Configuration.defaultChunkObjects, concurrentChunks: Int = 2,
            commitChunkInstances: Int = 2_000, exitWhenIdle: Bool = false, logger: Logger = Logger(label: "dicom-ingest.worker")
        ) {
            self.commitChunkInstances = max(1, commitChunkInstances)
            self.exitWhenIdle = exitWhenIdle
            self.workerId = workerId ?? "\(ProcessInfo.processInfo.hostName)/\(getpid())"
            self.leaseSeconds = max(1, leaseSeconds)
            self.pollSeconds = max(0.05, pollSeconds)
            self.chunkObjects = max(1, chunkObjects)
            self.concurrentChunks = max(1, concurrentChunks)
            self.logger = logger
        }
    }

    /// What the probes report.
    public struct Health: Sendable {
        /// The last time the heartbeat ran (liveness: it runs every third of a lease).
        public var heartbeatAt: Double
        /// The last time the catalog answered, and the last error if it has not since (readiness).
        public var catalogAnsweredAt: Double
        public var catalogError: String?
        public var stopping: Bool
    }

    public let engine: ImportEngine
    public let queue: any ImportWorkQueue
    public let io: any ObjectIOFactory
    public let configuration: Configuration

    private struct Held {
        var cancellation: WorkerPool.Cancellation
    }

    private let held = Mutex<[WorkLease: Held]>([:])
    private let claims = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    /// Set once every loop has returned: the heartbeat then ends too.
    private let loopsEnded = Atomic<Bool>(false)
    private let state: Mutex<Health>

    public init(engine: ImportEngine, queue: any ImportWorkQueue, io: any ObjectIOFactory, configuration: Configuration = Configuration()) {
        self.engine = engine
        self.queue = queue
        self.io = io
        self.configuration = configuration
        let now = ImportEngine.now()
        state = Mutex(Health(heartbeatAt: now, catalogAnsweredAt: now, catalogError: nil, stopping: false))
    }

    public var health: Health { state.withLock { $0 } }

    /// Asks `run()` to return once the work in hand is staged and released.
    public func stop() {
        stopping.store(true, ordering: .relaxed)
        state.withLock { $0.stopping = true }
    }

    private var isStopping: Bool { stopping.load(ordering: .relaxed) }

    /// Works until `stop()`; blocks the calling thread.
    public func run() {
        let group = DispatchGroup()
        for index in 0..<configuration.concurrentChunks {
            DispatchQueue(label: "dicom-ingest.worker.loop.\(index)").async(group: group) { self.loop() }
        }
        let heartbeat = DispatchGroup()
        DispatchQueue(label: "dicom-ingest.worker.heartbeat").async(group: heartbeat) { self.beat() }
        group.wait()
        loopsEnded.store(true, ordering: .relaxed)
        heartbeat.wait()
        configuration.logger.info("worker stopped", metadata: ["worker": .string(configuration.workerId)])
    }

    /// A new holder name for each claim.
    private func nextHolder() -> String {
        "\(configuration.workerId)#\(claims.wrappingAdd(1, ordering: .relaxed).newValue)"
    }

    private func catalogAnswered() {
        state.withLock {
            $0.catalogAnsweredAt = ImportEngine.now()
            $0.catalogError = nil
        }
    }

    private func catalogFailed(_ error: any Error) {
        let message = IngestServiceError(error).message
        state.withLock { $0.catalogError = message }
        configuration.logger.warning("catalog unavailable", metadata: ["error": .string(message)])
    }

    private func loop() {
        while !isStopping {
            do {
                if let task = try queue.claimJobTask(holder: nextHolder(), leaseSeconds: configuration.leaseSeconds, now: ImportEngine.now()) {
                    catalogAnswered()
                    perform(task)
                    continue
                }
                if let chunk = try queue.claimChunk(holder: nextHolder(), leaseSeconds: configuration.leaseSeconds, now: ImportEngine.now()) {
                    catalogAnswered()
                    process(chunk)
                    continue
                }
                catalogAnswered()
                if configuration.exitWhenIdle, try queue.depth(now: ImportEngine.now()).activeJobs == 0 {
                    stop()
                    return
                }
            } catch {
                catalogFailed(error)
            }
            pause(configuration.pollSeconds)
        }
    }

    /// Sleeps up to `seconds`, less when told to stop.
    private func pause(_ seconds: Double) {
        let until = Date(timeIntervalSinceNow: seconds)
        while !isStopping && Date() < until { Thread.sleep(forTimeInterval: min(0.05, seconds)) }
    }

    /// Extends every lease held, a third of a lease apart; a lease lost stops its work (its writes would be
    /// refused anyway). Also reads the queue's depth for the metrics.
    private func beat() {
        let depthGauge = Gauge(label: "dicom_ingest_work_queue_open_chunks", factory: engine.metrics.factory)
        let claimedGauge = Gauge(label: "dicom_ingest_work_queue_claimed_chunks", factory: engine.metrics.factory)
        let jobsGauge = Gauge(label: "dicom_ingest_work_queue_active_jobs", factory: engine.metrics.factory)
        while true {
            let leases = held.withLock { Array($0.keys) }
            let now = ImportEngine.now()
            do {
                let lost = try queue.extend(leases, leaseSeconds: configuration.leaseSeconds, now: now)
                for lease in lost {
                    held.withLock { $0[lease]?.cancellation.cancel() }
                    configuration.logger.warning(
                        "lease lost; its work is stopped",
                        metadata: ["job.id": .string(lease.jobId), "chunk": .string(lease.chunk.map(String.init) ?? "job")])
                }
                let depth = try queue.depth(now: now)
                depthGauge.record(depth.openChunks)
                claimedGauge.record(depth.claimedChunks)
                jobsGauge.record(depth.activeJobs)
                catalogAnswered()
            } catch {
                catalogFailed(error)
            }
            state.withLock { $0.heartbeatAt = now }
            // Timed in small steps so that a stop is noticed at once.
            let until = Date(timeIntervalSinceNow: configuration.leaseSeconds / 3)
            while Date() < until {
                if loopsEnded.load(ordering: .relaxed) { return }
                Thread.sleep(forTimeInterval: 0.05)
            }
        }
    }

    /// Runs `body` holding `lease` (the heartbeat extends it, and cancels `cancellation` if it is lost).
    private func holding<T>(_ lease: WorkLease, _ body: (WorkerPool.Cancellation) throws -> T) rethrows -> T {
        let cancellation = WorkerPool.Cancellation()
        held.withLock { $0[lease] = Held(cancellation: cancellation) }
        defer { _ = held.withLock { $0.removeValue(forKey: lease) } }
        return try body(cancellation)
    }

    private func metadata(_ lease: WorkLease) -> Logger.Metadata {
        var metadata: Logger.Metadata = ["job.id": .string(lease.jobId), "worker": .string(configuration.workerId)]
        if let chunk = lease.chunk { metadata["chunk"] = .stringConvertible(chunk) }
        return metadata
    }

    // MARK: - Listing

    private struct Stopped: Error {}

    private func perform(_ task: JobTask) {
        switch task {
        case .list(let job, let lease, let listedObjects):
            holding(lease) { cancellation in list(job, lease: lease, skipping: listedObjects, cancellation: cancellation) }
        case .planCommits(let job, let lease, let plannedThrough):
            holding(lease) { cancellation in planCommits(job, lease: lease, after: plannedThrough, cancellation: cancellation) }
        case .finish(let job, let lease, let failure):
            holding(lease) { cancellation in finish(job, lease: lease, failure: failure) }
        }
    }

    /// Lists the job's input into chunks, after the `skipping` objects an earlier holder chunked. A listing
    /// that fails ends the job FAILED once the chunks listed before it are done; a stop or a lost lease leaves
    /// the rest to the next holder.
    private func list(_ job: DICOMImportJobProperties, lease: WorkLease, skipping: Int, cancellation: WorkerPool.Cancellation) {
        let logger = configuration.logger
        logger.info("listing job input", metadata: metadata(lease).merging(["objects.listed_before": .stringConvertible(skipping)]) { $1 })
        if skipping == 0 { engine.metrics.jobStarted() }
        var listed = 0
        var pending: [SourceObject] = []
        var failure: String?
        do {
            do {
                // A prefix that cannot be opened (an unknown scheme, no S3 configuration) fails the job, as a
                // listing that fails does: no other worker would do better.
                let source = try io.source(for: job.inputS3Uri)
                try source.forEachObject { object in
                    listed += 1
                    guard listed > skipping else { return }
                    if isStopping || cancellation.isCancelled { throw Stopped() }
                    pending.append(object)
                    if pending.count == configuration.chunkObjects {
                        try queue.addChunk(pending, listedObjects: listed, under: lease)
                        pending.removeAll(keepingCapacity: true)
                    }
                }
            } catch is Stopped {
                throw Stopped()
            } catch let error as ImageSetStoreError {
                throw error
            } catch {
                failure = IngestServiceError(error).message
            }
            if !pending.isEmpty { try queue.addChunk(pending, listedObjects: listed, under: lease) }
            try queue.endListing(failure: failure, under: lease)
            logger.info("job input listed", metadata: metadata(lease).merging(["objects": .stringConvertible(listed)]) { $1 })
        } catch is Stopped {
            try? queue.release(lease)
        } catch {
            // The catalog refused (a lost lease) or failed: the next holder lists from what was recorded.
            logger.warning("listing stopped", metadata: metadata(lease).merging(["error": .string("\(error)")]) { $1 })
            try? queue.release(lease)
        }
    }

    /// Cuts the job's staged series (after `after`, which an earlier holder planned) into chunks of about
    /// `commitChunkInstances` staged instances, a page of series at a time.
    private func planCommits(_ job: DICOMImportJobProperties, lease: WorkLease, after: String?, cancellation: WorkerPool.Cancellation) {
        var last = after
        var pending: [String] = []
        var instances = 0
        do {
            while true {
                let page = try queue.stagedSeries(jobId: job.jobId, after: last, limit: 1_000)
                for (series, count) in page {
                    if isStopping || cancellation.isCancelled { throw Stopped() }
                    if !pending.isEmpty && instances + count > configuration.commitChunkInstances {
                        try queue.addSeriesChunk(pending, under: lease)
                        pending.removeAll(keepingCapacity: true)
                        instances = 0
                    }
                    pending.append(series)
                    instances += count
                }
                guard page.count == 1_000, let next = page.last?.series else { break }
                last = next
            }
            try queue.addSeriesChunk(pending, under: lease)
            try queue.endCommitPlanning(under: lease)
            configuration.logger.info("commits planned", metadata: metadata(lease))
        } catch {
            if !(error is Stopped) {
                configuration.logger.warning("planning stopped", metadata: metadata(lease).merging(["error": .string("\(error)")]) { $1 })
            }
            try? queue.release(lease)
        }
    }

    // MARK: - Chunks

    /// Prepares and stages a chunk's objects (those an earlier claim staged or reported are skipped), then
    /// completes it; a stop releases it once what is in hand is staged.
    private func process(_ chunk: ClaimedChunk) {
        guard chunk.series.isEmpty else { return commit(chunk) }
        let lease = chunk.lease
        let logger = configuration.logger
        holding(lease) { cancellation in
            let source: any ObjectSource
            do {
                source = try io.source(for: chunk.job.inputS3Uri)
            } catch {
                // The lister read this prefix: an error now is the machine's, not the object's.
                logger.error("input cannot be opened; chunk released", metadata: metadata(lease).merging(["error": .string("\(error)")]) { $1 })
                try? queue.release(lease)
                return
            }
            if chunk.abandonedClaims > 0 {
                logger.info(
                    "chunk claimed again", metadata: metadata(lease).merging(["claims.abandoned": .stringConvertible(chunk.abandonedClaims)]) { $1 })
            }
            let chunkSource = ChunkSource(base: source, objects: chunk.objects, shouldStop: { [self] in isStopping })
            let resumption = chunk.earlierClaims > 0
                ? Resumption(store: engine.store, jobId: lease.jobId, stopsInFlight: chunk.inFlightAtAbandonedClaims) : nil
            let journal: (any ObjectJournal)? = chunk.abandonedClaims > 0 ? CatalogObjectJournal(queue: queue, lease: lease) : nil
            var report = JobReport(metrics: engine.metrics)
            var recorded = ImportJobProgress()
            do {
                try engine.prepare(
                    job: chunk.job, source: chunkSource, sink: nil, resumption: resumption, journal: journal, report: &report,
                    queueCapacity: engine.configuration.threads * 2, publishesProgress: false, cancellation: cancellation
                ) { instances, lines, report in
                    let progress = report.progress
                    try queue.stage(instances, lines: lines, progress: progress.minus(recorded), under: lease)
                    recorded = progress
                }
                if chunkSource.stoppedEarly {
                    try queue.release(lease)
                    logger.info("chunk released at stop", metadata: metadata(lease))
                } else {
                    try queue.completeChunk(under: lease)
                    logger.info("chunk done", metadata: metadata(lease).merging(["files": .stringConvertible(report.scannedFiles)]) { $1 })
                }
            } catch {
                // A lost lease, or the catalog failing: what was staged stays; the rest is the next holder's.
                logger.warning("chunk stopped", metadata: metadata(lease).merging(["error": .string(IngestServiceError(error).message)]) { $1 })
                try? queue.release(lease)
            }
        }
    }

    /// Commits a chunk's series, each in a transaction of its own under the chunk's lease; a series an earlier
    /// holder committed has no staged instances left and is passed over. A stop waits for the series in hand.
    private func commit(_ chunk: ClaimedChunk) {
        let lease = chunk.lease
        holding(lease) { cancellation in
            do {
                for series in chunk.series {
                    if isStopping {
                        try queue.release(lease)
                        return
                    }
                    if cancellation.isCancelled { throw WorkerPool.Cancelled() }
                    try engine.commitQueued(series, job: chunk.job, queue: queue, lease: lease)
                }
                try queue.completeChunk(under: lease)
                configuration.logger.info(
                    "series committed", metadata: metadata(lease).merging(["series": .stringConvertible(chunk.series.count)]) { $1 })
            } catch {
                configuration.logger.warning(
                    "commits stopped", metadata: metadata(lease).merging(["error": .string(IngestServiceError(error).message)]) { $1 })
                try? queue.release(lease)
            }
        }
    }

    // MARK: - Finishing

    /// Writes the job's result files from the lines its chunks and its commits recorded, commits any series still
    /// staged (none, once its chunks of commits are done; none either when it failed), writes its manifest and
    /// ends it. A finisher that dies is replaced by one that writes the files again from the same lines.
    private func finish(_ submitted: DICOMImportJobProperties, lease: WorkLease, failure: String?) {
        var job = submitted
        let logger = configuration.logger
        var report = JobReport(metrics: engine.metrics)
        let started = DispatchTime.now()
        func end(_ status: JobStatus, _ message: String?) throws {
            job.jobStatus = status
            job.message = message
            job.endedAt = ImportEngine.now()
            job.progress = report.progress
            try queue.endJob(job, under: lease)
            engine.metrics.jobFinished(
                status: status.rawValue, seconds: Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1e9)
            logger.info("import job finished", metadata: metadata(lease).merging(["status": .string(status.rawValue)]) { $1 })
        }
        do {
            let sink: any ResultSink
            do {
                sink = try io.sink(for: job.outputS3Uri, datastoreId: job.datastoreId, jobId: job.jobId)
            } catch {
                try end(.failed, "DICOM import job has failed. Cannot write the output prefix \(job.outputS3Uri): \(IngestServiceError(error).message)")
                return
            }
            try engine.replayRecorded(job: job, bytesRead: job.progress.bytesRead, sink: sink, report: &report)
            if let failure {
                try? sink.finish(manifest: report.manifest(job: job, jobFolderURI: sink.jobFolderURI))
                try end(.failed, "DICOM import job has failed. \(failure)")
                return
            }
            do {
                try engine.commit(job: job, sink: sink, report: &report, lease: (queue, lease))
                try sink.finish(manifest: report.manifest(job: job, jobFolderURI: sink.jobFolderURI))
            } catch let error as ImageSetStoreError where error.kind == .conflict || error.kind == .io {
                throw error
            } catch {
                try? sink.finish(manifest: report.manifest(job: job, jobFolderURI: sink.jobFolderURI))
                try end(.failed, "DICOM import job has failed. \(IngestServiceError(error).message)")
                return
            }
            try end(.completed, nil)
        } catch {
            // A lost lease or the catalog failing: the next holder finishes it, from what was recorded.
            logger.warning("finishing stopped", metadata: metadata(lease).merging(["error": .string(IngestServiceError(error).message)]) { $1 })
            try? queue.release(lease)
        }
    }
}

/// A chunk's objects, read through the job's source; stops listing once `shouldStop` says so.
final class ChunkSource: ObjectSource {
    let base: any ObjectSource
    let objects: [SourceObject]
    let shouldStop: @Sendable () -> Bool
    private let stopped = Atomic<Bool>(false)

    init(base: any ObjectSource, objects: [SourceObject], shouldStop: @escaping @Sendable () -> Bool) {
        self.base = base
        self.objects = objects
        self.shouldStop = shouldStop
    }

    /// Whether the listing stopped before its last object.
    var stoppedEarly: Bool { stopped.load(ordering: .relaxed) }

    func forEachObject(_ body: (SourceObject) throws -> Void) throws {
        for object in objects {
            if shouldStop() {
                stopped.store(true, ordering: .relaxed)
                return
            }
            try body(object)
        }
    }

    func open(_ object: SourceObject) throws -> any P10ByteInput {
        try base.open(object)
    }
}

extension ImportJobProgress {
    /// The counts this one has beyond `earlier`.
    func minus(_ earlier: ImportJobProgress) -> ImportJobProgress {
        ImportJobProgress(
            scannedFiles: scannedFiles - earlier.scannedFiles, importedFiles: importedFiles - earlier.importedFiles,
            customerErrors: customerErrors - earlier.customerErrors, serverErrors: serverErrors - earlier.serverErrors,
            generatedImageSets: generatedImageSets - earlier.generatedImageSets, bytesRead: bytesRead - earlier.bytesRead)
    }
}
