public import DICOMIngest
public import DICOMIngestModel

/// The work queue of jobs run by workers, in the catalog's `jobs` (a job's lease, `listed_objects`,
/// `listing_ended`, `failure`, `served_at`, `commits_planned`, `planned_through`), `job_chunks` (a chunk's `kind`,
/// objects or series, `holder` and `lease_expires`, `claims`, `abandoned`) and `chunk_in_flight`.
///
/// On PostgreSQL a claim reads its candidate `FOR UPDATE SKIP LOCKED`, so workers claiming at once never wait for
/// each other nor take the same row; SQLite has one writer at a time already. Every write under a lease first
/// updates the leased row where it still names the holder (a row lock until the transaction ends), so a holder
/// whose lease was taken over writes nothing; rows are taken chunk first, then job, in every transaction.
extension SQLCatalog: ImportWorkQueue {
    /// Claims of one chunk after which its job fails instead of handing it out again: a chunk that keeps failing
    /// for a reason of its own (not a worker's death: keys in hand at deaths are blamed and reported long before)
    /// would otherwise go round the workers for ever. Stops for rollouts count too, hence the room.
    public static let maxClaimsPerChunk = 50

    private var skipLocked: String { dialect == .postgres ? " FOR UPDATE SKIP LOCKED" : "" }

    public func claimJobTask(holder: String, leaseSeconds: Double, now: Double) throws -> JobTask? {
        try write { db in
            // Listing first (its chunks feed every worker); finishing once no chunk is open, or, for a failed job,
            // once no chunk is being worked under a live lease.
            guard
                let row = try db.row(
                    """
                    SELECT * FROM jobs
                    WHERE on_workers = 1 AND status IN ('SUBMITTED', 'IN_PROGRESS')
                      AND (lease_holder IS NULL OR lease_expires < $1)
                      AND (listing_ended = 0 OR NOT EXISTS (
                        SELECT 1 FROM job_chunks c WHERE c.job_id = jobs.id AND c.done = 0
                          AND (jobs.failure IS NULL OR (c.holder IS NOT NULL AND c.lease_expires >= $1))))
                    ORDER BY listing_ended, submitted_at, id LIMIT 1
                    """ + skipLocked, now)
            else { return nil }
            var job = Self.job(row)
            let lease = WorkLease(jobId: job.jobId, chunk: nil, holder: holder)
            job.jobStatus = .inProgress
            try db.execute(
                "UPDATE jobs SET status = 'IN_PROGRESS', lease_holder = $1, lease_expires = $2 WHERE id = $3",
                holder, now + leaseSeconds, job.jobId)
            guard row.bool("listing_ended") else {
                return .list(job, lease: lease, listedObjects: row.int("listed_objects"))
            }
            let failure = row.optionalString("failure")
            if failure == nil && !row.bool("commits_planned") {
                return .planCommits(job, lease: lease, plannedThrough: row.optionalString("planned_through"))
            }
            // Chunks of a failed job left open are abandoned: their holders' leases have expired, and from now
            // on no write under them succeeds.
            try db.execute("UPDATE job_chunks SET holder = NULL WHERE job_id = $1 AND done = 0", job.jobId)
            return .finish(job, lease: lease, failure: failure)
        }
    }

    public func claimChunk(holder: String, leaseSeconds: Double, now: Double) throws -> ClaimedChunk? {
        try write { db in
            // The job served least recently first (a claim serves it): jobs running at once take turns.
            let jobs = try db.rows(
                """
                SELECT id FROM jobs j
                WHERE on_workers = 1 AND status = 'IN_PROGRESS' AND failure IS NULL
                  AND EXISTS (SELECT 1 FROM job_chunks c WHERE c.job_id = j.id AND c.done = 0
                              AND (c.holder IS NULL OR c.lease_expires < $1))
                ORDER BY served_at, submitted_at, id
                """, now)
            for candidate in jobs {
                let jobId = candidate.string("id")
                guard
                    let chunk = try db.row(
                        """
                        SELECT seq, kind, objects, object_count, holder, claims, abandoned FROM job_chunks
                        WHERE job_id = $1 AND done = 0 AND (holder IS NULL OR lease_expires < $2)
                        ORDER BY seq LIMIT 1
                        """ + skipLocked, jobId, now)
                else { continue }
                let seq = chunk.int("seq")
                let claim = chunk.int("claims") + 1
                guard claim <= Self.maxClaimsPerChunk else {
                    try Self.fail(jobId, "Chunk \(seq) of the input listing was claimed \(Self.maxClaimsPerChunk) times without being completed", db)
                    continue
                }
                let isSeries = chunk.string("kind") == "series"
                let encoded = chunk.bytes("objects") ?? []
                let objects = isSeries ? [] : ChunkObjects.decode(encoded)
                let series = isSeries ? ChunkObjects.decodeSeries(encoded) : []
                // Objects that cannot be read back would have no result line: the job fails instead, naming why.
                guard objects.count + series.count == chunk.int("object_count") else {
                    try Self.fail(jobId, "Chunk \(seq) of the job's work cannot be read back from the catalog", db)
                    continue
                }
                // A holder still named is one whose lease expired: it died or stalled.
                let abandoned = chunk.int("abandoned") + (chunk.optionalString("holder") == nil ? 0 : 1)
                let lease = WorkLease(jobId: jobId, chunk: seq, holder: holder)
                try db.execute(
                    "UPDATE job_chunks SET holder = $1, lease_expires = $2, claims = $3, abandoned = $4 WHERE job_id = $5 AND seq = $6",
                    holder, now + leaseSeconds, claim, abandoned, jobId, seq)
                try db.execute("UPDATE jobs SET served_at = $1 WHERE id = $2", now, jobId)
                guard let jobRow = try db.row("SELECT * FROM jobs WHERE id = $1", jobId) else { continue }
                var inFlight: [Int: Set<String>] = [:]
                if abandoned > 0 {
                    for row in try db.rows("SELECT claim, input_key FROM chunk_in_flight WHERE job_id = $1 AND seq = $2", jobId, seq) {
                        inFlight[row.int("claim"), default: []].insert(row.string("input_key"))
                    }
                }
                return ClaimedChunk(
                    lease: lease, job: Self.job(jobRow), objects: objects, series: series, earlierClaims: claim - 1,
                    abandonedClaims: abandoned, inFlightAtAbandonedClaims: JobJournal.blame(inFlight.values))
            }
            return nil
        }
    }

    public func addChunk(_ objects: [SourceObject], listedObjects: Int, under lease: WorkLease) throws {
        try write { db in
            try Self.fence(lease, db)
            try Self.insertChunk(kind: "objects", ChunkObjects.encode(objects), count: objects.count, jobId: lease.jobId, db)
            try db.execute("UPDATE jobs SET listed_objects = $1 WHERE id = $2", listedObjects, lease.jobId)
        }
    }

    /// The job's next chunk; its lister or planner holds the job's lease, so numbers are taken one at a time.
    private static func insertChunk(kind: String, _ encoded: [UInt8], count: Int, jobId: String, _ db: any SQLConnection) throws {
        let next = try db.row("SELECT COALESCE(MAX(seq), -1) + 1 AS next FROM job_chunks WHERE job_id = $1", jobId)?.int("next") ?? 0
        try db.execute(
            "INSERT INTO job_chunks (job_id, seq, objects, object_count, kind) VALUES ($1, $2, $3, $4, $5)",
            jobId, next, encoded, count, kind)
    }

    public func endListing(failure: String?, under lease: WorkLease) throws {
        try write { db in
            try Self.fence(lease, db)
            // The job's lease is given up: the job is next claimed to be finished.
            try db.execute(
                "UPDATE jobs SET listing_ended = 1, failure = $1, lease_holder = NULL WHERE id = $2", failure, lease.jobId)
        }
    }

    public func stagedSeries(jobId: String, after: String?, limit: Int) throws -> [(series: String, instances: Int)] {
        try read { db in
            try db.rows(
                """
                SELECT series_uid, COUNT(*) AS n FROM staged_instances WHERE job_id = $1 AND series_uid > $2
                GROUP BY series_uid ORDER BY series_uid LIMIT $3
                """,
                jobId, after ?? "", limit
            ).map { ($0.string("series_uid"), $0.int("n")) }
        }
    }

    public func addSeriesChunk(_ series: [String], under lease: WorkLease) throws {
        guard let last = series.last else { return }
        try write { db in
            try Self.fence(lease, db)
            try Self.insertChunk(kind: "series", ChunkObjects.encode(series: series), count: series.count, jobId: lease.jobId, db)
            try db.execute("UPDATE jobs SET planned_through = $1 WHERE id = $2", last, lease.jobId)
        }
    }

    public func endCommitPlanning(under lease: WorkLease) throws {
        try write { db in
            try Self.fence(lease, db)
            try db.execute("UPDATE jobs SET commits_planned = 1, lease_holder = NULL WHERE id = $1", lease.jobId)
        }
    }

    public func stage(
        _ instances: [PreparedInstance], lines: [JobLine], progress: ImportJobProgress, under lease: WorkLease
    ) throws {
        try write { db in
            try Self.fence(lease, db)
            try Self.insertStaged(instances, jobId: lease.jobId, db)
            try Self.record(lines, jobId: lease.jobId, db)
            try Self.add(progress, jobId: lease.jobId, db)
        }
    }

    public func completeChunk(under lease: WorkLease) throws {
        try write { db in
            try Self.fence(lease, db)
            try db.execute("UPDATE job_chunks SET done = 1, holder = NULL WHERE job_id = $1 AND seq = $2", lease.jobId, lease.chunk)
            try db.execute("DELETE FROM chunk_in_flight WHERE job_id = $1 AND seq = $2", lease.jobId, lease.chunk)
        }
    }

    public func release(_ lease: WorkLease) throws {
        try write { db in
            if let chunk = lease.chunk {
                guard
                    let claim = try db.row(
                        "SELECT claims FROM job_chunks WHERE job_id = $1 AND seq = $2 AND holder = $3", lease.jobId, chunk, lease.holder)?
                        .int("claims")
                else { return }
                // What it had in hand was not to blame: it stopped because it was told to.
                try db.execute("DELETE FROM chunk_in_flight WHERE job_id = $1 AND seq = $2 AND claim = $3", lease.jobId, chunk, claim)
                try db.execute(
                    "UPDATE job_chunks SET holder = NULL, lease_expires = 0 WHERE job_id = $1 AND seq = $2", lease.jobId, chunk)
            } else {
                try db.execute(
                    "UPDATE jobs SET lease_holder = NULL, lease_expires = 0 WHERE id = $1 AND lease_holder = $2",
                    lease.jobId, lease.holder)
            }
        }
    }

    public func extend(_ leases: [WorkLease], leaseSeconds: Double, now: Double) throws -> Set<WorkLease> {
        guard !leases.isEmpty else { return [] }
        return try write { db in
            var lost: Set<WorkLease> = []
            for lease in leases {
                let changed =
                    if let chunk = lease.chunk {
                        try db.execute(
                            "UPDATE job_chunks SET lease_expires = $1 WHERE job_id = $2 AND seq = $3 AND holder = $4 AND done = 0",
                            now + leaseSeconds, lease.jobId, chunk, lease.holder)
                    } else {
                        try db.execute(
                            """
                            UPDATE jobs SET lease_expires = $1
                            WHERE id = $2 AND lease_holder = $3 AND status IN ('SUBMITTED', 'IN_PROGRESS')
                            """,
                            now + leaseSeconds, lease.jobId, lease.holder)
                    }
                if changed == 0 { lost.insert(lease) }
            }
            return lost
        }
    }

    public func recordInFlight(_ key: String, under lease: WorkLease) throws {
        try write { db in
            try db.execute(
                """
                INSERT INTO chunk_in_flight (job_id, seq, claim, input_key)
                SELECT job_id, seq, claims, $3 FROM job_chunks WHERE job_id = $1 AND seq = $2 AND holder = $4
                """,
                lease.jobId, lease.chunk, key, lease.holder)
        }
    }

    public func clearInFlight(_ key: String, under lease: WorkLease) throws {
        try write { db in
            try db.execute(
                """
                DELETE FROM chunk_in_flight WHERE job_id = $1 AND seq = $2 AND input_key = $3
                  AND claim = (SELECT claims FROM job_chunks WHERE job_id = $1 AND seq = $2 AND holder = $4)
                """,
                lease.jobId, lease.chunk, key, lease.holder)
        }
    }

    public func commitSeries(
        datastoreId: String, jobId: String, seriesInstanceUID: String, under lease: WorkLease,
        plan: (_ primary: ImageSetRecord?) throws -> [ImageSetCommit],
        lines: (_ written: [ImageSetRecord]) throws -> (lines: [JobLine], progress: ImportJobProgress)
    ) throws -> [ImageSetRecord] {
        try write { db in
            try Self.fence(lease, db)
            return try Self.commitSeries(
                datastoreId: datastoreId, jobId: jobId, seriesInstanceUID: seriesInstanceUID, plan: plan, lines: lines,
                progressAdds: true, db)
        }
    }

    public func endJob(_ job: DICOMImportJobProperties, under lease: WorkLease) throws {
        try write { db in
            try Self.fence(lease, db)
            try Self.end(job, db)
        }
    }

    public func depth(now: Double) throws -> WorkQueueDepth {
        try read { db in
            let chunks = try db.row(
                """
                SELECT COUNT(*) AS open, COALESCE(SUM(CASE WHEN c.holder IS NOT NULL AND c.lease_expires >= $1 THEN 1 ELSE 0 END), 0) AS claimed
                FROM job_chunks c JOIN jobs j ON j.id = c.job_id
                WHERE c.done = 0 AND j.status = 'IN_PROGRESS' AND j.failure IS NULL
                """, now)
            let jobs = try db.row(
                "SELECT COUNT(*) AS n FROM jobs WHERE on_workers = 1 AND status IN ('SUBMITTED', 'IN_PROGRESS')")
            return WorkQueueDepth(
                openChunks: chunks?.int("open") ?? 0, claimedChunks: chunks?.int("claimed") ?? 0, activeJobs: jobs?.int("n") ?? 0)
        }
    }

    /// Fails a job once no chunk of it is being worked (its chunks are no longer handed out).
    private static func fail(_ jobId: String, _ reason: String, _ db: any SQLConnection) throws {
        try db.execute("UPDATE jobs SET failure = $1 WHERE id = $2 AND failure IS NULL", reason, jobId)
    }

    /// Takes the leased row if the lease still names its holder (a chunk: of a job still running and not
    /// failed), or throws `conflict`.
    private static func fence(_ lease: WorkLease, _ db: any SQLConnection) throws {
        let held =
            if let chunk = lease.chunk {
                try db.execute(
                    """
                    UPDATE job_chunks SET holder = $3 WHERE job_id = $1 AND seq = $2 AND holder = $3 AND done = 0
                      AND EXISTS (SELECT 1 FROM jobs WHERE id = $1 AND status = 'IN_PROGRESS' AND failure IS NULL)
                    """,
                    lease.jobId, chunk, lease.holder)
            } else {
                try db.execute(
                    "UPDATE jobs SET lease_holder = $2 WHERE id = $1 AND lease_holder = $2 AND status = 'IN_PROGRESS'",
                    lease.jobId, lease.holder)
            }
        guard held == 1 else {
            throw ImageSetStoreError(
                .conflict, "The lease on job \(lease.jobId)\(lease.chunk.map { " chunk \($0)" } ?? "") is no longer held by \(lease.holder)")
        }
    }
}

/// A chunk's objects as the catalog keeps them: a compact JSON array of `[key, size, location, raw location,
/// unreadable reason]` (nulls where absent; a raw location as its bytes).
enum ChunkObjects {
    static func encode(_ objects: [SourceObject]) -> [UInt8] {
        var out: [UInt8] = []
        JSONValue.array(objects.map { object in
            .array([
                .string(object.key), object.size.map { .int(Int64($0)) } ?? .null, .string(object.location),
                object.rawLocation.map { .array($0.map { .int(Int64($0)) }) } ?? .null,
                object.unreadableReason.map { .string($0) } ?? .null,
            ])
        }).write(to: &out)
        return out
    }

    static func encode(series: [String]) -> [UInt8] {
        var out: [UInt8] = []
        JSONValue.array(series.map { .string($0) }).write(to: &out)
        return out
    }

    static func decodeSeries(_ bytes: [UInt8]) -> [String] {
        guard case .array(let values)? = try? JSONValue.parse(bytes) else { return [] }
        return values.compactMap { if case .string(let series) = $0 { series } else { nil } }
    }

    static func decode(_ bytes: [UInt8]) -> [SourceObject] {
        guard case .array(let rows)? = try? JSONValue.parse(bytes) else { return [] }
        return rows.compactMap { row in
            guard case .array(let fields) = row, fields.count == 5, case .string(let key) = fields[0],
                case .string(let location) = fields[2]
            else { return nil }
            var object = SourceObject(key: key, size: StagedLists.integer(fields[1]), location: location)
            if case .array(let raw) = fields[3] { object.rawLocation = raw.compactMap { StagedLists.integer($0).flatMap(UInt8.init(exactly:)) } }
            if case .string(let reason) = fields[4] { object.unreadableReason = reason }
            return object
        }
    }
}
