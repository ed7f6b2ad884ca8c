public import DICOMIngestModel

/// A claim on a piece of a job's work, good until its lease expires unless a heartbeat extends it. Every write
/// a holder makes under it checks, in the write's own transaction, that the claim is still its own: a worker
/// that stalled past its lease (and whose work another worker took over) can no longer change anything.
public struct WorkLease: Hashable, Sendable {
    public var jobId: String
    /// The chunk of the job's listing; nil for the job's own work (listing its input, finishing it).
    public var chunk: Int?
    /// Who holds it: unique per claim (a worker's ID and a claim number), so a second claim of the same work by
    /// the same worker is a different holder.
    public var holder: String

    public init(jobId: String, chunk: Int?, holder: String) {
        self.jobId = jobId
        self.chunk = chunk
        self.holder = holder
    }
}

/// A chunk of a job's work, claimed by a worker: objects of its input listing to prepare and stage, or, once
/// every object is staged, series to commit.
public struct ClaimedChunk: Sendable {
    public var lease: WorkLease
    public var job: DICOMImportJobProperties
    public var objects: [SourceObject]
    /// The Series Instance UIDs to commit, for a chunk of the job's commits (`objects` is then empty).
    public var series: [String]
    /// Claims of this chunk before this one (released or abandoned): what they staged or reported is skipped.
    public var earlierClaims: Int
    /// Those of the earlier claims that neither completed nor released it: their holders died or stalled past
    /// the lease.
    public var abandonedClaims: Int
    /// The keys that were in a worker's hands when earlier claims were abandoned, with in how many of them
    /// (recorded only while a chunk is claimed again, `ImportWorkQueue.recordInFlight`).
    public var inFlightAtAbandonedClaims: [String: Int]

    public init(
        lease: WorkLease, job: DICOMImportJobProperties, objects: [SourceObject], series: [String] = [], earlierClaims: Int,
        abandonedClaims: Int, inFlightAtAbandonedClaims: [String: Int]
    ) {
        self.lease = lease
        self.job = job
        self.objects = objects
        self.series = series
        self.earlierClaims = earlierClaims
        self.abandonedClaims = abandonedClaims
        self.inFlightAtAbandonedClaims = inFlightAtAbandonedClaims
    }
}

/// Work on a job as a whole, claimed under the job's lease.
public enum JobTask: Sendable {
    /// List the job's input into chunks, skipping the first `listedObjects` objects (an earlier holder chunked
    /// them: listings are deterministic).
    case list(DICOMImportJobProperties, lease: WorkLease, listedObjects: Int)
    /// Every object is staged: cut the job's staged series, after `plannedThrough` (the last series an earlier
    /// holder put in a chunk), into chunks of commits, which workers then claim as they claim objects.
    case planCommits(DICOMImportJobProperties, lease: WorkLease, plannedThrough: String?)
    /// Every chunk is done (or the job failed): commit what is left (nothing, unless it failed), write its result
    /// files from the lines recorded, end it.
    case finish(DICOMImportJobProperties, lease: WorkLease, failure: String?)
}

/// Queue depth, for autoscaling and `/metrics`.
public struct WorkQueueDepth: Hashable, Sendable {
    /// Chunks not yet done, claimed or not.
    public var openChunks: Int
    /// Chunks claimed under a live lease.
    public var claimedChunks: Int
    /// Jobs submitted for workers and not ended.
    public var activeJobs: Int

    public init(openChunks: Int, claimedChunks: Int, activeJobs: Int) {
        self.openChunks = openChunks
        self.claimedChunks = claimedChunks
        self.activeJobs = activeJobs
    }
}

/// The work of jobs submitted for workers (`ImportWorker`), kept in the catalog so that any number of worker
/// processes on any number of machines share it. The engine depends on this protocol only; `SQLCatalog`
/// implements it on PostgreSQL (claims take `FOR UPDATE SKIP LOCKED`) and SQLite.
///
/// A job's input listing is cut into chunks as it is listed; a worker claims a chunk, prepares its objects,
/// stages them and completes it; once the listing has ended and every chunk is complete, one worker claims the
/// job to finish it (commit its series, write its result files from the lines the chunks recorded). Times are
/// seconds since 1970 on the caller's clock: machines sharing a catalog need synchronised clocks (NTP), within
/// a small part of the lease.
public protocol ImportWorkQueue: Sendable {
    /// Claims the oldest job that needs listing or finishing and is not leased: a SUBMITTED job becomes
    /// IN_PROGRESS.
    func claimJobTask(holder: String, leaseSeconds: Double, now: Double) throws -> JobTask?
    /// Claims an open chunk whose lease is free or expired, of the job served least recently (so that jobs
    /// running at once share the workers), lowest chunk first.
    func claimChunk(holder: String, leaseSeconds: Double, now: Double) throws -> ClaimedChunk?
    /// Records the next chunk of a job's listing and how many objects are now chunked, in one transaction.
    func addChunk(_ objects: [SourceObject], listedObjects: Int, under lease: WorkLease) throws
    /// The listing has ended (`failure`: it could not go on; the job then fails once no chunk is being worked).
    func endListing(failure: String?, under lease: WorkLease) throws
    /// The job's staged series after `after`, sorted, with how many instances each has staged: a page of `limit`.
    func stagedSeries(jobId: String, after: String?, limit: Int) throws -> [(series: String, instances: Int)]
    /// Records a chunk of series to commit, and that the plan has reached its last one, in one transaction.
    func addSeriesChunk(_ series: [String], under lease: WorkLease) throws
    /// Every staged series is in a chunk: the job is next claimed to be finished.
    func endCommitPlanning(under lease: WorkLease) throws
    /// Stages prepared instances and records failure lines of a chunk, adding `progress` to the job's, in one
    /// transaction, under the chunk's lease.
    func stage(_ instances: [PreparedInstance], lines: [JobLine], progress: ImportJobProgress, under lease: WorkLease) throws
    /// Marks a chunk done.
    func completeChunk(under lease: WorkLease) throws
    /// Gives a chunk back unfinished, without counting the claim as abandoned (a worker told to stop).
    func release(_ lease: WorkLease) throws
    /// Extends leases still held; returns those that are not (expired and claimed by another, or ended).
    func extend(_ leases: [WorkLease], leaseSeconds: Double, now: Double) throws -> Set<WorkLease>
    /// Notes a key a worker is about to read (and `clearInFlight` once read), for a chunk claimed again after
    /// an abandoned claim: a key in hand at every abandoned claim is reported instead of being read again.
    func recordInFlight(_ key: String, under lease: WorkLease) throws
    func clearInFlight(_ key: String, under lease: WorkLease) throws
    /// `ImageSetStore.commitSeries` under a lease (a chunk of commits, or the job's), with `lines`' progress
    /// added to the job's (series are committed by many workers at once).
    func commitSeries(
        datastoreId: String, jobId: String, seriesInstanceUID: String, under lease: WorkLease,
        plan: (_ primary: ImageSetRecord?) throws -> [ImageSetCommit],
        lines: (_ written: [ImageSetRecord]) throws -> (lines: [JobLine], progress: ImportJobProgress)
    ) throws -> [ImageSetRecord]
    /// `ImageSetStore.endJob`, under the job's lease; drops the job's chunks too.
    func endJob(_ job: DICOMImportJobProperties, under lease: WorkLease) throws
    func depth(now: Double) throws -> WorkQueueDepth
}

/// Where a job's objects are journaled while a worker holds them (`JobJournal`: a local file;
/// a queued chunk claimed again: the catalog).
protocol ObjectJournal: Sendable {
    func started(_ key: String)
    func finished(_ key: String)
}

extension JobJournal: ObjectJournal {}

/// A chunk's keys in flight, in the catalog; a failed write loses one mark, as `JobJournal`'s do.
struct CatalogObjectJournal: ObjectJournal {
    let queue: any ImportWorkQueue
    let lease: WorkLease

    func started(_ key: String) { try? queue.recordInFlight(key, under: lease) }
    func finished(_ key: String) { try? queue.clearInFlight(key, under: lease) }
}
