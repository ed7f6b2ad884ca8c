import Dispatch
public import DICOMIngest
public import DICOMIngestModel
import DICOMParser
import Foundation
import Logging
import Synchronization

/// Runs import jobs in the background on the engine, one Dispatch thread per job that stages and commits what
/// the engine's shared workers prepare (`WorkerPool`: a hundred jobs still read on the engine's few threads), and
/// resumes the jobs a stop or a crash left unfinished.
public final class JobRunner: Sendable {
    private let engine: ImportEngine
    private let io: any ObjectIOFactory
    private let tracked = Mutex<Set<String>>([])
    private let idle = DispatchGroup()
    private let afterJob: @Sendable () -> Void

    /// - Parameter afterJob: runs when a job has ended (the CLI reclaims unreferenced frame packs there).
    public init(engine: ImportEngine, io: any ObjectIOFactory, afterJob: @escaping @Sendable () -> Void = {}) {
        self.engine = engine
        self.io = io
        self.afterJob = afterJob
    }

    /// Whether this runner has started the job (so a repeated clientToken does not start it twice).
    public func isTracking(_ jobId: String) -> Bool {
        tracked.withLock { $0.contains(jobId) }
    }

    /// Starts a SUBMITTED job (or resumes one left IN_PROGRESS) in the background.
    public func start(_ job: DICOMImportJobProperties) {
        guard tracked.withLock({ $0.insert(job.jobId).inserted }) else { return }
        idle.enter()
        let engine = self.engine
        let io = self.io
        DispatchQueue(label: "dicom-ingest.job.\(job.jobId)").async {
            defer { self.idle.leave() }
            let source: any ObjectSource
            do {
                source = try io.source(for: job.inputS3Uri)
            } catch {
                source = UnopenableSource(error: error)
            }
            do {
                _ = try engine.run(job, source: source) { job in
                    try io.sink(for: job.outputS3Uri, datastoreId: job.datastoreId, jobId: job.jobId)
                }
            } catch {
                // Another process runs it (a CLI resume): that one ends it.
                engine.configuration.logger.warning(
                    "import job not started here", metadata: ["job.id": .string(job.jobId), "reason": .string(IngestServiceError(error).message)])
            }
            self.afterJob()
        }
    }

    /// Restarts every job left SUBMITTED or IN_PROGRESS by a stop or a crash. Each resumes where it was (see
    /// `ImportEngine.run`): nothing staged or reported is read again, no series is committed twice, and an object
    /// that was being read at two stops is reported instead of crashing the server a third time.
    public func resumeUnfinishedJobs() throws -> [String] {
        var resumed: [String] = []
        for job in try engine.store.unfinishedJobs() {
            start(job)
            resumed.append(job.jobId)
        }
        return resumed
    }

    /// Blocks until no job is running (for tests and orderly shutdown).
    public func waitUntilIdle() {
        idle.wait()
    }
}

/// A source whose prefix could not be opened: listing fails, so the job ends FAILED with the reason.
struct UnopenableSource: ObjectSource {
    let error: any Error

    func forEachObject(_ body: (SourceObject) throws -> Void) throws {
        throw error
    }

    func open(_ object: SourceObject) throws -> any P10ByteInput {
        throw error
    }
}
