import DICOMIngest
import DICOMIngestModel
@testable import DICOMIngestSQL
@testable import DICOMIngestSQLite
import DICOMIngestTestSupport
import Foundation
import GRDB
import Testing

/// SearchImageSets and ListDICOMImportJobs as the catalog answers them: filters on indexed columns, keyset pages
/// that add up to exactly the brute-force answer, DELETED image sets gone with what they owned.
@Suite struct CatalogQueryTests {
    struct Catalog {
        let folder: TemporaryFolder
        let store: any SQLBackedImageSetStore
        let datastoreId: String

        init(_ backend: StoreBackend = .sqlite) throws {
            folder = try TemporaryFolder("catalog")
            store = try backend.open(folder.sub("store"))
            datastoreId = try store.createDatastore(name: "search", now: 0).datastoreId
        }

        init(folder: TemporaryFolder, store: any SQLBackedImageSetStore, datastoreId: String) {
            self.folder = folder
            self.store = store
            self.datastoreId = datastoreId
        }

        /// A count read with SQL from the catalog, whichever the backend.
        func count(_ sql: String, _ arguments: (any SQLValueConvertible)?...) throws -> Int {
            let values = arguments.map { $0?.sqlValue ?? .null }
            return try store.catalog.database.read { db in try db.rows(sql, values).first?.int("n") ?? -1 }
        }

        /// Commits one image set of one instance and one frame (a pack that is never read).
        @discardableResult
        func imageSet(_ index: Int, key: ImageSetKey, at time: Double, primary: Bool = true, studyTime: String = "") throws -> ImageSetRecord {
            // The levels hold the key's attributes, as an import's do.
            var study = "{\"StudyInstanceUID\":\"\(key.studyInstanceUID)\",\"StudyDate\":\"\(key.studyDate)\","
            study += "\"AccessionNumber\":\"\(key.accessionNumber)\",\"StudyID\":\"\(key.studyID)\""
            study += studyTime.isEmpty ? "}" : ",\"StudyTime\":\"\(studyTime)\"}"
            let instance = PreparedInstance(
                inputKey: "in/\(index).dcm", sopInstanceUID: key.seriesInstanceUID + ".1", key: key,
                patientJSON: Array("{\"PatientID\":\"\(key.patientID)\"}".utf8), studyJSON: Array(study.utf8), seriesJSON: Array("{}".utf8), instanceJSON: Array("{}".utf8),
                frames: [StoredFrame(id: ResourceID.make(), blob: "pack-\(index % 3)", offset: 0, length: 1, transferSyntaxUID: "1.2.840.10008.1.2.1")],
                warnings: [])
            let records = try store.commitSeries(
                datastoreId: datastoreId, jobId: "job", seriesInstanceUID: key.seriesInstanceUID,
                plan: { _ in
                    [ImageSetCommit(
                        datastoreId: datastoreId, jobId: "job", imageSetId: nil, key: key, isPrimary: primary,
                        instances: [instance], committedAt: time)]
                }, lines: { _ in ([], ImportJobProgress()) })
            return records[0]
        }
    }

    static let patients = ["P1", "P2", "P3", "P4", ""]
    static let dates = ["20240101", "20240215", "20240301", "20241231", ""]

    /// 240 image sets: five patients, five study dates, four accession numbers, shared times (ties in every sort).
    static func populated(_ backend: StoreBackend = .sqlite) throws -> (Catalog, [ImageSetRecord]) {
        let catalog = try Catalog(backend)
        var records: [ImageSetRecord] = []
        for index in 0..<240 {
            let study = "1.2.826.0.1.3680043.14.\(index % 12)"
            let key = ImageSetKey(
                studyInstanceUID: study, seriesInstanceUID: "\(study).\(index)", patientID: patients[index % 5],
                studyDate: dates[(index / 5) % 5], accessionNumber: "A\(index % 4)", studyID: "S\(index % 6)")
            // Times with fractions no decimal writes exactly (as real clocks give), shared by three image sets.
            records.append(try catalog.imageSet(index, key: key, at: Double(1_000 + index / 3) + 0.1 + 1e-7 * Double(index / 3), primary: index % 7 != 0))
        }
        return (catalog, records)
    }

    /// The answer worked out by hand: every record that passes the filters, sorted by (sort value, id).
    static func expected(_ records: [ImageSetRecord], _ query: ImageSetQuery) -> [String] {
        func text(_ record: ImageSetRecord, _ field: ImageSetQuery.Field) -> String {
            switch field {
            case .patientID: record.key.patientID
            case .accessionNumber: record.key.accessionNumber
            case .studyID: record.key.studyID
            case .studyInstanceUID: record.key.studyInstanceUID
            case .seriesInstanceUID: record.key.seriesInstanceUID
            default: record.key.studyDate
            }
        }
        func passes(_ record: ImageSetRecord, _ filter: ImageSetQuery.Filter) -> Bool {
            switch (filter.field, filter.lower, filter.upper) {
            case (.isPrimary, .flag(let flag), _): return record.isPrimary == flag
            case (.createdAt, .time(let low), let upper), (.updatedAt, .time(let low), let upper):
                let value = filter.field == .createdAt ? record.createdAt : record.updatedAt
                guard case .time(let high)? = upper else { return value == low }
                return low <= value && value <= high
            case (let field, .text(let low), let upper):
                let value = text(record, field)
                guard case .text(let high)? = upper else { return value == low }
                return low <= value && value <= high
            default: return false
            }
        }
        let matching = records.filter { record in record.state != "DELETED" && query.filters.allSatisfy { passes(record, $0) } }
        func before(_ lhs: ImageSetRecord, _ rhs: ImageSetRecord) -> Bool {
            switch query.sortField {
            case .updatedAt where lhs.updatedAt != rhs.updatedAt: return lhs.updatedAt < rhs.updatedAt
            case .createdAt where lhs.createdAt != rhs.createdAt: return lhs.createdAt < rhs.createdAt
            case .studyDate where lhs.key.studyDate != rhs.key.studyDate: return lhs.key.studyDate < rhs.key.studyDate
            default: return lhs.imageSetId < rhs.imageSetId
            }
        }
        let sorted = matching.sorted { query.ascending ? before($0, $1) : before($1, $0) }
        return sorted.map(\.imageSetId)
    }

    /// Every page of a query, following tokens (through their text form, as a client would).
    static func allPages(_ catalog: Catalog, _ query: ImageSetQuery) throws -> (ids: [String], pages: Int) {
        var query = query
        var ids: [String] = []
        var pages = 0
        while true {
            let page = try catalog.store.searchImageSets(datastoreId: catalog.datastoreId, query: query)
            pages += 1
            #expect(page.items.count <= query.limit)
            ids += page.items.map(\.imageSetId)
            guard let next = page.nextToken else { break }
            guard let parsed = PageToken(encoded: next.encoded) else {
                Issue.record("token \(next.encoded) does not decode")
                break
            }
            query.after = parsed
            if pages > 1_000 { break }
        }
        return (ids, pages)
    }

    @Test(arguments: StoreBackend.all) func everyFilterAndSortPagesToTheBruteForceAnswer(backend: StoreBackend) throws {
        let (catalog, records) = try Self.populated(backend)
        let filters: [[ImageSetQuery.Filter]] = [
            [],
            [.init(field: .patientID, lower: .text("P2"))],
            [.init(field: .accessionNumber, lower: .text("A1"))],
            [.init(field: .studyID, lower: .text("S5"))],
            [.init(field: .studyInstanceUID, lower: .text("1.2.826.0.1.3680043.14.3"))],
            [.init(field: .seriesInstanceUID, lower: .text("1.2.826.0.1.3680043.14.5.17"))],
            [.init(field: .studyDate, lower: .text("20240201"), upper: .text("20240301"))],
            [.init(field: .createdAt, lower: .time(1_010), upper: .time(1_040))],
            [.init(field: .updatedAt, lower: .time(Double(1_020) + 0.1 + 1e-7 * Double(20)))],
            [.init(field: .isPrimary, lower: .flag(false))],
            [.init(field: .patientID, lower: .text("P1")), .init(field: .studyDate, lower: .text("20240101"), upper: .text("20241231"))],
            [.init(field: .patientID, lower: .text("nobody"))],
        ]
        var checked = 0
        for filter in filters {
            for sort in [ImageSetQuery.SortField.updatedAt, .createdAt, .studyDate] {
                for ascending in [false, true] {
                    let query = ImageSetQuery(filters: filter, sortField: sort, ascending: ascending, limit: 7)
                    let expected = Self.expected(records, query)
                    let got = try Self.allPages(catalog, query)
                    #expect(got.ids == expected, "\(filter) by \(sort) \(ascending ? "ASC" : "DESC")")
                    // Full pages, then the rest (a last full page may be followed by an empty one).
                    #expect(got.pages <= expected.count / 7 + 1)
                    checked += expected.count
                }
            }
        }
        #expect(checked > 1_000)
    }

    static func frames(of imageSetId: String, in catalog: Catalog) throws -> Int {
        try catalog.count("SELECT COUNT(*) AS n FROM frames WHERE image_set_id = $1", imageSetId)
    }

    @Test(arguments: StoreBackend.all) func deletedImageSetsLeaveSearchesAndTakeWhatTheyOwned(backend: StoreBackend) throws {
        let (catalog, records) = try Self.populated(backend)
        let store = catalog.store
        let gone = records[10]
        #expect(try Self.frames(of: gone.imageSetId, in: catalog) == 1)
        _ = try store.deleteImageSet(datastoreId: catalog.datastoreId, imageSetId: gone.imageSetId, now: 5_000)
        let everything = try Self.allPages(catalog, ImageSetQuery(limit: 50)).ids
        #expect(everything.count == 239)
        #expect(!everything.contains(gone.imageSetId))
        let byPatient = try Self.allPages(catalog, ImageSetQuery(filters: [.init(field: .patientID, lower: .text(gone.key.patientID))])).ids
        #expect(!byPatient.contains(gone.imageSetId))
        #expect(try store.imageSetVersions(datastoreId: catalog.datastoreId, imageSetId: gone.imageSetId, limit: 50, after: nil).items.isEmpty)
        #expect(try store.metadataDocument(datastoreId: catalog.datastoreId, imageSetId: gone.imageSetId, version: 1) == nil)
        #expect(try Self.frames(of: gone.imageSetId, in: catalog) == 0)
        #expect(try store.imageSet(datastoreId: catalog.datastoreId, imageSetId: gone.imageSetId)?.state == "DELETED")
    }

    @Test(arguments: StoreBackend.all) func aTokenOfAnotherSortOrGarbageIsRefused(backend: StoreBackend) throws {
        let (catalog, _) = try Self.populated(backend)
        let first = try catalog.store.searchImageSets(datastoreId: catalog.datastoreId, query: ImageSetQuery(limit: 5))
        let token = try #require(first.nextToken)
        #expect(throws: ImageSetStoreError.self) {
            try catalog.store.searchImageSets(
                datastoreId: catalog.datastoreId, query: ImageSetQuery(sortField: .studyDate, limit: 5, after: token))
        }
        #expect(PageToken(encoded: "not a token") == nil)
        #expect(PageToken(encoded: String(repeating: "A", count: 9_000)) == nil)
        #expect(PageToken(encoded: token.encoded) == token)
    }

    /// SQLite's plan of a search, one line per step.
    static func plan(_ search: ImageSetSearchSQL, _ database: DatabaseQueue) throws -> [String] {
        try database.read { db in
            try Row.fetchAll(
                db, sql: "EXPLAIN QUERY PLAN " + GRDBConnection.sqlite(search.sql),
                arguments: StatementArguments(search.arguments.map(GRDBConnection.databaseValue))
            ).map { $0["detail"] as String }
        }
    }

    /// Each filter and sort reads through an index: no query scans the image sets of a data store.
    @Test func everySearchUsesAnIndex() throws {
        let (catalog, _) = try Self.populated()
        let database = try DatabaseQueue(path: catalog.folder.sub("store/catalog.sqlite"))
        let fields: [ImageSetQuery.Field] = [
            .patientID, .accessionNumber, .studyID, .studyInstanceUID, .seriesInstanceUID, .studyDate, .createdAt, .updatedAt,
            .isPrimary,
        ]
        for field in fields {
            let value: ImageSetQuery.Value
            switch field {
            case .createdAt, .updatedAt: value = .time(1_000)
            case .isPrimary: value = .flag(true)
            default: value = .text("x")
            }
            let search = try ImageSetSearchSQL(
                datastoreId: catalog.datastoreId, query: ImageSetQuery(filters: [.init(field: field, lower: value)], limit: 7),
                dialect: .sqlite)
            let plan = try Self.plan(search, database)
            // The index is searched on the filter's own column, not merely on the data store (a date is a range:
            // the whole day).
            let column = ImageSetSearchSQL.column(field)
            let bound = field == .studyDate ? "\(column)>?" : "\(column)=?"
            #expect(plan.contains { $0.contains("INDEX") && $0.contains(bound) }, "\(field): \(plan)")
            #expect(!plan.contains { $0.hasPrefix("SCAN image_sets") && !$0.contains("INDEX") }, "\(field): \(plan)")
        }
    }

    /// A page without filters, in any sort, or with an EQUAL filter sorted by updatedAt, reads its rows in order
    /// from an index: no sort of the matches, so its cost does not grow with the data store.
    @Test func unfilteredAndEqualPagesNeedNoSort() throws {
        let (catalog, _) = try Self.populated()
        let database = try DatabaseQueue(path: catalog.folder.sub("store/catalog.sqlite"))
        let token = PageToken(sortValue: .number(1_050), id: "m")
        let queries = [
            ImageSetQuery(sortField: .updatedAt, limit: 7, after: token),
            ImageSetQuery(sortField: .createdAt, ascending: true, limit: 7, after: token),
            ImageSetQuery(sortField: .studyDate, limit: 7, after: PageToken(sortValue: .text("20240301"), id: "m")),
            ImageSetQuery(filters: [.init(field: .patientID, lower: .text("P1"))], limit: 7, after: token),
            ImageSetQuery(filters: [.init(field: .studyInstanceUID, lower: .text("1.2"))], ascending: true, limit: 7),
        ]
        for query in queries {
            let search = try ImageSetSearchSQL(datastoreId: catalog.datastoreId, query: query, dialect: .sqlite)
            let plan = try Self.plan(search, database)
            #expect(!plan.contains { $0.contains("TEMP B-TREE") }, "\(query): \(plan)")
        }
    }

    /// DICOMStudyDateAndTime compares and sorts by the moment: date, then time written out in full (TM may leave
    /// out minutes, seconds or the fraction, PS3.5 §6.2); a bound without a time stands for its whole day.
    @Test(arguments: StoreBackend.all) func studyDateAndTimeFilterAndSortByTheMoment(backend: StoreBackend) throws {
        let catalog = try Catalog(backend)
        #expect(ImageSetQuery.studyDateTime(date: "20240301", time: "0930") == "20240301093000.000000")
        #expect(ImageSetQuery.studyDateTime(date: "20240301", time: "09:30:15.5") == "20240301093015.500000")
        #expect(ImageSetQuery.studyDateTime(date: "20240301", time: "") == "20240301")
        let moments = [
            ("20240229", "235959.999"), ("20240301", ""), ("20240301", "07"), ("20240301", "0930"), ("20240301", "093000.5"),
            ("20240301", "18:45:00"), ("20240302", "000000"),
        ]
        var ids: [String] = []
        for (index, (date, time)) in moments.enumerated() {
            let study = "1.2.826.0.1.3680043.17.\(index)"
            let key = ImageSetKey(studyInstanceUID: study, seriesInstanceUID: study + ".1", studyDate: date)
            let record = try catalog.imageSet(index, key: key, at: Double(100 - index), studyTime: time)
            #expect(record.studyTime == time)
            ids.append(record.imageSetId)
        }
        func search(_ filters: [ImageSetQuery.Filter], ascending: Bool = true) throws -> [String] {
            try Self.allPages(catalog, ImageSetQuery(filters: filters, sortField: .studyDate, ascending: ascending, limit: 2)).ids
        }
        func moment(_ date: String, _ time: String = "") -> ImageSetQuery.Value {
            .text(ImageSetQuery.studyDateTime(date: date, time: time))
        }
        // Sorted by the moment, in both directions, across pages.
        #expect(try search([]) == ids)
        #expect(try search([], ascending: false) == ids.reversed())
        // A date alone is the whole day; with a time, the moment.
        #expect(try search([.init(field: .studyDate, lower: moment("20240301"))]) == Array(ids[1...5]))
        #expect(try search([.init(field: .studyDate, lower: moment("20240301", "093000"))]) == [ids[3]])
        #expect(try search([.init(field: .studyDate, lower: moment("20240301", "0800"), upper: moment("20240301", "120000"))]) == [ids[3], ids[4]])
        #expect(try search([.init(field: .studyDate, lower: moment("20240229", "12"), upper: moment("20240301"))]) == Array(ids[0...5]))
        // The summary carries the time as stored.
        let first = try #require(try catalog.store.imageSet(datastoreId: catalog.datastoreId, imageSetId: ids[5]))
        #expect(first.dicomTags == JSONValue.object([
            ("DICOMPatientId", .string("")), ("DICOMPatientName", .string("")),
            ("DICOMStudyInstanceUID", .string("1.2.826.0.1.3680043.17.5")), ("DICOMStudyId", .string("")),
            ("DICOMAccessionNumber", .string("")), ("DICOMSeriesInstanceUID", .string("1.2.826.0.1.3680043.17.5.1")),
            ("DICOMStudyDate", .string("20240301")), ("DICOMStudyTime", .string("18:45:00")),
        ]))
    }

    /// ListImageSetVersions pages newest first and ListDatastores oldest first, both by key.
    @Test(arguments: StoreBackend.all) func versionsAndDatastoresPageByKey(backend: StoreBackend) throws {
        let catalog = try Catalog(backend)
        let key = ImageSetKey(studyInstanceUID: "1.2.826.0.1.3680043.18", seriesInstanceUID: "1.2.826.0.1.3680043.18.1")
        var imageSetId = ""
        for version in 1...7 {
            let instance = PreparedInstance(
                inputKey: "in/\(version).dcm", sopInstanceUID: "1.2.826.0.1.3680043.18.1.\(version)", key: key,
                patientJSON: Array("{}".utf8), studyJSON: Array("{}".utf8), seriesJSON: Array("{}".utf8),
                instanceJSON: Array("{}".utf8), frames: [], warnings: [])
            imageSetId = try catalog.store.commitSeries(
                datastoreId: catalog.datastoreId, jobId: "job", seriesInstanceUID: key.seriesInstanceUID,
                plan: { primary in
                    [ImageSetCommit(
                        datastoreId: catalog.datastoreId, jobId: "job", imageSetId: primary?.imageSetId, key: key, isPrimary: true,
                        instances: [instance], committedAt: Double(version))]
                }, lines: { _ in ([], ImportJobProgress()) })[0].imageSetId
        }
        var versions: [[Int]] = []
        var after: PageToken?
        repeat {
            let page = try catalog.store.imageSetVersions(datastoreId: catalog.datastoreId, imageSetId: imageSetId, limit: 3, after: after)
            versions.append(page.items.map(\.version))
            after = page.nextToken.flatMap { PageToken(encoded: $0.encoded) }
        } while after != nil && versions.count < 10
        #expect(versions == [[7, 6, 5], [4, 3, 2], [1]])
        // A token names its image set: another's is refused.
        let token = try #require(try catalog.store.imageSetVersions(datastoreId: catalog.datastoreId, imageSetId: imageSetId, limit: 3, after: nil).nextToken)
        #expect(throws: ImageSetStoreError.self) {
            try catalog.store.imageSetVersions(datastoreId: catalog.datastoreId, imageSetId: ResourceID.make(), limit: 3, after: token)
        }

        var created = [catalog.datastoreId]
        for index in 1...4 { created.append(try catalog.store.createDatastore(name: "more-\(index)", now: Double(index % 2)).datastoreId) }
        _ = try catalog.store.deleteDatastore(id: created[2], now: 9)
        func all(_ status: DatastoreStatus?) throws -> [String] {
            var ids: [String] = []
            var after: PageToken?
            repeat {
                let page = try catalog.store.datastores(status: status, limit: 2, after: after)
                ids += page.items.map(\.datastoreId)
                after = page.nextToken
            } while after != nil && ids.count < 20
            return ids
        }
        let expected = try catalog.store.datastores().sorted { ($0.createdAt, $0.datastoreId) < ($1.createdAt, $1.datastoreId) }.map(\.datastoreId)
        #expect(expected.count == 4)
        #expect(try all(nil) == expected)
        #expect(try all(.deleted) == [created[2]])
        #expect(try all(.active) == expected)
    }

    @Test(arguments: StoreBackend.all) func jobsPageNewestFirstWithAndWithoutAStatus(backend: StoreBackend) throws {
        let catalog = try Catalog(backend)
        var all: [DICOMImportJobProperties] = []
        for index in 0..<60 {
            let job = DICOMImportJobProperties(
                jobId: ResourceID.make(), jobName: "job-\(index)", jobStatus: index % 3 == 0 ? .failed : .completed,
                datastoreId: catalog.datastoreId, dataAccessRoleArn: "arn:aws:iam::123456789012:role/Importer",
                clientToken: "token-\(index)", submittedAt: Double(100 + index / 4), inputS3Uri: "s3://in/", outputS3Uri: "s3://out/")
            all.append(try catalog.store.insertJob(job, maxActiveJobs: .max).job)
        }
        for status in [nil, JobStatus.failed] {
            let expected = all.filter { status == nil || $0.jobStatus == status }
                .sorted { ($0.submittedAt, $0.jobId) > ($1.submittedAt, $1.jobId) }.map(\.jobId)
            var got: [String] = []
            var after: PageToken?
            repeat {
                let page = try catalog.store.jobs(datastoreId: catalog.datastoreId, status: status, limit: 7, after: after)
                got += page.items.map(\.jobId)
                after = page.nextToken
            } while after != nil && got.count <= 60
            #expect(got == expected)
        }
    }
}
