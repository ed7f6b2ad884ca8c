import DICOMIngest

/// The SQL of one SearchImageSets page: every filter a condition on an indexed column of `image_sets`, the sort on
/// `(column, id)`, and the previous page's last row as the bound, so that a page without filters (or with an
/// EQUAL filter, sorted by updatedAt) reads `limit + 1` index entries whatever its depth, and one with a filter
/// reads only the rows that pass it.
///
/// On SQLite the index is named (`INDEXED BY`): without statistics SQLite prefers the sort's index and then reads
/// every image set of the data store to filter them, which is the plan a catalog of millions cannot afford. A
/// filter is taken to be selective (a patient, a study, a date range), so its index drives, EQUAL filters first.
/// PostgreSQL keeps statistics (autovacuum's ANALYZE) and picks among the same indexes itself.
struct ImageSetSearchSQL {
    let query: ImageSetQuery
    let sql: String
    let arguments: [SQLValue]

    /// - Throws: `invalid` when the page token was not made for this sort.
    init(datastoreId: String, query: ImageSetQuery, dialect: SQLDialect) throws {
        self.query = query
        var conditions = ["datastore_id = $1", "state != 'DELETED'"]
        var arguments: [SQLValue] = [.text(datastoreId)]
        func bind(_ value: SQLValue) -> String {
            arguments.append(value)
            return "$\(arguments.count)"
        }
        for filter in query.filters {
            let column = Self.column(filter.field)
            let lower = bind(Self.value(filter.lower))
            if case .studyDate = filter.field, case .text(let low) = filter.lower {
                // A bound without a time stands for the whole day: EQUAL to a date is every time of it, and an
                // upper date includes its last moment.
                var high = low
                if case .text(let upper)? = filter.upper { high = upper }
                conditions.append("\(column) BETWEEN \(lower) AND \(bind(.text(ImageSetQuery.endOfDay(high))))")
            } else if let upper = filter.upper {
                conditions.append("\(column) BETWEEN \(lower) AND \(bind(Self.value(upper)))")
            } else {
                conditions.append("\(column) = \(lower)")
            }
        }
        let sort = Self.column(query.sortField)
        let direction = query.ascending ? "ASC" : "DESC"
        if let after = query.after {
            let beyond = query.ascending ? ">" : "<"
            let value: SQLValue
            switch (after.sortValue, query.sortField) {
            case (.text(let text), .studyDate): value = .text(text)
            case (.number(let number), .updatedAt), (.number(let number), .createdAt): value = .real(number)
            default: throw ImageSetStoreError(.invalid, "Invalid nextToken: it belongs to a search with another sort")
            }
            let bound = bind(value)
            conditions.append("(\(sort) \(beyond) \(bound) OR (\(sort) = \(bound) AND id \(beyond) \(bind(.text(after.id)))))")
        }
        let limit = bind(.integer(Int64(query.limit + 1)))
        var hint = ""
        if dialect == .sqlite {
            let driving = query.filters.first { $0.upper == nil && $0.field != .isPrimary } ?? query.filters.first
            hint = " INDEXED BY " + (driving.map { Self.index($0.field) } ?? Self.index(query.sortField))
        }
        sql = """
            SELECT * FROM image_sets\(hint) WHERE \(conditions.joined(separator: " AND "))
            ORDER BY \(sort) \(direction), id \(direction) LIMIT \(limit)
            """
        self.arguments = arguments
    }

    /// The token of the page after the one that ends with `record`.
    func token(after record: ImageSetRecord) -> PageToken {
        switch query.sortField {
        case .updatedAt: PageToken(sortValue: .number(record.updatedAt), id: record.imageSetId)
        case .createdAt: PageToken(sortValue: .number(record.createdAt), id: record.imageSetId)
        case .studyDate: PageToken(sortValue: .text(record.studyDateTime), id: record.imageSetId)
        }
    }

    static func column(_ field: ImageSetQuery.Field) -> String {
        switch field {
        case .patientID: "patient_id"
        case .accessionNumber: "accession_number"
        case .studyID: "study_id"
        case .studyInstanceUID: "study_uid"
        case .seriesInstanceUID: "series_uid"
        case .createdAt: "created_at"
        case .updatedAt: "updated_at"
        case .studyDate: "study_date_time"
        case .isPrimary: "is_primary"
        }
    }

    /// The index that serves a filter on `field` (migration v8-search-columns).
    static func index(_ field: ImageSetQuery.Field) -> String {
        switch field {
        case .patientID: "image_sets_by_patient"
        case .accessionNumber: "image_sets_by_accession"
        case .studyID: "image_sets_by_study_id"
        case .studyInstanceUID: "image_sets_by_study"
        case .seriesInstanceUID: "image_sets_by_series"
        case .createdAt: "image_sets_by_created"
        case .updatedAt: "image_sets_by_updated"
        case .studyDate: "image_sets_by_study_date_time"
        case .isPrimary: "image_sets_by_primary"
        }
    }

    static func index(_ field: ImageSetQuery.SortField) -> String {
        switch field {
        case .updatedAt: "image_sets_by_updated"
        case .createdAt: "image_sets_by_created"
        case .studyDate: "image_sets_by_study_date_time"
        }
    }

    static func column(_ field: ImageSetQuery.SortField) -> String {
        switch field {
        case .updatedAt: "updated_at"
        case .createdAt: "created_at"
        case .studyDate: "study_date_time"
        }
    }

    static func value(_ value: ImageSetQuery.Value) -> SQLValue {
        switch value {
        case .text(let text): .text(text)
        case .time(let time): .real(time)
        case .flag(let flag): .integer(flag ? 1 : 0)
        }
    }
}
