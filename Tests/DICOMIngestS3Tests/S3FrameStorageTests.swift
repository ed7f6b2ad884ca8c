import DICOMIngest
import DICOMIngestModel
import DICOMIngestPostgres
import DICOMIngestS3
import DICOMIngestSQL
import DICOMIngestSQLite
import DICOMIngestTestSupport
import DICOMPixels
import Foundation
import Testing

/// Frames in an S3 prefix (moto on loopback): objects that appear whole once finished, ranged reads, multipart
/// objects, dropped blobs that leave nothing behind; then whole imports whose frames go to S3, on each catalog.
@Suite(.enabled(if: S3TestServer.available, "needs S3_TEST_ENDPOINT (scripts/test.sh starts moto_server)"))
struct S3FrameStorageTests {
    static func storage() throws -> (S3FrameStorage, String) {
        let client = S3TestServer.openClient()
        let bucket = "frames-" + UUID().uuidString.lowercased()
        _ = try client.send(method: .PUT, bucket: bucket)
        return (S3FrameStorage(client: client, location: S3Location(uri: "s3://\(bucket)/store/frames")!), bucket)
    }

    static func keys(_ client: S3Client, _ bucket: String) throws -> [String] {
        let text = String(decoding: try client.send(method: .GET, bucket: bucket, query: [("list-type", "2")]).body, as: UTF8.self)
        return text.components(separatedBy: "<Key>").dropFirst().map { String($0.prefix { $0 != "<" }) }
    }

    @Test func objectsAppearWholeOnceFinishedAndReadByRange() throws {
        let (storage, bucket) = try Self.storage()
        var generator = SystemRandomNumberGenerator()
        // 9 MiB: more than a part, so the object goes up as a multipart upload of two parts.
        var large = [UInt8](repeating: 0, count: 9 << 20)
        large.withUnsafeMutableBytes { bytes in
            for index in 0..<(bytes.count / 8) { bytes.storeBytes(of: generator.next(), toByteOffset: index * 8, as: UInt64.self) }
        }
        let writer = try storage.makeBlobWriter(datastoreId: "d")
        for start in stride(from: 0, to: large.count, by: 1 << 20) {
            try large[start..<min(large.count, start + (1 << 20))].withUnsafeBytes { try writer.append($0) }
        }
        #expect(writer.size == large.count)
        #expect(try Self.keys(storage.client, bucket).isEmpty, "nothing is visible before finish")
        try writer.finish()
        #expect(try Self.keys(storage.client, bucket) == ["store/frames/" + writer.blobName])
        #expect(try storage.makeDurable(blob: writer.blobName, withName: true) == large.count)
        for (offset, length) in [(0, 10), (5 << 20, 123_457), (large.count - 7, 7)] {
            #expect(try storage.read(blob: writer.blobName, offset: offset, length: length) == Array(large[offset..<(offset + length)]))
        }
        #expect(throws: ObjectIOError.self) { try storage.read(blob: writer.blobName, offset: large.count - 3, length: 10) }

        // A blob dropped before its end (its instance failed) leaves no object and no open upload.
        do {
            let dropped = try storage.makeBlobWriter(datastoreId: "d")
            try large.withUnsafeBytes { try dropped.append($0) }
        }
        #expect(try Self.keys(storage.client, bucket).count == 1)
        let uploads = String(decoding: try storage.client.send(method: .GET, bucket: bucket, query: [("uploads", "")]).body, as: UTF8.self)
        #expect(!uploads.contains("<UploadId>"), "\(uploads)")
    }

    /// The catalogs this run reaches: SQLite, and PostgreSQL when `DICOM_INGEST_TEST_POSTGRES` names a server.
    static let catalogs: [String?] = {
        guard let url = ProcessInfo.processInfo.environment["DICOM_INGEST_TEST_POSTGRES"], !url.isEmpty else { return [nil] }
        return [nil, url]
    }()

    /// The shape many machines share: the catalog in PostgreSQL, the frames in S3, and a store folder that holds
    /// nothing but journals.
    @Test(arguments: Self.catalogs) func anImportWithFramesInS3ReadsBackEveryFrame(catalog: String?) throws {
        let (storage, bucket) = try Self.storage()
        let folder = try TemporaryFolder("s3-frames")
        defer { folder.remove() }
        let store: any SQLBackedImageSetStore = try catalog.map {
            try PostgresImageSetStore(
                url: $0 + ($0.contains("?") ? "&" : "?") + "schema=s3frames_" + UUID().uuidString.prefix(8).lowercased(),
                directory: folder.sub("store"))
        } ?? SQLiteImageSetStore(directory: folder.sub("store"))
        let engine = ImportEngine(store: store, frameStorage: storage, configuration: .init(threads: 2))
        let datastoreId = try store.createDatastore(name: "s3-frames", now: 0).datastoreId
        let study = "1.2.826.0.1.3680043.10.88"
        var instances: [SyntheticInstance] = []
        for index in 0..<12 {
            var instance = SyntheticInstance(study: study, series: "\(study).\(index % 2)", sop: "\(study).\(index % 2).\(index)")
            instance.frames = index % 3 + 1
            try instance.write(to: folder.sub("in/\(index).dcm"))
            instances.append(instance)
        }
        try Data("not dicom".utf8).write(to: URL(fileURLWithPath: folder.sub("in/junk.bin")))
        let job = try engine.submit(StartDICOMImportJobRequest(
            datastoreId: datastoreId, dataAccessRoleArn: "arn:aws:iam::123456789012:role/Importer", clientToken: UUID().uuidString,
            inputS3Uri: URL(fileURLWithPath: folder.sub("in")).absoluteString,
            outputS3Uri: URL(fileURLWithPath: folder.sub("out")).absoluteString))
        let output = folder.sub("out")
        let outcome = try engine.run(job, source: LocalDirectorySource(root: folder.sub("in"))) { job in
            try LocalDirectorySink(outputRoot: output, datastoreId: job.datastoreId, jobId: job.jobId)
        }
        #expect(outcome.job.jobStatus == .completed)
        #expect(outcome.importedFiles == 12)
        // One object per instance, and no frame pack in the store folder.
        #expect(try Self.keys(storage.client, bucket).count == 12)
        #expect(!FileManager.default.fileExists(atPath: folder.sub("store/frames")))

        let description = PixelDescription(
            rows: Int(SyntheticInstance.rows), columns: Int(SyntheticInstance.columns), bitsAllocated: 16, bitsStored: 12)
        let scratch = PixelScratch()
        var frames = 0
        for record in try store.imageSets(datastoreId: datastoreId) {
            let gzip = try #require(try store.metadataDocument(datastoreId: datastoreId, imageSetId: record.imageSetId, version: nil))
            let text = String(decoding: try #require(Compression.gunzip(gzip)), as: UTF8.self)
            for chunk in text.components(separatedBy: "\"SOPInstanceUID\":\"").dropFirst() {
                let sop = String(chunk.prefix { $0 != "\"" })
                guard let instance = instances.first(where: { $0.sopInstanceUID == sop }) else { continue }
                let ids = chunk.components(separatedBy: "\"ID\":\"").dropFirst().prefix(instance.frames).map { String($0.prefix(32)) }
                var decoded: [UInt8] = []
                for id in ids {
                    let frame = try #require(try store.frame(datastoreId: datastoreId, imageSetId: record.imageSetId, frameId: id))
                    let codestream = try storage.read(blob: frame.blob, offset: frame.offset, length: frame.length)
                    decoded += try codestream.withUnsafeBytes {
                        Array(try FrameProcessor.decodeStored($0, transferSyntaxUID: frame.transferSyntaxUID, description: description, scratch: scratch))
                    }
                    frames += 1
                }
                #expect(decoded == instance.pixelBytes, "\(sop)")
            }
        }
        #expect(frames == instances.reduce(0) { $0 + $1.frames })

        // An object no frame names (its job was killed between the upload and the staging) and the objects of a
        // deleted image set are reclaimed; every other object stays. The cutoff is in the future, so that age
        // does not protect them here.
        let orphan = try storage.makeBlobWriter(datastoreId: datastoreId)
        try [UInt8](repeating: 1, count: 100).withUnsafeBytes { try orphan.append($0) }
        try orphan.finish()
        let gone = try #require(try store.imageSets(datastoreId: datastoreId).first)
        _ = try store.deleteImageSet(datastoreId: datastoreId, imageSetId: gone.imageSetId, now: 1)
        let reclaimed = try storage.reclaimUnreferencedObjects(before: Date().timeIntervalSince1970 + 10) {
            try store.catalog.referencedFrameBlobs(among: $0)
        }
        #expect(reclaimed.objects == 1 + gone.instanceCount)
        #expect(try Self.keys(storage.client, bucket).count == 12 - gone.instanceCount)
        // What is left is exactly what the catalog names, and it still reads.
        let named = try store.catalog.referencedFrameBlobs(among: try Self.keys(storage.client, bucket).map { String($0.dropFirst("store/frames/".count)) })
        #expect(named.count == 12 - gone.instanceCount)
        // Age protects: nothing written after the cutoff goes.
        #expect(try storage.reclaimUnreferencedObjects(before: 0) { _ in [] }.objects == 0)
    }
}
