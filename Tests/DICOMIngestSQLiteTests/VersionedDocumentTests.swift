import DICOMIngest
import DICOMIngestModel
import DICOMIngestSQL
@testable import DICOMIngestSQLite
import DICOMIngestTestSupport
import Foundation
import GRDB
import Testing

/// Versions share their instance rows and compose their documents when read: each version's document stays exact
/// while later versions replace and add instances, a version writes only what it changes, and catalogs from before
/// keep the documents they stored.
@Suite struct VersionedDocumentTests {
    typealias Catalog = CatalogQueryTests.Catalog
    static let series = "1.2.826.0.1.3680043.15.1.1"
    static let key = ImageSetKey(studyInstanceUID: "1.2.826.0.1.3680043.15.1", seriesInstanceUID: series, patientID: "P")

    static func instance(_ sop: String, _ text: String) -> PreparedInstance {
        PreparedInstance(
            inputKey: "in/\(sop)-\(text).dcm", sopInstanceUID: sop, key: key, patientJSON: Array("{\"PatientID\":\"P\"}".utf8),
            studyJSON: Array("{\"StudyID\":\"\(text)\"}".utf8), seriesJSON: Array("{}".utf8),
            instanceJSON: Array("{\"DICOM\":{\"ImageComments\":\"\(text)\"}}".utf8), frames: [], warnings: [])
    }

    /// Commits `instances` as the next version of the series' image set (a new one when there is none).
    @discardableResult
    static func commit(_ instances: [PreparedInstance], in catalog: Catalog, primary: Bool = true) throws -> ImageSetRecord {
        try catalog.store.commitSeries(
            datastoreId: catalog.datastoreId, jobId: "job", seriesInstanceUID: series,
            plan: { existing in
                [ImageSetCommit(
                    datastoreId: catalog.datastoreId, jobId: "job", imageSetId: existing?.imageSetId, key: key, isPrimary: primary,
                    instances: instances, committedAt: 1)]
            }, lines: { _ in ([], ImportJobProgress()) })[0]
    }

    /// The instances of a version's document: SOP Instance UID → its `Text`, and the study's `StudyID`.
    static func contents(_ store: any SQLBackedImageSetStore, _ catalog: Catalog, _ imageSetId: String, version: Int?) throws -> ([String: String], String) {
        let gzip = try #require(try store.metadataDocument(datastoreId: catalog.datastoreId, imageSetId: imageSetId, version: version))
        let data = Data(try #require(Compression.gunzip(gzip)))
        let document = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let study = try #require(document["Study"] as? [String: Any])
        let instances = try #require(((study["Series"] as? [String: Any])?[series] as? [String: Any])?["Instances"] as? [String: [String: Any]])
        return (instances.mapValues { ($0["DICOM"] as? [String: Any])?["ImageComments"] as? String ?? "" }, (study["DICOM"] as? [String: Any])?["StudyID"] as? String ?? "")
    }

    static func instanceRows(_ catalog: Catalog) throws -> Int {
        try catalog.count("SELECT COUNT(*) AS n FROM instance_versions")
    }

    @Test(arguments: StoreBackend.all) func eachVersionsDocumentStaysExactWhileLaterVersionsChangeTheImageSet(backend: StoreBackend) throws {
        let catalog = try Catalog(backend)
        let first = try Self.commit([Self.instance("1.1", "a1"), Self.instance("1.2", "b1"), Self.instance("1.3", "c1")], in: catalog)
        let imageSetId = first.imageSetId
        let v1 = try Self.contents(catalog.store, catalog, imageSetId, version: 1)
        try Self.commit([Self.instance("1.2", "b2"), Self.instance("1.4", "d2")], in: catalog)
        let latest = try Self.commit([Self.instance("1.1", "a3")], in: catalog)
        #expect(latest.latestVersion == 3)
        #expect(latest.instanceCount == 4)
        // Each version wrote only what it added or replaced.
        #expect(try Self.instanceRows(catalog) == 6)

        // Read through a new connection (nothing cached): every version as it was committed.
        let reopened = try backend.open(catalog.folder.sub("store"))
        let expected: [(Int?, [String: String], String)] = [
            (1, ["1.1": "a1", "1.2": "b1", "1.3": "c1"], "c1"),
            (2, ["1.1": "a1", "1.2": "b2", "1.3": "c1", "1.4": "d2"], "d2"),
            (3, ["1.1": "a3", "1.2": "b2", "1.3": "c1", "1.4": "d2"], "a3"),
            (nil, ["1.1": "a3", "1.2": "b2", "1.3": "c1", "1.4": "d2"], "a3"),
        ]
        for (version, instances, studyID) in expected {
            let (got, gotStudy) = try Self.contents(reopened, catalog, imageSetId, version: version)
            #expect(got == instances, "version \(version.map(String.init) ?? "latest")")
            #expect(gotStudy == studyID, "version \(version.map(String.init) ?? "latest")")
        }
        #expect(try Self.contents(reopened, catalog, imageSetId, version: 1) == v1)
        #expect(try reopened.metadataDocument(datastoreId: catalog.datastoreId, imageSetId: imageSetId, version: 4) == nil)
    }

    @Test(arguments: StoreBackend.all) func whatAnImageSetOwnsMustNameOne(backend: StoreBackend) throws {
        let catalog = try Catalog(backend)
        try Self.commit([Self.instance("1.1", "a1")], in: catalog)
        if backend == .sqlite {
            let database = try DatabaseQueue(path: catalog.folder.sub("store/catalog.sqlite"))
            let violations = try database.read { db in try Row.fetchAll(db, sql: "PRAGMA foreign_key_check") }
            #expect(violations.isEmpty)
        }
        let datastore = SQLValue.text(catalog.datastoreId)
        var inserts: [(String, [SQLValue])] = [
            (#"INSERT INTO frames (id, datastore_id, image_set_id, blob, "offset", length) VALUES ('f', $1, 'no-such-image-set', 'p', 0, 1)"#, [datastore]),
            ("INSERT INTO image_set_versions (image_set_id, version, created_at, document) VALUES ('no-such-image-set', 1, 0, $1)", [.blob([])]),
            ("INSERT INTO instance_versions (image_set_id, sop_uid, first_version, input_key, job_id, instance) VALUES ('no-such-image-set', '1', 1, 'k', 'j', $1)", [.blob([])]),
        ]
        do {
            // Image sets and jobs name their data store.
            inserts += [
                ("""
                 INSERT INTO image_sets (id, datastore_id, series_uid, image_set_key, is_primary, latest_version, state,
                     workflow_status, created_at, updated_at, instance_count)
                 VALUES ('orphan', 'no-such-datastore', 's', 'k', 0, 1, 'ACTIVE', 'IMPORTED', 0, 0, 1)
                 """, []),
                ("""
                 INSERT INTO jobs (id, datastore_id, name, status, role_arn, client_token, submitted_at, input_uri, output_uri)
                 VALUES ('orphan', 'no-such-datastore', 'j', 'COMPLETED', 'r', 't', 0, 'i', 'o')
                 """, []),
            ]
        }
        for (insert, arguments) in inserts {
            #expect(throws: (any Error).self, "\(insert)") {
                try catalog.store.catalog.database.write { db in try db.execute(insert, arguments) }
            }
        }
        #expect(try catalog.count("SELECT COUNT(*) AS n FROM frames WHERE id = 'f'") == 0)
    }

    @Test func aCatalogFromBeforeKeepsItsStoredDocumentsAndGrowsFromThem() throws {
        let folder = try TemporaryFolder("catalog-v8")
        let path = folder.sub("store/catalog.sqlite")
        try FileManager.default.createDirectory(atPath: folder.sub("store"), withIntermediateDirectories: true)
        let stored = Compression.gzip(Array("{\"stored\":true}".utf8))
        let imageSetId = ResourceID.make()
        let datastoreId = ResourceID.make()
        do {
            let database = try DatabaseQueue(path: path)
            try SQLiteImageSetStore.migrator.migrate(database, upTo: "v8-search-columns")
            try database.write { db in
                try db.execute(
                    sql: "INSERT INTO datastores (id, name, status, created_at, updated_at) VALUES (?, 'old', 'ACTIVE', 0, 0)",
                    arguments: [datastoreId])
                try db.execute(
                    sql: """
                        INSERT INTO image_sets (id, datastore_id, series_uid, image_set_key, is_primary, latest_version, state,
                            workflow_status, created_at, updated_at, instance_count, patient_id, study_uid)
                        VALUES (?, ?, ?, ?, 1, 1, 'ACTIVE', 'CREATED', 0, 0, 1, 'P', ?)
                        """,
                    arguments: [imageSetId, datastoreId, Self.series, Self.key.encoded, Self.key.studyInstanceUID])
                try db.execute(
                    sql: "INSERT INTO instances (image_set_id, sop_uid, input_key, job_id, instance) VALUES (?, '1.1', 'old.dcm', 'old', ?)",
                    arguments: [imageSetId, Data("{\"DICOM\":{\"ImageComments\":\"old\"}}".utf8)])
                try db.execute(
                    sql: "INSERT INTO image_set_versions (image_set_id, version, job_id, created_at, document) VALUES (?, 1, 'old', 0, ?)",
                    arguments: [imageSetId, Data(stored)])
            }
        }
        let store = try SQLiteImageSetStore(directory: folder.sub("store"))
        #expect(try store.metadataDocument(datastoreId: datastoreId, imageSetId: imageSetId, version: 1) == stored)
        let catalog = CatalogQueryTests.Catalog(folder: folder, store: store, datastoreId: datastoreId)
        let next = try Self.commit([Self.instance("1.2", "new")], in: catalog)
        #expect(next.imageSetId == imageSetId)
        #expect(next.latestVersion == 2)
        #expect(next.instanceCount == 2)
        let (instances, _) = try Self.contents(store, catalog, imageSetId, version: 2)
        #expect(instances == ["1.1": "old", "1.2": "new"])
        #expect(try store.metadataDocument(datastoreId: datastoreId, imageSetId: imageSetId, version: 1) == stored)
    }

    static func patient(_ store: any SQLBackedImageSetStore, _ catalog: Catalog, _ imageSetId: String, version: Int?) throws -> [String: Any] {
        let gzip = try #require(try store.metadataDocument(datastoreId: catalog.datastoreId, imageSetId: imageSetId, version: version))
        let text = try #require(Compression.gunzip(gzip))
        let document = try #require(try JSONSerialization.jsonObject(with: Data(text)) as? [String: Any])
        return try #require((document["Patient"] as? [String: Any])?["DICOM"] as? [String: Any])
    }

    static func changes(updatable: String? = nil, removable: String? = nil, force: Bool = false) throws -> ImageSetUpdate {
        .changes(try MetadataChanges.parse(
            updatable: updatable.map { Array($0.utf8) }, removable: removable.map { Array($0.utf8) },
            seriesInstanceUID: series, force: force))
    }

    static func patientSearch(_ catalog: Catalog, _ patientID: String) throws -> [String] {
        try catalog.store.searchImageSets(
            datastoreId: catalog.datastoreId, query: ImageSetQuery(filters: [.init(field: .patientID, lower: .text(patientID))])
        ).items.map(\.imageSetId)
    }

    /// On a non-primary image set (a primary one keeps its patient and series levels).
    @Test(arguments: StoreBackend.all) func anUpdateIsOneNewVersionAndARevertBringsAVersionBack(backend: StoreBackend) throws {
        let catalog = try Catalog(backend)
        let imageSetId = try Self.commit(
            [Self.instance("1.1", "a1"), Self.instance("1.2", "b1"), Self.instance("1.3", "c1")], in: catalog, primary: false).imageSetId
        let store = catalog.store
        let update = try Self.changes(
            updatable: """
                {"SchemaVersion":1.1,"Patient":{"DICOM":{"PatientName":"NEW^NAME","PatientID":"Q"}},
                 "Study":{"Series":{"\(Self.series)":{"Instances":{"1.2":{"DICOM":{"ImageComments":"b-edited","WindowCenter":"40"}}}}}}}
                """,
            removable: """
                {"Study":{"Series":{"\(Self.series)":{"Instances":{"1.3":{}}}}}}
                """)
        let second = try store.updateImageSetMetadata(
            datastoreId: catalog.datastoreId, imageSetId: imageSetId, latestVersion: 1, update: update, now: 10)
        #expect(second.latestVersion == 2)
        #expect(second.instanceCount == 2)
        #expect(second.workflowStatus == "UPDATED")
        #expect(second.key.patientID == "Q")
        #expect(try Self.contents(store, catalog, imageSetId, version: 2).0 == ["1.1": "a1", "1.2": "b-edited"])
        #expect(try Self.patient(store, catalog, imageSetId, version: 2)["PatientName"] as? String == "NEW^NAME")
        // Version 1 is as it was, and searches follow the latest version.
        #expect(try Self.contents(store, catalog, imageSetId, version: 1).0 == ["1.1": "a1", "1.2": "b1", "1.3": "c1"])
        #expect(try Self.patient(store, catalog, imageSetId, version: 1)["PatientID"] as? String == "P")
        #expect(try Self.patientSearch(catalog, "Q") == [imageSetId])
        #expect(try Self.patientSearch(catalog, "P").isEmpty)

        // An update names the version it was made against.
        #expect(throws: ImageSetStoreError.self) {
            try store.updateImageSetMetadata(datastoreId: catalog.datastoreId, imageSetId: imageSetId, latestVersion: 1, update: update, now: 11)
        }
        let third = try store.updateImageSetMetadata(
            datastoreId: catalog.datastoreId, imageSetId: imageSetId, latestVersion: 2, update: .revert(toVersion: 1), now: 12)
        #expect(third.latestVersion == 3)
        #expect(third.instanceCount == 3)
        #expect(try Self.contents(store, catalog, imageSetId, version: 3).0 == ["1.1": "a1", "1.2": "b1", "1.3": "c1"])
        #expect(try Self.patient(store, catalog, imageSetId, version: 3)["PatientID"] as? String == "P")
        #expect(try Self.patientSearch(catalog, "P") == [imageSetId])
        #expect(try Self.contents(store, catalog, imageSetId, version: 2).0 == ["1.1": "a1", "1.2": "b-edited"])
        // The next version builds on the restored instances.
        let fourth = try store.updateImageSetMetadata(
            datastoreId: catalog.datastoreId, imageSetId: imageSetId, latestVersion: 3,
            update: try Self.changes(updatable: #"{"Study":{"Series":{"\#(Self.series)":{"Instances":{"1.3":{"DICOM":{"ImageComments":"c4"}}}}}}}"#),
            now: 13)
        #expect(fourth.latestVersion == 4)
        #expect(try Self.contents(store, catalog, imageSetId, version: 4).0 == ["1.1": "a1", "1.2": "b1", "1.3": "c4"])
    }

    /// includeStudyImageSets: the study level goes to every image set of the study (a new version each, a primary
    /// one included); patient and instance levels, and other studies, stay as they were.
    @Test(arguments: StoreBackend.all) func studyLevelChangesCanReachEveryImageSetOfTheStudy(backend: StoreBackend) throws {
        let catalog = try Catalog(backend)
        let study = "1.2.826.0.1.3680043.19.1"
        func key(_ series: Int, study: String = study) -> ImageSetKey {
            ImageSetKey(studyInstanceUID: study, seriesInstanceUID: "\(study).\(series)", patientID: "P")
        }
        let target = try catalog.imageSet(1, key: key(1), at: 1, primary: false)
        let primary = try catalog.imageSet(2, key: key(2), at: 2)
        let sibling = try catalog.imageSet(3, key: key(3), at: 3, primary: false)
        let stranger = try catalog.imageSet(4, key: key(1, study: "1.2.826.0.1.3680043.19.2"), at: 4, primary: false)
        func description(_ id: String) throws -> String? {
            let gzip = try #require(try catalog.store.metadataDocument(datastoreId: catalog.datastoreId, imageSetId: id, version: nil))
            let text = try #require(Compression.gunzip(gzip))
            let document = try #require(try JSONSerialization.jsonObject(with: Data(text)) as? [String: Any])
            return ((document["Study"] as? [String: Any])?["DICOM"] as? [String: Any])?["StudyDescription"] as? String
        }
        func update(_ text: String, everywhere: Bool, latest: Int) throws -> ImageSetRecord {
            var changes = try MetadataChanges.parse(
                updatable: Array(text.utf8), removable: nil, seriesInstanceUID: "\(study).1", force: false)
            changes.includeStudyImageSets = everywhere
            return try catalog.store.updateImageSetMetadata(
                datastoreId: catalog.datastoreId, imageSetId: target.imageSetId, latestVersion: latest, update: .changes(changes), now: 10)
        }
        _ = try update(#"{"Study":{"DICOM":{"StudyDescription":"alone"}}}"#, everywhere: false, latest: 1)
        #expect(try description(target.imageSetId) == "alone")
        #expect(try description(primary.imageSetId) == nil)

        let updated = try update(
            #"{"Patient":{"DICOM":{"PatientName":"ONLY^HERE"}},"Study":{"DICOM":{"StudyDescription":"shared"}}}"#, everywhere: true, latest: 2)
        #expect(updated.latestVersion == 3)
        for record in [target, primary, sibling] {
            #expect(try description(record.imageSetId) == "shared")
        }
        #expect(try description(stranger.imageSetId) == nil)
        let versions = try [primary, sibling, stranger].map {
            try catalog.store.imageSet(datastoreId: catalog.datastoreId, imageSetId: $0.imageSetId)?.latestVersion
        }
        #expect(versions == [2, 2, 1])
        let primaryNow = try #require(try catalog.store.imageSet(datastoreId: catalog.datastoreId, imageSetId: primary.imageSetId))
        #expect(primaryNow.workflowStatus == "UPDATED")
        #expect(primaryNow.isPrimary)
        // The patient level changed only where it was asked for.
        #expect(try Self.patient(catalog.store, catalog, primary.imageSetId, version: nil)["PatientName"] == nil)
        #expect(try Self.patient(catalog.store, catalog, target.imageSetId, version: nil)["PatientName"] as? String == "ONLY^HERE")
    }

    @Test(arguments: StoreBackend.all) func updatesThatCannotBeMadeAreRefused(backend: StoreBackend) throws {
        for (updatable, force) in [
            (#"{"Patient":{"DICOM":{"PixelData":"AAAA"}}}"#, true),
            (#"{"Study":{"DICOM":{"StudyInstanceUID":"1.2.3"}}}"#, false),
            (#"{"Study":{"DICOM":{"StudyID":"9"}}}"#, false),
            (#"{"Study":{"Series":{"9.9.9":{"DICOM":{"Modality":"MR"}}}}}"#, true),
            (#"{"Study":{"Series":{"\#(Self.series)":{"Instances":{"1.1":{"DICOM":{"SOPInstanceUID":"2"}}}}}}}"#, true),
            (#"{"DatastoreID":"x"}"#, true),
            (#"{"Patient":{"DICOM":{"PatientName":"A"}}"#, true),
            (#"{"SchemaVersion":1.1}"#, true),
            (String(repeating: "[", count: 200), true),
        ] {
            #expect(throws: IngestServiceError.self, "\(updatable)") { try Self.changes(updatable: updatable, force: force) }
        }
        _ = try Self.changes(updatable: #"{"Study":{"DICOM":{"StudyID":"9"}}}"#, force: true)

        let catalog = try Catalog(backend)
        let imageSetId = try Self.commit([Self.instance("1.1", "a1")], in: catalog).imageSetId
        // A primary image set: study and instance levels change, patient and series levels and its UIDs do not.
        _ = try catalog.store.updateImageSetMetadata(
            datastoreId: catalog.datastoreId, imageSetId: imageSetId, latestVersion: 1,
            update: try Self.changes(updatable: #"{"Study":{"DICOM":{"StudyDescription":"ok"}}}"#), now: 2)
        for update in [
            try Self.changes(updatable: #"{"Patient":{"DICOM":{"PatientName":"A"}}}"#),
            try Self.changes(updatable: #"{"Study":{"Series":{"\#(Self.series)":{"DICOM":{"Modality":"MR"}}}}}"#),
            try Self.changes(updatable: #"{"Study":{"DICOM":{"StudyID":"9"}}}"#, force: true),
        ] {
            #expect(throws: ImageSetStoreError.self) {
                try catalog.store.updateImageSetMetadata(
                    datastoreId: catalog.datastoreId, imageSetId: imageSetId, latestVersion: 2, update: update, now: 3)
            }
        }
        for update in [
            try Self.changes(updatable: #"{"Study":{"Series":{"\#(Self.series)":{"Instances":{"7.7":{"DICOM":{"ImageComments":"x"}}}}}}}"#),
            try Self.changes(removable: #"{"Study":{"Series":{"\#(Self.series)":{"Instances":{"1.1":{}}}}}}"#),
            ImageSetUpdate.revert(toVersion: 5),
        ] {
            #expect(throws: ImageSetStoreError.self) {
                try catalog.store.updateImageSetMetadata(
                    datastoreId: catalog.datastoreId, imageSetId: imageSetId, latestVersion: 2, update: update, now: 4)
            }
        }
        #expect(try catalog.store.imageSet(datastoreId: catalog.datastoreId, imageSetId: imageSetId)?.latestVersion == 2)
    }

    /// An instance with `frames` frames, each listed in its entry as the import writes them.
    static func framed(_ sop: String, _ text: String, frames: Int = 1, study: String = "s") -> PreparedInstance {
        let stored = (0..<frames).map { _ in
            StoredFrame(id: ResourceID.make(), blob: "pack", offset: 0, length: 1, transferSyntaxUID: "1.2.840.10008.1.2.4.202")
        }
        let list = stored.map { "{\"ID\":\"\($0.id)\"}" }.joined(separator: ",")
        var instance = instance(sop, text)
        instance.studyJSON = Array("{\"StudyDescription\":\"\(study)\"}".utf8)
        instance.instanceJSON = Array("{\"DICOM\":{\"ImageComments\":\"\(text)\"},\"ImageFrames\":[\(list)]}".utf8)
        instance.frames = stored
        return instance
    }

    static func frameIds(_ instance: PreparedInstance) -> [String] { instance.frames.map(\.id) }

    @Test(arguments: StoreBackend.all) func copiesMakeNewImageSetsOrNewVersionsAndKeepTheirFrames(backend: StoreBackend) throws {
        let catalog = try Catalog(backend)
        let store = catalog.store
        let instances = [Self.framed("1.1", "a", frames: 2), Self.framed("1.2", "b"), Self.framed("1.3", "c")]
        let primary = try Self.commit(instances, in: catalog)

        // Into a new, non-primary image set: every instance, its frames reachable through the copy.
        let (_, copied) = try store.copyImageSet(
            datastoreId: catalog.datastoreId, copy: ImageSetCopy(sourceImageSetId: primary.imageSetId, sourceLatestVersion: 1), now: 5)
        #expect(copied.imageSetId != primary.imageSetId)
        #expect(!copied.isPrimary)
        #expect(copied.latestVersion == 1)
        #expect(copied.workflowStatus == "COPIED")
        #expect(try Self.contents(store, catalog, copied.imageSetId, version: nil).0 == ["1.1": "a", "1.2": "b", "1.3": "c"])
        for id in instances.flatMap(Self.frameIds) {
            #expect(try store.frame(datastoreId: catalog.datastoreId, imageSetId: copied.imageSetId, frameId: id) != nil)
        }
        // Promotion needs the series to have no primary image set.
        #expect(throws: ImageSetStoreError.self) {
            try store.copyImageSet(
                datastoreId: catalog.datastoreId,
                copy: ImageSetCopy(sourceImageSetId: copied.imageSetId, sourceLatestVersion: 1, promoteToPrimary: true), now: 6)
        }

        // Chosen instances into an existing image set: one new version; a stale version is refused.
        let other = try store.commitSeries(
            datastoreId: catalog.datastoreId, jobId: "job", seriesInstanceUID: Self.series,
            plan: { _ in
                [ImageSetCommit(
                    datastoreId: catalog.datastoreId, jobId: "job", imageSetId: nil, key: Self.key, isPrimary: false,
                    instances: [Self.framed("1.9", "z", study: "other")], committedAt: 7)]
            }, lines: { _ in ([], ImportJobProgress()) })[0]
        let chosen = try ImageSetCopy.instances(
            copiableAttributes: #"{"SchemaVersion":1.1,"Study":{"Series":{"\#(Self.series)":{"Instances":{"1.2":{},"1.3":{}}}}}}"#,
            seriesInstanceUID: Self.series)
        #expect(chosen == ["1.2", "1.3"])
        var into = ImageSetCopy(
            sourceImageSetId: primary.imageSetId, sourceLatestVersion: 1, instances: chosen,
            destination: .init(imageSetId: other.imageSetId, latestVersion: 1))
        // The study metadata differ: only with force (the destination keeps its own).
        #expect(throws: ImageSetStoreError.self) { try store.copyImageSet(datastoreId: catalog.datastoreId, copy: into, now: 8) }
        into.force = true
        let (_, grown) = try store.copyImageSet(datastoreId: catalog.datastoreId, copy: into, now: 8)
        #expect(grown.imageSetId == other.imageSetId)
        #expect(grown.latestVersion == 2)
        #expect(grown.instanceCount == 3)
        let (grownInstances, _) = try Self.contents(store, catalog, other.imageSetId, version: 2)
        #expect(grownInstances == ["1.2": "b", "1.3": "c", "1.9": "z"])
        #expect(try Self.contents(store, catalog, other.imageSetId, version: 1).0 == ["1.9": "z"])
        #expect(throws: ImageSetStoreError.self) { try store.copyImageSet(datastoreId: catalog.datastoreId, copy: into, now: 9) }

        // Once the primary is deleted, a copy may take its place, under a new ID.
        _ = try store.deleteImageSet(datastoreId: catalog.datastoreId, imageSetId: primary.imageSetId, now: 10)
        let (_, promoted) = try store.copyImageSet(
            datastoreId: catalog.datastoreId,
            copy: ImageSetCopy(sourceImageSetId: copied.imageSetId, sourceLatestVersion: 1, promoteToPrimary: true), now: 11)
        #expect(promoted.isPrimary)
        // Frames of the deleted source are still reachable through the copies.
        for id in instances.flatMap(Self.frameIds) {
            #expect(try store.frame(datastoreId: catalog.datastoreId, imageSetId: promoted.imageSetId, frameId: id) != nil)
        }

        // More frames than the quota, an instance the source lacks: refused.
        let big = try Self.commit([Self.framed("2.1", "big", frames: ImageSetCopy.maxFrames + 1)], in: catalog, primary: false)
        for copy in [
            ImageSetCopy(sourceImageSetId: big.imageSetId, sourceLatestVersion: 1),
            ImageSetCopy(sourceImageSetId: copied.imageSetId, sourceLatestVersion: 1, instances: ["7.7"]),
        ] {
            #expect(throws: ImageSetStoreError.self) { try store.copyImageSet(datastoreId: catalog.datastoreId, copy: copy, now: 12) }
        }
    }
}
