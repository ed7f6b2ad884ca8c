import Crypto
import DICOMCore
import Foundation
import Synchronization
public import DICOMIngestModel
public import DICOMPixels

/// What WADO-RS reads (PS3.18 §10.4) as HealthImaging serves it: a series is the image set that holds it (the
/// primary one, or the one `imageSetId` names), its instances are that image set's latest version, and their
/// frames are the stored ones. Transport-free: the server's routes turn its answers into responses.
public struct DICOMwebReader: Sendable {
    public let store: any ImageSetStore
    public let frameStorage: any FrameStorage

    public init(store: any ImageSetStore, frameStorage: any FrameStorage) {
        self.store = store
        self.frameStorage = frameStorage
    }

    /// Where a request reads: a series of a study in a data store, in the image set `imageSetId` names (primary or
    /// not) or else the series' primary one.
    public struct Scope: Hashable, Sendable {
        public var datastoreId: String
        public var studyInstanceUID: String
        public var seriesInstanceUID: String
        public var imageSetId: String?

        public init(datastoreId: String, studyInstanceUID: String, seriesInstanceUID: String, imageSetId: String? = nil) {
            self.datastoreId = datastoreId
            self.studyInstanceUID = studyInstanceUID
            self.seriesInstanceUID = seriesInstanceUID
            self.imageSetId = imageSetId
        }
    }

    /// The image set a scope reads; not found unless it is ACTIVE and holds the scope's study and series.
    public func imageSet(_ scope: Scope) throws -> ImageSetRecord {
        guard let datastore = try store.datastore(id: scope.datastoreId), datastore.datastoreStatus != .deleted else {
            throw IngestServiceError.notFound("Data store \(scope.datastoreId) does not exist")
        }
        let record: ImageSetRecord?
        if let imageSetId = scope.imageSetId {
            record = try store.imageSet(datastoreId: scope.datastoreId, imageSetId: imageSetId)
        } else {
            let query = ImageSetQuery(
                filters: [
                    .init(field: .seriesInstanceUID, lower: .text(scope.seriesInstanceUID)),
                    .init(field: .isPrimary, lower: .flag(true)),
                ], limit: 1)
            record = try store.searchImageSets(datastoreId: scope.datastoreId, query: query).items.first
        }
        guard let record, record.state != "DELETED", record.key.seriesInstanceUID == scope.seriesInstanceUID,
            record.key.studyInstanceUID == scope.studyInstanceUID
        else {
            throw IngestServiceError.notFound(
                "Series \(scope.seriesInstanceUID) of study \(scope.studyInstanceUID) does not exist"
                    + (scope.imageSetId.map { " in image set \($0)" } ?? ""))
        }
        return record
    }

    /// The instances of a scope's series, in the order the image set's document lists them.
    /// Read from the latest version's pieces, each instance's entry parsed on its own (no document composed).
    public func instances(_ scope: Scope) throws -> (ImageSetRecord, [StoredInstance]) {
        try instances(scope, sopInstanceUID: nil)
    }

    /// The instances of a scope's series, or only the one of `sopInstanceUID`.
    func instances(_ scope: Scope, sopInstanceUID: String?) throws -> (ImageSetRecord, [StoredInstance]) {
        let record = try imageSet(scope)
        let unreadable = IngestServiceError.internal("The metadata of image set \(record.imageSetId) cannot be read")
        switch try store.metadataPieces(
            datastoreId: scope.datastoreId, imageSetId: record.imageSetId, version: nil, sopInstanceUID: sopInstanceUID)
        {
        case .pieces(let patient, let study, let series, let instances)?:
            var shared: [(String, JSONValue)] = []
            for piece in [patient, study, series] {
                guard case .object(let members) = try JSONValue.parse(piece) else { throw unreadable }
                shared.append(contentsOf: members)
            }
            return (record, try instances.map { sop, entry in StoredInstance(sopInstanceUID: sop, shared: shared, entry: try JSONValue.parse(entry)) })
        case .document(let gzip)?:
            guard let bytes = Compression.gunzip(gzip), let document = try? JSONValue.parse(bytes) else { throw unreadable }
            let all = StoredInstance.all(in: document, seriesInstanceUID: scope.seriesInstanceUID)
            return (record, sopInstanceUID.map { sop in all.filter { $0.sopInstanceUID == sop } } ?? all)
        case nil:
            throw unreadable
        }
    }

    /// One instance of a scope's series: its entry alone is read, not the series'.
    public func instance(_ scope: Scope, sopInstanceUID: String) throws -> (ImageSetRecord, StoredInstance) {
        let (record, instances) = try instances(scope, sopInstanceUID: sopInstanceUID)
        guard let instance = instances.first(where: { $0.sopInstanceUID == sopInstanceUID }) else {
            throw IngestServiceError.notFound("Instance \(sopInstanceUID) does not exist in series \(scope.seriesInstanceUID)")
        }
        return (record, instance)
    }

    /// GetDICOMSeriesMetadata and GetDICOMInstanceMetadata: a DICOM JSON array of the instances' data sets, binary
    /// values past `DICOMJSON.bulkDataThreshold` as `BulkDataURI`s under `<seriesURI>/instances/<sop>/bulkdata`
    /// (with the `imageSetId` the request named).
    public static func metadata(_ instances: [StoredInstance], seriesURI: String, imageSetId: String? = nil) -> [UInt8] {
        var output: [UInt8] = []
        output.append(UInt8(ascii: "["))
        for (index, instance) in instances.enumerated() {
            if index > 0 { output.append(UInt8(ascii: ",")) }
            let bulkData = DICOMJSON.BulkData(
                baseURI: "\(seriesURI)/instances/\(instance.sopInstanceUID)/bulkdata", query: imageSetId.map { "?imageSetId=\($0)" } ?? "")
            instance.writeDICOMJSON(bulkData: bulkData, to: &output)
        }
        output.append(UInt8(ascii: "]"))
        return output
    }

    /// The stored frames `numbers` (1-based) name, in the order asked: not found for a number past the last frame.
    public func frames(_ numbers: [Int], of instance: StoredInstance, in record: ImageSetRecord) throws -> [StoredFrame] {
        try numbers.map { number in
            guard number >= 1, number <= instance.frames.count else {
                throw IngestServiceError.notFound(
                    "Frame \(number) is out of range: instance \(instance.sopInstanceUID) has \(instance.frames.count) frames")
            }
            let id = instance.frames[number - 1].id
            guard let frame = try store.frame(datastoreId: record.datastoreId, imageSetId: record.imageSetId, frameId: id) else {
                throw IngestServiceError.internal("Frame \(number) of instance \(instance.sopInstanceUID) is missing from the catalog")
            }
            return frame
        }
    }

    /// Whether a stored frame of `instance` can be served in Explicit VR Little Endian: native little-endian
    /// frames as they are, codestreams the engine decodes, for samples of 8 or 16 bits.
    public static func servesNative(_ instance: StoredInstance) -> Bool {
        let description = instance.pixelDescription
        guard !description.isFloat, [8, 16].contains(description.bitsAllocated), !description.isHorizontallySubsampled
        else { return isNativeLittleEndian(instance.storedTransferSyntaxUID) }
        switch PixelEncoding(transferSyntaxUID: instance.storedTransferSyntaxUID) {
        case .opaque: return false
        default: return true
        }
    }

    /// Bytes of one native frame (`BitsAllocated` per sample, 1-bit samples eight to a byte); nil when a frame
    /// does not end on a byte, as 1-bit frames of some sizes do not.
    public static func nativeFrameBytes(_ description: PixelDescription) -> Int? {
        guard let samples = description.samplesPerFrame else { return nil }
        let (bits, overflow) = samples.multipliedReportingOverflow(by: description.bitsAllocated)
        guard !overflow, bits % 8 == 0 else { return nil }
        return bits / 8
    }

    public static func isNativeLittleEndian(_ uid: String) -> Bool {
        uid == TransferSyntax.explicitVRLittleEndian.uid || uid == TransferSyntax.implicitVRLittleEndian.uid
    }

    /// Frame `number` (1-based) of `instance`: native samples (`nativeFrame`) or the stored bytes.
    public func frame(_ frame: StoredFrame, number: Int, of instance: StoredInstance, native: Bool) throws -> [UInt8] {
        native
            ? try nativeFrame(frame, number: number, of: instance)
            : try frameStorage.read(blob: frame.blob, offset: frame.offset, length: frame.length)
    }

    /// A frame's samples as Explicit VR Little Endian Pixel Data holds them (interleaved, `BitsAllocated` wide),
    /// decoded from what is stored; the decode's CRC-32 must equal the checksum the import recorded, or nothing is
    /// served (the stored bytes changed since).
    public func nativeFrame(_ frame: StoredFrame, number: Int, of instance: StoredInstance) throws -> [UInt8] {
        let stored = try frameStorage.read(blob: frame.blob, offset: frame.offset, length: frame.length)
        if Self.isNativeLittleEndian(frame.transferSyntaxUID) { return stored }
        let description = instance.pixelDescription
        let expected = instance.frames[number - 1].checksum
        // Bytes read back from storage may have been changed by whoever can write there, so they are decoded in a
        // codec helper behind OpenJPEG's checks, unless these very bytes (by SHA-256) passed them before and
        // decoded to the samples the import recorded: those decode in-process.
        let digest = expected.map { _ in SHA256.hash(data: stored) }
        let known = digest.map { digest in Self.verifiedCodestreams.withLock { $0.contains(digest) } } ?? false
        let decoded: FrameRendering.Decoded
        do {
            decoded = try FrameRendering.decodeStored(
                stored, transferSyntaxUID: frame.transferSyntaxUID, description: description, scratch: Self.threadScratch(),
                fromOutside: !known)
        } catch {
            throw IngestServiceError.internal("Frame \(number) of instance \(instance.sopInstanceUID) cannot be decoded: \(error.message)")
        }
        if let expected {
            let crc = decoded.samples.withUnsafeBytes { FrameStatistics.crc32($0) }
            guard crc == expected else {
                throw IngestServiceError.internal(
                    "Frame \(number) of instance \(instance.sopInstanceUID) decodes to CRC-32 \(crc), not the \(expected) recorded at import")
            }
            if let digest, !known { Self.remember(digest) }
        }
        var samples = decoded.samples
        if description.bitsAllocated == 16, description.decodedBytesPerSample == 1 {
            // Samples of up to 8 bits decode to a byte each; 16-bit Pixel Data keeps each in two.
            var widened = [UInt8](repeating: 0, count: samples.count * 2)
            for (index, sample) in samples.enumerated() {
                widened[2 * index] = sample
                if description.isSigned, sample & 0x80 != 0 { widened[2 * index + 1] = 0xFF }
            }
            samples = widened
        }
        if description.planarConfiguration == 1, description.samplesPerPixel > 1 {
            samples = Self.planar(samples, components: description.samplesPerPixel, sampleBytes: description.bitsAllocated / 8)
        }
        return samples
    }

    /// SHA-256 digests of stored codestreams that passed the codec helper's checks and decoded to their recorded
    /// checksum, at most `verifiedCodestreamLimit` (then forgotten all at once and learned again).
    static let verifiedCodestreams = Mutex<Set<SHA256.Digest>>([])
    static let verifiedCodestreamLimit = 200_000

    static func remember(_ digest: SHA256.Digest) {
        verifiedCodestreams.withLock { known in
            if known.count >= verifiedCodestreamLimit { known.removeAll() }
            known.insert(digest)
        }
    }

    /// The decode buffers of the calling thread, kept for its next frame: a server's few blocking threads decode
    /// every frame, and fresh buffers per frame cost a page fault per 4 KiB and a peak of memory per request.
    static func threadScratch() -> PixelScratch {
        let key = "dicom-ingest.DICOMwebReader.scratch"
        if let scratch = Thread.current.threadDictionary[key] as? PixelScratch { return scratch }
        let scratch = PixelScratch(retainedBytes: 8 << 20)
        Thread.current.threadDictionary[key] = scratch
        return scratch
    }

    /// Interleaved samples (R G B R G B …) as planes (R R … G G … B B …), as Pixel Data with PlanarConfiguration 1
    /// holds them (PS3.3 C.7.6.3.1.3); the metadata keeps the source's PlanarConfiguration.
    static func planar(_ samples: [UInt8], components: Int, sampleBytes: Int) -> [UInt8] {
        let pixels = samples.count / (components * sampleBytes)
        var planes = [UInt8](repeating: 0, count: samples.count)
        for pixel in 0..<pixels {
            for component in 0..<components {
                let from = (pixel * components + component) * sampleBytes
                let to = (component * pixels + pixel) * sampleBytes
                for byte in 0..<sampleBytes { planes[to + byte] = samples[from + byte] }
            }
        }
        return planes
    }
}

/// An instance as a DICOM P10 file, in pieces: the header (file meta, attributes, Pixel Data's header), each frame
/// (read, and decoded for ELE, when asked for), the end. GetDICOMInstance streams them; `export` writes them.
public struct P10Assembly: Sendable {
    public let reader: DICOMwebReader
    public let instance: StoredInstance
    public let frames: [StoredFrame]
    /// Frames as native samples (ELE, or stored native), else encapsulated as stored.
    public let native: Bool
    public let transferSyntaxUID: String
    public let header: [UInt8]
    let nativeLength: Int?

    /// The instance with its frames decoded to ELE (`native`) or as stored; not acceptable when ELE is asked of
    /// frames that do not decode, or do not fill whole bytes one by one.
    public init(reader: DICOMwebReader, instance: StoredInstance, frames: [StoredFrame], decoded: Bool) throws {
        self.reader = reader
        self.instance = instance
        self.frames = frames
        let storedUID = instance.storedTransferSyntaxUID
        native = decoded || DICOMwebReader.isNativeLittleEndian(storedUID)
        transferSyntaxUID = decoded ? TransferSyntax.explicitVRLittleEndian.uid : storedUID
        var length: Int?
        if native && !frames.isEmpty {
            guard let frameBytes = DICOMwebReader.nativeFrameBytes(instance.pixelDescription) else {
                throw IngestServiceError(
                    .notAcceptableException,
                    "The frames of \(instance.sopInstanceUID) do not fill whole bytes one by one; ask for them as stored")
            }
            let (total, overflow) = frameBytes.multipliedReportingOverflow(by: frames.count)
            length = overflow ? Int.max : total
        }
        nativeLength = length
        var sopClass = ""
        if case .string(let uid)? = instance["SOPClassUID"] { sopClass = uid }
        var written = instance
        let encoding = PixelEncoding(transferSyntaxUID: transferSyntaxUID)
        if encoding == .htj2k || encoding == .jpeg2000, instance.pixelDescription.samplesPerPixel > 1 {
            // JPEG 2000 codes components its own way: Planar Configuration shall be 0 (PS3.5 §A.4.4, §A.4.6).
            written.attributes = written.attributes.map { $0.0 == "PlanarConfiguration" ? ($0.0, .int(0)) : $0 }
        }
        header = try P10Encoder.header(
            written, sopClassUID: sopClass, transferSyntaxUID: transferSyntaxUID, encapsulated: !native && !frames.isEmpty,
            pixelDataLength: length.map { $0 > P10Encoder.maximumNativePixelDataBytes ? $0 : ($0 + 1) & ~1 })
        self.decoded = decoded
    }

    private let decoded: Bool

    /// Frame `index` (0-based) as the file holds it: native samples, or one fragment.
    public func piece(_ index: Int) throws -> [UInt8] {
        let bytes = try reader.frame(frames[index], number: index + 1, of: instance, native: decoded)
        guard native else { return P10Encoder.fragment(bytes) }
        guard let nativeLength, bytes.count * frames.count == nativeLength else {
            throw IngestServiceError.internal(
                "Frame \(index + 1) of \(instance.sopInstanceUID) is \(bytes.count) bytes, not the size its pixel module gives")
        }
        return bytes
    }

    /// What follows the last frame: a pad byte for odd native Pixel Data, the delimiter of encapsulated Pixel Data.
    public var trailer: [UInt8] {
        if frames.isEmpty { return [] }
        if let nativeLength { return nativeLength % 2 == 1 ? [0] : [] }
        return P10Encoder.sequenceDelimiter
    }
}

/// One instance as an image set's metadata document holds it: its attributes at every level, the VRs of its
/// private ones, how its frames are stored and their checksums.
public struct StoredInstance: Sendable {
    public struct Frame: Hashable, Sendable {
        public var id: String
        /// CRC-32 of the full-resolution decoded samples, when the import could compute it.
        public var checksum: UInt32?
    }

    public var sopInstanceUID: String
    /// Patient, study and series attributes, then the instance's own.
    public var attributes: [(String, JSONValue)]
    public var vrs: [String: String]
    public var storedTransferSyntaxUID: String
    public var frames: [Frame]

    /// The instances of one series of a document, in document order.
    static func all(in document: JSONValue, seriesInstanceUID: String) -> [StoredInstance] {
        let study = document["Study"]
        guard let series = study?["Series"]?[seriesInstanceUID],
            case .object(let instances)? = series["Instances"]
        else { return [] }
        var shared: [(String, JSONValue)] = []
        for level in [document["Patient"], study, series] {
            if case .object(let members)? = level?["DICOM"] { shared.append(contentsOf: members) }
        }
        return instances.map { sop, entry in StoredInstance(sopInstanceUID: sop, shared: shared, entry: entry) }
    }

    /// The instance of a document that holds frame `frameId`, whatever its series.
    public static func holding(frameId: String, in document: JSONValue) -> StoredInstance? {
        guard case .object(let series)? = document["Study"]?["Series"] else { return nil }
        for (uid, _) in series {
            if let found = all(in: document, seriesInstanceUID: uid).first(where: { $0.frames.contains { $0.id == frameId } }) {
                return found
            }
        }
        return nil
    }

    /// The first value of a decimal attribute (DS text, one or several), e.g. WindowCenter.
    public func decimal(_ keyword: String) -> Double? {
        switch self[keyword] {
        case .string(let text)?: return Double(text.trimmingSpaces)
        case .array(let values)?:
            if case .string(let text)? = values.first { return Double(text.trimmingSpaces) }
            return nil
        case .double(let value)?: return value
        case .int(let value)?: return Double(value)
        default: return nil
        }
    }

    /// A top-level attribute by keyword (the instance's own wins over its series', study's and patient's).
    public subscript(keyword: String) -> JSONValue? {
        attributes.last { $0.0 == keyword }?.1
    }

    func integer(_ keyword: String) -> Int? {
        switch self[keyword] {
        case .int(let value)?: return Int(value)
        case .uint(let value)?: return Int(exactly: value)
        case .string(let text)?: return Int(text.trimmingSpaces)
        default: return nil
        }
    }

    /// The pixel module, as the import read it (defaults as PS3.3 C.7.6.3 implies).
    public var pixelDescription: PixelDescription {
        let bitsAllocated = integer("BitsAllocated") ?? 16
        let bitsStored = integer("BitsStored") ?? bitsAllocated
        var photometric = "MONOCHROME2"
        if case .string(let text)? = self["PhotometricInterpretation"] { photometric = text.trimmingSpaces }
        return PixelDescription(
            rows: integer("Rows") ?? 0, columns: integer("Columns") ?? 0, samplesPerPixel: integer("SamplesPerPixel") ?? 1,
            bitsAllocated: bitsAllocated, bitsStored: bitsStored, highBit: integer("HighBit") ?? bitsStored - 1,
            isSigned: integer("PixelRepresentation") == 1, planarConfiguration: integer("PlanarConfiguration") ?? 0,
            photometricInterpretation: photometric, isFloat: self["FloatPixelData"] != nil || self["DoubleFloatPixelData"] != nil)
    }

    /// The instance's DICOM JSON data set (PS3.18 F.2) for WADO-RS metadata: every attribute of every level, its
    /// Transfer Syntax UID the stored one (as HealthImaging answers), Pixel Data left out (frames are read by
    /// `/frames`).
    public func dicomJSON(bulkData: DICOMJSON.BulkData? = nil) -> JSONValue {
        var output: [UInt8] = []
        writeDICOMJSON(bulkData: bulkData, to: &output)
        return (try? JSONValue.parse(output)) ?? .object([])
    }

    /// `dicomJSON`, written into `output`.
    public func writeDICOMJSON(bulkData: DICOMJSON.BulkData? = nil, to output: inout [UInt8]) {
        DICOMJSON.write(
            attributes, vrs: vrs, replacing: [.transferSyntaxUID: (.UI, .string(storedTransferSyntaxUID))],
            omitting: [.pixelData, .floatPixelData, .doubleFloatPixelData], bulkData: bulkData, to: &output)
    }

    /// GetDICOMBulkdata: the bytes of the binary value a `BulkDataURI` of this instance names.
    public func bulkData(key: String) -> [UInt8]? {
        DICOMJSON.bulkValue(key: key, in: attributes, vrs: vrs).flatMap { Data(base64Encoded: $0) }.map { [UInt8]($0) }
    }
}

extension StoredInstance {
    /// An instance from its entry of a metadata document (`DICOM`, `DICOMVRs`, `ImageFrames`,
    /// `StoredTransferSyntaxUID`) after the attributes of its patient, study and series.
    init(sopInstanceUID sop: String, shared: [(String, JSONValue)], entry: JSONValue) {
        var attributes = shared
        if case .object(let members)? = entry["DICOM"] { attributes.append(contentsOf: members) }
        var vrs: [String: String] = [:]
        if case .object(let members)? = entry["DICOMVRs"] {
            for case (let key, .string(let vr)) in members { vrs[key] = vr }
        }
        var frames: [Frame] = []
        if case .array(let entries)? = entry["ImageFrames"] {
            for frame in entries {
                guard case .string(let id)? = frame["ID"] else { continue }
                var checksum: UInt32?
                if case .array(let levels)? = frame["PixelDataChecksumFromBaseToFullResolution"],
                    case .int(let value)? = levels.last?["Checksum"]
                {
                    checksum = UInt32(exactly: value)
                }
                frames.append(Frame(id: id, checksum: checksum))
            }
        }
        var stored = ""
        if case .string(let uid)? = entry["StoredTransferSyntaxUID"] { stored = uid }
        self.init(sopInstanceUID: sop, attributes: attributes, vrs: vrs, storedTransferSyntaxUID: stored, frames: frames)
    }
}
