public import DICOMIngest
public import DICOMIngestModel
import Glibc
import Synchronization

/// The catalog of data stores, jobs, image sets, their versions and frames, written once for every SQL backend
/// (`SQLiteImageSetStore`, `PostgresImageSetStore`) over `SQLDatabase`. Each backend creates the same tables and
/// indexes (its migrations) and supplies the connections.
///
/// A job's commit of one series is one transaction that decides primary or not, adds each version, its
/// instances and its frames, so a crash never leaves a half-written image set visible. Writers that could race take
/// a lock first (`SQLConnection.lock`: the series for commits, updates, copies and deletes of its image sets, the
/// data store for its jobs and its deletion), so that concurrent jobs cannot both create one series' primary image
/// set, a version number is taken once, and a quota is checked against what it counts. A running job's instances
/// wait in `staged_instances` until then.
///
/// Versions share their instances: an instance row names the versions it belongs to (`first_version` up to
/// `last_version`, open while current), so a version writes only the instances it adds or replaces, and the metadata
/// document of any version is composed when it is read (`documents` caches the latest few). A commit costs what
/// it changes, not the size of the image set times its versions.
public final class SQLCatalog: ImageSetStore {
    public let database: any SQLDatabase
    public let dialect: SQLDialect
    /// Composed metadata documents (gzip) by image set and version; versions never change, so entries never go stale.
    private let documents = DocumentCache(capacity: 64 << 20)

    /// Where the catalog is (a file, or a redacted URL), for the messages of its failures.
    public let place: String

    public init(database: any SQLDatabase, dialect: SQLDialect, place: String) {
        self.database = database
        self.dialect = dialect
        self.place = place
    }

    func read<T>(_ body: (any SQLConnection) throws -> T) throws -> T {
        try mapped { try database.read(body) }
    }

    @discardableResult
    func write<T>(_ body: (any SQLConnection) throws -> T) throws -> T {
        try mapped { try database.write(body) }
    }

    private func mapped<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as ImageSetStoreError {
            throw error
        } catch {
            var reason = Self.reason(error)
            if reason.contains("disk is full"), let free = Self.freeBytes(near: place) {
                reason += " (\(free) bytes free on the device holding \(place))"
            }
            throw ImageSetStoreError(.io, "catalog \(place): \(reason)")
        }
    }

    /// Free bytes on the file system of `path` (or of its folder), for a catalog on a local disk.
    static func freeBytes(near path: String) -> UInt64? {
        var info = statvfs()
        for candidate in [path, String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)])] where statvfs(candidate, &info) == 0 {
            return UInt64(info.f_bavail) * UInt64(info.f_frsize)
        }
        return nil
    }

    /// The database's reason without the statement it ran (GRDB adds "- while executing `…`").
    static func reason(_ error: any Error) -> String {
        let text = "\(error)"
        let marker = Array(" - while executing".utf8)
        let bytes = Array(text.utf8)
        guard bytes.count >= marker.count,
            let cut = (0...(bytes.count - marker.count)).first(where: { bytes[$0..<($0 + marker.count)].elementsEqual(marker) })
        else { return text }
        return String(decoding: bytes[..<cut], as: UTF8.self)
    }

    static func seriesLock(_ datastoreId: String, _ seriesInstanceUID: String) -> String {
        "series/\(datastoreId)/\(seriesInstanceUID)"
    }

    private static func datastoreLock(_ datastoreId: String) -> String {
        "datastore/\(datastoreId)"
    }

    // MARK: - Data stores

    public func createDatastore(
        name: String, losslessStorageFormat: LosslessStorageFormat = .htj2k, now: Double
    ) throws -> DatastoreProperties {
        let properties = DatastoreProperties(
            datastoreId: ResourceID.make(), datastoreName: name, datastoreStatus: .active,
            losslessStorageFormat: losslessStorageFormat, createdAt: now, updatedAt: now)
        try write { db in
            try db.execute(
                """
                INSERT INTO datastores (id, name, status, lossless_storage_format, created_at, updated_at)
                VALUES ($1, $2, $3, $4, $5, $6)
                """,
                properties.datastoreId, name, properties.datastoreStatus.rawValue, losslessStorageFormat.rawValue, now, now)
        }
        return properties
    }

    public func datastore(id: String) throws -> DatastoreProperties? {
        try read { db in try db.row("SELECT * FROM datastores WHERE id = $1", id).map(Self.datastore) }
    }

    public func datastores() throws -> [DatastoreProperties] {
        try read { db in
            try db.rows("SELECT * FROM datastores WHERE status != 'DELETED' ORDER BY created_at, id").map(Self.datastore)
        }
    }

    public func datastores(status: DatastoreStatus?, limit: Int, after: PageToken?) throws -> Page<DatastoreProperties> {
        try page(
            of: "datastores", where: [status == nil ? "status != 'DELETED'" : "status = $1"],
            status.map { [.text($0.rawValue)] } ?? [], by: "created_at", descending: false, limit: limit, after: after,
            Self.datastore, key: { ($0.createdAt, $0.datastoreId) })
    }

    /// One page of `table` in `(column, id)` order, read by key from after the token's row: `limit` rows, and the
    /// token of the next page when there are more.
    private func page<Item>(
        of table: String, where conditions: [String], _ arguments: [SQLValue], by column: String, descending: Bool,
        limit: Int, after: PageToken?, _ item: (SQLRow) -> Item, key: (Item) -> (Double, String)
    ) throws -> Page<Item> {
        var conditions = conditions
        var arguments = arguments
        if let after {
            guard case .number(let value) = after.sortValue else { throw ImageSetStoreError(.invalid, "Invalid nextToken") }
            arguments += [.real(value), .text(after.id)]
            let (bound, id, beyond) = (arguments.count - 1, arguments.count, descending ? "<" : ">")
            conditions.append("(\(column) \(beyond) $\(bound) OR (\(column) = $\(bound) AND id \(beyond) $\(id)))")
        }
        let limit = max(1, limit)
        arguments.append(.integer(Int64(limit + 1)))
        let direction = descending ? "DESC" : "ASC"
        let sql = """
            SELECT * FROM \(table) WHERE \(conditions.joined(separator: " AND "))
            ORDER BY \(column) \(direction), id \(direction) LIMIT $\(arguments.count)
            """
        let found = try read { db in try db.rows(sql, arguments).map(item) }
        let items = Array(found.prefix(limit))
        guard found.count > limit, let last = items.last.map(key) else { return Page(items: items, nextToken: nil) }
        return Page(items: items, nextToken: PageToken(sortValue: .number(last.0), id: last.1))
    }

    public func deleteDatastore(id: String, now: Double) throws -> DatastoreProperties {
        try write { db in
            try db.lock(Self.datastoreLock(id))
            guard let row = try db.row("SELECT * FROM datastores WHERE id = $1", id),
                row.string("status") != DatastoreStatus.deleted.rawValue
            else { throw ImageSetStoreError(.notFound, "Data store \(id) does not exist") }
            let imageSets = try db.row(
                "SELECT COUNT(*) AS n FROM image_sets WHERE datastore_id = $1 AND state != 'DELETED'", id)?.int("n") ?? 0
            guard imageSets == 0 else {
                throw ImageSetStoreError(.conflict, "Data store \(id) still holds \(imageSets) image sets; delete them first")
            }
            let activeJobs = try Self.activeJobCount(db, datastoreId: id)
            guard activeJobs == 0 else {
                throw ImageSetStoreError(.conflict, "Data store \(id) has \(activeJobs) import job(s) SUBMITTED or IN_PROGRESS; wait for them to end")
            }
            try db.execute("UPDATE datastores SET status = 'DELETED', updated_at = $1 WHERE id = $2", now, id)
            var properties = Self.datastore(row)
            properties.datastoreStatus = .deleting
            return properties
        }
    }

    private static func datastore(_ row: SQLRow) -> DatastoreProperties {
        DatastoreProperties(
            datastoreId: row.string("id"), datastoreName: row.string("name"),
            datastoreStatus: DatastoreStatus(rawValue: row.string("status")) ?? .active,
            losslessStorageFormat: LosslessStorageFormat(rawValue: row.string("lossless_storage_format")) ?? .htj2k,
            createdAt: row.double("created_at"), updatedAt: row.double("updated_at"))
    }

    // MARK: - Jobs

    public func insertJob(
        _ job: DICOMImportJobProperties, maxActiveJobs: Int
    ) throws -> (job: DICOMImportJobProperties, inserted: Bool) {
        try write { db in
            try db.lock(Self.datastoreLock(job.datastoreId))
            if let row = try db.row(
                "SELECT * FROM jobs WHERE datastore_id = $1 AND client_token = $2", job.datastoreId, job.clientToken)
            {
                return (Self.job(row), false)
            }
            let status = try db.row("SELECT status FROM datastores WHERE id = $1", job.datastoreId)?.string("status")
            guard let status, status != DatastoreStatus.deleted.rawValue else {
                throw ImageSetStoreError(.notFound, "Data store \(job.datastoreId) does not exist")
            }
            guard status == DatastoreStatus.active.rawValue else {
                throw ImageSetStoreError(.conflict, "Data store \(job.datastoreId) is not ACTIVE")
            }
            guard try Self.activeJobCount(db, datastoreId: job.datastoreId) < maxActiveJobs else {
                throw ImageSetStoreError(
                    .quotaExceeded, "Maximum concurrent import jobs per data store (\(maxActiveJobs)) reached")
            }
            try db.execute(
                """
                INSERT INTO jobs (id, datastore_id, name, status, role_arn, client_token, submitted_at, ended_at,
                                  input_uri, output_uri, message, on_workers)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                """,
                job.jobId, job.datastoreId, job.jobName, job.jobStatus.rawValue, job.dataAccessRoleArn,
                job.clientToken, job.submittedAt, job.endedAt, job.inputS3Uri, job.outputS3Uri, job.message,
                job.runsOnWorkers)
            return (job, true)
        }
    }

    /// Jobs of a data store that are SUBMITTED or IN_PROGRESS (a stopped process's too: they resume).
    private static func activeJobCount(_ db: any SQLConnection, datastoreId: String) throws -> Int {
        try db.row(
            "SELECT COUNT(*) AS n FROM jobs WHERE datastore_id = $1 AND status IN ('SUBMITTED', 'IN_PROGRESS')",
            datastoreId)?.int("n") ?? 0
    }

    public func updateJob(_ job: DICOMImportJobProperties) throws {
        try write { db in
            try db.execute(
                "UPDATE jobs SET status = $1, ended_at = $2, message = $3 WHERE id = $4",
                job.jobStatus.rawValue, job.endedAt, job.message, job.jobId)
        }
    }

    public func reopenFailedJob(_ job: DICOMImportJobProperties) throws {
        try write { db in
            try db.execute("DELETE FROM job_lines WHERE job_id = $1 AND kind = $2", job.jobId, JobLine.Kind.serverError.rawValue)
            try db.execute(
                "UPDATE jobs SET status = $1, ended_at = NULL, message = NULL WHERE id = $2 AND status = $3",
                JobStatus.inProgress.rawValue, job.jobId, JobStatus.failed.rawValue)
        }
    }

    public func job(datastoreId: String, jobId: String) throws -> DICOMImportJobProperties? {
        try read { db in
            try db.row("SELECT * FROM jobs WHERE datastore_id = $1 AND id = $2", datastoreId, jobId).map(Self.job)
        }
    }

    public func jobs(
        datastoreId: String, status: JobStatus?, limit: Int, after: PageToken?
    ) throws -> Page<DICOMImportJobProperties> {
        try page(
            of: "jobs", where: ["datastore_id = $1"] + (status == nil ? [] : ["status = $2"]),
            [.text(datastoreId)] + (status.map { [.text($0.rawValue)] } ?? []), by: "submitted_at", descending: true,
            limit: limit, after: after, Self.job, key: { ($0.submittedAt, $0.jobId) })
    }

    public func unfinishedJobs() throws -> [DICOMImportJobProperties] {
        try read { db in
            try db.rows(
                "SELECT * FROM jobs WHERE status IN ('SUBMITTED', 'IN_PROGRESS') AND on_workers = 0 ORDER BY submitted_at, id")
                .map(Self.job)
        }
    }

    static func job(_ row: SQLRow) -> DICOMImportJobProperties {
        DICOMImportJobProperties(
            jobId: row.string("id"), jobName: row.string("name"),
            jobStatus: JobStatus(rawValue: row.string("status")) ?? .failed,
            datastoreId: row.string("datastore_id"), dataAccessRoleArn: row.string("role_arn"),
            clientToken: row.string("client_token"), submittedAt: row.double("submitted_at"),
            endedAt: row.optionalDouble("ended_at"), inputS3Uri: row.string("input_uri"),
            outputS3Uri: row.string("output_uri"), message: row.optionalString("message"),
            progress: ImportJobProgress(
                scannedFiles: row.int("scanned_files"), importedFiles: row.int("imported_files"),
                customerErrors: row.int("customer_errors"), serverErrors: row.int("server_errors"),
                generatedImageSets: row.int("image_sets"), bytesRead: row.int("bytes_read")),
            runsOnWorkers: row.bool("on_workers"))
    }

    private static func record(_ progress: ImportJobProgress, jobId: String, _ db: any SQLConnection) throws {
        try db.execute(
            """
            UPDATE jobs SET scanned_files = $1, imported_files = $2, customer_errors = $3, server_errors = $4,
                            image_sets = $5, bytes_read = $6
            WHERE id = $7
            """,
            progress.scannedFiles, progress.importedFiles, progress.customerErrors, progress.serverErrors,
            progress.generatedImageSets, progress.bytesRead, jobId)
    }

    /// Adds `progress` to the job's (writers working on one job at once each add what they did).
    static func add(_ progress: ImportJobProgress, jobId: String, _ db: any SQLConnection) throws {
        try db.execute(
            """
            UPDATE jobs SET scanned_files = scanned_files + $1, imported_files = imported_files + $2,
                            customer_errors = customer_errors + $3, server_errors = server_errors + $4,
                            image_sets = image_sets + $5, bytes_read = bytes_read + $6
            WHERE id = $7
            """,
            progress.scannedFiles, progress.importedFiles, progress.customerErrors, progress.serverErrors,
            progress.generatedImageSets, progress.bytesRead, jobId)
    }

    // MARK: - Staging

    public func beginAttempt(jobId: String) throws -> Int {
        try write { db in
            try db.execute("UPDATE jobs SET attempts = attempts + 1 WHERE id = $1", jobId)
            guard let attempts = try db.row("SELECT attempts FROM jobs WHERE id = $1", jobId)?.int("attempts") else {
                throw ImageSetStoreError(.notFound, "Job \(jobId) does not exist")
            }
            return attempts
        }
    }

    public func stage(_ instances: [PreparedInstance], lines: [JobLine], jobId: String, progress: ImportJobProgress) throws {
        try write { db in
            try Self.insertStaged(instances, jobId: jobId, db)
            try Self.record(lines, jobId: jobId, db)
            try Self.record(progress, jobId: jobId, db)
        }
    }

    static func insertStaged(_ instances: [PreparedInstance], jobId: String, _ db: any SQLConnection) throws {
        let rows = instances.map { instance -> [SQLValue] in
            [.text(jobId), .text(instance.inputKey), .text(instance.sopInstanceUID), .text(instance.key.seriesInstanceUID),
             .text(instance.key.encoded), .blob(instance.patientJSON), .blob(instance.studyJSON), .blob(instance.seriesJSON),
             .blob(instance.instanceJSON), .blob(StagedLists.encode(instance.frames)), .blob(StagedLists.encode(instance.warnings))]
        }
        for chunk in rows.chunked(by: Self.rowsPerStatement) {
            try Self.insertRows(
                into: """
                    staged_instances (job_id, input_key, sop_uid, series_uid, image_set_key, patient, study, series, instance,
                                      frames, warnings)
                    """,
                columns: 11, rows: Array(chunk), suffix: "", db)
        }
    }

    /// In the order given: `seq` numbers them as they are inserted, row by row within a statement too.
    static func record(_ lines: [JobLine], jobId: String, _ db: any SQLConnection) throws {
        let rows = lines.map { line -> [SQLValue] in [.text(jobId), .text(line.kind.rawValue), .text(line.inputKey), .blob(line.json)] }
        for chunk in rows.chunked(by: rowsPerStatement) {
            try insertRows(into: "job_lines (job_id, kind, input_key, line)", columns: 4, rows: Array(chunk), suffix: "", db)
        }
    }

    public func stagedInstanceCount(jobId: String) throws -> Int {
        try read { db in try db.row("SELECT COUNT(*) AS n FROM staged_instances WHERE job_id = $1", jobId)?.int("n") ?? 0 }
    }

    public func isDone(jobId: String, inputKey: String) throws -> Bool {
        try read { db in
            try db.row(
                """
                SELECT (EXISTS (SELECT 1 FROM staged_instances WHERE job_id = $1 AND input_key = $2)
                    OR EXISTS (SELECT 1 FROM job_lines WHERE job_id = $1 AND input_key = $2 AND kind != 'image-set')) AS done
                """,
                jobId, inputKey)?.bool("done") ?? false
        }
    }

    /// Reads the lines a thousand at a time, by key, so that a job of millions of lines is replayed in bounded memory.
    public func forEachLine(jobId: String, _ body: (JobLine) throws -> Void) throws {
        var after: Int64 = -1
        while true {
            let rows = try read { db in
                try db.rows(
                    "SELECT seq, kind, input_key, line FROM job_lines WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT 1000",
                    jobId, after)
            }
            for row in rows {
                guard let kind = JobLine.Kind(rawValue: row.string("kind")) else { continue }
                try body(JobLine(kind: kind, inputKey: row.string("input_key"), json: row.bytes("line") ?? []))
            }
            guard rows.count == 1000, let last = rows.last else { return }
            after = Int64(last.int("seq"))
        }
    }

    public func stagedSeries(jobId: String) throws -> [String] {
        try read { db in
            try db.rows("SELECT DISTINCT series_uid FROM staged_instances WHERE job_id = $1 ORDER BY series_uid", jobId)
                .map { $0.string("series_uid") }
        }
    }

    public func stagedInstances(jobId: String, seriesInstanceUID: String) throws -> [PreparedInstance] {
        try read { db in
            try db.rows(
                "SELECT * FROM staged_instances WHERE job_id = $1 AND series_uid = $2 ORDER BY input_key",
                jobId, seriesInstanceUID
            ).map { row in
                PreparedInstance(
                    inputKey: row.string("input_key"), sopInstanceUID: row.string("sop_uid"),
                    key: ImageSetKey(encoded: row.string("image_set_key"))
                        ?? ImageSetKey(studyInstanceUID: "", seriesInstanceUID: seriesInstanceUID),
                    patientJSON: row.bytes("patient") ?? [], studyJSON: row.bytes("study") ?? [],
                    seriesJSON: row.bytes("series") ?? [], instanceJSON: row.bytes("instance") ?? [],
                    frames: StagedLists.frames(row.bytes("frames") ?? []),
                    warnings: StagedLists.warnings(row.bytes("warnings") ?? []))
            }
        }
    }

    public func endJob(_ job: DICOMImportJobProperties) throws {
        try write { db in try Self.end(job, db) }
    }

    /// A job that a process ran and that FAILED (a job-level cause: the catalog, the store, the output) keeps its
    /// staged instances and recorded lines, so that `import --resume` continues it (`reopenFailedJob`); their frame
    /// packs stay too, as staged rows name them.
    static func end(_ job: DICOMImportJobProperties, _ db: any SQLConnection) throws {
        try dropWork(ofJob: job.jobId, keepingWhatResumes: job.jobStatus == .failed && !job.runsOnWorkers, db)
        try db.execute(
            "UPDATE jobs SET status = $1, ended_at = $2, message = $3, lease_holder = NULL WHERE id = $4",
            job.jobStatus.rawValue, job.endedAt, job.message, job.jobId)
        try record(job.progress, jobId: job.jobId, db)
    }

    /// What a job kept to resume or share its work. Chunks go first: a chunk's writer takes its chunk's row before
    /// the job's, and so does this.
    static func dropWork(ofJob jobId: String, keepingWhatResumes: Bool = false, _ db: any SQLConnection) throws {
        try db.execute("DELETE FROM chunk_in_flight WHERE job_id = $1", jobId)
        try db.execute("DELETE FROM job_chunks WHERE job_id = $1", jobId)
        guard !keepingWhatResumes else { return }
        try db.execute("DELETE FROM staged_instances WHERE job_id = $1", jobId)
        try db.execute("DELETE FROM job_lines WHERE job_id = $1", jobId)
    }

    // MARK: - Image sets

    public func commitSeries(
        datastoreId: String, jobId: String, seriesInstanceUID: String,
        plan: (_ primary: ImageSetRecord?) throws -> [ImageSetCommit],
        lines: (_ written: [ImageSetRecord]) throws -> (lines: [JobLine], progress: ImportJobProgress)
    ) throws -> [ImageSetRecord] {
        try write { db in
            try Self.commitSeries(
                datastoreId: datastoreId, jobId: jobId, seriesInstanceUID: seriesInstanceUID, plan: plan, lines: lines, db)
        }
    }

    /// `commitSeries`, inside the caller's transaction; `progressAdds`: the progress `lines` returns is added to
    /// the job's, not the job's whole progress (series committed by many workers at once).
    static func commitSeries(
        datastoreId: String, jobId: String, seriesInstanceUID: String,
        plan: (_ primary: ImageSetRecord?) throws -> [ImageSetCommit],
        lines: (_ written: [ImageSetRecord]) throws -> (lines: [JobLine], progress: ImportJobProgress),
        progressAdds: Bool = false, _ db: any SQLConnection
    ) throws -> [ImageSetRecord] {
        try db.lock(Self.seriesLock(datastoreId, seriesInstanceUID))
        let primary = try db.row(
            "SELECT * FROM image_sets WHERE datastore_id = $1 AND series_uid = $2 AND is_primary = 1 AND state != 'DELETED'",
            datastoreId, seriesInstanceUID
        ).map(Self.imageSet)
        let records = try plan(primary).map { try Self.write($0, db) }
        try Self.indexForSearch(records.map(\.imageSetId), db)
        let (made, progress) = try lines(records)
        try Self.record(made, jobId: jobId, db)
        if progressAdds {
            try Self.add(progress, jobId: jobId, db)
        } else {
            try Self.record(progress, jobId: jobId, db)
        }
        try db.execute("DELETE FROM staged_instances WHERE job_id = $1 AND series_uid = $2", jobId, seriesInstanceUID)
        return records
    }

    /// One version, inside the caller's transaction.
    private static func write(_ commit: ImageSetCommit, _ db: any SQLConnection) throws -> ImageSetRecord {
        guard let last = commit.instances.last else {
            throw ImageSetStoreError(.conflict, "an image set version needs at least one instance")
        }
        let pieces = VersionPieces(patient: last.patientJSON, study: last.studyJSON, series: last.seriesJSON)
        var record: ImageSetRecord
        if let imageSetId = commit.imageSetId {
            guard
                let row = try db.row(
                    "SELECT * FROM image_sets WHERE id = $1 AND datastore_id = $2 AND state != 'DELETED'",
                    imageSetId, commit.datastoreId)
            else { throw ImageSetStoreError(.notFound, "Image set \(imageSetId) does not exist") }
            record = Self.imageSet(row)
            record.latestVersion += 1
            record.updatedAt = commit.committedAt
        } else {
            record = ImageSetRecord(
                imageSetId: ResourceID.make(), datastoreId: commit.datastoreId, key: commit.key,
                isPrimary: commit.isPrimary, latestVersion: 1, createdAt: commit.committedAt,
                updatedAt: commit.committedAt, instanceCount: 0)
        }
        record.studyTime = pieces.studyTime
        let imageSetId = record.imageSetId
        let version = record.latestVersion
        // A SOP instance already in the image set is replaced by this version's copy (spec §4.3). Within one
        // version the last copy of a SOP instance (in input-key order) is the one kept.
        var latest: [String: Int] = [:]
        for (index, instance) in commit.instances.enumerated() { latest[instance.sopInstanceUID] = index }
        let instances = commit.instances.enumerated().filter { latest[$0.element.sopInstanceUID] == $0.offset }.map(\.element)
        record.instanceCount += try replaceInstances(
            instances.map { InstanceRow(sop: $0.sopInstanceUID, inputKey: $0.inputKey, jobId: commit.jobId, json: $0.instanceJSON) },
            in: imageSetId, version: version, db)
        let frames = instances.flatMap(\.frames).map { frame -> [SQLValue] in
            [.text(frame.id), .text(commit.datastoreId), .text(imageSetId), .text(frame.blob), .integer(Int64(frame.offset)),
             .integer(Int64(frame.length)), .text(frame.transferSyntaxUID)]
        }
        for chunk in frames.chunked(by: rowsPerStatement) {
            try insertRows(
                into: #"frames (id, datastore_id, image_set_id, blob, "offset", length, transfer_syntax)"#, columns: 7, rows: Array(chunk),
                suffix: "", db)
        }
        try insertVersion(imageSetId, version, jobId: commit.jobId, at: commit.committedAt, pieces, db)
        if commit.imageSetId == nil {
            try insertImageSet(record, db)
        } else {
            try db.execute(
                """
                UPDATE image_sets SET latest_version = $1, updated_at = $2, instance_count = $3, study_time = $4,
                    study_date_time = $5
                WHERE id = $6
                """,
                record.latestVersion, record.updatedAt, record.instanceCount, record.studyTime, record.studyDateTime, imageSetId)
        }
        return record
    }

    /// Rows per multi-row statement: 15 columns × 500 rows stays well under both backends' limits on bound
    /// parameters (SQLite 32,766, PostgreSQL 65,535).
    static let rowsPerStatement = 500

    /// One `INSERT INTO table (columns) VALUES (…), (…) suffix` for `rows`.
    static func insertRows(
        into table: String, columns: Int, rows: [[SQLValue]], suffix: String, _ db: any SQLConnection
    ) throws {
        guard !rows.isEmpty else { return }
        var sql = "INSERT INTO \(table) VALUES "
        for row in 0..<rows.count {
            sql += row == 0 ? "(" : ", ("
            sql += (0..<columns).map { "$\(row * columns + $0 + 1)" }.joined(separator: ", ")
            sql += ")"
        }
        try db.execute(sql + " " + suffix, rows.flatMap { $0 })
    }

    /// An image set that is not DELETED, at `version` when one is given.
    /// - Throws: `notFound`, or `conflict` when its latest version is another.
    private static func liveImageSet(
        _ datastoreId: String, _ imageSetId: String, at version: Int? = nil, _ db: any SQLConnection
    ) throws -> ImageSetRecord {
        guard
            let row = try db.row(
                "SELECT * FROM image_sets WHERE datastore_id = $1 AND id = $2 AND state != 'DELETED'", datastoreId, imageSetId)
        else { throw ImageSetStoreError(.notFound, "Image set \(imageSetId) does not exist") }
        let record = Self.imageSet(row)
        if let version, record.latestVersion != version {
            throw ImageSetStoreError(.conflict, "Image set \(imageSetId) is at version \(record.latestVersion), not \(version)")
        }
        return record
    }

    /// `liveImageSet` read again after taking its series' lock, so that what follows sees the last writer's version.
    private static func lockedImageSet(
        _ datastoreId: String, _ imageSetId: String, at version: Int? = nil, _ db: any SQLConnection
    ) throws -> ImageSetRecord {
        let unlocked = try liveImageSet(datastoreId, imageSetId, db)
        try db.lock(seriesLock(datastoreId, unlocked.key.seriesInstanceUID))
        return try liveImageSet(datastoreId, imageSetId, at: version, db)
    }

    /// A version row: the document is composed when read, so the version keeps only its top-level pieces (and an
    /// empty `document`, which only versions written before the pieces hold).
    private static func insertVersion(
        _ imageSetId: String, _ version: Int, jobId: String?, at time: Double, _ pieces: VersionPieces, _ db: any SQLConnection
    ) throws {
        try db.execute(
            """
            INSERT INTO image_set_versions (image_set_id, version, job_id, created_at, document, patient, study, series)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            """,
            imageSetId, version, jobId, time, [UInt8](), pieces.patient, pieces.study, pieces.series)
    }

    private static func currentInstanceCount(_ imageSetId: String, _ db: any SQLConnection) throws -> Int {
        try db.row(
            "SELECT COUNT(*) AS n FROM instance_versions WHERE image_set_id = $1 AND last_version IS NULL", imageSetId
        )?.int("n") ?? 0
    }

    private static func insertImageSet(_ record: ImageSetRecord, _ db: any SQLConnection) throws {
        try db.execute(
            """
            INSERT INTO image_sets (id, datastore_id, series_uid, image_set_key, is_primary, latest_version, state,
                workflow_status, created_at, updated_at, instance_count, patient_id, accession_number, study_id,
                study_uid, study_date, study_time, study_date_time)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
            """,
            record.imageSetId, record.datastoreId, record.key.seriesInstanceUID, record.key.encoded, record.isPrimary,
            record.latestVersion, record.state, record.workflowStatus, record.createdAt, record.updatedAt,
            record.instanceCount, record.key.patientID, record.key.accessionNumber, record.key.studyID,
            record.key.studyInstanceUID, record.key.studyDate, record.studyTime, record.studyDateTime)
    }

    public func copyImageSet(datastoreId: String, copy: ImageSetCopy, now: Double) throws -> (source: ImageSetRecord, destination: ImageSetRecord) {
        try write { db in
            let source = try Self.lockedImageSet(datastoreId, copy.sourceImageSetId, at: copy.sourceLatestVersion, db)
            var instances = try db.rows(
                """
                SELECT sop_uid, input_key, job_id, instance FROM instance_versions
                WHERE image_set_id = $1 AND last_version IS NULL ORDER BY sop_uid
                """,
                source.imageSetId
            ).map { row in
                InstanceRow(sop: row.string("sop_uid"), inputKey: row.string("input_key"), jobId: row.string("job_id"),
                            json: row.bytes("instance") ?? [])
            }
            if let chosen = copy.instances {
                let present = Set(instances.map(\.sop))
                if let missing = chosen.first(where: { !present.contains($0) }) {
                    throw ImageSetStoreError(.invalid, "Instance \(missing) is not in image set \(source.imageSetId)")
                }
                let wanted = Set(chosen)
                instances.removeAll { !wanted.contains($0.sop) }
            }
            var frameIds: [String] = []
            for instance in instances {
                guard case .object(let members)? = try? JSONValue.parse(instance.json),
                    case .array(let frames)? = members.first(where: { $0.0 == "ImageFrames" })?.1
                else { continue }
                for case .object(let frame) in frames {
                    if case .string(let id)? = frame.first(where: { $0.0 == "ID" })?.1 { frameIds.append(id) }
                }
            }
            guard frameIds.count <= ImageSetCopy.maxFrames else {
                throw ImageSetStoreError(
                    .quotaExceeded, "A copy takes at most \(ImageSetCopy.maxFrames) image frames; these instances have \(frameIds.count)")
            }
            let sourcePieces = try Self.pieces(of: source.imageSetId, version: source.latestVersion, db)

            var destination: ImageSetRecord
            let pieces: VersionPieces
            if let target = copy.destination {
                guard target.imageSetId != source.imageSetId else {
                    throw ImageSetStoreError(.invalid, "An image set cannot be copied into itself")
                }
                destination = try Self.liveImageSet(datastoreId, target.imageSetId, at: target.latestVersion, db)
                guard destination.key.seriesInstanceUID == source.key.seriesInstanceUID else {
                    throw ImageSetStoreError(.invalid, "The destination image set holds another series")
                }
                let destinationPieces = try Self.pieces(of: destination.imageSetId, version: destination.latestVersion, db)
                if !copy.force {
                    for (name, mine, theirs) in [
                        ("Patient", sourcePieces.patient, destinationPieces.patient),
                        ("Study", sourcePieces.study, destinationPieces.study),
                        ("Series", sourcePieces.series, destinationPieces.series),
                    ] where (try? JSONValue.parse(mine)) != (try? JSONValue.parse(theirs)) {
                        throw ImageSetStoreError(
                            .invalid, "\(name)-level metadata of the source and destination image sets differ; copy with force")
                    }
                }
                pieces = destinationPieces
                destination.latestVersion += 1
            } else {
                if copy.promoteToPrimary, try db.row(
                    """
                    SELECT COUNT(*) AS n FROM image_sets
                    WHERE datastore_id = $1 AND series_uid = $2 AND is_primary = 1 AND state != 'DELETED'
                    """,
                    datastoreId, source.key.seriesInstanceUID)?.int("n") ?? 0 > 0
                {
                    throw ImageSetStoreError(.conflict, "Series \(source.key.seriesInstanceUID) already has a primary image set")
                }
                destination = ImageSetRecord(
                    imageSetId: ResourceID.make(), datastoreId: datastoreId, key: source.key, isPrimary: copy.promoteToPrimary,
                    latestVersion: 1, createdAt: now, updatedAt: now, instanceCount: 0, studyTime: source.studyTime)
                pieces = sourcePieces
            }
            let version = destination.latestVersion
            _ = try Self.replaceInstances(instances, in: destination.imageSetId, version: version, db)
            for chunk in frameIds.chunked(by: Self.rowsPerStatement) {
                let list = (0..<chunk.count).map { "$\($0 + 3)" }.joined(separator: ", ")
                try db.execute(
                    """
                    INSERT INTO frames (id, datastore_id, image_set_id, blob, "offset", length, transfer_syntax)
                    SELECT id, datastore_id, $1, blob, "offset", length, transfer_syntax FROM frames
                    WHERE image_set_id = $2 AND id IN (\(list))
                    ON CONFLICT (image_set_id, id) DO NOTHING
                    """,
                    [.text(destination.imageSetId), .text(source.imageSetId)] + chunk.map { .text($0) })
            }
            try Self.insertVersion(destination.imageSetId, version, jobId: nil, at: now, pieces, db)
            destination.instanceCount = try Self.currentInstanceCount(destination.imageSetId, db)
            destination.updatedAt = now
            destination.workflowStatus = "COPIED"
            if copy.destination == nil {
                try Self.insertImageSet(destination, db)
            } else {
                try db.execute(
                    "UPDATE image_sets SET latest_version = $1, updated_at = $2, instance_count = $3, workflow_status = $4 WHERE id = $5",
                    version, now, destination.instanceCount, destination.workflowStatus, destination.imageSetId)
            }
            try Self.indexForSearch([destination.imageSetId], db)
            return (source, destination)
        }
    }

    public func imageSets(datastoreId: String) throws -> [ImageSetRecord] {
        try read { db in
            try db.rows("SELECT * FROM image_sets WHERE datastore_id = $1 ORDER BY updated_at DESC, id", datastoreId)
                .map(Self.imageSet)
        }
    }

    public func searchImageSets(datastoreId: String, query: ImageSetQuery) throws -> Page<ImageSetRecord> {
        let search = try ImageSetSearchSQL(datastoreId: datastoreId, query: query, dialect: dialect)
        let rows = try read { db in try db.rows(search.sql, search.arguments) }
        let records = rows.prefix(query.limit).map(Self.imageSet)
        guard rows.count > query.limit, let last = records.last else { return Page(items: records, nextToken: nil) }
        return Page(items: records, nextToken: search.token(after: last))
    }

    public func imageSetVersions(datastoreId: String, imageSetId: String, limit: Int, after: PageToken?) throws -> Page<ImageSetVersion> {
        var below = Int64.max
        if let after {
            guard case .number(let version) = after.sortValue, after.id == imageSetId, version >= 0, version < 9e18 else {
                throw ImageSetStoreError(.invalid, "Invalid nextToken")
            }
            below = Int64(version)
        }
        let limit = max(1, limit)
        let versions = try read { db in
            try db.rows(
                """
                SELECT v.version, v.created_at, v.job_id FROM image_set_versions v
                JOIN image_sets s ON s.id = v.image_set_id
                WHERE s.datastore_id = $1 AND v.image_set_id = $2 AND v.version < $3 ORDER BY v.version DESC LIMIT $4
                """,
                datastoreId, imageSetId, below, limit + 1
            ).map { ImageSetVersion(version: $0.int("version"), createdAt: $0.double("created_at"), jobId: $0.optionalString("job_id")) }
        }
        let page = Array(versions.prefix(limit))
        guard versions.count > limit, let last = page.last else { return Page(items: page, nextToken: nil) }
        return Page(items: page, nextToken: PageToken(sortValue: .number(Double(last.version)), id: imageSetId))
    }

    public func deleteImageSet(datastoreId: String, imageSetId: String, now: Double) throws -> ImageSetRecord {
        try write { db in
            var record = try Self.lockedImageSet(datastoreId, imageSetId, db)
            try db.execute(
                """
                UPDATE image_sets SET state = 'DELETED', workflow_status = 'DELETED', is_primary = 0, updated_at = $1
                WHERE id = $2
                """,
                now, imageSetId)
            // The row stays as the DELETED state's record; what the image set owned goes with it. Frame packs
            // that no other frame names are then removed by the store's reclaimer.
            for table in ["frames", "instance_versions", "image_set_versions"] {
                try db.execute("DELETE FROM \(table) WHERE image_set_id = $1", imageSetId)
            }
            try Self.indexForSearch([imageSetId], db)
            record.state = "DELETED"
            record.workflowStatus = "DELETED"
            record.updatedAt = now
            return record
        }
    }

    public func updateImageSetMetadata(
        datastoreId: String, imageSetId: String, latestVersion: Int, update: ImageSetUpdate, now: Double
    ) throws -> ImageSetRecord {
        try write { db in
            let unlocked = try Self.liveImageSet(datastoreId, imageSetId, db)
            // With includeStudyImageSets the study's other image sets change too: every series involved is locked
            // first, in one order, so that two such updates cannot wait on each other.
            var companions: [(id: String, series: String)] = []
            if case .changes(let changes) = update, changes.includeStudyImageSets, !changes.study.isEmpty {
                companions = try db.rows(
                    """
                    SELECT id, series_uid FROM image_sets
                    WHERE datastore_id = $1 AND study_uid = $2 AND state != 'DELETED' AND id != $3 ORDER BY id
                    """,
                    datastoreId, unlocked.key.studyInstanceUID, imageSetId
                ).map { ($0.string("id"), $0.string("series_uid")) }
            }
            for series in Set([unlocked.key.seriesInstanceUID] + companions.map(\.series)).sorted() {
                try db.lock(Self.seriesLock(datastoreId, series))
            }
            let record = try Self.liveImageSet(datastoreId, imageSetId, at: latestVersion, db)
            let updated = try Self.addVersion(to: record, update, now: now, db)
            var written = [imageSetId]
            if case .changes(let changes) = update {
                for companion in companions {
                    // Deleted since it was listed: nothing to keep consistent.
                    guard let other = try? Self.liveImageSet(datastoreId, companion.id, db) else { continue }
                    _ = try Self.addVersion(to: other, .changes(changes.studyLevel), now: now, db)
                    written.append(companion.id)
                }
            }
            try Self.indexForSearch(written, db)
            return updated
        }
    }

    /// One UpdateImageSetMetadata version of `record`, inside the caller's transaction (which holds its series' lock).
    private static func addVersion(
        to record: ImageSetRecord, _ update: ImageSetUpdate, now: Double, _ db: any SQLConnection
    ) throws -> ImageSetRecord {
        var record = record
        let imageSetId = record.imageSetId
        let version = record.latestVersion + 1
        var pieces: VersionPieces
        switch update {
        case .changes(let changes):
            do {
                try changes.check(primary: record.isPrimary)
            } catch let error as ImageSetStoreError {
                throw ImageSetStoreError(error.kind, "Image set \(imageSetId): \(error.message)")
            }
            pieces = try Self.pieces(of: imageSetId, version: record.latestVersion, db)
            pieces.patient = try MetadataChanges.apply(changes.patient, toDICOM: pieces.patient)
            pieces.study = try MetadataChanges.apply(changes.study, toDICOM: pieces.study)
            pieces.series = try MetadataChanges.apply(changes.series, toDICOM: pieces.series)
            var changed: [InstanceRow] = []
            for (sop, level) in changes.instances.sorted(by: { $0.key < $1.key }) {
                guard var current = try Self.currentInstance(imageSetId, sop, db) else {
                    throw ImageSetStoreError(.invalid, "Instance \(sop) is not in image set \(imageSetId)")
                }
                current.json = try MetadataChanges.apply(level, toInstance: current.json)
                changed.append(current)
            }
            _ = try Self.replaceInstances(changed, in: imageSetId, version: version, db)
            for sop in changes.removedInstances {
                let ended = try db.execute(
                    "UPDATE instance_versions SET last_version = $1 WHERE image_set_id = $2 AND sop_uid = $3 AND last_version IS NULL",
                    version - 1, imageSetId, sop)
                guard ended == 1 else {
                    throw ImageSetStoreError(.invalid, "Instance \(sop) is not in image set \(imageSetId)")
                }
            }
        case .revert(let target):
            guard (1..<version).contains(target) else {
                throw ImageSetStoreError(.notFound, "Image set \(imageSetId) has no version \(target)")
            }
            pieces = try Self.pieces(of: imageSetId, version: target, db)
            try Self.restoreInstances(of: imageSetId, to: target, as: version, stored: pieces.storedInstances, db)
        }
        record.instanceCount = try Self.currentInstanceCount(imageSetId, db)
        guard record.instanceCount > 0 else {
            throw ImageSetStoreError(.invalid, "An image set keeps at least one instance; delete the image set instead")
        }
        try Self.insertVersion(imageSetId, version, jobId: nil, at: now, pieces, db)
        record.key = pieces.key(seriesInstanceUID: record.key.seriesInstanceUID, seriesNumber: record.key.seriesNumber)
        record.studyTime = pieces.studyTime
        record.latestVersion = version
        record.updatedAt = now
        record.workflowStatus = "UPDATED"
        try db.execute(
            """
            UPDATE image_sets SET latest_version = $1, updated_at = $2, instance_count = $3, workflow_status = $4,
                image_set_key = $5, patient_id = $6, accession_number = $7, study_id = $8, study_uid = $9, study_date = $10,
                study_time = $11, study_date_time = $12
            WHERE id = $13
            """,
            version, now, record.instanceCount, record.workflowStatus, record.key.encoded, record.key.patientID,
            record.key.accessionNumber, record.key.studyID, record.key.studyInstanceUID, record.key.studyDate,
            record.studyTime, record.studyDateTime, imageSetId)
        return record
    }

    /// A version's top-level `DICOM` objects; for a version that stored its whole document (catalogs written
    /// before documents were composed at read), its instances too.
    struct VersionPieces {
        var patient: [UInt8]
        var study: [UInt8]
        var series: [UInt8]
        var storedInstances: [(String, [UInt8])]?

        /// The text of a top-level attribute of a `DICOM` object (values of several, joined by `\`).
        static func text(_ object: [UInt8], _ keyword: String) -> String {
            guard case .object(let members)? = try? JSONValue.parse(object),
                let value = members.first(where: { $0.0 == keyword })?.1
            else { return "" }
            switch value {
            case .string(let text): return text
            case .array(let items): return items.compactMap { if case .string(let text) = $0 { text } else { nil } }.joined(separator: "\\")
            default: return ""
            }
        }

        var studyTime: String { Self.text(study, "StudyTime") }

        /// The image set key these pieces give (key attributes live at the patient and study levels).
        func key(seriesInstanceUID: String, seriesNumber: String) -> ImageSetKey {
            let text = Self.text
            return ImageSetKey(
                studyInstanceUID: text(study, "StudyInstanceUID"), seriesInstanceUID: seriesInstanceUID,
                patientID: text(patient, "PatientID"), patientName: text(patient, "PatientName"),
                studyDate: text(study, "StudyDate"), accessionNumber: text(study, "AccessionNumber"),
                studyID: text(study, "StudyID"), seriesNumber: seriesNumber)
        }
    }

    static func pieces(of imageSetId: String, version: Int, _ db: any SQLConnection) throws -> VersionPieces {
        guard
            let row = try db.row(
                "SELECT document, patient, study, series FROM image_set_versions WHERE image_set_id = $1 AND version = $2",
                imageSetId, version)
        else { throw ImageSetStoreError(.notFound, "Image set \(imageSetId) has no version \(version)") }
        let stored = row.bytes("document") ?? []
        guard !stored.isEmpty else {
            func bytes(_ column: String) -> [UInt8] { row.bytes(column) ?? Array("{}".utf8) }
            return VersionPieces(patient: bytes("patient"), study: bytes("study"), series: bytes("series"))
        }
        // A document stored whole: its pieces are read back out of it.
        guard let text = Compression.gunzip(stored), case .object(let document) = try JSONValue.parse(text),
            case .object(let study)? = document.first(where: { $0.0 == "Study" })?.1,
            case .object(let seriesMap)? = study.first(where: { $0.0 == "Series" })?.1,
            case .object(let series)? = seriesMap.first?.1
        else { throw ImageSetStoreError(.io, "the stored document of image set \(imageSetId) version \(version) cannot be read") }
        func dicom(_ members: [(String, JSONValue)]) -> [UInt8] {
            var out: [UInt8] = []
            (members.first(where: { $0.0 == "DICOM" })?.1 ?? .object([])).write(to: &out)
            return out
        }
        var patient: [(String, JSONValue)] = []
        if case .object(let members)? = document.first(where: { $0.0 == "Patient" })?.1 { patient = members }
        var instances: [(String, [UInt8])] = []
        if case .object(let entries)? = series.first(where: { $0.0 == "Instances" })?.1 {
            for (sop, entry) in entries {
                var out: [UInt8] = []
                entry.write(to: &out)
                instances.append((sop, out))
            }
        }
        return VersionPieces(patient: dicom(patient), study: dicom(study), series: dicom(series), storedInstances: instances)
    }

    private static func currentInstance(_ imageSetId: String, _ sop: String, _ db: any SQLConnection) throws -> InstanceRow? {
        try db.row(
            "SELECT input_key, job_id, instance FROM instance_versions WHERE image_set_id = $1 AND sop_uid = $2 AND last_version IS NULL",
            imageSetId, sop
        ).map { row in InstanceRow(sop: sop, inputKey: row.string("input_key"), jobId: row.string("job_id"), json: row.bytes("instance") ?? []) }
    }

    /// One instance row's contents: its SOP Instance UID, where it came from, its entry of the metadata document.
    struct InstanceRow {
        var sop: String
        var inputKey: String
        var jobId: String
        var json: [UInt8]
    }

    /// Makes `instances` (one per SOP Instance UID) current in the image set as of `version`: the current row of
    /// each that has one ends with the previous version, and a new row starts with this one. A few multi-row
    /// statements, not one per instance: a round trip per row is what a networked catalog cannot afford.
    /// - Returns: how many of them were not in the image set before.
    private static func replaceInstances(
        _ instances: [InstanceRow], in imageSetId: String, version: Int, _ db: any SQLConnection
    ) throws -> Int {
        var added = 0
        let searchColumns = instanceSearchColumns.map(\.column).joined(separator: ", ")
        for chunk in instances.chunked(by: rowsPerStatement) {
            let list = (0..<chunk.count).map { "$\($0 + 3)" }.joined(separator: ", ")
            let retired = try db.execute(
                "UPDATE instance_versions SET last_version = $1 WHERE image_set_id = $2 AND last_version IS NULL AND sop_uid IN (\(list))",
                [.integer(Int64(version - 1)), .text(imageSetId)] + chunk.map { .text($0.sop) })
            added += chunk.count - retired
            try insertRows(
                into: "instance_versions (image_set_id, sop_uid, first_version, last_version, input_key, job_id, instance, \(searchColumns))",
                columns: 7 + instanceSearchColumns.count, rows: chunk.map { instance -> [SQLValue] in
                    [.text(imageSetId), .text(instance.sop), .integer(Int64(version)), .null, .text(instance.inputKey),
                     .text(instance.jobId), .blob(instance.json)] + instanceSearchValues(instance.json)
                },
                suffix: """
                    ON CONFLICT (image_set_id, sop_uid, first_version) DO UPDATE
                        SET last_version = NULL, input_key = excluded.input_key, job_id = excluded.job_id, instance = excluded.instance,
                            \(instanceSearchColumns.map { "\($0.column) = excluded.\($0.column)" }.joined(separator: ", "))
                    """, db)
        }
        return added
    }

    /// Makes the instances of version `target` the current ones, as of `version`: rows of `target` that are still
    /// current stay; the other current rows end; the rest of `target`'s rows start again.
    private static func restoreInstances(
        of imageSetId: String, to target: Int, as version: Int, stored: [(String, [UInt8])]?, _ db: any SQLConnection
    ) throws {
        if let stored {
            try db.execute(
                "UPDATE instance_versions SET last_version = $1 WHERE image_set_id = $2 AND last_version IS NULL",
                version - 1, imageSetId)
            _ = try replaceInstances(
                stored.map { InstanceRow(sop: $0.0, inputKey: "", jobId: "", json: $0.1) }, in: imageSetId, version: version, db)
            return
        }
        let visible = "first_version <= $2 AND (last_version IS NULL OR last_version >= $2)"
        let searchColumns = instanceSearchColumns.map(\.column).joined(separator: ", ")
        try db.execute(
            """
            UPDATE instance_versions SET last_version = $3
            WHERE image_set_id = $1 AND last_version IS NULL AND NOT (\(visible))
            """,
            imageSetId, target, version - 1)
        try db.execute(
            """
            INSERT INTO instance_versions (image_set_id, sop_uid, first_version, last_version, input_key, job_id, instance, \(searchColumns))
            SELECT image_set_id, sop_uid, $3, NULL, input_key, job_id, instance, \(searchColumns) FROM instance_versions
            WHERE image_set_id = $1 AND \(visible) AND last_version IS NOT NULL
            """,
            imageSetId, target, version)
    }

    // MARK: - Tags

    public func tags(resourceArn: String) throws -> [String: String] {
        try read { db in
            let rows = try db.rows("SELECT key, value FROM tags WHERE resource_arn = $1", resourceArn)
            return Dictionary(rows.map { ($0.string("key"), $0.string("value")) }, uniquingKeysWith: { _, last in last })
        }
    }

    public func tagResource(resourceArn: String, tags: [String: String]) throws {
        try write { db in
            for (key, value) in tags {
                try db.execute(
                    """
                    INSERT INTO tags (resource_arn, key, value) VALUES ($1, $2, $3)
                    ON CONFLICT (resource_arn, key) DO UPDATE SET value = excluded.value
                    """,
                    resourceArn, key, value)
            }
        }
    }

    public func untagResource(resourceArn: String, keys: [String]) throws {
        try write { db in
            for key in keys {
                try db.execute("DELETE FROM tags WHERE resource_arn = $1 AND key = $2", resourceArn, key)
            }
        }
    }

    // MARK: - Reads of one image set

    public func imageSet(datastoreId: String, imageSetId: String) throws -> ImageSetRecord? {
        try read { db in
            try db.row("SELECT * FROM image_sets WHERE datastore_id = $1 AND id = $2", datastoreId, imageSetId)
                .map(Self.imageSet)
        }
    }

    public func metadataDocument(datastoreId: String, imageSetId: String, version: Int?) throws -> [UInt8]? {
        try read { db in
            guard let (number, seriesInstanceUID) = try Self.version(datastoreId, imageSetId, version, db) else { return nil }
            let cacheKey = "\(imageSetId)/\(number)"
            if let cached = documents[cacheKey] { return cached }
            switch try Self.pieces(imageSetId, number, db) {
            case .document(let gzip):
                return gzip
            case .pieces(let patient, let study, let series, let instances):
                let document = Compression.gzip(MetadataDocument.compose(
                    datastoreId: datastoreId, imageSetId: imageSetId, seriesInstanceUID: seriesInstanceUID,
                    patient: patient, study: study, series: series, instances: instances))
                documents[cacheKey] = document
                return document
            }
        }
    }

    public func metadataPieces(datastoreId: String, imageSetId: String, version: Int?, sopInstanceUID: String?) throws -> MetadataPieces? {
        try read { db in
            guard let (number, _) = try Self.version(datastoreId, imageSetId, version, db) else { return nil }
            return try Self.pieces(imageSetId, number, sopInstanceUID: sopInstanceUID, db)
        }
    }

    /// The version number (the latest when `version` is nil) and the series of an image set that is not DELETED.
    private static func version(
        _ datastoreId: String, _ imageSetId: String, _ version: Int?, _ db: any SQLConnection
    ) throws -> (Int, String)? {
        try db.row(
            """
            SELECT v.version, s.series_uid FROM image_set_versions v JOIN image_sets s ON s.id = v.image_set_id
            WHERE s.datastore_id = $1 AND v.image_set_id = $2 AND s.state != 'DELETED' AND v.version = COALESCE($3, s.latest_version)
            """,
            datastoreId, imageSetId, version
        ).map { ($0.int("version"), $0.string("series_uid")) }
    }

    /// A version's pieces and the instance entries current in it (or the one of `sopInstanceUID`), in SOP Instance
    /// UID order.
    private static func pieces(
        _ imageSetId: String, _ number: Int, sopInstanceUID: String? = nil, _ db: any SQLConnection
    ) throws -> MetadataPieces {
        guard
            let row = try db.row(
                "SELECT document, patient, study, series FROM image_set_versions WHERE image_set_id = $1 AND version = $2",
                imageSetId, number)
        else { throw ImageSetStoreError(.notFound, "Image set \(imageSetId) has no version \(number)") }
        if let stored = row.bytes("document"), !stored.isEmpty { return .document(gzip: stored) }
        let visible = "image_set_id = $1 AND first_version <= $2 AND (last_version IS NULL OR last_version >= $2)"
        let rows =
            try sopInstanceUID.map { sop in
                try db.rows("SELECT sop_uid, instance FROM instance_versions WHERE \(visible) AND sop_uid = $3", imageSetId, number, sop)
            } ?? db.rows("SELECT sop_uid, instance FROM instance_versions WHERE \(visible) ORDER BY sop_uid", imageSetId, number)
        let instances = rows.map { ($0.string("sop_uid"), $0.bytes("instance") ?? []) }
        func bytes(_ column: String) -> [UInt8] { row.bytes(column) ?? Array("{}".utf8) }
        return .pieces(patient: bytes("patient"), study: bytes("study"), series: bytes("series"), instances: instances)
    }

    public func frame(datastoreId: String, imageSetId: String, frameId: String) throws -> StoredFrame? {
        try read { db in
            try db.row(
                """
                SELECT f.* FROM frames f JOIN image_sets s ON s.id = f.image_set_id
                WHERE f.id = $1 AND f.image_set_id = $2 AND f.datastore_id = $3 AND s.datastore_id = $3
                    AND s.state != 'DELETED'
                """,
                frameId, imageSetId, datastoreId
            ).map {
                StoredFrame(
                    id: $0.string("id"), blob: $0.string("blob"), offset: $0.int("offset"), length: $0.int("length"),
                    transferSyntaxUID: $0.string("transfer_syntax"))
            }
        }
    }

    /// The frame packs that committed frames name, and those that staged instances name (a job to resume).
    public func referencedFrameBlobs() throws -> Set<String> {
        try read { db in
            var names = Set(try db.rows("SELECT DISTINCT blob FROM frames").map { $0.string("blob") })
            // A staged instance lists its frames as JSON arrays [id, blob, offset, length, transfer syntax].
            let staged = switch dialect {
            case .sqlite:
                "SELECT DISTINCT json_extract(frame.value, '$[1]') AS blob FROM staged_instances, json_each(staged_instances.frames) AS frame"
            case .postgres:
                "SELECT DISTINCT frame->>1 AS blob FROM staged_instances, jsonb_array_elements(convert_from(frames, 'UTF8')::jsonb) AS frame"
            }
            names.formUnion(try db.rows(staged).map { $0.string("blob") })
            return names
        }
    }

    /// Which of `blobs` some committed frame names (read by the frames' blob index, a few hundred names a query).
    public func referencedFrameBlobs(among blobs: [String]) throws -> Set<String> {
        var found = Set<String>()
        for chunk in blobs.chunked(by: Self.rowsPerStatement) {
            let list = (1...chunk.count).map { "$\($0)" }.joined(separator: ", ")
            let rows = try read { db in try db.rows("SELECT DISTINCT blob FROM frames WHERE blob IN (\(list))", chunk.map { .text($0) }) }
            found.formUnion(rows.map { $0.string("blob") })
        }
        return found
    }

    /// When the oldest SUBMITTED or IN_PROGRESS job was submitted: packs modified since may belong to a running job
    /// that has not staged them yet.
    public func oldestActiveJobSubmission() throws -> Double? {
        try read { db in
            try db.row("SELECT MIN(submitted_at) AS t FROM jobs WHERE status IN ('SUBMITTED', 'IN_PROGRESS')")?
                .optionalDouble("t")
        }
    }

    /// StudyTime from a version's study-level `DICOM` object.
    public static func studyTime(ofStudy study: [UInt8]) -> String {
        VersionPieces.text(study, "StudyTime")
    }

    static func imageSet(_ row: SQLRow) -> ImageSetRecord {
        ImageSetRecord(
            imageSetId: row.string("id"), datastoreId: row.string("datastore_id"),
            key: ImageSetKey(encoded: row.string("image_set_key"))
                ?? ImageSetKey(studyInstanceUID: "", seriesInstanceUID: row.string("series_uid")),
            isPrimary: row.bool("is_primary"), latestVersion: row.int("latest_version"), state: row.string("state"),
            workflowStatus: row.string("workflow_status"), createdAt: row.double("created_at"),
            updatedAt: row.double("updated_at"), instanceCount: row.int("instance_count"), studyTime: row.string("study_time"))
    }
}

extension Array {
    func chunked(by size: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: size).map { self[$0..<Swift.min(count, $0 + size)] }
    }
}

/// The frame and warning lists of a staged instance, as compact JSON arrays.
enum StagedLists {
    static func encode(_ frames: [StoredFrame]) -> [UInt8] {
        var out: [UInt8] = []
        JSONValue.array(frames.map { frame in
            .array([
                .string(frame.id), .string(frame.blob), .int(Int64(frame.offset)), .int(Int64(frame.length)),
                .string(frame.transferSyntaxUID),
            ])
        }).write(to: &out)
        return out
    }

    static func encode(_ warnings: [ImportWarning]) -> [UInt8] {
        var out: [UInt8] = []
        JSONValue.array(warnings.map { .array([.int(Int64($0.reasonCode)), .string($0.type), .string($0.message)]) })
            .write(to: &out)
        return out
    }

    static func frames(_ bytes: [UInt8]) -> [StoredFrame] {
        guard case .array(let rows)? = try? JSONValue.parse(bytes) else { return [] }
        return rows.compactMap { row in
            guard case .array(let fields) = row, fields.count == 5,
                case .string(let id) = fields[0], case .string(let blob) = fields[1],
                let offset = integer(fields[2]), let length = integer(fields[3]),
                case .string(let syntax) = fields[4]
            else { return nil }
            return StoredFrame(id: id, blob: blob, offset: offset, length: length, transferSyntaxUID: syntax)
        }
    }

    static func warnings(_ bytes: [UInt8]) -> [ImportWarning] {
        guard case .array(let rows)? = try? JSONValue.parse(bytes) else { return [] }
        return rows.compactMap { row in
            guard case .array(let fields) = row, fields.count == 3, let code = integer(fields[0]),
                case .string(let type) = fields[1], case .string(let message) = fields[2]
            else { return nil }
            return ImportWarning(reasonCode: code, type: type, message: message)
        }
    }

    static func integer(_ value: JSONValue) -> Int? {
        switch value {
        case .int(let number): Int(exactly: number)
        case .uint(let number): Int(exactly: number)
        default: nil
        }
    }
}

/// The most recently composed metadata documents, up to `capacity` bytes; the oldest entry goes first.
final class DocumentCache: Sendable {
    private struct Entries {
        var documents: [String: [UInt8]] = [:]
        var order: [String] = []
        var bytes = 0
    }

    private let capacity: Int
    private let entries = Mutex(Entries())

    init(capacity: Int) {
        self.capacity = capacity
    }

    subscript(key: String) -> [UInt8]? {
        get { entries.withLock { $0.documents[key] } }
        set {
            guard let document = newValue, document.count <= capacity / 4 else { return }
            entries.withLock { entries in
                guard entries.documents.updateValue(document, forKey: key) == nil else { return }
                entries.order.append(key)
                entries.bytes += document.count
                while entries.bytes > capacity, !entries.order.isEmpty {
                    let oldest = entries.order.removeFirst()
                    entries.bytes -= entries.documents.removeValue(forKey: oldest)?.count ?? 0
                }
            }
        }
    }
}
