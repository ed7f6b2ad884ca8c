public import DICOMIngest
import DICOMIngestModel

/// QIDO-RS in the catalog (`../shared/spec/dicomweb.md` §3): typed rows kept beside the image sets, so that a
/// search runs on indexes and reads no document.
/// - `search_series`: one row per live image set (primary or not), the study and series values of its latest
///   version.
/// - `search_studies`: one row per study of a data store, from its primary image sets' rows: the values of the
///   most recently updated one, the modalities, series and instances of all.
/// - `instance_versions` carries each instance row's own values (`SearchAttribute.held(at: .instance)`).
///
/// Every write of an image set version rebuilds that image set's series row and its studies' rows in the same
/// transaction, under the series lock the write holds and then a lock per study, taken last and in order.
extension SQLCatalog {
    /// The search tables and columns, the same on both backends but for their type names.
    public static func searchSchema(_ dialect: SQLDialect) -> String {
        let (text, integer, real) =
            dialect == .postgres ? ("TEXT COLLATE \"C\"", "BIGINT", "DOUBLE PRECISION") : ("TEXT", "INTEGER", "REAL")
        let studyColumns = """
            study_uid \(text) NOT NULL, study_date \(text) NOT NULL, study_time \(text) NOT NULL,
            accession_number \(text) NOT NULL, referring_physician_name \(text) NOT NULL,
            referring_physician_name_words \(text) NOT NULL, study_description \(text) NOT NULL, study_id \(text) NOT NULL,
            patient_name \(text) NOT NULL, patient_name_words \(text) NOT NULL, patient_id \(text) NOT NULL,
            patient_birth_date \(text) NOT NULL, patient_birth_time \(text) NOT NULL, patient_sex \(text) NOT NULL
            """
        return """
            CREATE TABLE search_series (
                image_set_id \(text) PRIMARY KEY, datastore_id \(text) NOT NULL, is_primary \(integer) NOT NULL,
                updated_at \(real) NOT NULL, instance_count \(integer) NOT NULL, \(studyColumns),
                series_uid \(text) NOT NULL, modality \(text) NOT NULL, series_number \(integer),
                series_description \(text) NOT NULL, series_date \(text) NOT NULL, series_time \(text) NOT NULL);
            CREATE INDEX search_series_by_study ON search_series (datastore_id, study_uid, is_primary);
            CREATE INDEX search_series_by_series ON search_series (datastore_id, series_uid);
            CREATE INDEX search_series_by_number ON search_series (datastore_id, is_primary, series_number, series_uid);
            CREATE INDEX search_series_by_patient ON search_series (datastore_id, patient_id);
            CREATE TABLE search_studies (
                datastore_id \(text) NOT NULL, image_set_id \(text) NOT NULL, updated_at \(real) NOT NULL,
                series_count \(integer) NOT NULL, instance_count \(integer) NOT NULL, modalities \(text) NOT NULL,
                \(studyColumns), PRIMARY KEY (datastore_id, study_uid));
            CREATE INDEX search_studies_by_updated ON search_studies (datastore_id, updated_at, study_uid);
            CREATE INDEX search_studies_by_patient ON search_studies (datastore_id, patient_id, updated_at, study_uid);
            CREATE INDEX search_studies_by_accession ON search_studies (datastore_id, accession_number, updated_at, study_uid);
            CREATE INDEX search_studies_by_date ON search_studies (datastore_id, study_date, updated_at, study_uid);
            ALTER TABLE instance_versions ADD COLUMN sop_class_uid \(text) NOT NULL DEFAULT '';
            ALTER TABLE instance_versions ADD COLUMN instance_number \(integer);
            ALTER TABLE instance_versions ADD COLUMN pps_start_date \(text) NOT NULL DEFAULT '';
            ALTER TABLE instance_versions ADD COLUMN pps_start_time \(text) NOT NULL DEFAULT '';
            ALTER TABLE instance_versions ADD COLUMN pixel_rows \(integer);
            ALTER TABLE instance_versions ADD COLUMN pixel_columns \(integer);
            ALTER TABLE instance_versions ADD COLUMN bits_allocated \(integer);
            ALTER TABLE instance_versions ADD COLUMN number_of_frames \(integer);
            CREATE INDEX current_instances_by_number ON instance_versions (image_set_id, instance_number, sop_uid)
                WHERE last_version IS NULL;
            CREATE INDEX current_instances_by_sop ON instance_versions (sop_uid) WHERE last_version IS NULL
            """
    }

    /// The instance columns `searchSchema` adds, in `instanceSearchValues` order (`sop_uid` is the row's own).
    static let instanceSearchColumns = SearchAttribute.held(at: .instance).filter { $0 != .sopInstanceUID }

    /// The values of `instanceSearchColumns` for an instance entry.
    static func instanceSearchValues(_ instanceJSON: [UInt8]) -> [SQLValue] {
        let values = DICOMwebSearch.instanceValues(instanceJSON: instanceJSON)
        return instanceSearchColumns.map { value($0, values) }
    }

    private static func value(_ attribute: SearchAttribute, _ values: [SearchAttribute: String]) -> SQLValue {
        if attribute.isInteger { return values[attribute].flatMap { Int64($0) }.map(SQLValue.integer) ?? .null }
        return .text(values[attribute] ?? "")
    }

    /// The study columns' names and values (with the person names' words).
    private static func studyColumns(_ values: [SearchAttribute: String]) -> [(String, SQLValue)] {
        var columns: [(String, SQLValue)] = []
        for attribute in SearchAttribute.held(at: .study) {
            columns.append((attribute.column, value(attribute, values)))
            if let words = attribute.wordsColumn { columns.append((words, .text(DICOMwebSearch.nameWords(values[attribute] ?? "")))) }
        }
        return columns
    }

    private static func insert(into table: String, _ columns: [(String, SQLValue)], _ db: any SQLConnection) throws {
        let names = columns.map(\.0).joined(separator: ", ")
        let places = (1...columns.count).map { "$\($0)" }.joined(separator: ", ")
        try db.execute("INSERT INTO \(table) (\(names)) VALUES (\(places))", columns.map(\.1))
    }

    private static func studyLock(_ datastoreId: String, _ studyInstanceUID: String) -> String {
        "dicom-ingest study \(datastoreId) \(studyInstanceUID)"
    }

    /// Rebuilds the search rows of image sets just written (or deleted), then the rows of every study they were
    /// or are in. Inside the writer's transaction, after its writes.
    static func indexForSearch(_ imageSetIds: [String], _ db: any SQLConnection) throws {
        var studies = Set<[String]>()
        for imageSetId in Set(imageSetIds).sorted() {
            for row in try db.rows("SELECT datastore_id, study_uid FROM search_series WHERE image_set_id = $1", imageSetId) {
                studies.insert([row.string("datastore_id"), row.string("study_uid")])
            }
            try db.execute("DELETE FROM search_series WHERE image_set_id = $1", imageSetId)
            guard let row = try db.row("SELECT * FROM image_sets WHERE id = $1", imageSetId) else { continue }
            let record = imageSet(row)
            guard record.state != "DELETED" else { continue }
            var values: [SearchAttribute: String] = [:]
            // A version whose pieces cannot be read still gets a row, with what its image set's key holds.
            if let pieces = try? pieces(of: imageSetId, version: record.latestVersion, db) {
                values = DICOMwebSearch.seriesValues(patient: pieces.patient, study: pieces.study, series: pieces.series)
            } else {
                values[.patientID] = record.key.patientID
                values[.accessionNumber] = record.key.accessionNumber
                values[.studyDate] = record.key.studyDate
                values[.studyID] = record.key.studyID
            }
            // The image set's own study and series, as WADO-RS finds it by.
            values[.studyInstanceUID] = record.key.studyInstanceUID
            values[.seriesInstanceUID] = record.key.seriesInstanceUID
            var columns: [(String, SQLValue)] = [
                ("image_set_id", .text(imageSetId)), ("datastore_id", .text(record.datastoreId)),
                ("is_primary", .integer(record.isPrimary ? 1 : 0)), ("updated_at", .real(record.updatedAt)),
                ("instance_count", .integer(Int64(record.instanceCount))),
            ]
            columns += studyColumns(values)
            columns += SearchAttribute.held(at: .series).map { ($0.column, value($0, values)) }
            try insert(into: "search_series", columns, db)
            studies.insert([record.datastoreId, record.key.studyInstanceUID])
        }
        for study in studies.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            try indexStudy(datastoreId: study[0], studyInstanceUID: study[1], db)
        }
    }

    /// A study's row from its primary image sets' rows; none when it has none.
    private static func indexStudy(datastoreId: String, studyInstanceUID: String, _ db: any SQLConnection) throws {
        try db.lock(studyLock(datastoreId, studyInstanceUID))
        let series = try db.rows(
            """
            SELECT * FROM search_series WHERE datastore_id = $1 AND study_uid = $2 AND is_primary = 1
            ORDER BY updated_at DESC, image_set_id
            """,
            datastoreId, studyInstanceUID)
        try db.execute("DELETE FROM search_studies WHERE datastore_id = $1 AND study_uid = $2", datastoreId, studyInstanceUID)
        guard let latest = series.first else { return }
        let modalities = Set(series.map { $0.string("modality") }.filter { !$0.isEmpty }).sorted()
        var columns: [(String, SQLValue)] = [
            ("datastore_id", .text(datastoreId)), ("image_set_id", latest["image_set_id"]),
            ("updated_at", latest["updated_at"]), ("series_count", .integer(Int64(series.count))),
            ("instance_count", .integer(Int64(series.reduce(0) { $0 + $1.int("instance_count") }))),
            ("modalities", .text(modalities.isEmpty ? "" : "\\" + modalities.joined(separator: "\\") + "\\")),
        ]
        for attribute in SearchAttribute.held(at: .study) {
            columns.append((attribute.column, latest[attribute.column]))
            if let words = attribute.wordsColumn { columns.append((words, latest[words])) }
        }
        try insert(into: "search_studies", columns, db)
    }

    /// Builds the search rows of image sets written before the catalog kept them (the migration that added the
    /// tables left them empty): each live image set without a series row, its instance rows' values too. Cheap
    /// when there is none; run when a store opens.
    public func indexImageSetsForSearch() throws {
        while true {
            let pending = try read { db in
                try db.rows(
                    """
                    SELECT id, datastore_id, series_uid FROM image_sets s WHERE state != 'DELETED'
                        AND NOT EXISTS (SELECT 1 FROM search_series q WHERE q.image_set_id = s.id)
                    ORDER BY id LIMIT 100
                    """)
            }
            guard !pending.isEmpty else { return }
            try write { db in
                for row in pending {
                    let imageSetId = row.string("id")
                    try db.lock(Self.seriesLock(row.string("datastore_id"), row.string("series_uid")))
                    let instances = try db.rows(
                        "SELECT sop_uid, first_version, instance FROM instance_versions WHERE image_set_id = $1", imageSetId)
                    let assignments = Self.instanceSearchColumns.enumerated().map { "\($0.element.column) = $\($0.offset + 4)" }
                    for instance in instances {
                        try db.execute(
                            """
                            UPDATE instance_versions SET \(assignments.joined(separator: ", "))
                            WHERE image_set_id = $1 AND sop_uid = $2 AND first_version = $3
                            """,
                            [.text(imageSetId), instance["sop_uid"], instance["first_version"]]
                                + Self.instanceSearchValues(instance.bytes("instance") ?? []))
                    }
                }
                try Self.indexForSearch(pending.map { $0.string("id") }, db)
            }
        }
    }

    /// QIDO-RS: one page of the query's matches, in HealthImaging's order (studies by last update, newest first;
    /// series by SeriesNumber; instances by InstanceNumber; those without a number last, then by UID).
    public func searchDICOMweb(datastoreId: String, query: DICOMwebQuery) throws -> [DICOMwebMatch] {
        let search = DICOMwebSearchSQL(datastoreId: datastoreId, query: query, dialect: dialect)
        return try read { db in
            guard let datastore = try db.row("SELECT status FROM datastores WHERE id = $1", datastoreId),
                datastore.string("status") != DatastoreStatus.deleted.rawValue
            else { throw ImageSetStoreError(.notFound, "Data store \(datastoreId) does not exist") }
            let rows = try db.rows(search.sql, search.arguments)
            var matches = rows.map(search.match)
            if query.needsStoredAttributes {
                try Self.addStoredAttributes(to: &matches, sops: rows.map { $0.string("sop_uid") }, level: query.level, db)
            }
            return matches
        }
    }

    /// The stored attributes `includefield` asks beyond the rows: each image set's latest pieces in one statement
    /// per 500 image sets, and at instance level the instances' entries in one statement per image set, not a round
    /// trip per match (which a networked catalog cannot afford on a page of 1,000).
    private static func addStoredAttributes(
        to matches: inout [DICOMwebMatch], sops: [String], level: SearchLevel, _ db: any SQLConnection
    ) throws {
        var pieces: [String: VersionPieces] = [:]
        for chunk in Array(Set(matches.map(\.imageSetId))).sorted().chunked(by: rowsPerStatement) {
            let list = (1...chunk.count).map { "$\($0)" }.joined(separator: ", ")
            let rows = try db.rows(
                """
                SELECT v.image_set_id, v.version, v.document, v.patient, v.study, v.series FROM image_set_versions v
                JOIN image_sets s ON s.id = v.image_set_id AND v.version = s.latest_version WHERE v.image_set_id IN (\(list))
                """,
                chunk.map { .text($0) })
            for row in rows {
                let imageSetId = row.string("image_set_id")
                if let document = row.bytes("document"), !document.isEmpty {
                    // A version that stored its whole document: its pieces are read back out of it.
                    pieces[imageSetId] = try? Self.pieces(of: imageSetId, version: row.int("version"), db)
                } else {
                    func bytes(_ column: String) -> [UInt8] { row.bytes(column) ?? Array("{}".utf8) }
                    pieces[imageSetId] = VersionPieces(patient: bytes("patient"), study: bytes("study"), series: bytes("series"))
                }
            }
        }
        var instances: [String: [String: [UInt8]]] = [:]
        if level == .instance {
            var wanted: [String: [String]] = [:]
            for (match, sop) in zip(matches, sops) { wanted[match.imageSetId, default: []].append(sop) }
            for (imageSetId, sops) in wanted.sorted(by: { $0.key < $1.key }) {
                for chunk in sops.chunked(by: rowsPerStatement) {
                    let list = (0..<chunk.count).map { "$\($0 + 2)" }.joined(separator: ", ")
                    for row in try db.rows(
                        "SELECT sop_uid, instance FROM instance_versions WHERE image_set_id = $1 AND last_version IS NULL AND sop_uid IN (\(list))",
                        [.text(imageSetId)] + chunk.map { .text($0) })
                    {
                        instances[imageSetId, default: [:]][row.string("sop_uid")] = row.bytes("instance")
                    }
                }
            }
        }
        for index in matches.indices {
            let imageSetId = matches[index].imageSetId
            guard let found = pieces[imageSetId] else { continue }
            let stored = DICOMwebSearch.storedAttributes(
                level: level, patient: found.patient, study: found.study, series: found.series,
                instanceJSON: level == .instance ? instances[imageSetId]?[sops[index]] : nil)
            matches[index].stored = stored.attributes
            matches[index].vrs = stored.vrs
        }
    }
}

/// The statement of one QIDO-RS search.
struct DICOMwebSearchSQL {
    var sql = ""
    var arguments: [SQLValue] = []
    let query: DICOMwebQuery
    /// A study search within one image set reads its series row.
    let studyFromSeries: Bool

    init(datastoreId: String, query: DICOMwebQuery, dialect: SQLDialect) {
        self.query = query
        studyFromSeries = query.level == .study && query.imageSetId != nil
        var conditions: [String] = []
        func bind(_ value: SQLValue) -> String {
            arguments.append(value)
            return "$\(arguments.count)"
        }
        let series = query.level == .instance ? "s." : ""
        conditions.append("\(series)datastore_id = \(bind(.text(datastoreId)))")
        if query.level != .study || studyFromSeries {
            if let imageSetId = query.imageSetId {
                conditions.append("\(series)image_set_id = \(bind(.text(imageSetId)))")
            } else {
                conditions.append("\(series)is_primary = 1")
            }
        }
        for match in query.matches {
            let column = (match.attribute.level == .instance ? "i." : series) + match.attribute.column
            let value = { (text: String) -> SQLValue in
                match.attribute.isInteger ? Int64(text).map(SQLValue.integer) ?? .null : .text(text)
            }
            switch match.condition {
            case .equal(let text):
                conditions.append("\(column) = \(bind(value(text)))")
            case .anyOf(let texts):
                conditions.append("\(column) IN (\(texts.map { bind(value($0)) }.joined(separator: ", ")))")
            case .pattern(let pattern):
                conditions.append(Self.like(column, pattern, dialect, bind))
            case .nameStart(let start):
                let words = (match.attribute.level == .instance ? "i." : series) + (match.attribute.wordsColumn ?? match.attribute.column)
                conditions.append(Self.like(words, "* " + start + "*", dialect, bind))
            case .range(let lower, let upper):
                var parts = ["\(column) != ''"]
                if !lower.isEmpty { parts.append("\(column) >= \(bind(.text(lower)))") }
                // An end given to a coarser precision takes in all of it: `-1000` includes 10:00:30.
                if !upper.isEmpty { parts.append("substr(\(column), 1, \(upper.utf8.count)) <= \(bind(.text(upper)))") }
                conditions.append("(" + parts.joined(separator: " AND ") + ")")
            }
        }
        if !query.modalitiesInStudy.isEmpty {
            if studyFromSeries {
                conditions.append("modality IN (\(query.modalitiesInStudy.map { bind(.text($0)) }.joined(separator: ", ")))")
            } else {
                let function = dialect == .postgres ? "strpos" : "instr"
                let any = query.modalitiesInStudy.map { "\(function)(modalities, \(bind(.text("\\" + $0 + "\\")))) > 0" }
                conditions.append("(" + any.joined(separator: " OR ") + ")")
            }
        }
        let page = " LIMIT \(bind(.integer(Int64(query.limit)))) OFFSET \(bind(.integer(Int64(query.offset))))"
        let filter = " WHERE " + conditions.joined(separator: " AND ")
        switch query.level {
        case .study where !studyFromSeries:
            // Both descending, so that an index on (…, updated_at, study_uid) gives the order without a sort.
            sql = "SELECT * FROM search_studies" + filter + " ORDER BY updated_at DESC, study_uid DESC" + page
        case .study, .series:
            sql = "SELECT * FROM search_series" + filter
                + " ORDER BY (series_number IS NULL), series_number, series_uid, image_set_id" + page
        case .instance:
            let columns = SearchAttribute.held(at: .instance).map { "i." + $0.column }.joined(separator: ", ")
            // SQLite plans without statistics: given SOP Instance UIDs, it is told to start from them
            // (`CROSS JOIN` keeps the order of its tables) instead of from every series of the data store.
            let bySOP = dialect == .sqlite && query.matches.contains { $0.attribute == .sopInstanceUID }
            let join = "i.image_set_id = s.image_set_id AND i.last_version IS NULL"
            sql = "SELECT s.*, \(columns) FROM "
                + (bySOP ? "instance_versions i CROSS JOIN search_series s ON \(join)" : "search_series s JOIN instance_versions i ON \(join)")
                + filter + " ORDER BY (i.instance_number IS NULL), i.instance_number, i.sop_uid, s.image_set_id" + page
        }
    }

    /// `column` matching a DICOM wildcard pattern (`*` any run, `?` one character), case-sensitive: SQLite's
    /// GLOB (with `[` escaped as `[[]`), PostgreSQL's LIKE (with its own wildcards escaped).
    static func like(_ column: String, _ pattern: String, _ dialect: SQLDialect, _ bind: (SQLValue) -> String) -> String {
        switch dialect {
        case .sqlite:
            let glob = pattern.map { $0 == "[" ? "[[]" : String($0) }.joined()
            return "\(column) GLOB \(bind(.text(glob)))"
        case .postgres:
            var like = ""
            for character in pattern {
                switch character {
                case "\\", "%", "_": like += "\\" + String(character)
                case "*": like += "%"
                case "?": like += "_"
                default: like.append(character)
                }
            }
            return "\(column) LIKE \(bind(.text(like))) ESCAPE '\\'"
        }
    }

    /// A result row as a match.
    func match(_ row: SQLRow) -> DICOMwebMatch {
        var values: [SearchAttribute: String] = [:]
        for attribute in SearchAttribute.allCases where attribute.level <= query.level {
            if attribute.isInteger {
                if let number = row.optionalInt(attribute.column) { values[attribute] = String(number) }
            } else if let text = row.optionalString(attribute.column), !text.isEmpty {
                values[attribute] = text
            }
        }
        var match = DICOMwebMatch(values: values, relatedInstances: row.int("instance_count"), imageSetId: row.string("image_set_id"))
        if query.level == .study {
            if studyFromSeries {
                match.relatedSeries = 1
                match.modalitiesInStudy = [row.string("modality")].filter { !$0.isEmpty }
            } else {
                match.relatedSeries = row.int("series_count")
                match.modalitiesInStudy = row.string("modalities").split(separator: "\\").map(String.init)
            }
        }
        return match
    }
}
