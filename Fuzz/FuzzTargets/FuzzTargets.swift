import AWSSigV4
import DICOMIngestModel
import DICOMParser
import Foundation
@testable import DICOMIngest
@testable import DICOMIngestS3
@testable import DICOMIngestServer
@testable import DICOMIngestSQL
import DICOMIngestSQLite

/// What the fuzz executable exercises, chosen by `DICOM_INGEST_FUZZ_TARGET` (set by `scripts/fuzz.sh`). Each
/// target must survive any bytes: a crash, a sanitizer report, a hang or memory past `-rss_limit_mb` is a bug.
enum FuzzTarget: String, CaseIterable {
    /// The P10 tokenizer, the instance reader (metadata document, character sets) and the frame layout.
    case p10
    /// A whole object through the import's preparer: reader, validation and the pixel stage (every decoder and
    /// encoder) into a frame store that discards what it is given.
    case instance
    /// The zip, tar, tar.gz and gzip readers, reading every member to its end.
    case archive
    /// The SigV4 verifier's parsing of a request: method, path, query, Authorization and X-Amz-Date, one per line.
    case sigv4
    /// The S3 XML parsing: a ListObjectsV2 page and entity decoding.
    case s3xml
    /// The server's request bodies: a JSON object read as a StartDICOMImportJob request (validated) and as
    /// SearchImageSets criteria (filters parsed).
    case request
    /// DICOMweb's request parsing and answers: the first line an `Accept` header (negotiated for frames and
    /// instances), the second a frame list, the rest a metadata document's `DICOM` object turned into DICOM JSON
    /// (with bulk data URIs) and a P10 header.
    case dicomweb
    /// QIDO-RS: the input a query string, read as the search route reads it and parsed at each level; a query that
    /// parses must be answered by a SQLite catalog of a few image sets (any catalog error is a bug), and its
    /// answer written.
    case qido

    func run(_ bytes: [UInt8]) {
        switch self {
        case .p10:
            if let read = try? FuzzState.reader.read(input: MemoryByteInput(bytes), buffer: FuzzState.scratch.readBuffer) {
                _ = read.pixelData?.frames
            }
        case .instance:
            // A short per-object deadline, so that the two bounds on a slow object (each decode's CPU limit in its
            // codec helper, the deadline checked between frames) hold well inside libFuzzer's -timeout: CharLS 2.4.1
            // (Debian 12) spins for seconds on some crafted JPEG-LS frames
            // (Fuzz/regressions/instance/jpegls-charls-slow-loop.dcm).
            let preparer = InstancePreparer(frameStorage: DiscardingFrameStorage(), datastoreId: "fuzz", timeLimit: 4)
            _ = preparer.prepare(key: "fuzz.dcm", input: MemoryByteInput(bytes), scratch: FuzzState.scratch)
        case .archive:
            let piece = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 16)
            defer { piece.deallocate() }
            for format in [ArchiveFormat.zip, .tar, .tarGzip, .gzip] {
                ArchiveReader.forEachMember(of: MemoryByteInput(bytes), format: format, key: "fuzz") { member in
                    guard case .success(let member) = member else { return }
                    var offset = 0
                    while let got = try? member.input.read(at: offset, into: piece), got > 0 { offset += got }
                }
            }
        case .sigv4:
            let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            func line(_ index: Int) -> String { index < lines.count ? lines[index] : "" }
            let verifier = SigV4Verifier(service: "medical-imaging") { key in
                AWSCredentials(accessKeyId: key, secretAccessKey: "secret")
            }
            _ = try? verifier.verify(
                method: line(0), rawPath: line(1), rawQuery: line(2),
                headers: [("authorization", line(3)), ("x-amz-date", line(4)), ("host", "localhost")],
                payloadHash: line(5), now: Date(timeIntervalSince1970: 1_764_460_800))
        case .s3xml:
            let text = String(decoding: bytes, as: UTF8.self)
            _ = S3ObjectSource.listPage(text)
            _ = XML.decode(text)
        case .request:
            // UpdateImageSetMetadata and CopyImageSet documents: the order-keeping parser, the checks (with and
            // without force: MetadataUpdateRules), the apply step.
            _ = try? MetadataChanges.parse(updatable: bytes, removable: nil, seriesInstanceUID: "1.2", force: false)
            if let changes = try? MetadataChanges.parse(updatable: bytes, removable: bytes, seriesInstanceUID: "1.2", force: true) {
                _ = try? changes.check(primary: true)
                _ = try? MetadataChanges.apply(changes.patient, toDICOM: Array(#"{"PatientID":"P","PatientName":"A^B"}"#.utf8))
                _ = try? MetadataChanges.apply(changes.instances.values.first ?? .init(), toInstance: Array(#"{"DICOM":{"Rows":2},"ImageFrames":[]}"#.utf8))
            }
            _ = try? ImageSetCopy.instances(copiableAttributes: String(decoding: bytes, as: UTF8.self), seriesInstanceUID: "1.2")
            guard let body = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else { return }
            let start = StartDICOMImportJobRequest(
                datastoreId: body["datastoreId"] as? String ?? "", jobName: body["jobName"] as? String,
                dataAccessRoleArn: body["dataAccessRoleArn"] as? String ?? "", clientToken: body["clientToken"] as? String ?? "",
                inputS3Uri: body["inputS3Uri"] as? String ?? "", outputS3Uri: body["outputS3Uri"] as? String ?? "",
                inputOwnerAccountId: body["inputOwnerAccountId"] as? String)
            try? start.validate()
            _ = try? ImageSetFilter.parse(body["filters"])
        case .dicomweb:
            let lines = bytes.split(separator: 0x0A, maxSplits: 2, omittingEmptySubsequences: false)
            let accept = lines.first.map { String(decoding: $0, as: UTF8.self) }
            if let ranges = try? MediaRange.parse(accept) {
                for stored in ["1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.50"] {
                    for native in [true, false] {
                        _ = try? FrameAnswer.negotiate(ranges, storedUID: stored, canServeNative: native)
                        _ = try? InstanceAnswer.negotiate(ranges, storedUID: stored, canServeNative: native)
                    }
                }
            }
            if lines.count > 1 { _ = try? DICOMwebRoutes.frameNumbers(String(decoding: lines[1], as: UTF8.self)) }
            guard lines.count > 2, case .object(let attributes)? = try? JSONValue.parse(Array(lines[2])) else { return }
            let instance = StoredInstance(
                sopInstanceUID: "1.2.3", attributes: attributes, vrs: ["00091001": "OB", "00091002": "SQ"],
                storedTransferSyntaxUID: "1.2.840.10008.1.2.4.202", frames: [])
            var output: [UInt8] = []
            instance.dicomJSON(bulkData: .init(baseURI: "http://h/bulkdata")).write(to: &output)
            _ = try? P10Encoder.header(
                instance, sopClassUID: "1.2", transferSyntaxUID: "1.2.840.10008.1.2.1", encapsulated: false,
                pixelDataLength: DICOMwebReader.nativeFrameBytes(instance.pixelDescription))
        case .qido:
            guard let parameters = try? DICOMwebRoutes.queryParameters(String(decoding: bytes, as: UTF8.self)) else { return }
            let (store, datastoreId) = QIDOCatalog.store
            for level in [SearchLevel.study, .series, .instance] {
                guard var query = try? DICOMwebQuery.parse(level: level, parameters: parameters) else { continue }
                _ = DICOMwebSearchSQL(datastoreId: datastoreId, query: query, dialect: .postgres)
                // An image set ID that names none finds nothing; the catalog must still answer.
                if query.imageSetId != nil { query.imageSetId = String(repeating: "0", count: 32) }
                do {
                    let matches = try store.searchDICOMweb(datastoreId: datastoreId, query: query)
                    _ = DICOMwebSearch.answer(matches, query: query, baseURI: "http://h/datastore/d")
                } catch {
                    fatalError("a query that parses failed in the catalog: \(error) \(query)")
                }
            }
        }
    }
}

/// A SQLite catalog of two studies for the qido target, made once per process.
enum QIDOCatalog {
    nonisolated(unsafe) static let store: (any ImageSetStore, String) = {
        let folder = NSTemporaryDirectory() + "fuzz-qido-\(getpid())"
        try? FileManager.default.removeItem(atPath: folder)
        let store = try! SQLiteImageSetStore(directory: folder)
        let datastoreId = try! store.createDatastore(name: "fuzz", now: 0).datastoreId
        for index in 0..<3 {
            let study = "1.2.826.0.1.3680043.17.\(index % 2)"
            let series = "\(study).\(index)"
            let key = ImageSetKey(studyInstanceUID: study, seriesInstanceUID: series, patientID: "P\(index)")
            let instance = PreparedInstance(
                inputKey: "in/\(index).dcm", sopInstanceUID: series + ".1", key: key,
                patientJSON: Array(#"{"PatientID":"P\#(index)","PatientName":"Doe^J\#(index)=ドウ"}"#.utf8),
                studyJSON: Array(#"{"StudyDate":"2024010\#(index)","StudyTime":"10\#(index)000.5","StudyDescription":"a[b]*%_\\c"}"#.utf8),
                seriesJSON: Array(#"{"Modality":"CT","SeriesNumber":"\#(index)"}"#.utf8),
                instanceJSON: Array(#"{"DICOM":{"SOPClassUID":"1.2.3","InstanceNumber":"\#(index)","ImageType":["A","B"]}}"#.utf8),
                frames: [], warnings: [])
            _ = try! store.commitSeries(
                datastoreId: datastoreId, jobId: "fuzz", seriesInstanceUID: series,
                plan: { _ in
                    [ImageSetCommit(
                        datastoreId: datastoreId, jobId: "fuzz", imageSetId: nil, key: key, isPrimary: true, instances: [instance],
                        committedAt: Double(index))]
                }, lines: { _ in ([], ImportJobProgress()) })
        }
        return (store, datastoreId)
    }()
}

/// The worker scratch reused across inputs, as a worker reuses it across files.
enum FuzzState {
    nonisolated(unsafe) static var target = FuzzTarget.p10
    nonisolated(unsafe) static let scratch = WorkerScratch(copyBufferSize: 64 << 10, packLimit: 1 << 20)
    static let reader = InstanceReader(options: .init(buildMetadata: true, summaryTags: InstanceReader.scanSummaryTags))
}

/// A frame store that keeps nothing.
struct DiscardingFrameStorage: FrameStorage {
    func makeBlobWriter(datastoreId: String) throws -> any FrameBlobWriter { DiscardingWriter() }
    func read(blob: String, offset: Int, length: Int) throws -> [UInt8] { [] }
    func makeDurable(blob: String, withName: Bool) throws -> Int { 0 }
}

final class DiscardingWriter: FrameBlobWriter {
    let blobName = "discarded"
    private(set) var size = 0
    func append(_ bytes: UnsafeRawBufferPointer) throws { size += bytes.count }
    func finish() throws {}
}

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzState.target.run(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
    return 0
}

@_cdecl("FuzzTargets_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    let name = ProcessInfo.processInfo.environment["DICOM_INGEST_FUZZ_TARGET"] ?? ""
    guard let target = FuzzTarget(rawValue: name) else {
        FileHandle.standardError.write(Data("DICOM_INGEST_FUZZ_TARGET must be one of: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))\n".utf8))
        return 2
    }
    FuzzState.target = target
    return runLibFuzzer(argc, argv, fuzzOne)
}
