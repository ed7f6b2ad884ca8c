import Dispatch
public import DICOMIngestModel
import DICOMParser
import Foundation
public import CoreMetrics
public import Logging
import DICOMPixels
import Synchronization

/// What a finished job produced: the HealthImaging job properties and the manifest's counts.
public struct ImportOutcome: Sendable {
    public var job: DICOMImportJobProperties
    public var jobFolderURI: String?
    public var scannedFiles: Int
    public var importedFiles: Int
    public var customerErrors: Int
    public var serverErrors: Int
    public var generatedImageSets: Int
    public var bytes: Int
    public var seconds: Double
}

extension ImportOutcome {
    /// The outcome of a job that ended elsewhere (run by workers), from its record: the counts are its progress,
    /// the time from submission to end.
    public init(ended job: DICOMImportJobProperties, jobFolderURI: String?) {
        self.init(
            job: job, jobFolderURI: jobFolderURI, scannedFiles: job.progress.scannedFiles,
            importedFiles: job.progress.importedFiles, customerErrors: job.progress.customerErrors,
            serverErrors: job.progress.serverErrors, generatedImageSets: job.progress.generatedImageSets,
            bytes: job.progress.bytesRead, seconds: (job.endedAt ?? job.submittedAt) - job.submittedAt)
    }
}

/// Runs HealthImaging-style DICOM import jobs against an `ImageSetStore`, reading through `ObjectSource`s and
/// writing through `ResultSink`s. It knows nothing of HTTP, S3 or SQLite.
///
/// A job has two phases. Prepare: the source is listed (streamed) into the job's lane of the engine's `WorkerPool`,
/// whose workers (shared, round robin, by every job the engine runs) read, validate and store the frames of each
/// object; one consumer (the job's thread) stages the prepared instances and writes failure lines as they happen. Commit: series by series, the grouping rules
/// (`ImageSetGrouping`) pick image sets, each image set gets one new version in one store transaction, and the
/// success and warning lines are written. Memory is bounded by the queue sizes, one copy buffer per worker and
/// the largest series.
public final class ImportEngine: Sendable {
    public struct Configuration: Sendable {
        /// Worker threads, shared by every job the engine runs at once (default: active processor count).
        public var threads: Int
        /// Prepared instances staged per store transaction.
        public var stagingBatchSize: Int
        public var logger: Logger
        /// Where metrics go (default: the process-wide `MetricsSystem`).
        public var metrics: (any MetricsFactory)?

        /// Bytes the in-flight work of every job may hold at once: frames being transcoded and prepared instances
        /// waiting to be staged (`MemoryBudget`); `defaultMemoryBudget(threads:)` unless given.
        public var memoryBudget: Int
        /// Seconds one object may take before it fails (checked between frames).
        public var objectTimeLimit: Double
        /// Where jobs keep their `JobJournal`s (the store's folder, say); nil runs without one, so an object
        /// that kills the process would be read again at every resume.
        public var journalFolder: String?

        /// Leaves room, within a 300 MB resident target, for the process itself, the queues and the catalog.
        public static let defaultMemoryBudget = 160 << 20

        /// The budget when none is given: `defaultMemoryBudget`, or 64 MiB a thread when that is more. A thread
        /// transcoding a codestream frame reserves its codec helper's whole decoder allowance (about 56 MiB for a
        /// 512×512 16-bit slice, `CodecHelperPool.frameMemory`): a fixed budget would leave most threads of a large
        /// machine waiting for room.
        public static func defaultMemoryBudget(threads: Int) -> Int {
            max(defaultMemoryBudget, threads * (64 << 20))
        }
        public static let defaultObjectTimeLimit: Double = 900

        public init(
            threads: Int? = nil, stagingBatchSize: Int = 64, logger: Logger = Logger(label: "dicom-ingest"),
            metrics: (any MetricsFactory)? = nil, memoryBudget: Int? = nil,
            objectTimeLimit: Double = Configuration.defaultObjectTimeLimit, journalFolder: String? = nil
        ) {
            self.threads = max(1, threads ?? ProcessInfo.processInfo.activeProcessorCount)
            self.stagingBatchSize = max(1, stagingBatchSize)
            self.logger = logger
            self.metrics = metrics
            self.memoryBudget = memoryBudget ?? Self.defaultMemoryBudget(threads: self.threads)
            self.objectTimeLimit = objectTimeLimit
            self.journalFolder = journalFolder
        }
    }

    public let store: any ImageSetStore
    public let frameStorage: any FrameStorage
    public let configuration: Configuration
    /// The workers of every job this engine runs.
    let pool: WorkerPool
    /// The memory of every job this engine runs.
    private let budget: MemoryBudget
    /// Progress of each running job, by job ID.
    private let running = Mutex<[String: ImportJobProgress]>([:])
    let metrics: ImportMetrics

    public init(store: any ImageSetStore, frameStorage: any FrameStorage, configuration: Configuration = Configuration()) {
        self.store = store
        self.frameStorage = frameStorage
        self.configuration = configuration
        self.metrics = ImportMetrics(factory: configuration.metrics)
        self.pool = WorkerPool(threads: configuration.threads)
        self.budget = MemoryBudget(limit: configuration.memoryBudget)
    }

    /// Progress of a job running on this engine, as it is now (the job record has it as of the last staged batch or
    /// committed series); nil when the job is not running here.
    public func progress(of jobId: String) -> ImportJobProgress? {
        running.withLock { $0[jobId] }
    }

    static func now() -> Double { Date().timeIntervalSince1970 }

    // MARK: - Submitting

    /// Validates a StartDICOMImportJob request and records the job as SUBMITTED.
    ///
    /// - Parameters:
    ///   - maxActiveJobs: the data store's quota of jobs SUBMITTED or IN_PROGRESS (spec §5.1).
    ///   - onWorkers: record it for worker processes (`ImportWorker`) to run, not for this process.
    /// - Returns: the new job, or the existing one when the same `clientToken` arrives with the same parameters
    ///   (concurrent calls with one token record one job: the store checks and inserts in one transaction).
    /// - Throws: `ValidationException`, `ResourceNotFoundException` (unknown data store), `ConflictException`
    ///   (data store not ACTIVE, or the token reused with other parameters), `ServiceQuotaExceededException`.
    public func submit(
        _ request: StartDICOMImportJobRequest, maxActiveJobs: Int = .max, onWorkers: Bool = false
    ) throws(IngestServiceError) -> DICOMImportJobProperties {
        try request.validate()
        do {
            let jobId = ResourceID.make()
            let job = DICOMImportJobProperties(
                jobId: jobId, jobName: request.jobName ?? "DicomImport-\(jobId.prefix(8))", jobStatus: .submitted,
                datastoreId: request.datastoreId, dataAccessRoleArn: request.dataAccessRoleArn,
                clientToken: request.clientToken, submittedAt: Self.now(), inputS3Uri: request.inputS3Uri,
                outputS3Uri: request.outputS3Uri, runsOnWorkers: onWorkers)
            let (recorded, inserted) = try store.insertJob(job, maxActiveJobs: maxActiveJobs)
            if !inserted {
                let same = recorded.inputS3Uri == request.inputS3Uri && recorded.outputS3Uri == request.outputS3Uri
                    && recorded.dataAccessRoleArn == request.dataAccessRoleArn
                    && (request.jobName == nil || recorded.jobName == request.jobName)
                guard same else {
                    throw IngestServiceError.conflict("clientToken \(request.clientToken) was used with different parameters")
                }
            }
            return recorded
        } catch {
            throw IngestServiceError(error)
        }
    }

    // MARK: - Running

    /// Runs a submitted job to COMPLETED or FAILED and returns its outcome. Blocking: call it from a thread of
    /// your own (the CLI's main thread, a server's job runner), not from the cooperative pool.
    ///
    /// A job left IN_PROGRESS by a process that stopped resumes where it was: its result files are written again
    /// from the lines the catalog recorded, objects already staged or reported are not read again, series
    /// already committed are not committed again, and objects that were in a worker's hands at two stops are
    /// reported as failures instead of being read a third time (`JobJournal`).
    ///
    /// - Parameters:
    ///   - source: the objects under `job.inputS3Uri`.
    ///   - makeSink: opens the result folder for the job; a failure to do so fails the job.
    ///
    /// A job that FAILED for a job-level reason keeps what it staged and recorded; with `reopeningFailed` (the
    /// CLI's `import --resume`) it runs again from there, its server-error lines forgotten so that those objects
    /// are read again.
    ///
    /// - Throws: `ConflictException` when another process is running the job (`JobLock`), or when the job was
    ///   submitted for workers (`ImportWorker` runs it); nothing is changed.
    public func run(
        _ submitted: DICOMImportJobProperties,
        reopeningFailed: Bool = false,
        source: any ObjectSource,
        makeSink: (DICOMImportJobProperties) throws -> any ResultSink
    ) throws(IngestServiceError) -> ImportOutcome {
        var job = submitted
        guard !job.runsOnWorkers else {
            throw IngestServiceError.conflict("Job \(job.jobId) was submitted for workers: dicom-ingest worker runs it")
        }
        var lock: JobLock?
        if let folder = configuration.journalFolder {
            do {
                lock = try JobLock(folder: folder, jobId: job.jobId)
                // What the last holder left: the job may have ended since the caller read it.
                if let current = try store.job(datastoreId: job.datastoreId, jobId: job.jobId) { job = current }
            } catch {
                throw IngestServiceError(error)
            }
        }
        var machine = ImportJob.StateMachine(status: job.jobStatus)
        let logger = configuration.logger
        var metadata = Logger.Metadata()
        metadata["job.id"] = .string(job.jobId)
        let started = DispatchTime.now()
        var outcome = ImportOutcome(
            job: job, jobFolderURI: nil, scannedFiles: 0, importedFiles: 0, customerErrors: 0, serverErrors: 0,
            generatedImageSets: 0, bytes: 0, seconds: 0)
        var journal: JobJournal?
        var report = JobReport(metrics: metrics)

        func finish(_ action: ImportJob.StateMachine.Action) {
            guard case .finish(let status, let message) = action else { return }
            job.jobStatus = status
            job.message = message
            job.endedAt = Self.now()
            try? store.endJob(job)
            running.withLock { $0[job.jobId] = nil }
            journal?.remove()
            lock?.remove()
            outcome.job = job
            outcome.seconds = Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1e9
            metrics.jobFinished(status: status.rawValue, seconds: outcome.seconds)
            logger.info("import job finished", metadata: metadata.merging(["status": .string(status.rawValue)]) { $1 })
        }

        let reopened = reopeningFailed && machine.status == .failed
        guard (reopened ? machine.reopen() : machine.start()) == .startPipeline else {
            // Ended: nothing to run, and the lock file is not needed again.
            lock?.remove()
            outcome.job = job
            return outcome
        }
        job.jobStatus = machine.status
        job.message = nil
        job.endedAt = nil
        let attempt: Int
        do {
            if reopened { try store.reopenFailedJob(job) } else { try store.updateJob(job) }
            attempt = try store.beginAttempt(jobId: job.jobId)
            if let folder = configuration.journalFolder {
                journal = try JobJournal(folder: folder, jobId: job.jobId, attempt: attempt)
            }
        } catch {
            finish(machine.jobFailed("The job could not be started: \(IngestServiceError(error).message)"))
            return outcome
        }
        metrics.jobStarted()
        logger.info("import job started", metadata: metadata.merging(["attempt": .stringConvertible(attempt)]) { $1 })

        let sink: any ResultSink
        do {
            sink = try makeSink(job)
        } catch {
            finish(machine.jobFailed("Cannot write the output prefix \(job.outputS3Uri): \(IngestServiceError(error).message)"))
            return outcome
        }
        outcome.jobFolderURI = sink.jobFolderURI

        running.withLock { $0[job.jobId] = ImportJobProgress() }
        do {
            var resumption: Resumption?
            if attempt > 1 {
                try replayRecorded(
                    job: job, bytesRead: try store.job(datastoreId: job.datastoreId, jobId: job.jobId)?.progress.bytesRead ?? 0,
                    sink: sink, report: &report)
                running.withLock { $0[job.jobId] = report.progress }
                let stops = configuration.journalFolder.map {
                    JobJournal.stopsInFlight(folder: $0, jobId: job.jobId, before: attempt)
                } ?? [:]
                resumption = Resumption(store: store, jobId: job.jobId, stopsInFlight: stops)
                logger.info(
                    "import job resumed",
                    metadata: metadata.merging([
                        "files.done": .stringConvertible(report.scannedFiles), "objects.in_flight_at_stops": .stringConvertible(stops.count),
                    ]) { $1 })
            }
            try prepare(job: job, source: source, sink: sink, resumption: resumption, journal: journal, report: &report) {
                try store.stage($0, lines: $1, jobId: job.jobId, progress: $2.progress)
            }
            try commit(job: job, sink: sink, report: &report)
            try sink.finish(manifest: report.manifest(job: job, jobFolderURI: sink.jobFolderURI))
        } catch {
            let reason = IngestServiceError(error).message
            logger.error("import job failed", metadata: metadata.merging(["error": .string(reason)]) { $1 })
            try? sink.finish(manifest: report.manifest(job: job, jobFolderURI: sink.jobFolderURI))
            outcome.apply(report)
            job.progress = report.progress
            finish(machine.jobFailed("DICOM import job has failed. \(reason)"))
            return outcome
        }
        outcome.apply(report)
        job.progress = report.progress
        finish(machine.pipelineFinished())
        return outcome
    }

    /// Writes the result lines the catalog recorded for the job (by earlier runs, or by workers) and counts them
    /// with the instances staged since, as the run that made them counted them. Bytes are not in the lines:
    /// `bytesRead` is the job record's, of every object staged or reported so far.
    func replayRecorded(job: DICOMImportJobProperties, bytesRead: Int, sink: any ResultSink, report: inout JobReport) throws {
        try store.forEachLine(jobId: job.jobId) { try report.replay($0, sink: sink) }
        report.scannedFiles += try store.stagedInstanceCount(jobId: job.jobId)
        report.bytes = bytesRead
    }

    // MARK: - Phase 1: prepare

    private enum WorkResult: Sendable {
        case prepared(PreparedInstance, bytes: Int)
        case failed(ImportFailure, bytes: Int)
        /// The job cannot go on (the catalog cannot say what an earlier run did).
        case jobFailed(IngestServiceError)
    }

    /// Prepares every object of `source` on the pool and hands what it prepared to `stage` in batches: the
    /// instances, the failure lines (written to `sink` too, when there is one) and the report once they are
    /// counted.
    ///
    /// - Parameters:
    ///   - queueCapacity: objects listed ahead of the workers.
    ///   - publishesProgress: whether `progress(of:)` follows it (not for a worker's chunk: a job's chunks run in
    ///     many processes).
    ///   - cancellation: stops it (the job fails, or a worker's lease was lost).
    func prepare(
        job: DICOMImportJobProperties,
        source: any ObjectSource,
        sink: (any ResultSink)?,
        resumption: Resumption?,
        journal: (any ObjectJournal)?,
        report: inout JobReport,
        queueCapacity: Int = 1024,
        publishesProgress: Bool = true,
        cancellation: WorkerPool.Cancellation = WorkerPool.Cancellation(),
        stage: ([PreparedInstance], [JobLine], JobReport) throws -> Void
    ) throws {
        let resultCapacity = configuration.threads * 8
        let results = BlockingQueue<WorkResult>(capacity: resultCapacity)
        let format = try store.datastore(id: job.datastoreId)?.losslessStorageFormat ?? .htj2k
        let budget = self.budget
        let preparer = InstancePreparer(
            frameStorage: frameStorage, datastoreId: job.datastoreId, losslessCodec: format == .jpeg2000Lossless ? .jpeg2000 : .htj2k,
            memoryBudget: budget, timeLimit: configuration.objectTimeLimit)
        let pipelineError = Mutex<(any Error)?>(nil)
        let pipeline = DispatchGroup()
        let pool = self.pool
        DispatchQueue(label: "dicom-ingest.job-pipeline").async(group: pipeline) {
            do {
                // A job whose results wait to be consumed takes no more objects while others have work.
                try pool.forEach(
                    in: source, queueCapacity: queueCapacity, cancellation: cancellation, isReady: { results.count < resultCapacity },
                    makeWorker: { WorkerScratch() }, finishWorker: { try $0.finish() }
                ) { scratch, object in
                    Self.process(
                        object, source: source, preparer: preparer, scratch: scratch, resumption: resumption, journal: journal,
                        cancellation: cancellation
                    ) { result in
                        // A prepared instance holds its metadata until it is staged: it waits in the budget.
                        if case .prepared(let instance, _) = result { budget.reserve(instance.heldBytes) }
                        results.push(result)
                    }
                }
            } catch {
                pipelineError.withLock { $0 = error }
            }
            results.close()
        }

        var batch: [PreparedInstance] = []
        var batchLines: [JobLine] = []
        var failure: (any Error)?
        var batchBytes = 0
        var durable = DurableFrames(storage: frameStorage)
        func stageBatch() throws {
            // A staged row is trusted by a resumed run: after a power loss its frames must be there too.
            try durable.cover(batch)
            try stage(batch, batchLines, report)
            batch.removeAll(keepingCapacity: true)
            batchLines.removeAll(keepingCapacity: true)
            batchBytes = 0
        }
        while let result = results.pop() {
            // Out of the queue, out of the budget: the consumer never waits for the budget, so workers waiting for
            // it always get it back. The batch is bounded on its own (count, and a quarter of the budget).
            if case .prepared(let instance, _) = result { budget.release(instance.heldBytes) }
            guard failure == nil else { continue }
            do {
                switch result {
                case .prepared(let instance, let bytes):
                    report.scannedFiles += 1
                    report.bytes += bytes
                    metrics.bytesRead(bytes)
                    batch.append(instance)
                    batchBytes += instance.heldBytes
                case .jobFailed(let error):
                    throw error
                case .failed(let failed, let bytes):
                    report.scannedFiles += 1
                    report.bytes += bytes
                    metrics.bytesRead(bytes)
                    configuration.logger.debug(
                        "file not imported",
                        metadata: [
                            "job.id": .string(job.jobId), "object.key": .string(failed.inputKey), "stage": "prepare",
                            "reason": .string(failed.message),
                        ])
                    batchLines.append(try report.recordFailure(failed, sink: sink))
                }
                if batch.count + batchLines.count >= configuration.stagingBatchSize || batchBytes >= configuration.memoryBudget / 4 {
                    try stageBatch()
                }
                if publishesProgress {
                    let progress = report.progress
                    running.withLock { $0[job.jobId] = progress }
                }
            } catch {
                // The job fails: its lane stops at once (queued objects dropped, the listing ended, instances in a
                // worker's hands stopped before their next frame); what is in flight is drained, then it fails.
                failure = error
                cancellation.cancel()
            }
        }
        pipeline.wait()
        if let failure { throw failure }
        if let error = pipelineError.withLock({ $0 }) { throw error }
        if !batch.isEmpty || !batchLines.isEmpty { try stageBatch() }
    }

    /// One object: an instance, or each member of an archive. Each is journaled while a worker holds it; on a
    /// resumed run, what is done is skipped and what was in flight at too many stops is reported, not read.
    private static func process(
        _ object: SourceObject,
        source: any ObjectSource,
        preparer: InstancePreparer,
        scratch: WorkerScratch,
        resumption: Resumption?,
        journal: (any ObjectJournal)?,
        cancellation: WorkerPool.Cancellation,
        emit: (WorkResult) -> Void
    ) {
        func unit(_ key: String, _ body: () -> Void) {
            if cancellation.isCancelled { return }
            if let resumption {
                do {
                    if try resumption.isDone(key) { return }
                } catch {
                    return emit(.jobFailed(IngestServiceError(error)))
                }
                if let failure = resumption.givenUp(key) { return emit(.failed(failure, bytes: 0)) }
            }
            journal?.started(key)
            body()
            journal?.finished(key)
        }
        unit(object.key) {
            let input: any P10ByteInput
            do {
                input = try source.open(object)
            } catch {
                let failure = ImportFailure.validation(object.key, "The object cannot be read: \(IngestServiceError(error).message)")
                return emit(.failed(failure, bytes: 0))
            }
            guard let format = ArchiveFormat(key: object.key) else {
                return emit(outcome(
                    preparer.prepare(key: object.key, input: input, scratch: scratch, cancellation: cancellation), bytes: input.length))
            }
            ArchiveReader.forEachMember(of: input, format: format, key: object.key) { member in
                switch member {
                case .success(let member):
                    unit(member.key) {
                        emit(outcome(
                            preparer.prepare(key: member.key, input: member.input, scratch: scratch, cancellation: cancellation),
                            bytes: member.input.length))
                    }
                case .failure(let failure):
                    unit(failure.inputKey) { emit(.failed(failure, bytes: 0)) }
                }
            }
        }
    }

    private static func outcome(_ result: Result<PreparedInstance, ImportFailure>, bytes: Int) -> WorkResult {
        switch result {
        case .success(let instance): return .prepared(instance, bytes: bytes)
        case .failure(let failure): return .failed(failure, bytes: bytes)
        }
    }

    // MARK: - Phase 2: commit

    /// Commits every staged series of the job and writes their lines; under the job's lease when `lease` names
    /// one (a worker finishing a job).
    func commit(
        job: DICOMImportJobProperties, sink: any ResultSink, report: inout JobReport,
        lease: (queue: any ImportWorkQueue, lease: WorkLease)? = nil
    ) throws {
        // A worker's finish is not followed by `progress(of:)`: the job's progress is the catalog's.
        let publishesProgress = lease == nil
        for series in try store.stagedSeries(jobId: job.jobId) {
            try commit(series, job: job, sink: sink, report: &report, lease: lease)
            if publishesProgress {
                let progress = report.progress
                running.withLock { $0[job.jobId] = progress }
            }
        }
    }

    /// Commits one staged series of a job run by workers, under `lease` (a chunk of its commits): its result
    /// lines and the progress they add are recorded in the catalog, for the job's finish. A series with nothing
    /// staged (committed by an earlier holder) is passed over.
    /// - Throws: `ImageSetStoreError.conflict` when the lease is no longer held; nothing is written then.
    public func commitQueued(_ series: String, job: DICOMImportJobProperties, queue: any ImportWorkQueue, lease: WorkLease) throws {
        var report = JobReport(metrics: metrics)
        try commit(series, job: job, sink: nil, report: &report, lease: (queue, lease))
    }

    /// Commits one staged series of the job and writes its lines to `sink`, if there is one. Decided inside the
    /// store's write transaction, against the primary image set as it is then; the result lines are recorded in
    /// it too, so a resumed job finds the series committed and its lines kept. Under a lease (a worker), the
    /// progress recorded is what the series adds, as other workers commit other series of the job at once.
    func commit(
        _ series: String, job: DICOMImportJobProperties, sink: (any ResultSink)?, report: inout JobReport,
        lease: (queue: any ImportWorkQueue, lease: WorkLease)?
    ) throws {
        let instances = try store.stagedInstances(jobId: job.jobId, seriesInstanceUID: series)
        guard !instances.isEmpty else { return }
        var groups: [ImageSetGrouping.Group] = []
        var primaryKey: ImageSetKey?
        var lines: [JobLine] = []
        let base = lease == nil ? report.progress : ImportJobProgress()
        let plan = { (existing: ImageSetRecord?) -> [ImageSetCommit] in
            groups = ImageSetGrouping.decide(
                instances.map { .init(inputKey: $0.inputKey, sopInstanceUID: $0.sopInstanceUID, key: $0.key) },
                existingPrimaryKey: existing?.key)
            primaryKey = groups.first(where: \.isPrimary)?.key ?? existing?.key
            let committedAt = Self.now()
            return groups.map { group in
                ImageSetCommit(
                    datastoreId: job.datastoreId, jobId: job.jobId, imageSetId: group.isPrimary ? existing?.imageSetId : nil,
                    key: group.key, isPrimary: group.isPrimary, instances: group.members.map { instances[$0] },
                    committedAt: committedAt)
            }
        }
        let made = { (records: [ImageSetRecord]) -> (lines: [JobLine], progress: ImportJobProgress) in
            lines = zip(groups, records).flatMap { group, record in
                Self.resultLines(of: group, record: record, instances: instances, primaryKey: primaryKey, series: series)
            }
            var progress = base
            for line in lines { progress.count(line) }
            return (lines, progress)
        }
        if let lease {
            _ = try lease.queue.commitSeries(
                datastoreId: job.datastoreId, jobId: job.jobId, seriesInstanceUID: series, under: lease.lease, plan: plan, lines: made)
        } else {
            _ = try store.commitSeries(datastoreId: job.datastoreId, jobId: job.jobId, seriesInstanceUID: series, plan: plan, lines: made)
        }
        for line in lines { try report.write(line, sink: sink) }
    }

    /// The lines a committed image set version gives its files: SUCCESS for each, WARNING for those with
    /// warnings, and the manifest's summary entry.
    private static func resultLines(
        of group: ImageSetGrouping.Group, record: ImageSetRecord, instances: [PreparedInstance], primaryKey: ImageSetKey?,
        series: String
    ) -> [JobLine] {
        var lines = [JobReport.imageSetLine(record, matchedInstances: group.members.count)]
        var overwrittenBy: [Int: [Int]] = [:]
        for overwrite in group.overwritten { overwrittenBy[overwrite.by, default: []].append(overwrite.copy) }
        var warningsByIndex: [Int: [ImportWarning]] = [:]
        for overwrite in group.overwritten {
            warningsByIndex[overwrite.copy] = [
                DuplicateWarning.overwritten(
                    sopInstanceUID: instances[overwrite.copy].sopInstanceUID,
                    by: instances[overwrite.by].inputKey, imageSetId: record.imageSetId)
            ]
        }
        for (winner, copies) in overwrittenBy {
            warningsByIndex[winner] = [
                DuplicateWarning.overwrote(
                    sopInstanceUID: instances[winner].sopInstanceUID, copies: copies.map { instances[$0].inputKey },
                    imageSetId: record.imageSetId)
            ]
        }
        let reported = (group.members + group.overwritten.map(\.copy)).sorted { instances[$0].inputKey < instances[$1].inputKey }
        for index in reported {
            let instance = instances[index]
            var warnings = instance.warnings + (warningsByIndex[index] ?? [])
            if !group.isPrimary, let primaryKey {
                let differing = instance.key.differences(from: primaryKey).joined(separator: ", ")
                warnings.append(ImportWarning(
                    reasonCode: 90100, type: "NonPrimaryImageSet",
                    message: "Key attributes \(differing) conflict with the primary image set of series \(series); imported into non-primary image set \(record.imageSetId)"))
            }
            lines += JobReport.successLines(instance.inputKey, record: record, warnings: warnings)
        }
        return lines
    }
}

/// The warnings of files that hold the same SOP instance as another file of the job's image set (spec §4.3:
/// every copy is imported; the copy whose input key sorts last is the one the version holds).
enum DuplicateWarning {
    static let reasonCode = 90101
    static let type = "DuplicateSOPInstance"
    /// Input keys named in full in one message; the rest are counted.
    static let namedCopies = 5

    static func overwritten(sopInstanceUID: String, by winner: String, imageSetId: String) -> ImportWarning {
        ImportWarning(
            reasonCode: reasonCode, type: type,
            message: "SOP Instance \(sopInstanceUID) of this file was overwritten in image set \(imageSetId) by \(winner), another file of this job with the same SOP Instance UID whose key sorts later")
    }

    static func overwrote(sopInstanceUID: String, copies: [String], imageSetId: String) -> ImportWarning {
        var named = copies.prefix(namedCopies).joined(separator: ", ")
        if copies.count > namedCopies { named += " and \(copies.count - namedCopies) more" }
        return ImportWarning(
            reasonCode: reasonCode, type: type,
            message: "SOP Instance \(sopInstanceUID) of this file overwrote, in image set \(imageSetId), the copies of \(copies.count) other file(s) of this job whose keys sort earlier: \(named)")
    }
}

/// The counts and image sets a job reports in its manifest, and the line writers that keep them in step.
struct JobReport {
    let metrics: ImportMetrics
    var scannedFiles = 0
    var importedFiles = 0
    var customerErrors = 0
    var serverErrors = 0
    var bytes = 0
    /// The manifest's `imageSetsSummary` entries, as compact JSON.
    var imageSets: [[UInt8]] = []

    /// Writes a failure line and returns it, for the catalog.
    mutating func recordFailure(_ failure: ImportFailure, sink: (any ResultSink)?) throws -> JobLine {
        let isServerError = failure.exceptionType == "InternalServerException"
        metrics.file(outcome: isServerError ? "server_error" : "customer_error", reason: ImportMetrics.reason(of: failure))
        let json = JSONValue.object([
            ("inputFile", .string(failure.inputKey)),
            ("exception", .object([("exceptionType", .string(failure.exceptionType)), ("message", .string(failure.message))])),
        ])
        let line = JobLine(kind: isServerError ? .serverError : .customerError, inputKey: failure.inputKey, json: InstancePreparer.bytes(json))
        try write(line, sink: sink)
        return line
    }

    /// The SUCCESS line of a file, and its WARNING line when it has warnings.
    static func successLines(_ inputKey: String, record: ImageSetRecord, warnings: [ImportWarning]) -> [JobLine] {
        let response: [(String, JSONValue)] = [
            ("imageSetId", .string(record.imageSetId)), ("imageSetVersion", .int(Int64(record.latestVersion))),
            ("isPrimary", .bool(record.isPrimary)),
        ]
        var lines = [
            JobLine(
                kind: .success, inputKey: inputKey,
                json: InstancePreparer.bytes(.object([("inputFile", .string(inputKey)), ("importResponse", .object(response))])))
        ]
        if !warnings.isEmpty {
            let line = JSONValue.object([
                ("inputFile", .string(inputKey)),
                ("importResponse", .object(response + [("warnings", .array(warnings.map(\.json)))])),
            ])
            lines.append(JobLine(kind: .warning, inputKey: inputKey, json: InstancePreparer.bytes(line)))
        }
        return lines
    }

    static func imageSetLine(_ record: ImageSetRecord, matchedInstances: Int) -> JobLine {
        let entry = JSONValue.object([
            ("imageSetId", .string(record.imageSetId)), ("imageSetVersion", .int(Int64(record.latestVersion))),
            ("isPrimary", .bool(record.isPrimary)), ("numberOfMatchedSOPInstances", .int(Int64(matchedInstances))),
        ])
        return JobLine(kind: .imageSet, inputKey: record.imageSetId, json: InstancePreparer.bytes(entry))
    }

    /// The counts so far, for the job record.
    var progress: ImportJobProgress {
        ImportJobProgress(
            scannedFiles: scannedFiles, importedFiles: importedFiles, customerErrors: customerErrors,
            serverErrors: serverErrors, generatedImageSets: imageSets.count, bytesRead: bytes)
    }

    /// Writes a line of this run to its file (when the run writes files: a worker's chunk does not) and counts it.
    mutating func write(_ line: JobLine, sink: (any ResultSink)?) throws {
        switch line.kind {
        case .success:
            importedFiles += 1
            metrics.file(outcome: "imported")
            try sink?.append(line.json, to: .success)
        case .warning:
            try sink?.append(line.json, to: .warning)
        case .customerError:
            customerErrors += 1
            try sink?.append(line.json, to: .failure)
        case .serverError:
            serverErrors += 1
            try sink?.append(line.json, to: .failure)
        case .imageSet:
            imageSets.append(line.json)
        }
    }

    /// Writes a line an earlier run of the job recorded, and counts it as this run's lines are counted (the
    /// file it stands for was scanned then).
    mutating func replay(_ line: JobLine, sink: any ResultSink) throws {
        switch line.kind {
        case .success, .customerError, .serverError: scannedFiles += 1
        case .warning, .imageSet: break
        }
        switch line.kind {
        case .success: importedFiles += 1
        case .customerError: customerErrors += 1
        case .serverError: serverErrors += 1
        case .warning, .imageSet: break
        }
        switch line.kind {
        case .success: try sink.append(line.json, to: .success)
        case .warning: try sink.append(line.json, to: .warning)
        case .customerError, .serverError: try sink.append(line.json, to: .failure)
        case .imageSet: imageSets.append(line.json)
        }
    }

    /// `job-output-manifest.json` (spec §2.2).
    func manifest(job: DICOMImportJobProperties, jobFolderURI: String) -> [UInt8] {
        let summary: [(String, JSONValue)] = [
            ("jobId", .string(job.jobId)), ("datastoreId", .string(job.datastoreId)),
            ("inputS3Uri", .string(job.inputS3Uri)), ("outputS3Uri", .string(jobFolderURI)),
            ("successOutputS3Uri", .string(jobFolderURI + "SUCCESS/")),
            ("failureOutputS3Uri", .string(jobFolderURI + "FAILURE/")),
            ("warningsOutputS3Uri", .string(jobFolderURI + "WARNING/")),
            ("numberOfScannedFiles", .int(Int64(scannedFiles))), ("numberOfImportedFiles", .int(Int64(importedFiles))),
            ("numberOfFilesWithCustomerError", .int(Int64(customerErrors))),
            ("numberOfFilesWithServerError", .int(Int64(serverErrors))),
            ("numberOfGeneratedImageSets", .int(Int64(imageSets.count))),
        ]
        // The summary entries are spliced in as recorded.
        var out = InstancePreparer.bytes(.object([("jobSummary", .object(summary))]))
        out.removeLast(2)
        out += Array(",\"imageSetsSummary\":[".utf8)
        for (index, entry) in imageSets.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            out += entry
        }
        out += Array("]}}".utf8)
        return out
    }
}

/// The bytes of each frame pack known to be durable, so that instances are staged only once their frames are
/// (a pack is synced again only when a frame lies past what was synced). Kept by a job's consumer thread.
struct DurableFrames {
    let storage: any FrameStorage
    private var durableBytes: [String: Int] = [:]

    init(storage: any FrameStorage) {
        self.storage = storage
    }

    mutating func cover(_ instances: [PreparedInstance]) throws {
        for instance in instances {
            for frame in instance.frames where frame.offset + frame.length > durableBytes[frame.blob, default: -1] {
                let isNew = durableBytes[frame.blob] == nil
                durableBytes[frame.blob] = try storage.makeDurable(blob: frame.blob, withName: isNew)
            }
        }
    }
}

/// What a resumed run knows of the runs before it.
struct Resumption: Sendable {
    let store: any ImageSetStore
    let jobId: String
    /// Keys in a worker's hands when earlier runs stopped, with how many times (`JobJournal`).
    let stopsInFlight: [String: Int]

    /// Staged or reported by an earlier run.
    /// - Throws: when the catalog cannot say; the job then fails rather than read the object again and report it
    ///   twice (it can be resumed once the catalog answers).
    func isDone(_ key: String) throws -> Bool {
        try store.isDone(jobId: jobId, inputKey: key)
    }

    /// The failure to report instead of reading an object that was in flight at too many stops.
    func givenUp(_ key: String) -> ImportFailure? {
        guard let stops = stopsInFlight[key], stops >= JobJournal.maxStopsInFlight else { return nil }
        return ImportFailure(
            inputKey: key, exceptionType: "InternalServerException",
            message: "The import stopped \(stops) times while this object was being read (the process ended); it is not read again")
    }
}

extension ImportJobProgress {
    /// Counts a line about to be written, as `JobReport.write` will (a commit records the progress its lines make
    /// in its own transaction).
    mutating func count(_ line: JobLine) {
        switch line.kind {
        case .success: importedFiles += 1
        case .customerError: customerErrors += 1
        case .serverError: serverErrors += 1
        case .imageSet: generatedImageSets += 1
        case .warning: break
        }
    }
}

extension ImportOutcome {
    mutating func apply(_ report: JobReport) {
        scannedFiles = report.scannedFiles
        importedFiles = report.importedFiles
        customerErrors = report.customerErrors
        serverErrors = report.serverErrors
        generatedImageSets = report.imageSets.count
        bytes = report.bytes
    }
}
