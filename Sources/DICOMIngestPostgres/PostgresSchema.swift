import DICOMIngestSQL

/// The catalog's tables on PostgreSQL: the same tables, columns, indexes and foreign keys as the SQLite catalog's
/// migrations end with (see `SQLiteImageSetStore.migrator`).
///
/// Text is compared byte by byte (`COLLATE "C"`), as SQLite does, so that every listing sorts the same on both
/// backends (SOP Instance UIDs in a metadata document, page keys) whatever the database's locale. Integers are
/// 64-bit and times `DOUBLE PRECISION` (seconds since 1970), as in SQLite.
enum PostgresSchema {
    /// Migrations in order; one that has run is never edited, a change is a new entry.
    static let migrations: [(name: String, sql: String)] = [
        ("v1-catalog", v1), ("v2-work-queue", v2), ("v3-search", SQLCatalog.searchSchema(.postgres)),
    ]

    private static let text = "TEXT COLLATE \"C\""

    private static let v1 = """
        CREATE TABLE datastores (
            id \(text) PRIMARY KEY, name \(text) NOT NULL, status \(text) NOT NULL,
            lossless_storage_format \(text) NOT NULL DEFAULT 'HTJ2K',
            created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL);
        CREATE TABLE jobs (
            id \(text) PRIMARY KEY, datastore_id \(text) NOT NULL REFERENCES datastores (id),
            name \(text) NOT NULL, status \(text) NOT NULL, role_arn \(text) NOT NULL, client_token \(text) NOT NULL,
            submitted_at DOUBLE PRECISION NOT NULL, ended_at DOUBLE PRECISION, input_uri \(text) NOT NULL,
            output_uri \(text) NOT NULL, message \(text), attempts BIGINT NOT NULL DEFAULT 0,
            scanned_files BIGINT NOT NULL DEFAULT 0, imported_files BIGINT NOT NULL DEFAULT 0,
            customer_errors BIGINT NOT NULL DEFAULT 0, server_errors BIGINT NOT NULL DEFAULT 0,
            image_sets BIGINT NOT NULL DEFAULT 0, bytes_read BIGINT NOT NULL DEFAULT 0);
        CREATE UNIQUE INDEX jobs_by_client_token ON jobs (datastore_id, client_token);
        CREATE INDEX jobs_by_status ON jobs (status, datastore_id);
        CREATE INDEX jobs_by_page ON jobs (datastore_id, submitted_at, id);
        CREATE INDEX jobs_by_status_page ON jobs (datastore_id, status, submitted_at, id);
        CREATE TABLE staged_instances (
            job_id \(text) NOT NULL, input_key \(text) NOT NULL, sop_uid \(text) NOT NULL, series_uid \(text) NOT NULL,
            image_set_key \(text) NOT NULL, patient BYTEA NOT NULL, study BYTEA NOT NULL, series BYTEA NOT NULL,
            instance BYTEA NOT NULL, frames BYTEA NOT NULL, warnings BYTEA NOT NULL);
        CREATE INDEX staged_by_series ON staged_instances (job_id, series_uid);
        CREATE INDEX staged_by_key ON staged_instances (job_id, input_key);
        CREATE TABLE job_lines (
            seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, job_id \(text) NOT NULL, kind \(text) NOT NULL,
            input_key \(text) NOT NULL, line BYTEA NOT NULL);
        CREATE INDEX job_lines_by_job ON job_lines (job_id, seq);
        CREATE INDEX job_lines_by_key ON job_lines (job_id, input_key);
        CREATE TABLE image_sets (
            id \(text) PRIMARY KEY, datastore_id \(text) NOT NULL REFERENCES datastores (id),
            series_uid \(text) NOT NULL, image_set_key \(text) NOT NULL, is_primary BIGINT NOT NULL,
            latest_version BIGINT NOT NULL, state \(text) NOT NULL, workflow_status \(text) NOT NULL,
            created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL, instance_count BIGINT NOT NULL,
            patient_id \(text) NOT NULL DEFAULT '', accession_number \(text) NOT NULL DEFAULT '',
            study_id \(text) NOT NULL DEFAULT '', study_uid \(text) NOT NULL DEFAULT '',
            study_date \(text) NOT NULL DEFAULT '', study_time \(text) NOT NULL DEFAULT '',
            study_date_time \(text) NOT NULL DEFAULT '');
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
        CREATE TABLE image_set_versions (
            image_set_id \(text) NOT NULL
                REFERENCES image_sets (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
            version BIGINT NOT NULL, job_id \(text), created_at DOUBLE PRECISION NOT NULL, document BYTEA NOT NULL,
            patient BYTEA, study BYTEA, series BYTEA, PRIMARY KEY (image_set_id, version));
        CREATE TABLE instance_versions (
            image_set_id \(text) NOT NULL
                REFERENCES image_sets (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
            sop_uid \(text) NOT NULL, first_version BIGINT NOT NULL, last_version BIGINT,
            input_key \(text) NOT NULL, job_id \(text) NOT NULL, instance BYTEA NOT NULL,
            PRIMARY KEY (image_set_id, sop_uid, first_version));
        CREATE UNIQUE INDEX current_instances ON instance_versions (image_set_id, sop_uid) WHERE last_version IS NULL;
        CREATE TABLE frames (
            id \(text) NOT NULL, datastore_id \(text) NOT NULL,
            image_set_id \(text) NOT NULL
                REFERENCES image_sets (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
            blob \(text) NOT NULL, "offset" BIGINT NOT NULL, length BIGINT NOT NULL,
            transfer_syntax \(text) NOT NULL DEFAULT '', PRIMARY KEY (image_set_id, id));
        CREATE INDEX frames_by_blob ON frames (blob);
        CREATE TABLE tags (
            resource_arn \(text) NOT NULL, key \(text) NOT NULL, value \(text) NOT NULL,
            PRIMARY KEY (resource_arn, key));
        """

    /// Jobs run by workers (`ImportWorkQueue`): the job's lease, how far its listing got, and its chunks.
    private static let v2 = """
        ALTER TABLE jobs ADD COLUMN on_workers BIGINT NOT NULL DEFAULT 0;
        ALTER TABLE jobs ADD COLUMN listed_objects BIGINT NOT NULL DEFAULT 0;
        ALTER TABLE jobs ADD COLUMN listing_ended BIGINT NOT NULL DEFAULT 0;
        ALTER TABLE jobs ADD COLUMN failure \(text);
        ALTER TABLE jobs ADD COLUMN lease_holder \(text);
        ALTER TABLE jobs ADD COLUMN lease_expires DOUBLE PRECISION NOT NULL DEFAULT 0;
        ALTER TABLE jobs ADD COLUMN served_at DOUBLE PRECISION NOT NULL DEFAULT 0;
        ALTER TABLE jobs ADD COLUMN commits_planned BIGINT NOT NULL DEFAULT 0;
        ALTER TABLE jobs ADD COLUMN planned_through \(text);
        CREATE INDEX jobs_on_workers ON jobs (submitted_at, id) WHERE on_workers = 1 AND status IN ('SUBMITTED', 'IN_PROGRESS');
        CREATE TABLE job_chunks (
            job_id \(text) NOT NULL REFERENCES jobs (id), seq BIGINT NOT NULL, objects BYTEA NOT NULL,
            object_count BIGINT NOT NULL, done BIGINT NOT NULL DEFAULT 0, holder \(text),
            lease_expires DOUBLE PRECISION NOT NULL DEFAULT 0, claims BIGINT NOT NULL DEFAULT 0,
            abandoned BIGINT NOT NULL DEFAULT 0, kind \(text) NOT NULL DEFAULT 'objects', PRIMARY KEY (job_id, seq));
        CREATE INDEX open_chunks ON job_chunks (job_id, seq) WHERE done = 0;
        CREATE TABLE chunk_in_flight (
            job_id \(text) NOT NULL, seq BIGINT NOT NULL, claim BIGINT NOT NULL, input_key \(text) NOT NULL);
        CREATE INDEX chunk_in_flight_by_chunk ON chunk_in_flight (job_id, seq, claim, input_key);
        """

    /// Creates the schema if needed and runs the migrations it has not run, in one transaction under a lock, so
    /// that processes starting together migrate once.
    static func migrate(_ database: any SQLDatabase, schema: String) throws {
        try database.write { db in
            try db.lock("dicom-ingest schema migration")
            try db.execute("CREATE SCHEMA IF NOT EXISTS \(schema)", [])
            try db.execute(
                "CREATE TABLE IF NOT EXISTS \(schema).catalog_migrations (name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
                [])
            let applied = Set(try db.rows("SELECT name FROM \(schema).catalog_migrations", []).map { $0.string("name") })
            for migration in migrations where !applied.contains(migration.name) {
                try db.execute("SET LOCAL search_path TO \(schema)", [])
                for statement in migration.sql.split(separator: ";") where !statement.allSatisfy(\.isWhitespace) {
                    try db.execute(String(statement), [])
                }
                try db.execute("INSERT INTO \(schema).catalog_migrations (name) VALUES ($1)", [.text(migration.name)])
            }
        }
    }
}
