public import DICOMIngest
public import DICOMIngestModel
import Foundation
import GRDB
import Glibc
import Synchronization

/// The embedded data store: a folder with a SQLite catalog (`catalog.sqlite`, WAL mode, on GRDB) and the frame
/// blobs (`frames/`).
///
/// Writes go through GRDB's single writer (`BEGIN IMMEDIATE`, so other processes on the same catalog wait too);
/// a job's commit of one series is one transaction that decides primary or not, adds each version, its instances
/// and its frames, so a crash never leaves a half-written image set visible
/// and concurrent jobs cannot both create one series' primary image set. A running job's instances wait in
/// `staged_instances` until then. `synchronous=FULL`: a committed transaction survives a power loss.
///
/// Versions share their instances: an instance row names the versions it belongs to (`first_version` up to
/// `last_version`, open while current), so a version writes only the instances it adds or replaces, and the metadata
/// document of any version is composed when it is read (`documents` caches the latest few). A commit costs what
/// it changes, not the size of the image set times its versions.
public final class SQLiteImageSetStore: ImageSetStore {
    public let directory: String
    public let frameStorage: DirectoryFrameStorage
    /// Where the jobs of this store keep their `JobJournal`s.
    public var journalFolder: String { directory + "/jobs" }
    private let pool: DatabasePool
    /// Composed metadata documents (gzip) by image set and version; versions never change, so entries never go stale.
    private let documents = DocumentCache(capacity: 64 << 20)

    /// The store folder used when neither `--store` nor `DICOM_INGEST_STORE` names one:
    /// `$XDG_DATA_HOME/dicom-ingest` or `~/.local/share/dicom-ingest`.
    public static func defaultDirectory(environment: [String: String]? = nil) -> String {
        let environment = environment ?? ProcessInfo.processInfo.environment
        if let explicit = environment["DICOM_INGEST_STORE"], !explicit.isEmpty { return explicit }
        if let data = environment["XDG_DATA_HOME"], !data.isEmpty { return data + "/dicom-ingest" }
        let home = environment["HOME"] ?? NSHomeDirectory()
        return home + "/.local/share/dicom-ingest"
    }

    /// Opens (creating if needed) the store in `directory` and migrates its catalog.
    public init(directory: String) throws {
        self.directory = directory
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            var configuration = Configuration()
            configuration.busyMode = .timeout(30)
            // WAL with synchronous=NORMAL may lose the last transactions at a power loss; a SUCCESS line names a
            // version only after its commit returns, so that commit must have reached the disk.
            configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
            pool = try DatabasePool(path: directory + "/catalog.sqlite", configuration: configuration)
            try Self.migrator.migrate(pool)
        } catch {
            throw ImageSetStoreError(.io, "cannot open the data store at \(directory): \(error)")
        }
        frameStorage = DirectoryFrameStorage(root: directory + "/frames")
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE datastores (
                        id TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL,
                        created_at REAL NOT NULL, updated_at REAL NOT NULL);
                    CREATE TABLE jobs (
                        id TEXT PRIMARY KEY, datastore_id TEXT NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL,
                        role_arn TEXT NOT NULL, client_token TEXT NOT NULL, submitted_at REAL NOT NULL, ended_at REAL,
                        input_uri TEXT NOT NULL, output_uri TEXT NOT NULL, message TEXT);
                    CREATE INDEX jobs_by_datastore ON jobs (datastore_id, submitted_at);
                    CREATE TABLE staged_instances (
                        job_id TEXT NOT NULL, input_key TEXT NOT NULL, sop_uid TEXT NOT NULL, series_uid TEXT NOT NULL,
                        image_set_key TEXT NOT NULL, patient BLOB NOT NULL, study BLOB NOT NULL, series BLOB NOT NULL,
                        instance BLOB NOT NULL, frames BLOB NOT NULL, warnings BLOB NOT NULL);
                    CREATE INDEX staged_by_series ON staged_instances (job_id, series_uid);
                    CREATE TABLE image_sets (
                        id TEXT PRIMARY KEY, datastore_id TEXT NOT NULL, series_uid TEXT NOT NULL,
                        image_set_key TEXT NOT NULL, is_primary INTEGER NOT NULL, latest_version INTEGER NOT NULL,
                        state TEXT NOT NULL, workflow_status TEXT NOT NULL, created_at REAL NOT NULL,
                        updated_at REAL NOT NULL, instance_count INTEGER NOT NULL);
                    CREATE UNIQUE INDEX one_primary_per_series ON image_sets (datastore_id, series_uid)
                        WHERE is_primary = 1;
                    CREATE INDEX image_sets_by_datastore ON image_sets (datastore_id, updated_at);
                    CREATE TABLE image_set_versions (
                        image_set_id TEXT NOT NULL, version INTEGER NOT NULL, job_id TEXT, created_at REAL NOT NULL,
                        document BLOB NOT NULL, PRIMARY KEY (image_set_id, version));
                    CREATE TABLE instances (
                        image_set_id TEXT NOT NULL, sop_uid TEXT NOT NULL, input_key TEXT NOT NULL, job_id TEXT NOT NULL,
                        instance BLOB NOT NULL, PRIMARY KEY (image_set_id, sop_uid));
                    CREATE TABLE frames (
                        id TEXT PRIMARY KEY, datastore_id TEXT NOT NULL, image_set_id TEXT NOT NULL,
                        blob TEXT NOT NULL, offset INTEGER NOT NULL, length INTEGER NOT NULL);
                    """)
        }
        migrator.registerMigration("v2-frame-transfer-syntax") { db in
            try db.execute(sql: "ALTER TABLE frames ADD COLUMN transfer_syntax TEXT NOT NULL DEFAULT ''")
        }
        migrator.registerMigration("v3-tags") { db in
            try db.execute(
                sql: """
                    CREATE TABLE tags (
                        resource_arn TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
                        PRIMARY KEY (resource_arn, key));
                    """)
        }
        migrator.registerMigration("v4-lossless-storage-format") { db in
            try db.execute(sql: "ALTER TABLE datastores ADD COLUMN lossless_storage_format TEXT NOT NULL DEFAULT 'HTJ2K'")
        }
        migrator.registerMigration("v5-one-job-per-client-token") { db in
            // Catalogs written before the index may hold repeats of a token (the check was not atomic): each
            // repeat keeps its row under a token of its own.
            try db.execute(
                sql: """
                    UPDATE jobs SET client_token = client_token || '#' || id
                    WHERE rowid NOT IN (SELECT MIN(rowid) FROM jobs GROUP BY datastore_id, client_token);
                    CREATE UNIQUE INDEX jobs_by_client_token ON jobs (datastore_id, client_token);
                    CREATE INDEX jobs_by_status ON jobs (status, datastore_id);
                    CREATE INDEX frames_by_image_set ON frames (image_set_id);
                    """)
        }
        migrator.registerMigration("v6-resumable-jobs") { db in
            try db.execute(
                sql: """
                    ALTER TABLE jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
                    CREATE TABLE job_lines (
                        seq INTEGER PRIMARY KEY, job_id TEXT NOT NULL, kind TEXT NOT NULL, input_key TEXT NOT NULL,
                        line BLOB NOT NULL);
                    CREATE INDEX job_lines_by_job ON job_lines (job_id, seq);
                    CREATE INDEX job_lines_by_key ON job_lines (job_id, input_key);
                    CREATE INDEX staged_by_key ON staged_instances (job_id, input_key);
                    """)
        }
        migrator.registerMigration("v7-job-progress") { db in
            try db.execute(
                sql: """
                    ALTER TABLE jobs ADD COLUMN scanned_files INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE jobs ADD COLUMN imported_files INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE jobs ADD COLUMN customer_errors INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE jobs ADD COLUMN server_errors INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE jobs ADD COLUMN image_sets INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE jobs ADD COLUMN bytes_read INTEGER NOT NULL DEFAULT 0;
                    """)
        }
        migrator.registerMigration("v8-search-columns") { db in
            // SearchImageSets filters and sorts on these (spec §1): a column and an index each, so that a page is
            // read by key instead of loading and filtering every image set of the data store.
            try db.execute(
                sql: """
                    ALTER TABLE image_sets ADD COLUMN patient_id TEXT NOT NULL DEFAULT '';
                    ALTER TABLE image_sets ADD COLUMN accession_number TEXT NOT NULL DEFAULT '';
                    ALTER TABLE image_sets ADD COLUMN study_id TEXT NOT NULL DEFAULT '';
                    ALTER TABLE image_sets ADD COLUMN study_uid TEXT NOT NULL DEFAULT '';
                    ALTER TABLE image_sets ADD COLUMN study_date TEXT NOT NULL DEFAULT '';
                    """)
            let rows = try Row.fetchAll(db, sql: "SELECT id, image_set_key FROM image_sets")
            for row in rows {
                guard let key = ImageSetKey(encoded: row["image_set_key"]) else { continue }
                try db.execute(
                    sql: """
                        UPDATE image_sets SET patient_id = ?, accession_number = ?, study_id = ?, study_uid = ?,
                                              study_date = ?
                        WHERE id = ?
                        """,
                    arguments: [key.patientID, key.accessionNumber, key.studyID, key.studyInstanceUID, key.studyDate, row["id"]])
            }
            try db.execute(
                sql: """
                    DROP INDEX image_sets_by_datastore;
                    CREATE INDEX image_sets_by_updated ON image_sets (datastore_id, updated_at, id);
                    CREATE INDEX image_sets_by_created ON image_sets (datastore_id, created_at, id);
                    CREATE INDEX image_sets_by_study_date ON image_sets (datastore_id, study_date, id);
                    CREATE INDEX image_sets_by_patient ON image_sets (datastore_id, patient_id, updated_at, id);
                    CREATE INDEX image_sets_by_accession ON image_sets (datastore_id, accession_number, updated_at, id);
                    CREATE INDEX image_sets_by_study_id ON image_sets (datastore_id, study_id, updated_at, id);
                    CREATE INDEX image_sets_by_study ON image_sets (datastore_id, study_uid, updated_at, id);
                    CREATE INDEX image_sets_by_series ON image_sets (datastore_id, series_uid, updated_at, id);
                    CREATE INDEX image_sets_by_primary ON image_sets (datastore_id, is_primary, updated_at, id);
                    CREATE INDEX jobs_by_page ON jobs (datastore_id, submitted_at, id);
                    CREATE INDEX jobs_by_status_page ON jobs (datastore_id, status, submitted_at, id);
                    """)
        }
        migrator.registerMigration("v9-versioned-instances") { db in
            // Earlier versions keep the documents they stored (`document` not empty); versions from now on store
            // their top-level pieces and compose the rest from `instance_versions`. Instances carried over are the
            // current ones, as of each image set's latest version.
            try db.execute(
                sql: """
                    CREATE TABLE instance_versions (
                        image_set_id TEXT NOT NULL
                            REFERENCES image_sets (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
                        sop_uid TEXT NOT NULL, first_version INTEGER NOT NULL,
                        last_version INTEGER, input_key TEXT NOT NULL, job_id TEXT NOT NULL, instance BLOB NOT NULL,
                        PRIMARY KEY (image_set_id, sop_uid, first_version));
                    CREATE UNIQUE INDEX current_instances ON instance_versions (image_set_id, sop_uid) WHERE last_version IS NULL;
                    INSERT INTO instance_versions (image_set_id, sop_uid, first_version, last_version, input_key, job_id, instance)
                        SELECT i.image_set_id, i.sop_uid, s.latest_version, NULL, i.input_key, i.job_id, i.instance
                        FROM instances i JOIN image_sets s ON s.id = i.image_set_id;
                    DROP TABLE instances;
                    ALTER TABLE image_set_versions ADD COLUMN patient BLOB;
                    ALTER TABLE image_set_versions ADD COLUMN study BLOB;
                    ALTER TABLE image_set_versions ADD COLUMN series BLOB;
                    """)
        }
        migrator.registerMigration("v10-foreign-keys") { db in
            // What an image set owns names it: a frame or version of no image set cannot be written (checked when
            // the transaction commits, as a new image set's row is written after its instances and frames), and
            // deleting the row deletes them. A frame is keyed by its image set and ID, so a copied instance keeps
            // its frame IDs in the image set it is copied to (CopyImageSet) while the bytes stay where they are.
            // Frames are also indexed by pack, which the pack reclaimer reads.
            try db.execute(
                sql: """
                    CREATE TABLE frames_new (
                        id TEXT NOT NULL, datastore_id TEXT NOT NULL,
                        image_set_id TEXT NOT NULL
                            REFERENCES image_sets (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
                        blob TEXT NOT NULL, offset INTEGER NOT NULL, length INTEGER NOT NULL,
                        transfer_syntax TEXT NOT NULL DEFAULT '', PRIMARY KEY (image_set_id, id));
                    INSERT INTO frames_new (id, datastore_id, image_set_id, blob, offset, length, transfer_syntax)
                        SELECT id, datastore_id, image_set_id, blob, offset, length, transfer_syntax FROM frames;
                    DROP TABLE frames;
                    ALTER TABLE frames_new RENAME TO frames;
                    CREATE INDEX frames_by_blob ON frames (blob);
                    CREATE TABLE image_set_versions_new (
                        image_set_id TEXT NOT NULL
                            REFERENCES image_sets (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
                        version INTEGER NOT NULL, job_id TEXT, created_at REAL NOT NULL, document BLOB NOT NULL,
                        patient BLOB, study BLOB, series BLOB, PRIMARY KEY (image_set_id, version));
                    INSERT INTO image_set_versions_new (image_set_id, version, job_id, created_at, document, patient, study, series)
                        SELECT image_set_id, version, job_id, created_at, document, patient, study, series FROM image_set_versions;
                    DROP TABLE image_set_versions;
                    ALTER TABLE image_set_versions_new RENAME TO image_set_versions;
                    """)
        }
        return migrator
    }

    private func run<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as ImageSetStoreError {
            throw error
        } catch {
            throw ImageSetStoreError(.io, "catalog error: \(error)")
        }
    }

    // MARK: - Data stores

    public func createDatastore(
        name: String, losslessStorageFormat: LosslessStorageFormat = .htj2k, now: Double
    ) throws -> DatastoreProperties {
        let properties = DatastoreProperties(
            datastoreId: ResourceID.make(), datastoreName: name, datastoreStatus: .active,
            losslessStorageFormat: losslessStorageFormat, createdAt: now, updatedAt: now)
        try run {
            try pool.write { db in
                try db.execute(
                    sql: """
                        INSERT INTO datastores (id, name, status, lossless_storage_format, created_at, updated_at)
                        VALUES (?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        properties.datastoreId, name, properties.datastoreStatus.rawValue, losslessStorageFormat.rawValue,
                        now, now,
                    ])
            }
        }
        return properties
    }

    public func datastore(id: String) throws -> DatastoreProperties? {
        try run {
            try pool.read { db in
                try Row.fetchOne(db, sql: "SELECT * FROM datastores WHERE id = ?", arguments: [id]).map(Self.datastore)
            }
        }
    }

    public func datastores() throws -> [DatastoreProperties] {
        try run {
            try pool.read { db in
                try Row.fetchAll(db, sql: "SELECT * FROM datastores WHERE status != 'DELETED' ORDER BY created_at, id")
                    .map(Self.datastore)
            }
        }
    }

    public func deleteDatastore(id: String, now: Double) throws -> DatastoreProperties {
        try run {
            try pool.write { db in
                guard let row = try Row.fetchOne(db, sql: "SELECT * FROM datastores WHERE id = ?", arguments: [id]),
                    row["status"] as String != DatastoreStatus.deleted.rawValue
                else { throw ImageSetStoreError(.notFound, "Data store \(id) does not exist") }
                let imageSets = try Int.fetchOne(
                    db, sql: "SELECT COUNT(*) FROM image_sets WHERE datastore_id = ? AND state != 'DELETED'",
                    arguments: [id]) ?? 0
                guard imageSets == 0 else {
                    throw ImageSetStoreError(.conflict, "Data store \(id) still holds \(imageSets) image sets; delete them first")
                }
                let activeJobs = try Self.activeJobCount(db, datastoreId: id)
                guard activeJobs == 0 else {
                    throw ImageSetStoreError(.conflict, "Data store \(id) has \(activeJobs) import job(s) SUBMITTED or IN_PROGRESS; wait for them to end")
                }
                try db.execute(
                    sql: "UPDATE datastores SET status = 'DELETED', updated_at = ? WHERE id = ?", arguments: [now, id])
                var properties = Self.datastore(row)
                properties.datastoreStatus = .deleting
                return properties
            }
        }
    }

    private static func datastore(_ row: Row) -> DatastoreProperties {
        DatastoreProperties(
            datastoreId: row["id"], datastoreName: row["name"],
            datastoreStatus: DatastoreStatus(rawValue: row["status"]) ?? .active,
            losslessStorageFormat: LosslessStorageFormat(rawValue: row["lossless_storage_format"]) ?? .htj2k,
            createdAt: row["created_at"], updatedAt: row["updated_at"])
    }

    // MARK: - Jobs

    public func insertJob(
        _ job: DICOMImportJobProperties, maxActiveJobs: Int
    ) throws -> (job: DICOMImportJobProperties, inserted: Bool) {
        try run {
            try pool.write { db in
                if let row = try Row.fetchOne(
                    db, sql: "SELECT * FROM jobs WHERE datastore_id = ? AND client_token = ?",
                    arguments: [job.datastoreId, job.clientToken])
                {
                    return (Self.job(row), false)
                }
                let status = try String.fetchOne(
                    db, sql: "SELECT status FROM datastores WHERE id = ?", arguments: [job.datastoreId])
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
                    sql: """
                        INSERT INTO jobs (id, datastore_id, name, status, role_arn, client_token, submitted_at, ended_at,
                                          input_uri, output_uri, message)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        job.jobId, job.datastoreId, job.jobName, job.jobStatus.rawValue, job.dataAccessRoleArn,
                        job.clientToken, job.submittedAt, job.endedAt, job.inputS3Uri, job.outputS3Uri, job.message,
                    ])
                return (job, true)
            }
        }
    }

    /// Jobs of a data store that are SUBMITTED or IN_PROGRESS (a stopped process's too: they resume).
    private static func activeJobCount(_ db: Database, datastoreId: String) throws -> Int {
        try Int.fetchOne(
            db, sql: "SELECT COUNT(*) FROM jobs WHERE datastore_id = ? AND status IN ('SUBMITTED', 'IN_PROGRESS')",
            arguments: [datastoreId]) ?? 0
    }

    public func updateJob(_ job: DICOMImportJobProperties) throws {
        try run {
            try pool.write { db in
                try db.execute(
                    sql: "UPDATE jobs SET status = ?, ended_at = ?, message = ? WHERE id = ?",
                    arguments: [job.jobStatus.rawValue, job.endedAt, job.message, job.jobId])
            }
        }
    }

    public func job(datastoreId: String, jobId: String) throws -> DICOMImportJobProperties? {
        try run {
            try pool.read { db in
                try Row.fetchOne(
                    db, sql: "SELECT * FROM jobs WHERE datastore_id = ? AND id = ?", arguments: [datastoreId, jobId]
                ).map(Self.job)
            }
        }
    }

    public func jobs(datastoreId: String) throws -> [DICOMImportJobProperties] {
        try run {
            try pool.read { db in
                try Row.fetchAll(
                    db, sql: "SELECT * FROM jobs WHERE datastore_id = ? ORDER BY submitted_at DESC, id",
                    arguments: [datastoreId]
                ).map(Self.job)
            }
        }
    }

    public func jobs(
        datastoreId: String, status: JobStatus?, limit: Int, after: PageToken?
    ) throws -> Page<DICOMImportJobProperties> {
        var conditions = ["datastore_id = ?"]
        var arguments: [(any DatabaseValueConvertible)?] = [datastoreId]
        if let status {
            conditions.append("status = ?")
            arguments.append(status.rawValue)
        }
        if let after {
            guard case .number(let submittedAt) = after.sortValue else { throw ImageSetStoreError(.invalid, "Invalid nextToken") }
            conditions.append("(submitted_at < ? OR (submitted_at = ? AND id < ?))")
            arguments += [submittedAt, submittedAt, after.id]
        }
        let limit = max(1, limit)
        arguments.append(limit + 1)
        let jobs = try run {
            try pool.read { db in
                try Row.fetchAll(
                    db,
                    sql: "SELECT * FROM jobs WHERE \(conditions.joined(separator: " AND ")) ORDER BY submitted_at DESC, id DESC LIMIT ?",
                    arguments: StatementArguments(arguments)
                ).map(Self.job)
            }
        }
        let page = Array(jobs.prefix(limit))
        guard jobs.count > limit, let last = page.last else { return Page(items: page, nextToken: nil) }
        return Page(items: page, nextToken: PageToken(sortValue: .number(last.submittedAt), id: last.jobId))
    }

    public func unfinishedJobs() throws -> [DICOMImportJobProperties] {
        try run {
            try pool.read { db in
                try Row.fetchAll(
                    db, sql: "SELECT * FROM jobs WHERE status IN ('SUBMITTED', 'IN_PROGRESS') ORDER BY submitted_at, id"
                ).map(Self.job)
            }
        }
    }

    private static func job(_ row: Row) -> DICOMImportJobProperties {
        DICOMImportJobProperties(
            jobId: row["id"], jobName: row["name"], jobStatus: JobStatus(rawValue: row["status"]) ?? .failed,
            datastoreId: row["datastore_id"], dataAccessRoleArn: row["role_arn"], clientToken: row["client_token"],
            submittedAt: row["submitted_at"], endedAt: row["ended_at"], inputS3Uri: row["input_uri"],
            outputS3Uri: row["output_uri"], message: row["message"],
            progress: ImportJobProgress(
                scannedFiles: row["scanned_files"], importedFiles: row["imported_files"],
                customerErrors: row["customer_errors"], serverErrors: row["server_errors"],
                generatedImageSets: row["image_sets"], bytesRead: row["bytes_read"]))
    }

    private static func record(_ progress: ImportJobProgress, jobId: String, _ db: Database) throws {
        try db.execute(
            sql: """
                UPDATE jobs SET scanned_files = ?, imported_files = ?, customer_errors = ?, server_errors = ?,
                                image_sets = ?, bytes_read = ?
                WHERE id = ?
                """,
            arguments: [
                progress.scannedFiles, progress.importedFiles, progress.customerErrors, progress.serverErrors,
                progress.generatedImageSets, progress.bytesRead, jobId,
            ])
    }

    // MARK: - Staging

    public func beginAttempt(jobId: String) throws -> Int {
        try run {
            try pool.write { db in
                try db.execute(sql: "UPDATE jobs SET attempts = attempts + 1 WHERE id = ?", arguments: [jobId])
                guard let attempts = try Int.fetchOne(db, sql: "SELECT attempts FROM jobs WHERE id = ?", arguments: [jobId]) else {
                    throw ImageSetStoreError(.notFound, "Job \(jobId) does not exist")
                }
                return attempts
            }
        }
    }

    public func stage(_ instances: [PreparedInstance], lines: [JobLine], jobId: String, progress: ImportJobProgress) throws {
        try run {
            try pool.write { db in
                let statement = try db.makeStatement(
                    sql: """
                        INSERT INTO staged_instances (job_id, input_key, sop_uid, series_uid, image_set_key, patient,
                                                      study, series, instance, frames, warnings)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """)
                for instance in instances {
                    try statement.execute(arguments: [
                        jobId, instance.inputKey, instance.sopInstanceUID, instance.key.seriesInstanceUID,
                        instance.key.encoded, Data(instance.patientJSON), Data(instance.studyJSON),
                        Data(instance.seriesJSON), Data(instance.instanceJSON), Self.encode(instance.frames),
                        Self.encode(instance.warnings),
                    ])
                }
                try Self.record(lines, jobId: jobId, db)
                try Self.record(progress, jobId: jobId, db)
            }
        }
    }

    private static func record(_ lines: [JobLine], jobId: String, _ db: Database) throws {
        guard !lines.isEmpty else { return }
        let statement = try db.makeStatement(sql: "INSERT INTO job_lines (job_id, kind, input_key, line) VALUES (?, ?, ?, ?)")
        for line in lines {
            try statement.execute(arguments: [jobId, line.kind.rawValue, line.inputKey, Data(line.json)])
        }
    }

    public func stagedInstanceCount(jobId: String) throws -> Int {
        try run {
            try pool.read { db in
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM staged_instances WHERE job_id = ?", arguments: [jobId]) ?? 0
            }
        }
    }

    public func isDone(jobId: String, inputKey: String) throws -> Bool {
        try run {
            try pool.read { db in
                try Bool.fetchOne(
                    db,
                    sql: """
                        SELECT EXISTS (SELECT 1 FROM staged_instances WHERE job_id = ?1 AND input_key = ?2)
                            OR EXISTS (SELECT 1 FROM job_lines WHERE job_id = ?1 AND input_key = ?2 AND kind != 'image-set')
                        """,
                    arguments: [jobId, inputKey]) ?? false
            }
        }
    }

    public func forEachLine(jobId: String, _ body: (JobLine) throws -> Void) throws {
        try run {
            try pool.read { db in
                let rows = try Row.fetchCursor(
                    db, sql: "SELECT kind, input_key, line FROM job_lines WHERE job_id = ? ORDER BY seq", arguments: [jobId])
                while let row = try rows.next() {
                    let bytes: Data = row["line"]
                    guard let kind = JobLine.Kind(rawValue: row["kind"]) else { continue }
                    try body(JobLine(kind: kind, inputKey: row["input_key"], json: [UInt8](bytes)))
                }
            }
        }
    }

    public func stagedSeries(jobId: String) throws -> [String] {
        try run {
            try pool.read { db in
                try String.fetchAll(
                    db, sql: "SELECT DISTINCT series_uid FROM staged_instances WHERE job_id = ? ORDER BY series_uid",
                    arguments: [jobId])
            }
        }
    }

    public func stagedInstances(jobId: String, seriesInstanceUID: String) throws -> [PreparedInstance] {
        try run {
            try pool.read { db in
                try Row.fetchAll(
                    db,
                    sql: "SELECT * FROM staged_instances WHERE job_id = ? AND series_uid = ? ORDER BY input_key",
                    arguments: [jobId, seriesInstanceUID]
                ).map { row in
                    let patient: Data = row["patient"]
                    let study: Data = row["study"]
                    let series: Data = row["series"]
                    let instance: Data = row["instance"]
                    return PreparedInstance(
                        inputKey: row["input_key"], sopInstanceUID: row["sop_uid"],
                        key: ImageSetKey(encoded: row["image_set_key"])
                            ?? ImageSetKey(studyInstanceUID: "", seriesInstanceUID: seriesInstanceUID),
                        patientJSON: [UInt8](patient), studyJSON: [UInt8](study), seriesJSON: [UInt8](series),
                        instanceJSON: [UInt8](instance), frames: Self.decodeFrames(row["frames"]),
                        warnings: Self.decodeWarnings(row["warnings"]))
                }
            }
        }
    }

    public func endJob(_ job: DICOMImportJobProperties) throws {
        try run {
            try pool.write { db in
                try db.execute(
                    sql: "UPDATE jobs SET status = ?, ended_at = ?, message = ? WHERE id = ?",
                    arguments: [job.jobStatus.rawValue, job.endedAt, job.message, job.jobId])
                try Self.record(job.progress, jobId: job.jobId, db)
                try db.execute(sql: "DELETE FROM staged_instances WHERE job_id = ?", arguments: [job.jobId])
                try db.execute(sql: "DELETE FROM job_lines WHERE job_id = ?", arguments: [job.jobId])
            }
        }
    }

    // MARK: - Image sets

    public func commitSeries(
        datastoreId: String, jobId: String, seriesInstanceUID: String,
        plan: (_ primary: ImageSetRecord?) throws -> [ImageSetCommit],
        lines: (_ written: [ImageSetRecord]) throws -> (lines: [JobLine], progress: ImportJobProgress)
    ) throws -> [ImageSetRecord] {
        try run {
            try pool.write { db in
                let primary = try Row.fetchOne(
                    db,
                    sql: "SELECT * FROM image_sets WHERE datastore_id = ? AND series_uid = ? AND is_primary = 1 AND state != 'DELETED'",
                    arguments: [datastoreId, seriesInstanceUID]
                ).map(Self.imageSet)
                let records = try plan(primary).map { try Self.write($0, db) }
                let (made, progress) = try lines(records)
                try Self.record(made, jobId: jobId, db)
                try Self.record(progress, jobId: jobId, db)
                try db.execute(
                    sql: "DELETE FROM staged_instances WHERE job_id = ? AND series_uid = ?", arguments: [jobId, seriesInstanceUID])
                return records
            }
        }
    }

    /// One version, inside the caller's transaction.
    private static func write(_ commit: ImageSetCommit, _ db: Database) throws -> ImageSetRecord {
        guard let last = commit.instances.last else {
            throw ImageSetStoreError(.conflict, "an image set version needs at least one instance")
        }
        var record: ImageSetRecord
        if let imageSetId = commit.imageSetId {
            guard
                let row = try Row.fetchOne(
                    db, sql: "SELECT * FROM image_sets WHERE id = ? AND datastore_id = ? AND state != 'DELETED'",
                    arguments: [imageSetId, commit.datastoreId])
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
        let imageSetId = record.imageSetId
        let version = record.latestVersion
        // A SOP instance already in the image set is replaced by this version's copy (spec §4.3): its current row
        // ends with the previous version and a new row starts with this one.
        let retire = try db.makeStatement(
            sql: "UPDATE instance_versions SET last_version = ? WHERE image_set_id = ? AND sop_uid = ? AND last_version IS NULL")
        let insertInstance = try db.makeStatement(
            sql: """
                INSERT INTO instance_versions (image_set_id, sop_uid, first_version, last_version, input_key, job_id, instance)
                VALUES (?, ?, ?, NULL, ?, ?, ?)
                ON CONFLICT (image_set_id, sop_uid, first_version) DO UPDATE
                    SET last_version = NULL, input_key = excluded.input_key, job_id = excluded.job_id, instance = excluded.instance
                """)
        let insertFrame = try db.makeStatement(
            sql: "INSERT INTO frames (id, datastore_id, image_set_id, blob, offset, length, transfer_syntax) VALUES (?, ?, ?, ?, ?, ?, ?)")
        for instance in commit.instances {
            try retire.execute(arguments: [version - 1, imageSetId, instance.sopInstanceUID])
            if db.changesCount == 0 { record.instanceCount += 1 }
            try insertInstance.execute(arguments: [
                imageSetId, instance.sopInstanceUID, version, instance.inputKey, commit.jobId, Data(instance.instanceJSON),
            ])
            for frame in instance.frames {
                try insertFrame.execute(arguments: [
                    frame.id, commit.datastoreId, imageSetId, frame.blob, frame.offset, frame.length, frame.transferSyntaxUID,
                ])
            }
        }
        try insertVersion(
            imageSetId, version, jobId: commit.jobId, at: commit.committedAt,
            VersionPieces(patient: last.patientJSON, study: last.studyJSON, series: last.seriesJSON), db)
        if commit.imageSetId == nil {
            try insertImageSet(record, db)
        } else {
            try db.execute(
                sql: "UPDATE image_sets SET latest_version = ?, updated_at = ?, instance_count = ? WHERE id = ?",
                arguments: [record.latestVersion, record.updatedAt, record.instanceCount, imageSetId])
        }
        return record
    }

    /// An image set that is not DELETED, at `version` when one is given.
    /// - Throws: `notFound`, or `conflict` when its latest version is another.
    private static func liveImageSet(_ datastoreId: String, _ imageSetId: String, at version: Int? = nil, _ db: Database) throws -> ImageSetRecord {
        guard
            let row = try Row.fetchOne(
                db, sql: "SELECT * FROM image_sets WHERE datastore_id = ? AND id = ? AND state != 'DELETED'",
                arguments: [datastoreId, imageSetId])
        else { throw ImageSetStoreError(.notFound, "Image set \(imageSetId) does not exist") }
        let record = Self.imageSet(row)
        if let version, record.latestVersion != version {
            throw ImageSetStoreError(.conflict, "Image set \(imageSetId) is at version \(record.latestVersion), not \(version)")
        }
        return record
    }

    /// A version row: the document is composed when read, so the version keeps only its top-level pieces.
    private static func insertVersion(
        _ imageSetId: String, _ version: Int, jobId: String?, at time: Double, _ pieces: VersionPieces, _ db: Database
    ) throws {
        try db.execute(
            sql: """
                INSERT INTO image_set_versions (image_set_id, version, job_id, created_at, document, patient, study, series)
                VALUES (?, ?, ?, ?, x'', ?, ?, ?)
                """,
            arguments: [imageSetId, version, jobId, time, Data(pieces.patient), Data(pieces.study), Data(pieces.series)])
    }

    private static func currentInstanceCount(_ imageSetId: String, _ db: Database) throws -> Int {
        try Int.fetchOne(
            db, sql: "SELECT COUNT(*) FROM instance_versions WHERE image_set_id = ? AND last_version IS NULL", arguments: [imageSetId]) ?? 0
    }

    private static func insertImageSet(_ record: ImageSetRecord, _ db: Database) throws {
        try db.execute(
            sql: """
                INSERT INTO image_sets (id, datastore_id, series_uid, image_set_key, is_primary, latest_version, state,
                    workflow_status, created_at, updated_at, instance_count, patient_id, accession_number, study_id,
                    study_uid, study_date)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                record.imageSetId, record.datastoreId, record.key.seriesInstanceUID, record.key.encoded, record.isPrimary,
                record.latestVersion, record.state, record.workflowStatus, record.createdAt, record.updatedAt,
                record.instanceCount, record.key.patientID, record.key.accessionNumber, record.key.studyID,
                record.key.studyInstanceUID, record.key.studyDate,
            ])
    }

    public func copyImageSet(datastoreId: String, copy: ImageSetCopy, now: Double) throws -> (source: ImageSetRecord, destination: ImageSetRecord) {
        try run {
            try pool.write { db in
                let source = try Self.liveImageSet(datastoreId, copy.sourceImageSetId, at: copy.sourceLatestVersion, db)
                var instances = try Row.fetchAll(
                    db,
                    sql: "SELECT sop_uid, input_key, job_id, instance FROM instance_versions WHERE image_set_id = ? AND last_version IS NULL ORDER BY sop_uid",
                    arguments: [source.imageSetId]
                ).map { row -> (sop: String, inputKey: String, jobId: String, json: Data) in
                    (row["sop_uid"], row["input_key"], row["job_id"], row["instance"])
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
                    guard case .object(let members)? = try? JSONValue.parse([UInt8](instance.json)),
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
                    if copy.promoteToPrimary, try Bool.fetchOne(
                        db,
                        sql: "SELECT EXISTS (SELECT 1 FROM image_sets WHERE datastore_id = ? AND series_uid = ? AND is_primary = 1 AND state != 'DELETED')",
                        arguments: [datastoreId, source.key.seriesInstanceUID]) == true
                    {
                        throw ImageSetStoreError(.conflict, "Series \(source.key.seriesInstanceUID) already has a primary image set")
                    }
                    destination = ImageSetRecord(
                        imageSetId: ResourceID.make(), datastoreId: datastoreId, key: source.key, isPrimary: copy.promoteToPrimary,
                        latestVersion: 1, createdAt: now, updatedAt: now, instanceCount: 0)
                    pieces = sourcePieces
                }
                let version = destination.latestVersion
                for instance in instances {
                    try Self.replaceInstance(
                        destination.imageSetId, instance.sop, version: version, inputKey: instance.inputKey, jobId: instance.jobId,
                        json: [UInt8](instance.json), db)
                }
                if !frameIds.isEmpty {
                    let copyFrame = try db.makeStatement(
                        sql: """
                            INSERT INTO frames (id, datastore_id, image_set_id, blob, offset, length, transfer_syntax)
                            SELECT id, datastore_id, ?, blob, offset, length, transfer_syntax FROM frames
                            WHERE image_set_id = ? AND id = ?
                            ON CONFLICT (image_set_id, id) DO NOTHING
                            """)
                    for id in frameIds {
                        try copyFrame.execute(arguments: [destination.imageSetId, source.imageSetId, id])
                    }
                }
                try Self.insertVersion(destination.imageSetId, version, jobId: nil, at: now, pieces, db)
                destination.instanceCount = try Self.currentInstanceCount(destination.imageSetId, db)
                destination.updatedAt = now
                destination.workflowStatus = "COPIED"
                if copy.destination == nil {
                    try Self.insertImageSet(destination, db)
                } else {
                    try db.execute(
                        sql: "UPDATE image_sets SET latest_version = ?, updated_at = ?, instance_count = ?, workflow_status = ? WHERE id = ?",
                        arguments: [version, now, destination.instanceCount, destination.workflowStatus, destination.imageSetId])
                }
                return (source, destination)
            }
        }
    }

    public func imageSets(datastoreId: String) throws -> [ImageSetRecord] {
        try run {
            try pool.read { db in
                try Row.fetchAll(
                    db, sql: "SELECT * FROM image_sets WHERE datastore_id = ? ORDER BY updated_at DESC, id",
                    arguments: [datastoreId]
                ).map(Self.imageSet)
            }
        }
    }

    public func searchImageSets(datastoreId: String, query: ImageSetQuery) throws -> Page<ImageSetRecord> {
        let search = try SQLiteImageSetSearch(datastoreId: datastoreId, query: query)
        let rows = try run {
            try pool.read { db in try Row.fetchAll(db, sql: search.sql, arguments: StatementArguments(search.arguments)) }
        }
        let records = rows.prefix(query.limit).map(Self.imageSet)
        guard rows.count > query.limit, let last = records.last else { return Page(items: records, nextToken: nil) }
        return Page(items: records, nextToken: search.token(after: last))
    }

    public func imageSetVersions(datastoreId: String, imageSetId: String) throws -> [ImageSetVersion] {
        try run {
            try pool.read { db in
                try Row.fetchAll(
                    db,
                    sql: """
                        SELECT v.version, v.created_at, v.job_id FROM image_set_versions v
                        JOIN image_sets s ON s.id = v.image_set_id
                        WHERE s.datastore_id = ? AND v.image_set_id = ? ORDER BY v.version
                        """,
                    arguments: [datastoreId, imageSetId]
                ).map { ImageSetVersion(version: $0["version"], createdAt: $0["created_at"], jobId: $0["job_id"]) }
            }
        }
    }

    public func deleteImageSet(datastoreId: String, imageSetId: String, now: Double) throws -> ImageSetRecord {
        try run {
            try pool.write { db in
                var record = try Self.liveImageSet(datastoreId, imageSetId, db)
                try db.execute(
                    sql: """
                        UPDATE image_sets SET state = 'DELETED', workflow_status = 'DELETED', is_primary = 0,
                            updated_at = ? WHERE id = ?
                        """,
                    arguments: [now, imageSetId])
                // The row stays as the DELETED state's record; what the image set owned goes with it. Frame packs
                // that no other frame names are then removed by `reclaimUnreferencedFramePacks`.
                for table in ["frames", "instance_versions", "image_set_versions"] {
                    try db.execute(sql: "DELETE FROM \(table) WHERE image_set_id = ?", arguments: [imageSetId])
                }
                record.state = "DELETED"
                record.workflowStatus = "DELETED"
                record.updatedAt = now
                return record
            }
        }
    }

    public func updateImageSetMetadata(
        datastoreId: String, imageSetId: String, latestVersion: Int, update: ImageSetUpdate, now: Double
    ) throws -> ImageSetRecord {
        try run {
            try pool.write { db in
                var record = try Self.liveImageSet(datastoreId, imageSetId, at: latestVersion, db)
                let version = record.latestVersion + 1
                var pieces: VersionPieces
                switch update {
                case .changes(let changes):
                    try changes.check(primary: record.isPrimary)
                    pieces = try Self.pieces(of: imageSetId, version: record.latestVersion, db)
                    pieces.patient = try MetadataChanges.apply(changes.patient, toDICOM: pieces.patient)
                    pieces.study = try MetadataChanges.apply(changes.study, toDICOM: pieces.study)
                    pieces.series = try MetadataChanges.apply(changes.series, toDICOM: pieces.series)
                    for (sop, level) in changes.instances.sorted(by: { $0.key < $1.key }) {
                        guard let current = try Self.currentInstance(imageSetId, sop, db) else {
                            throw ImageSetStoreError(.invalid, "Instance \(sop) is not in image set \(imageSetId)")
                        }
                        try Self.replaceInstance(
                            imageSetId, sop, version: version, inputKey: current.inputKey, jobId: current.jobId,
                            json: try MetadataChanges.apply(level, toInstance: current.json), db)
                    }
                    for sop in changes.removedInstances {
                        try db.execute(
                            sql: "UPDATE instance_versions SET last_version = ? WHERE image_set_id = ? AND sop_uid = ? AND last_version IS NULL",
                            arguments: [version - 1, imageSetId, sop])
                        guard db.changesCount == 1 else {
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
                record.latestVersion = version
                record.updatedAt = now
                record.workflowStatus = "UPDATED"
                try db.execute(
                    sql: """
                        UPDATE image_sets SET latest_version = ?, updated_at = ?, instance_count = ?, workflow_status = ?,
                            image_set_key = ?, patient_id = ?, accession_number = ?, study_id = ?, study_uid = ?, study_date = ?
                        WHERE id = ?
                        """,
                    arguments: [
                        version, now, record.instanceCount, record.workflowStatus, record.key.encoded, record.key.patientID,
                        record.key.accessionNumber, record.key.studyID, record.key.studyInstanceUID, record.key.studyDate,
                        imageSetId,
                    ])
                return record
            }
        }
    }

    /// A version's top-level `DICOM` objects; for a version that stored its whole document (before v9), its
    /// instances too.
    struct VersionPieces {
        var patient: [UInt8]
        var study: [UInt8]
        var series: [UInt8]
        var storedInstances: [(String, [UInt8])]?

        /// The image set key these pieces give (key attributes live at the patient and study levels).
        func key(seriesInstanceUID: String, seriesNumber: String) -> ImageSetKey {
            func text(_ object: [UInt8], _ keyword: String) -> String {
                guard case .object(let members)? = try? JSONValue.parse(object),
                    let value = members.first(where: { $0.0 == keyword })?.1
                else { return "" }
                switch value {
                case .string(let text): return text
                case .array(let items): return items.compactMap { if case .string(let text) = $0 { text } else { nil } }.joined(separator: "\\")
                default: return ""
                }
            }
            return ImageSetKey(
                studyInstanceUID: text(study, "StudyInstanceUID"), seriesInstanceUID: seriesInstanceUID,
                patientID: text(patient, "PatientID"), patientName: text(patient, "PatientName"),
                studyDate: text(study, "StudyDate"), accessionNumber: text(study, "AccessionNumber"),
                studyID: text(study, "StudyID"), seriesNumber: seriesNumber)
        }
    }

    private static func pieces(of imageSetId: String, version: Int, _ db: Database) throws -> VersionPieces {
        guard
            let row = try Row.fetchOne(
                db, sql: "SELECT document, patient, study, series FROM image_set_versions WHERE image_set_id = ? AND version = ?",
                arguments: [imageSetId, version])
        else { throw ImageSetStoreError(.notFound, "Image set \(imageSetId) has no version \(version)") }
        let stored: Data = row["document"]
        guard !stored.isEmpty else {
            func bytes(_ column: String) -> [UInt8] { (row[column] as Data?).map { [UInt8]($0) } ?? Array("{}".utf8) }
            return VersionPieces(patient: bytes("patient"), study: bytes("study"), series: bytes("series"))
        }
        // A document stored whole: its pieces are read back out of it.
        guard let text = Compression.gunzip([UInt8](stored)), case .object(let document) = try JSONValue.parse(text),
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

    private static func currentInstance(_ imageSetId: String, _ sop: String, _ db: Database) throws -> (inputKey: String, jobId: String, json: [UInt8])? {
        try Row.fetchOne(
            db, sql: "SELECT input_key, job_id, instance FROM instance_versions WHERE image_set_id = ? AND sop_uid = ? AND last_version IS NULL",
            arguments: [imageSetId, sop]
        ).map { row in
            let bytes: Data = row["instance"]
            return (row["input_key"], row["job_id"], [UInt8](bytes))
        }
    }

    /// Ends an instance's current row with the previous version and starts a new one with `version`.
    private static func replaceInstance(
        _ imageSetId: String, _ sop: String, version: Int, inputKey: String, jobId: String, json: [UInt8], _ db: Database
    ) throws {
        try db.execute(
            sql: "UPDATE instance_versions SET last_version = ? WHERE image_set_id = ? AND sop_uid = ? AND last_version IS NULL",
            arguments: [version - 1, imageSetId, sop])
        try db.execute(
            sql: """
                INSERT INTO instance_versions (image_set_id, sop_uid, first_version, last_version, input_key, job_id, instance)
                VALUES (?, ?, ?, NULL, ?, ?, ?)
                """,
            arguments: [imageSetId, sop, version, inputKey, jobId, Data(json)])
    }

    /// Makes the instances of version `target` the current ones, as of `version`: rows of `target` that are still
    /// current stay; the other current rows end; the rest of `target`'s rows start again.
    private static func restoreInstances(
        of imageSetId: String, to target: Int, as version: Int, stored: [(String, [UInt8])]?, _ db: Database
    ) throws {
        if let stored {
            try db.execute(
                sql: "UPDATE instance_versions SET last_version = ? WHERE image_set_id = ? AND last_version IS NULL",
                arguments: [version - 1, imageSetId])
            for (sop, json) in stored {
                try replaceInstance(imageSetId, sop, version: version, inputKey: "", jobId: "", json: json, db)
            }
            return
        }
        let visible = "first_version <= ?2 AND (last_version IS NULL OR last_version >= ?2)"
        try db.execute(
            sql: """
                UPDATE instance_versions SET last_version = ?3
                WHERE image_set_id = ?1 AND last_version IS NULL AND NOT (\(visible))
                """,
            arguments: [imageSetId, target, version - 1])
        try db.execute(
            sql: """
                INSERT INTO instance_versions (image_set_id, sop_uid, first_version, last_version, input_key, job_id, instance)
                SELECT image_set_id, sop_uid, ?3, NULL, input_key, job_id, instance FROM instance_versions
                WHERE image_set_id = ?1 AND \(visible) AND last_version IS NOT NULL
                """,
            arguments: [imageSetId, target, version])
    }

    public func tags(resourceArn: String) throws -> [String: String] {
        try run {
            try pool.read { db in
                let rows = try Row.fetchAll(
                    db, sql: "SELECT key, value FROM tags WHERE resource_arn = ?", arguments: [resourceArn])
                return Dictionary(uniqueKeysWithValues: rows.map { ($0["key"] as String, $0["value"] as String) })
            }
        }
    }

    public func tagResource(resourceArn: String, tags: [String: String]) throws {
        try run {
            try pool.write { db in
                for (key, value) in tags {
                    try db.execute(
                        sql: "INSERT OR REPLACE INTO tags (resource_arn, key, value) VALUES (?, ?, ?)",
                        arguments: [resourceArn, key, value])
                }
            }
        }
    }

    public func untagResource(resourceArn: String, keys: [String]) throws {
        try run {
            try pool.write { db in
                for key in keys {
                    try db.execute(
                        sql: "DELETE FROM tags WHERE resource_arn = ? AND key = ?", arguments: [resourceArn, key])
                }
            }
        }
    }

    public func imageSet(datastoreId: String, imageSetId: String) throws -> ImageSetRecord? {
        try run {
            try pool.read { db in
                try Row.fetchOne(
                    db, sql: "SELECT * FROM image_sets WHERE datastore_id = ? AND id = ?",
                    arguments: [datastoreId, imageSetId]
                ).map(Self.imageSet)
            }
        }
    }

    public func metadataDocument(datastoreId: String, imageSetId: String, version: Int?) throws -> [UInt8]? {
        try run {
            try pool.read { db in
                let sql = """
                    SELECT v.version, v.document, v.patient, v.study, v.series, s.series_uid
                    FROM image_set_versions v JOIN image_sets s ON s.id = v.image_set_id
                    WHERE s.datastore_id = ? AND v.image_set_id = ? AND s.state != 'DELETED'
                        AND v.version = COALESCE(?, s.latest_version)
                    """
                guard let row = try Row.fetchOne(db, sql: sql, arguments: [datastoreId, imageSetId, version]) else { return nil }
                let stored: Data = row["document"]
                if !stored.isEmpty { return [UInt8](stored) }
                let number: Int = row["version"]
                let cacheKey = "\(imageSetId)/\(number)"
                if let cached = documents[cacheKey] { return cached }
                let instances = try Row.fetchAll(
                    db,
                    sql: """
                        SELECT sop_uid, instance FROM instance_versions
                        WHERE image_set_id = ?1 AND first_version <= ?2 AND (last_version IS NULL OR last_version >= ?2)
                        ORDER BY sop_uid
                        """,
                    arguments: [imageSetId, number]
                ).map { instance -> (String, [UInt8]) in
                    let bytes: Data = instance["instance"]
                    return (instance["sop_uid"], [UInt8](bytes))
                }
                func bytes(_ column: String) -> [UInt8] { (row[column] as Data?).map { [UInt8]($0) } ?? Array("{}".utf8) }
                let document = Compression.gzip(MetadataDocument.compose(
                    datastoreId: datastoreId, imageSetId: imageSetId, seriesInstanceUID: row["series_uid"],
                    patient: bytes("patient"), study: bytes("study"), series: bytes("series"), instances: instances))
                documents[cacheKey] = document
                return document
            }
        }
    }

    public func frame(datastoreId: String, imageSetId: String, frameId: String) throws -> StoredFrame? {
        try run {
            try pool.read { db in
                try Row.fetchOne(
                    db,
                    sql: """
                        SELECT f.* FROM frames f JOIN image_sets s ON s.id = f.image_set_id
                        WHERE f.id = ? AND f.image_set_id = ? AND f.datastore_id = ? AND s.datastore_id = ?
                            AND s.state != 'DELETED'
                        """,
                    arguments: [frameId, imageSetId, datastoreId, datastoreId]
                ).map {
                    StoredFrame(
                        id: $0["id"], blob: $0["blob"], offset: $0["offset"], length: $0["length"],
                        transferSyntaxUID: $0["transfer_syntax"])
                }
            }
        }
    }

    private static func imageSet(_ row: Row) -> ImageSetRecord {
        ImageSetRecord(
            imageSetId: row["id"], datastoreId: row["datastore_id"],
            key: ImageSetKey(encoded: row["image_set_key"]) ?? ImageSetKey(studyInstanceUID: "", seriesInstanceUID: row["series_uid"]),
            isPrimary: row["is_primary"], latestVersion: row["latest_version"], state: row["state"],
            workflowStatus: row["workflow_status"], createdAt: row["created_at"], updatedAt: row["updated_at"],
            instanceCount: row["instance_count"])
    }

    // MARK: - Frame packs

    /// What `reclaimUnreferencedFramePacks` removed.
    public struct Reclaimed: Hashable, Sendable {
        public var packs: Int
        public var bytes: Int

        public init(packs: Int = 0, bytes: Int = 0) {
            self.packs = packs
            self.bytes = bytes
        }
    }

    /// Deletes frame packs that nothing in the catalog references: packs of jobs that failed or were killed
    /// before their commit, and of instances that failed after their frames were written.
    ///
    /// A pack is kept when a committed frame or a staged instance (a job to resume) names it, or when it was
    /// modified after the oldest SUBMITTED or IN_PROGRESS job was submitted (a running job, in this process or
    /// another, may be writing it and not have staged it yet). Safe to run at any time.
    public func reclaimUnreferencedFramePacks(now: Double? = nil) throws -> Reclaimed {
        let now = now ?? Date().timeIntervalSince1970
        let (referenced, cutoff) = try run {
            try pool.read { db in
                var names = Set(try String.fetchAll(db, sql: "SELECT DISTINCT blob FROM frames"))
                names.formUnion(try String.fetchAll(
                    db,
                    sql: """
                        SELECT DISTINCT json_extract(frame.value, '$[1]') FROM staged_instances, json_each(staged_instances.frames) AS frame
                        """))
                let oldestActive = try Double.fetchOne(
                    db, sql: "SELECT MIN(submitted_at) FROM jobs WHERE status IN ('SUBMITTED', 'IN_PROGRESS')")
                return (names, min(now, oldestActive ?? now))
            }
        }
        var reclaimed = Reclaimed()
        let root = frameStorage.root
        guard let walker = FileManager.default.enumerator(atPath: root) else { return reclaimed }
        while let relative = walker.nextObject() as? String {
            guard relative.hasSuffix(".frames"), !referenced.contains(relative) else { continue }
            var status = stat()
            // A second of slack for file systems with coarse timestamps.
            guard stat(root + "/" + relative, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG,
                Double(status.st_mtim.tv_sec) < cutoff - 1
            else { continue }
            guard unlink(root + "/" + relative) == 0 else {
                throw ImageSetStoreError(.io, "cannot remove frame pack \(relative): \(String(cString: strerror(errno)))")
            }
            reclaimed.packs += 1
            reclaimed.bytes += Int(status.st_size)
        }
        return reclaimed
    }

    // MARK: - Staged frame and warning lists

    private static func encode(_ frames: [StoredFrame]) -> Data {
        var out: [UInt8] = []
        JSONValue.array(frames.map { frame in
            .array([
                .string(frame.id), .string(frame.blob), .int(Int64(frame.offset)), .int(Int64(frame.length)),
                .string(frame.transferSyntaxUID),
            ])
        }).write(to: &out)
        return Data(out)
    }

    private static func encode(_ warnings: [ImportWarning]) -> Data {
        var out: [UInt8] = []
        JSONValue.array(warnings.map { .array([.int(Int64($0.reasonCode)), .string($0.type), .string($0.message)]) })
            .write(to: &out)
        return Data(out)
    }

    private static func decodeFrames(_ data: Data) -> [StoredFrame] {
        guard let rows = try? JSONSerialization.jsonObject(with: data) as? [[Any]] else { return [] }
        return rows.compactMap { row in
            guard row.count == 5, let id = row[0] as? String, let blob = row[1] as? String,
                let offset = (row[2] as? NSNumber)?.intValue, let length = (row[3] as? NSNumber)?.intValue,
                let syntax = row[4] as? String
            else { return nil }
            return StoredFrame(id: id, blob: blob, offset: offset, length: length, transferSyntaxUID: syntax)
        }
    }

    private static func decodeWarnings(_ data: Data) -> [ImportWarning] {
        guard let rows = try? JSONSerialization.jsonObject(with: data) as? [[Any]] else { return [] }
        return rows.compactMap { row in
            guard row.count == 3, let code = (row[0] as? NSNumber)?.intValue, let type = row[1] as? String,
                let message = row[2] as? String
            else { return nil }
            return ImportWarning(reasonCode: code, type: type, message: message)
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
