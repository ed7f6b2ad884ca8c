public import DICOMIngest
import DICOMIngestModel
public import DICOMIngestSQL
import Foundation
import GRDB

/// The embedded data store: a folder with a SQLite catalog (`catalog.sqlite`, WAL mode, on GRDB), the frame
/// blobs (`frames/`) and the jobs' journals (`jobs/`). The catalog's logic is `SQLCatalog`'s, shared with
/// PostgreSQL; this type opens and migrates the SQLite file.
///
/// Writes go through GRDB's single writer (`BEGIN IMMEDIATE`, so other processes on the same catalog wait too),
/// which also serializes what `SQLConnection.lock` serializes on PostgreSQL. `synchronous=FULL`: a committed
/// transaction survives a power loss.
public final class SQLiteImageSetStore: SQLBackedImageSetStore {
    public let directory: String
    public let frameStorage: DirectoryFrameStorage
    public let catalog: SQLCatalog
    /// Where the jobs of this store keep their `JobJournal`s.
    public var journalFolder: String { directory + "/jobs" }

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
            let pool = try DatabasePool(path: directory + "/catalog.sqlite", configuration: configuration)
            try Self.migrator.migrate(pool)
            catalog = SQLCatalog(database: GRDBDatabase(pool: pool), dialect: .sqlite, place: directory + "/catalog.sqlite")
            try catalog.indexImageSetsForSearch()
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
        migrator.registerMigration("v11-study-time") { db in
            // DICOMStudyDateAndTime filters and sorts on date and time together (`ImageSetQuery.studyDateTime`).
            // Versions since v9 keep their study piece, which holds StudyTime; older ones sort by date alone.
            try db.execute(
                sql: """
                    ALTER TABLE image_sets ADD COLUMN study_time TEXT NOT NULL DEFAULT '';
                    ALTER TABLE image_sets ADD COLUMN study_date_time TEXT NOT NULL DEFAULT '';
                    """)
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT s.id, s.study_date, v.study FROM image_sets s
                    LEFT JOIN image_set_versions v ON v.image_set_id = s.id AND v.version = s.latest_version
                    """)
            for row in rows {
                let study: Data? = row["study"]
                let time = study.map { SQLCatalog.studyTime(ofStudy: [UInt8]($0)) } ?? ""
                try db.execute(
                    sql: "UPDATE image_sets SET study_time = ?, study_date_time = ? WHERE id = ?",
                    arguments: [time, ImageSetQuery.studyDateTime(date: row["study_date"], time: time), row["id"]])
            }
            try db.execute(
                sql: """
                    DROP INDEX image_sets_by_study_date;
                    CREATE INDEX image_sets_by_study_date_time ON image_sets (datastore_id, study_date_time, id);
                    """)
        }
        migrator.registerMigration("v12-datastore-foreign-keys") { db in
            // Jobs and image sets name their data store (which is never removed, only marked DELETED). SQLite adds
            // a foreign key by rebuilding the table; GRDB runs migrations with foreign keys off (dropping
            // `image_sets` does not cascade to what it owns) and checks every key before committing.
            try db.execute(
                sql: """
                    CREATE TABLE jobs_new (
                        id TEXT PRIMARY KEY, datastore_id TEXT NOT NULL REFERENCES datastores (id), name TEXT NOT NULL,
                        status TEXT NOT NULL, role_arn TEXT NOT NULL, client_token TEXT NOT NULL, submitted_at REAL NOT NULL,
                        ended_at REAL, input_uri TEXT NOT NULL, output_uri TEXT NOT NULL, message TEXT,
                        attempts INTEGER NOT NULL DEFAULT 0, scanned_files INTEGER NOT NULL DEFAULT 0,
                        imported_files INTEGER NOT NULL DEFAULT 0, customer_errors INTEGER NOT NULL DEFAULT 0,
                        server_errors INTEGER NOT NULL DEFAULT 0, image_sets INTEGER NOT NULL DEFAULT 0,
                        bytes_read INTEGER NOT NULL DEFAULT 0);
                    INSERT INTO jobs_new SELECT id, datastore_id, name, status, role_arn, client_token, submitted_at, ended_at,
                        input_uri, output_uri, message, attempts, scanned_files, imported_files, customer_errors, server_errors,
                        image_sets, bytes_read FROM jobs;
                    DROP TABLE jobs;
                    ALTER TABLE jobs_new RENAME TO jobs;
                    CREATE UNIQUE INDEX jobs_by_client_token ON jobs (datastore_id, client_token);
                    CREATE INDEX jobs_by_status ON jobs (status, datastore_id);
                    CREATE INDEX jobs_by_page ON jobs (datastore_id, submitted_at, id);
                    CREATE INDEX jobs_by_status_page ON jobs (datastore_id, status, submitted_at, id);
                    CREATE TABLE image_sets_new (
                        id TEXT PRIMARY KEY, datastore_id TEXT NOT NULL REFERENCES datastores (id), series_uid TEXT NOT NULL,
                        image_set_key TEXT NOT NULL, is_primary INTEGER NOT NULL, latest_version INTEGER NOT NULL,
                        state TEXT NOT NULL, workflow_status TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL,
                        instance_count INTEGER NOT NULL, patient_id TEXT NOT NULL DEFAULT '',
                        accession_number TEXT NOT NULL DEFAULT '', study_id TEXT NOT NULL DEFAULT '',
                        study_uid TEXT NOT NULL DEFAULT '', study_date TEXT NOT NULL DEFAULT '',
                        study_time TEXT NOT NULL DEFAULT '', study_date_time TEXT NOT NULL DEFAULT '');
                    INSERT INTO image_sets_new SELECT id, datastore_id, series_uid, image_set_key, is_primary, latest_version,
                        state, workflow_status, created_at, updated_at, instance_count, patient_id, accession_number, study_id,
                        study_uid, study_date, study_time, study_date_time FROM image_sets;
                    DROP TABLE image_sets;
                    ALTER TABLE image_sets_new RENAME TO image_sets;
                    CREATE UNIQUE INDEX one_primary_per_series ON image_sets (datastore_id, series_uid) WHERE is_primary = 1;
                    CREATE INDEX image_sets_by_updated ON image_sets (datastore_id, updated_at, id);
                    CREATE INDEX image_sets_by_created ON image_sets (datastore_id, created_at, id);
                    CREATE INDEX image_sets_by_study_date_time ON image_sets (datastore_id, study_date_time, id);
                    CREATE INDEX image_sets_by_patient ON image_sets (datastore_id, patient_id, updated_at, id);
                    CREATE INDEX image_sets_by_accession ON image_sets (datastore_id, accession_number, updated_at, id);
                    CREATE INDEX image_sets_by_study_id ON image_sets (datastore_id, study_id, updated_at, id);
                    CREATE INDEX image_sets_by_study ON image_sets (datastore_id, study_uid, updated_at, id);
                    CREATE INDEX image_sets_by_series ON image_sets (datastore_id, series_uid, updated_at, id);
                    CREATE INDEX image_sets_by_primary ON image_sets (datastore_id, is_primary, updated_at, id);
                    """)
        }
        migrator.registerMigration("v13-work-queue") { db in
            // Jobs run by workers (`ImportWorkQueue`), as PostgreSQL's v2-work-queue.
            try db.execute(
                sql: """
                    ALTER TABLE jobs ADD COLUMN on_workers INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE jobs ADD COLUMN listed_objects INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE jobs ADD COLUMN listing_ended INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE jobs ADD COLUMN failure TEXT;
                    ALTER TABLE jobs ADD COLUMN lease_holder TEXT;
                    ALTER TABLE jobs ADD COLUMN lease_expires REAL NOT NULL DEFAULT 0;
                    ALTER TABLE jobs ADD COLUMN served_at REAL NOT NULL DEFAULT 0;
                    ALTER TABLE jobs ADD COLUMN commits_planned INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE jobs ADD COLUMN planned_through TEXT;
                    CREATE INDEX jobs_on_workers ON jobs (submitted_at, id) WHERE on_workers = 1 AND status IN ('SUBMITTED', 'IN_PROGRESS');
                    CREATE TABLE job_chunks (
                        job_id TEXT NOT NULL REFERENCES jobs (id), seq INTEGER NOT NULL, objects BLOB NOT NULL,
                        object_count INTEGER NOT NULL, done INTEGER NOT NULL DEFAULT 0, holder TEXT,
                        lease_expires REAL NOT NULL DEFAULT 0, claims INTEGER NOT NULL DEFAULT 0,
                        abandoned INTEGER NOT NULL DEFAULT 0, kind TEXT NOT NULL DEFAULT 'objects', PRIMARY KEY (job_id, seq));
                    CREATE INDEX open_chunks ON job_chunks (job_id, seq) WHERE done = 0;
                    CREATE TABLE chunk_in_flight (
                        job_id TEXT NOT NULL, seq INTEGER NOT NULL, claim INTEGER NOT NULL, input_key TEXT NOT NULL);
                    CREATE INDEX chunk_in_flight_by_chunk ON chunk_in_flight (job_id, seq, claim, input_key);
                    """)
        }
        migrator.registerMigration("v14-search") { db in
            // QIDO-RS's rows (`SQLCatalog+Search`), as PostgreSQL's v3-search; `indexImageSetsForSearch` fills them.
            try db.execute(sql: SQLCatalog.searchSchema(.sqlite))
        }
        return migrator
    }
}

/// `SQLDatabase` on a GRDB pool: reads on the pool's readers (a WAL snapshot each), writes on its one writer.
struct GRDBDatabase: SQLDatabase {
    let pool: DatabasePool

    func read<T>(_ body: (any SQLConnection) throws -> T) throws -> T {
        try pool.read { db in try body(GRDBConnection(db: db)) }
    }

    func write<T>(_ body: (any SQLConnection) throws -> T) throws -> T {
        try pool.write { db in try body(GRDBConnection(db: db)) }
    }
}

struct GRDBConnection: SQLConnection {
    let db: Database

    var dialect: SQLDialect { .sqlite }

    func execute(_ sql: String, _ arguments: [SQLValue]) throws -> Int {
        let statement = try db.cachedStatement(sql: Self.sqlite(sql))
        try statement.execute(arguments: StatementArguments(arguments.map(Self.databaseValue)))
        return db.changesCount
    }

    func rows(_ sql: String, _ arguments: [SQLValue]) throws -> [SQLRow] {
        let statement = try db.cachedStatement(sql: Self.sqlite(sql))
        let names = statement.columnNames
        let cursor = try Row.fetchCursor(statement, arguments: StatementArguments(arguments.map(Self.databaseValue)))
        var rows: [SQLRow] = []
        while let row = try cursor.next() {
            rows.append(SQLRow(names: names, values: (0..<names.count).map { Self.value(row[$0] as DatabaseValue) }))
        }
        return rows
    }

    /// One writer at a time already.
    func lock(_ key: String) throws {}

    /// `$1` → `?1`: SQLite reads numbered parameters with a question mark.
    static func sqlite(_ sql: String) -> String {
        var out = ""
        out.reserveCapacity(sql.utf8.count)
        var previous: Character = " "
        for character in sql {
            if previous == "$", character.isASCII, character.isNumber {
                out.removeLast()
                out.append("?")
            }
            out.append(character)
            previous = character
        }
        return out
    }

    static func databaseValue(_ value: SQLValue) -> DatabaseValue {
        switch value {
        case .null: .null
        case .integer(let number): number.databaseValue
        case .real(let number): number.databaseValue
        case .text(let text): text.databaseValue
        case .blob(let bytes): Data(bytes).databaseValue
        }
    }

    static func value(_ value: DatabaseValue) -> SQLValue {
        switch value.storage {
        case .null: .null
        case .int64(let number): .integer(number)
        case .double(let number): .real(number)
        case .string(let text): .text(text)
        case .blob(let data): .blob([UInt8](data))
        }
    }
}
