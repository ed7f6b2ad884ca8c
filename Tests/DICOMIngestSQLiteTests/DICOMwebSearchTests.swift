import DICOMIngest
import DICOMIngestModel
@testable import DICOMIngestSQL
import DICOMIngestSQLite
import DICOMIngestTestSupport
import Foundation
import Synchronization
import Testing

/// QIDO-RS's rows in the catalog: they follow every kind of version write (commit, update, removal, revert, copy,
/// delete) in its transaction, a catalog written before them is indexed when it opens, and commits of one study
/// from many threads leave one study row that counts them all.
@Suite struct DICOMwebSearchTests {
    typealias Catalog = CatalogQueryTests.Catalog
    static let study = "1.2.826.0.1.3680043.16.1"

    static func key(_ series: String) -> ImageSetKey {
        ImageSetKey(studyInstanceUID: study, seriesInstanceUID: series, patientID: "P")
    }

    static func instance(_ sop: String, series: String, number: Int, modality: String = "CT") -> PreparedInstance {
        PreparedInstance(
            inputKey: "in/\(sop).dcm", sopInstanceUID: sop, key: key(series),
            patientJSON: Array(#"{"PatientID":"P","PatientName":"Doe^Jane"}"#.utf8),
            studyJSON: Array(#"{"StudyInstanceUID":"\#(study)","StudyDate":"20240101","StudyDescription":"Chest"}"#.utf8),
            seriesJSON: Array(#"{"Modality":"\#(modality)","SeriesNumber":"4 ","SeriesInstanceUID":"\#(series)"}"#.utf8),
            instanceJSON: Array(#"{"DICOM":{"SOPClassUID":"1.2.840.10008.5.1.4.1.1.2","InstanceNumber":"\#(number)","Rows":64,"ImageType":["ORIGINAL","PRIMARY"]}}"#.utf8),
            frames: [], warnings: [])
    }

    @discardableResult
    static func commit(_ instances: [PreparedInstance], series: String, in catalog: Catalog, at time: Double = 1) throws -> ImageSetRecord {
        try catalog.store.commitSeries(
            datastoreId: catalog.datastoreId, jobId: "job", seriesInstanceUID: series,
            plan: { existing in
                [ImageSetCommit(
                    datastoreId: catalog.datastoreId, jobId: "job", imageSetId: existing?.imageSetId, key: key(series), isPrimary: true,
                    instances: instances, committedAt: time)]
            }, lines: { _ in ([], ImportJobProgress()) })[0]
    }

    static func search(
        _ store: any SQLBackedImageSetStore, _ datastoreId: String, _ level: SearchLevel, _ parameters: [(String, String)] = [],
        study: String? = nil, series: String? = nil
    ) throws -> [DICOMwebMatch] {
        try store.searchDICOMweb(
            datastoreId: datastoreId, query: try DICOMwebQuery.parse(level: level, study: study, series: series, parameters: parameters))
    }

    @Test(arguments: StoreBackend.all) func theRowsFollowEveryVersionWrite(backend: StoreBackend) throws {
        let catalog = try Catalog(backend)
        let store = catalog.store
        let series = Self.study + ".1"
        let primary = try Self.commit(
            [Self.instance("1.3", series: series, number: 3), Self.instance("1.1", series: series, number: 1),
             Self.instance("1.2", series: series, number: 2)], series: series, in: catalog)

        let studies = try Self.search(store, catalog.datastoreId, .study)
        #expect(studies.map { $0.values[.studyInstanceUID] } == [Self.study])
        #expect(studies.first?.relatedSeries == 1)
        #expect(studies.first?.relatedInstances == 3)
        #expect(studies.first?.modalitiesInStudy == ["CT"])
        #expect(studies.first?.values[.patientName] == "Doe^Jane")
        let instances = try Self.search(store, catalog.datastoreId, .instance, study: Self.study, series: series)
        #expect(instances.map { $0.values[.instanceNumber] } == ["1", "2", "3"])
        #expect(instances.map { $0.values[.rows] } == ["64", "64", "64"])
        #expect(try Self.search(store, catalog.datastoreId, .series).map { $0.values[.seriesNumber] } == ["4"])

        // An update (study level) and a removal make a version the rows follow; a revert brings back what was.
        let update = ImageSetUpdate.changes(try MetadataChanges.parse(
            updatable: Array(#"{"SchemaVersion":1.1,"Study":{"DICOM":{"StudyDescription":"Abdomen"}}}"#.utf8),
            removable: Array(#"{"Study":{"Series":{"\#(series)":{"Instances":{"1.3":{}}}}}}"#.utf8),
            seriesInstanceUID: series, force: false))
        _ = try store.updateImageSetMetadata(
            datastoreId: catalog.datastoreId, imageSetId: primary.imageSetId, latestVersion: 1, update: update, now: 2)
        #expect(try Self.search(store, catalog.datastoreId, .study, [("StudyDescription", "Chest")]).isEmpty)
        let updated = try Self.search(store, catalog.datastoreId, .study, [("StudyDescription", "Abd*")])
        #expect(updated.first?.relatedInstances == 2)
        #expect(try Self.search(store, catalog.datastoreId, .instance).map { $0.values[.sopInstanceUID] } == ["1.1", "1.2"])
        _ = try store.updateImageSetMetadata(
            datastoreId: catalog.datastoreId, imageSetId: primary.imageSetId, latestVersion: 2, update: .revert(toVersion: 1), now: 3)
        #expect(try Self.search(store, catalog.datastoreId, .instance, [("InstanceNumber", "3")]).map { $0.values[.sopInstanceUID] } == ["1.3"])
        #expect(try Self.search(store, catalog.datastoreId, .study, [("StudyDescription", "Chest")]).first?.relatedInstances == 3)

        // A copy is a non-primary image set: reachable by imageSetId only. A deleted image set is gone.
        let (_, copy) = try store.copyImageSet(
            datastoreId: catalog.datastoreId, copy: ImageSetCopy(sourceImageSetId: primary.imageSetId, sourceLatestVersion: 3), now: 4)
        #expect(try Self.search(store, catalog.datastoreId, .study).first?.relatedSeries == 1)
        #expect(try Self.search(store, catalog.datastoreId, .instance).count == 3)
        let scoped = try Self.search(store, catalog.datastoreId, .instance, [("imageSetId", copy.imageSetId)])
        #expect(scoped.map(\.imageSetId) == [copy.imageSetId, copy.imageSetId, copy.imageSetId])
        _ = try store.deleteImageSet(datastoreId: catalog.datastoreId, imageSetId: primary.imageSetId, now: 5)
        #expect(try Self.search(store, catalog.datastoreId, .study).isEmpty)
        #expect(try Self.search(store, catalog.datastoreId, .instance).isEmpty)
        #expect(try Self.search(store, catalog.datastoreId, .study, [("imageSetId", copy.imageSetId)]).first?.relatedInstances == 3)
        #expect(try catalog.count("SELECT COUNT(*) AS n FROM search_series WHERE image_set_id = $1", primary.imageSetId) == 0)
    }

    @Test(arguments: StoreBackend.all) func aCatalogWrittenBeforeTheRowsIsIndexedWhenItOpens(backend: StoreBackend) throws {
        let catalog = try Catalog(backend)
        let series = Self.study + ".2"
        try Self.commit([Self.instance("2.1", series: series, number: 7), Self.instance("2.2", series: series, number: 8)], series: series, in: catalog)
        // As a catalog migrated from before: the tables empty, the instance columns at their defaults.
        try catalog.store.catalog.database.write { db in
            try db.execute("DELETE FROM search_series", [])
            try db.execute("DELETE FROM search_studies", [])
            try db.execute("UPDATE instance_versions SET sop_class_uid = '', instance_number = NULL, pixel_rows = NULL", [])
        }
        #expect(try Self.search(catalog.store, catalog.datastoreId, .study).isEmpty)

        let reopened = try backend.open(catalog.folder.sub("store"))
        let studies = try Self.search(reopened, catalog.datastoreId, .study)
        #expect(studies.first?.relatedInstances == 2)
        let instances = try Self.search(reopened, catalog.datastoreId, .instance, [("SOPClassUID", "1.2.840.10008.5.1.4.1.1.2")])
        #expect(instances.map { $0.values[.instanceNumber] } == ["7", "8"])
        #expect(instances.map { $0.values[.rows] } == ["64", "64"])
    }

    @Test(arguments: StoreBackend.all) func commitsOfOneStudyFromManyThreadsLeaveOneRowCountingThemAll(backend: StoreBackend) throws {
        let catalog = try Catalog(backend)
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 8) { index in
            let series = Self.study + ".3.\(index)"
            do {
                try Self.commit(
                    [Self.instance("3.\(index)", series: series, number: index, modality: index % 2 == 0 ? "CT" : "MR")],
                    series: series, in: catalog, at: Double(index))
            } catch {
                failures.withLock { $0.append("\(error)") }
            }
        }
        #expect(failures.withLock { $0 } == [])
        #expect(try catalog.count("SELECT COUNT(*) AS n FROM search_studies") == 1)
        let study = try #require(try Self.search(catalog.store, catalog.datastoreId, .study).first)
        #expect(study.relatedSeries == 8)
        #expect(study.relatedInstances == 8)
        #expect(study.modalitiesInStudy == ["CT", "MR"])
        #expect(try Self.search(catalog.store, catalog.datastoreId, .study, [("ModalitiesInStudy", "MR")]).count == 1)
        #expect(try Self.search(catalog.store, catalog.datastoreId, .study, [("ModalitiesInStudy", "PT")]).isEmpty)
    }
}
