import DICOMIngest
import DICOMIngestModel
import DICOMIngestPostgres
import DICOMIngestSQL
import DICOMIngestSQLite
import Foundation

/// The catalog at archive scale (run by compare.sh): commits `instances` synthetic instances in image sets of
/// `perImageSet`, then measures SearchImageSets by patient and by study-date range, GetImageSetMetadata of a
/// 5,000-instance image set (composed, nothing cached), QIDO-RS searches (OHIF's study list, studies by patient,
/// a series' instances, an instance by SOP Instance UID; the DICOM JSON answer included), WADO-RS series metadata
/// of the 5,000 instances, and the catalog's bytes per instance. Prints one markdown table row. The catalog is the store folder's SQLite file, or the PostgreSQL catalog at `catalog-url`
/// (give it an empty schema: `…&schema=NAME`).
///
///     CatalogScale <store-folder> <instances> [perImageSet=100] [catalog-url]
let arguments = CommandLine.arguments
guard arguments.count >= 3, let total = Int(arguments[2]) else {
    FileHandle.standardError.write(Data("usage: CatalogScale <store-folder> <instances> [perImageSet] [catalog-url]\n".utf8))
    exit(2)
}
let folder = arguments[1]
let perImageSet = arguments.count > 3 ? Int(arguments[3]) ?? 100 : 100
let catalogURL = arguments.count > 4 ? arguments[4] : nil
try? FileManager.default.removeItem(atPath: folder)

func open() throws -> any SQLBackedImageSetStore {
    if let catalogURL { return try PostgresImageSetStore(url: catalogURL, directory: folder) }
    return try SQLiteImageSetStore(directory: folder)
}

let store = try open()
let datastoreId = try store.createDatastore(name: "scale", now: 0).datastoreId
let imageSets = max(1, total / perImageSet)
let patients = max(1, imageSets / 2)

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

/// An instance entry of the size a CT slice's has (about 1.5 KB of compact JSON).
func instanceJSON(_ sop: String, _ index: Int) -> [UInt8] {
    var attributes = "\"SOPInstanceUID\":\"\(sop)\",\"InstanceNumber\":\"\(index)\",\"ImagePositionPatient\":[-250,-250,\(index)],"
    attributes += "\"ImageOrientationPatient\":[1,0,0,0,1,0],\"PixelSpacing\":[0.48828125,0.48828125],\"SliceThickness\":1.25,"
    attributes += "\"Rows\":512,\"Columns\":512,\"BitsAllocated\":16,\"BitsStored\":12,\"HighBit\":11,\"PixelRepresentation\":0,"
    attributes += "\"WindowCenter\":[40],\"WindowWidth\":[400],\"RescaleIntercept\":-1024,\"RescaleSlope\":1,"
    attributes += "\"ImageType\":[\"ORIGINAL\",\"PRIMARY\",\"AXIAL\"],\"AcquisitionNumber\":\"1\",\"KVP\":\"120\","
    attributes += "\"ConvolutionKernel\":\"STANDARD\",\"Comment\":\"\(String(repeating: "x", count: 700))\""
    let frame = "{\"ID\":\"\(ResourceID.make())\",\"PixelDataChecksumFromBaseToFullResolution\":[{\"Width\":512,\"Height\":512,\"Checksum\":123456789}],\"MinPixelValue\":0,\"MaxPixelValue\":4095,\"FrameSizeInBytes\":524288}"
    return Array("{\"DICOM\":{\(attributes)},\"DICOMVRs\":{},\"StoredTransferSyntaxUID\":\"1.2.840.10008.1.2.4.202\",\"ImageFrames\":[\(frame)]}".utf8)
}

func commit(imageSet: Int, instances count: Int, series: String, key: ImageSetKey, existing: String? = nil, first: Int = 0) throws {
    let instances = (0..<count).map { index -> PreparedInstance in
        let sop = "\(series).\(first + index)"
        return PreparedInstance(
            inputKey: "in/\(sop).dcm", sopInstanceUID: sop, key: key, patientJSON: Array("{\"PatientID\":\"\(key.patientID)\"}".utf8),
            studyJSON: Array("{\"StudyDate\":\"\(key.studyDate)\"}".utf8), seriesJSON: Array("{\"Modality\":\"CT\"}".utf8),
            instanceJSON: instanceJSON(sop, first + index),
            frames: [StoredFrame(id: ResourceID.make(), blob: "pack-\(imageSet % 64)", offset: index * 4096, length: 4096, transferSyntaxUID: "1.2.840.10008.1.2.4.202")],
            warnings: [])
    }
    _ = try store.commitSeries(
        datastoreId: datastoreId, jobId: "scale", seriesInstanceUID: series,
        plan: { primary in
            [ImageSetCommit(
                datastoreId: datastoreId, jobId: "scale", imageSetId: primary?.imageSetId ?? existing, key: key, isPrimary: true,
                instances: instances, committedAt: Double(imageSet))]
        }, lines: { _ in ([], ImportJobProgress()) })
}

func key(_ imageSet: Int) -> (String, ImageSetKey) {
    let study = "1.2.826.0.1.3680043.16.\(imageSet)"
    let day = imageSet % 3_650
    let date = String(format: "%04d%02d%02d", 2015 + day / 365, 1 + (day % 365) / 31 % 12, 1 + day % 28)
    return (study + ".1", ImageSetKey(
        studyInstanceUID: study, seriesInstanceUID: study + ".1", patientID: "PAT\(imageSet % patients)", studyDate: date,
        accessionNumber: "ACC\(imageSet)", studyID: "S\(imageSet)"))
}

let started = now()
for imageSet in 0..<imageSets {
    let (series, key) = key(imageSet)
    try commit(imageSet: imageSet, instances: perImageSet, series: series, key: key)
}
let commitSeconds = now() - started

/// A 5,000-instance image set, built in versions of 500 as an archive's imports would.
let (bigSeries, bigKey) = key(imageSets + 1)
for part in 0..<10 {
    try commit(imageSet: imageSets + 1, instances: 500, series: bigSeries, key: bigKey, first: part * 500)
}

func percentile(_ samples: [Double], _ fraction: Double) -> Double {
    let sorted = samples.sorted()
    return sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * fraction))]
}

var generator = SystemRandomNumberGenerator()
var byPatient: [Double] = []
var byDate: [Double] = []
for _ in 0..<300 {
    let patient = "PAT\(Int.random(in: 0..<patients, using: &generator))"
    var start = now()
    _ = try store.searchImageSets(
        datastoreId: datastoreId, query: ImageSetQuery(filters: [.init(field: .patientID, lower: .text(patient))], limit: 50))
    byPatient.append(now() - start)
    let year = Int.random(in: 2015..<2025, using: &generator)
    let month = Int.random(in: 1...12, using: &generator)
    let low = String(format: "%04d%02d01", year, month)
    let high = String(format: "%04d%02d31", year, month)
    start = now()
    _ = try store.searchImageSets(
        datastoreId: datastoreId,
        query: ImageSetQuery(filters: [.init(field: .studyDate, lower: .text(low), upper: .text(high))], limit: 50))
    byDate.append(now() - start)
}

let bigId = try store.searchImageSets(
    datastoreId: datastoreId, query: ImageSetQuery(filters: [.init(field: .seriesInstanceUID, lower: .text(bigSeries))])
).items[0].imageSetId
var metadata: [Double] = []
var documentBytes = 0
for _ in 0..<5 {
    let cold = try open()
    let start = now()
    documentBytes = try cold.metadataDocument(datastoreId: datastoreId, imageSetId: bigId, version: nil)?.count ?? 0
    metadata.append(now() - start)
}

/// QIDO-RS as the server runs it: the catalog's page and the DICOM JSON answer.
func qido(_ level: SearchLevel, _ parameters: [(String, String)], study: String? = nil, series: String? = nil) throws -> Double {
    let start = now()
    let query = try DICOMwebQuery.parse(level: level, study: study, series: series, parameters: parameters)
    let matches = try store.searchDICOMweb(datastoreId: datastoreId, query: query)
    _ = DICOMwebSearch.answer(matches, query: query, baseURI: "http://localhost/datastore/\(datastoreId)")
    return now() - start
}
var studyList: [Double] = []
var studiesByPatient: [Double] = []
var seriesInstances: [Double] = []
var instanceBySOP: [Double] = []
for _ in 0..<300 {
    studyList.append(try qido(.study, [("limit", "101"), ("offset", "0"), ("fuzzymatching", "false"), ("includefield", "00081030,00080060")]))
    studiesByPatient.append(try qido(.study, [("PatientID", "PAT\(Int.random(in: 0..<patients, using: &generator))")]))
    let (series, key) = key(Int.random(in: 0..<imageSets, using: &generator))
    seriesInstances.append(try qido(.instance, [], study: key.studyInstanceUID, series: series))
    instanceBySOP.append(try qido(.instance, [("SOPInstanceUID", "\(series).\(Int.random(in: 0..<perImageSet, using: &generator))")]))
}
let reader = DICOMwebReader(store: store, frameStorage: store.frameStorage)
let bigScope = DICOMwebReader.Scope(datastoreId: datastoreId, studyInstanceUID: bigKey.studyInstanceUID, seriesInstanceUID: bigSeries)
var seriesMetadata: [Double] = []
for _ in 0..<5 {
    let start = now()
    _ = DICOMwebReader.metadata(try reader.instances(bigScope).1, seriesURI: "http://localhost/series")
    seriesMetadata.append(now() - start)
}

/// The catalog's size on disk: the SQLite files, or the PostgreSQL schema's tables with their indexes and TOAST.
let catalogBytes: Int
if catalogURL == nil {
    catalogBytes = ["catalog.sqlite", "catalog.sqlite-wal"].reduce(0) { sum, name in
        sum + ((try? FileManager.default.attributesOfItem(atPath: folder + "/" + name)[.size] as? Int) ?? 0)
    }
} else {
    catalogBytes = try store.catalog.database.read { db in
        try db.rows(
            """
            SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::BIGINT AS n FROM pg_class c
            JOIN pg_namespace s ON s.oid = c.relnamespace WHERE s.nspname = current_schema() AND c.relkind = 'r'
            """, []
        ).first?.int("n") ?? 0
    }
}
let committed = imageSets * perImageSet + 5_000
func ms(_ seconds: Double) -> String { String(format: "%.1f", seconds * 1_000) }
print(
    "| \(catalogURL == nil ? "SQLite" : "PostgreSQL") | \(committed.formatted()) | \(imageSets.formatted()) | \(Int(Double(imageSets * perImageSet) / commitSeconds).formatted()) "
        + "| \(ms(percentile(byPatient, 0.5))) / \(ms(percentile(byPatient, 0.99))) "
        + "| \(ms(percentile(byDate, 0.5))) / \(ms(percentile(byDate, 0.99))) "
        + "| \(ms(percentile(metadata, 0.5))) (\((documentBytes / 1024).formatted()) KiB gzip) "
        + "| \(ms(percentile(studyList, 0.5))) / \(ms(percentile(studyList, 0.99))) "
        + "| \(ms(percentile(studiesByPatient, 0.5))) / \(ms(percentile(studiesByPatient, 0.99))) "
        + "| \(ms(percentile(seriesInstances, 0.5))) / \(ms(percentile(seriesInstances, 0.99))) "
        + "| \(ms(percentile(instanceBySOP, 0.5))) / \(ms(percentile(instanceBySOP, 0.99))) "
        + "| \(ms(percentile(seriesMetadata, 0.5))) "
        + "| \((catalogBytes / committed).formatted()) |")
