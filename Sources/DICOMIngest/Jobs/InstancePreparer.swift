import Dispatch
import DICOMCore
public import DICOMIngestModel
public import DICOMParser
public import DICOMPixels

/// One warning of a result line (`WARNING/warning.ndjson`, spec §2.5).
public struct ImportWarning: Hashable, Sendable {
    /// `warning_reason_code`: 45330 for HealthImaging's `InvalidOffsetTable`; ours are 90000 and up.
    public var reasonCode: Int
    public var type: String
    public var message: String

    public init(reasonCode: Int, type: String, message: String) {
        self.reasonCode = reasonCode
        self.type = type
        self.message = message
    }

    public var json: JSONValue {
        .object([("warning_reason_code", .int(Int64(reasonCode))), ("type", .string(type)), ("message", .string(message))])
    }

    /// HealthImaging's published warning.
    public static func invalidOffsetTable(_ detail: String) -> ImportWarning {
        ImportWarning(
            reasonCode: 45330, type: "InvalidOffsetTable",
            message:
                "The file was imported but contains an invalid offset table, may see issues when retrieving certain frames. \(detail)"
        )
    }

    static let frameNotDecodedType = "FrameNotDecoded"

    /// Lossless frames the codec cannot take (float, 32-bit, subsampled, too large) are stored as they arrived.
    static func frameKept(transferSyntaxUID: String, reason: String) -> ImportWarning {
        ImportWarning(
            reasonCode: 90200, type: "FrameKeptAsIs",
            message: "Frames are stored in their original transfer syntax \(transferSyntaxUID), not transcoded: \(reason)")
    }

    /// A frame kept as it arrived (lossy or video) that could not be decoded to checksum it.
    static func frameNotDecoded(frame: Int, _ detail: String) -> ImportWarning {
        ImportWarning(
            reasonCode: 90201, type: frameNotDecodedType,
            message: "Frame \(frame + 1) was stored as it arrived but could not be decoded: \(detail)")
    }

    /// A fast-path parse warning (`P10Warning`), with a stable code per kind.
    static func parse(_ warning: P10Warning) -> ImportWarning {
        let codes: [P10Warning.Code: Int] = [
            .missingPreamble: 90001, .missingFileMeta: 90002, .groupLengthMismatch: 90003, .missingGroupLength: 90004,
            .implicitFileMeta: 90005, .encodingMismatch: 90006, .unknownTransferSyntax: 90007, .oddLength: 90008,
            .outOfOrderTag: 90009, .duplicateTag: 90010, .unterminatedSequence: 90011, .trailingPadding: 90012,
        ]
        return ImportWarning(reasonCode: codes[warning.code] ?? 90000, type: warning.code.rawValue, message: warning.locatedMessage)
    }
}

/// Where one stored frame is.
public struct StoredFrame: Hashable, Sendable {
    public var id: String
    public var blob: String
    public var offset: Int
    public var length: Int
    /// The transfer syntax the frame's bytes are encoded in (GetImageFrame's content type follows it).
    public var transferSyntaxUID: String

    public init(id: String, blob: String, offset: Int, length: Int, transferSyntaxUID: String) {
        self.id = id
        self.blob = blob
        self.offset = offset
        self.length = length
        self.transferSyntaxUID = transferSyntaxUID
    }
}

/// An instance read, validated and with its frames stored, waiting to be grouped into an image set.
public struct PreparedInstance: Hashable, Sendable {
    public var inputKey: String
    public var sopInstanceUID: String
    public var key: ImageSetKey
    /// Compact JSON of the `DICOM` objects of each level (spec §3.1).
    public var patientJSON: [UInt8]
    public var studyJSON: [UInt8]
    public var seriesJSON: [UInt8]
    /// Compact JSON of the instance entry: `DICOM`, `DICOMVRs`, `StoredTransferSyntaxUID`, `ImageFrames`.
    public var instanceJSON: [UInt8]
    public var frames: [StoredFrame]
    public var warnings: [ImportWarning]

    /// About what the instance holds in memory until it is staged (its JSON pieces and frame records).
    public var heldBytes: Int {
        patientJSON.count + studyJSON.count + seriesJSON.count + instanceJSON.count + frames.count * 160
            + inputKey.utf8.count + 256
    }

    public init(
        inputKey: String, sopInstanceUID: String, key: ImageSetKey, patientJSON: [UInt8], studyJSON: [UInt8],
        seriesJSON: [UInt8], instanceJSON: [UInt8], frames: [StoredFrame], warnings: [ImportWarning]
    ) {
        self.inputKey = inputKey
        self.sopInstanceUID = sopInstanceUID
        self.key = key
        self.patientJSON = patientJSON
        self.studyJSON = studyJSON
        self.seriesJSON = seriesJSON
        self.instanceJSON = instanceJSON
        self.frames = frames
        self.warnings = warnings
    }
}

/// A file that cannot be imported, with the reason for `FAILURE/failure.ndjson` (spec §2.4).
public struct ImportFailure: Hashable, Sendable, Error {
    public var inputKey: String
    /// `ValidationException` for input problems, `InternalServerException` for ours.
    public var exceptionType: String
    public var message: String

    public init(inputKey: String, exceptionType: String, message: String) {
        self.inputKey = inputKey
        self.exceptionType = exceptionType
        self.message = message
    }

    static func validation(_ key: String, _ message: String) -> ImportFailure {
        ImportFailure(inputKey: key, exceptionType: "ValidationException", message: message)
    }
}

/// Per-worker state: the scanner's read window, the frame copy buffer and the worker's frame pack.
///
/// Each worker appends the frames of all its instances to one pack blob (a new one past `packLimit` bytes), so a
/// job creates a handful of files instead of one per instance.
public final class WorkerScratch {
    let readBuffer = P10ReadBuffer()
    let pixels = PixelScratch()
    let copyBuffer: UnsafeMutableRawBufferPointer
    private let packLimit: Int
    private var writer: (any FrameBlobWriter)?

    public init(copyBufferSize: Int = 1 << 20, packLimit: Int = 1 << 30) {
        copyBuffer = .allocate(byteCount: copyBufferSize, alignment: 16)
        self.packLimit = packLimit
    }

    deinit {
        copyBuffer.deallocate()
    }

    func blobWriter(storage: any FrameStorage, datastoreId: String) throws -> any FrameBlobWriter {
        if let writer, writer.size < packLimit { return writer }
        try writer?.finish()
        let next = try storage.makeBlobWriter(datastoreId: datastoreId)
        writer = next
        return next
    }

    /// Closes the current pack; call when the worker is done.
    public func finish() throws {
        try writer?.finish()
        writer = nil
    }

    /// Forgets the current pack unfinished (an instance failed after writing some frames to a blob that ends with
    /// it: nothing names them, and an object store never shows them).
    func dropPack() {
        writer = nil
    }
}

/// Reads one object, validates it, stores its frames (streamed through a bounded buffer, never the whole
/// file in memory) and returns its metadata pieces. Runs on the worker pool, one object per call.
public struct InstancePreparer: Sendable {
    public let frameStorage: any FrameStorage
    public let datastoreId: String

    static let summaryTags: [DICOMTag] = [
        .sopInstanceUID, .sopClassUID, .studyInstanceUID, .seriesInstanceUID, .patientID, .patientName, .studyDate,
        .accessionNumber, .studyID, .seriesNumber, .rows, .columns, .samplesPerPixel, .bitsAllocated,
        .pixelRepresentation, .bitsStored, .highBit, .planarConfiguration, .photometricInterpretation, .patientBirthDate, .patientSex, .studyTime, .studyDescription,
    ]

    /// Maximum lengths HealthImaging enforces at import (spec §5.4, English table).
    static let lengthLimits: [(DICOMTag, String, Int)] = [
        (.patientName, "PatientName", 256), (.patientID, "PatientID", 256), (.patientBirthDate, "PatientBirthDate", 18),
        (.patientSex, "PatientSex", 16), (.studyInstanceUID, "StudyInstanceUID", 256), (.studyID, "StudyID", 256),
        (.studyDescription, "StudyDescription", 256), (.accessionNumber, "AccessionNumber", 256),
        (.studyDate, "StudyDate", 18), (.studyTime, "StudyTime", 28), (.sopInstanceUID, "SOPInstanceUID", 256),
        (.seriesInstanceUID, "SeriesInstanceUID", 256),
    ]

    private let reader = InstanceReader(options: .init(buildMetadata: true, summaryTags: InstancePreparer.summaryTags))
    private let frameProcessor: FrameProcessor

    /// Shared with the job's other workers: frame buffers are reserved from it while a frame is transcoded.
    public let memoryBudget: MemoryBudget
    /// How long one object may take; checked between frames (a decoder is never interrupted mid-frame).
    public let timeLimit: Double

    public init(
        frameStorage: any FrameStorage, datastoreId: String, losslessCodec: LosslessCodec = .htj2k,
        memoryBudget: MemoryBudget = MemoryBudget(limit: ImportEngine.Configuration.defaultMemoryBudget),
        timeLimit: Double = ImportEngine.Configuration.defaultObjectTimeLimit
    ) {
        self.frameStorage = frameStorage
        self.datastoreId = datastoreId
        frameProcessor = FrameProcessor(format: losslessCodec)
        self.memoryBudget = memoryBudget
        self.timeLimit = timeLimit
    }

    public func prepare(
        key inputKey: String,
        input: any P10ByteInput,
        scratch: WorkerScratch,
        cancellation: WorkerPool.Cancellation? = nil
    ) -> Result<PreparedInstance, ImportFailure> {
        let deadline = DispatchTime.now().uptimeNanoseconds &+ UInt64(max(0, timeLimit) * 1e9)
        let read: ReadInstance
        do {
            read = try reader.read(input: input, buffer: scratch.readBuffer)
        } catch {
            return .failure(.validation(inputKey, Self.failureMessage(for: error)))
        }
        guard var metadata = read.metadata else {
            return .failure(ImportFailure(inputKey: inputKey, exceptionType: "InternalServerException", message: "no metadata"))
        }
        guard let transferSyntaxUID = read.transferSyntaxUID, !transferSyntaxUID.isEmpty else {
            return .failure(.validation(inputKey, "DICOM attribute TransferSyntaxUID does not exist"))
        }
        func text(_ keyword: String) -> String {
            switch read.summaryValue(keyword) {
            case .string(let value): return value.trimmingSpaces
            case .array(let values): return values.compactMap(\.stringValue).joined(separator: "\\").trimmingSpaces
            default: return ""
            }
        }
        for keyword in ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID"] where text(keyword).isEmpty {
            return .failure(.validation(inputKey, "DICOM attribute \(keyword) does not exist"))
        }
        for (_, keyword, limit) in Self.lengthLimits where text(keyword).utf8.count > limit {
            return .failure(
                .validation(inputKey, "DICOM attribute \(keyword) exceeds the maximum length of \(limit) characters"))
        }
        var warnings = read.warnings.map(ImportWarning.parse)

        var frames: [StoredFrame] = []
        var frameEntries: [JSONValue] = []
        var storedTransferSyntaxUID = transferSyntaxUID
        var checksummed = false
        if let pixel = read.pixelData {
            do {
                let stored = try storeFrames(
                    pixel: pixel, read: read, transferSyntaxUID: transferSyntaxUID, scratch: scratch, deadline: deadline,
                    cancellation: cancellation)
                frames = stored.frames
                frameEntries = stored.entries
                storedTransferSyntaxUID = stored.storedTransferSyntaxUID
                checksummed = stored.checksummed
                warnings += stored.warnings
                if let problem = pixel.offsetTableProblem { warnings.append(.invalidOffsetTable(problem)) }
                if frameStorage.blobsEndWithEachInstance { try scratch.finish() }
            } catch let failure as ImportFailure {
                if frameStorage.blobsEndWithEachInstance { scratch.dropPack() }
                return .failure(ImportFailure(inputKey: inputKey, exceptionType: failure.exceptionType, message: failure.message))
            } catch {
                if frameStorage.blobsEndWithEachInstance { scratch.dropPack() }
                return .failure(ImportFailure(inputKey: inputKey, exceptionType: "InternalServerException", message: "storing frames failed: \(error)"))
            }
        }

        var instance: [(String, JSONValue)] = [
            ("DICOM", .object(metadata.instance)), ("DICOMVRs", .object(metadata.vrs)),
            ("StoredTransferSyntaxUID", .string(storedTransferSyntaxUID)),
        ]
        if !frameEntries.isEmpty {
            if checksummed { instance.append(("ChecksumType", .string("DECOMPRESSED"))) }
            instance.append(("ImageFrames", .array(frameEntries)))
        }
        metadata.instance = []
        let key = ImageSetKey(
            studyInstanceUID: text("StudyInstanceUID"), seriesInstanceUID: text("SeriesInstanceUID"),
            patientID: text("PatientID"), patientName: text("PatientName"), studyDate: text("StudyDate"),
            accessionNumber: text("AccessionNumber"), studyID: text("StudyID"), seriesNumber: text("SeriesNumber"))
        return .success(
            PreparedInstance(
                inputKey: inputKey, sopInstanceUID: text("SOPInstanceUID"), key: key,
                patientJSON: Self.bytes(.object(metadata.patient)), studyJSON: Self.bytes(.object(metadata.study)),
                seriesJSON: Self.bytes(.object(metadata.series)), instanceJSON: Self.bytes(.object(instance)),
                frames: frames, warnings: warnings))
    }

    static func bytes(_ value: JSONValue) -> [UInt8] {
        var output: [UInt8] = []
        value.write(to: &output)
        return output
    }

    static func failureMessage(for error: DICOMParseError) -> String {
        switch error.code {
        case .notDICOM:
            return "Not a DICOM P10 file: \(error.locatedMessage)"
        case .missingTransferSyntax:
            return "DICOM attribute TransferSyntaxUID does not exist"
        default:
            return "\(error.code): \(error.locatedMessage)"
        }
    }

    // MARK: - Frames

    private struct StoredFrames {
        var frames: [StoredFrame]
        var entries: [JSONValue]
        var storedTransferSyntaxUID: String
        var checksummed: Bool
        var warnings: [ImportWarning]
    }

    /// Stores every frame of the instance, one at a time (a multi-frame file is never held whole): lossless
    /// frames are decoded, encoded in the data store's lossless format and verified (spec §5.3); the others are
    /// kept as they arrived, checksummed where they can be decoded.
    private func storeFrames(
        pixel: PixelDataSummary,
        read: ReadInstance,
        transferSyntaxUID: String,
        scratch: WorkerScratch,
        deadline: UInt64,
        cancellation: WorkerPool.Cancellation?
    ) throws -> StoredFrames {
        defer { scratch.pixels.trim() }
        let description = try Self.pixelDescription(read: read, pixel: pixel)
        var encoding = PixelEncoding(transferSyntaxUID: transferSyntaxUID)
        // Big-endian 8-bit samples are swapped only when written as OW words (PS3.5 §7.3); OB keeps byte order.
        if case .native(true) = encoding, description.bitsAllocated == 8, pixel.vr != .OW {
            encoding = .native(bigEndian: false)
        }
        let frameCount = read.numberOfFrames
        let writer = try scratch.blobWriter(storage: frameStorage, datastoreId: datastoreId)

        // Where each frame's bytes are: fragment ranges for encapsulated data, slices of Pixel Data otherwise.
        let sources: [[(offset: Int, length: Int)]]
        if pixel.isEncapsulated {
            guard let layout = pixel.frames else {
                throw ImportFailure.validation(
                    "", "Cannot determine frame boundaries: \(pixel.fragments.count) fragments for \(frameCount) frames and no usable offset table")
            }
            sources = layout.map { range in pixel.fragments[range].map { ($0.valueOffset, $0.length) } }
        } else {
            guard let frameSize = description.nativeFrameBytes, frameSize > 0 else {
                throw ImportFailure.validation(
                    "", "Rows \(description.rows) × Columns \(description.columns) × SamplesPerPixel \(description.samplesPerPixel) × BitsAllocated \(description.bitsAllocated) is not a frame size (it overflows or is not whole bytes)")
            }
            let (needed, overflow) = frameSize.multipliedReportingOverflow(by: frameCount)
            guard !overflow, pixel.length >= needed else {
                throw ImportFailure.validation(
                    "", "Pixel Data holds \(pixel.length) bytes but Rows, Columns, SamplesPerPixel, BitsAllocated and NumberOfFrames need \(overflow ? "more" : String(needed))")
            }
            if read.datasetIsBigEndian && description.bitsAllocated == 8 && pixel.vr == .OW && frameSize % 2 == 1 {
                // Word-swapped 8-bit samples: an odd frame needs the padding byte of its last word; frames after
                // the first would start inside a word.
                guard frameCount == 1, pixel.length > frameSize else {
                    throw ImportFailure.validation("", "Odd-sized 8-bit frames in big-endian OW Pixel Data are not supported")
                }
                sources = [[(pixel.valueOffset, frameSize + 1)]]
            } else {
                sources = (0..<frameCount).map { [(pixel.valueOffset + $0 * frameSize, frameSize)] }
            }
        }

        let plan = StoragePlan(transferSyntaxUID: transferSyntaxUID)
        let keptReason = plan == .transcode ? description.unencodableReason : nil
        let transcode = plan == .transcode && keptReason == nil
        var result = StoredFrames(
            frames: [], entries: [], storedTransferSyntaxUID: transcode ? frameProcessor.format.transferSyntaxUID : transferSyntaxUID,
            checksummed: true, warnings: [])
        if let keptReason {
            result.warnings.append(.frameKept(transferSyntaxUID: transferSyntaxUID, reason: keptReason))
        }
        for (index, fragments) in sources.enumerated() {
            guard DispatchTime.now().uptimeNanoseconds <= deadline else {
                throw ImportFailure.validation(
                    "", "The object took longer than the \(Int(timeLimit)) s an object may take (stopped before frame \(index + 1) of \(sources.count))")
            }
            if cancellation?.isCancelled == true {
                throw ImportFailure(inputKey: "", exceptionType: "InternalServerException", message: "The job was stopped before frame \(index + 1) of \(sources.count)")
            }
            let id = ResourceID.make()
            let offset = writer.size
            var entry: [(String, JSONValue)] = [("ID", .string(id))]
            let encodedLength = fragments.reduce(0) { $0 + $1.length }
            if transcode {
                guard encodedLength <= PixelLimits.maxEncodedFrameBytes else {
                    throw ImportFailure.validation("", "Frame \(index + 1) holds \(encodedLength) bytes, more than the \(PixelLimits.maxEncodedFrameBytes) a frame may have")
                }
                let frameBytes = Self.frameMemory(encodedLength: encodedLength, encoding: encoding, description: description)
                memoryBudget.reserve(frameBytes)
                defer { memoryBudget.release(frameBytes) }
                let encoded = try readFrame(fragments, from: read.datasetInput, into: scratch.pixels.encoded.bytes(encodedLength))
                let codestream: [UInt8]
                let statistics: FrameStatistics
                do {
                    let decoded = try frameProcessor.decode(encoded, encoding: encoding, description: description, scratch: scratch.pixels)
                    statistics = decoded.statistics
                    codestream = try frameProcessor.encodeVerified(decoded, description: description, scratch: scratch.pixels)
                } catch {
                    throw Self.failure(error, frame: index)
                }
                try codestream.withUnsafeBytes { try writer.append($0) }
                Self.appendChecksum(statistics, description: description, to: &entry)
            } else {
                var statistics: FrameStatistics?
                if case .native(let bigEndian) = encoding {
                    // Kept native frames (float, 32-bit, 1-bit) stream through the copy buffer with their checksum.
                    var streamed = FrameStatistics(
                        format: SampleFormat(bitsAllocated: description.bitsAllocated, signed: description.isSigned, bigEndian: bigEndian))
                    try copy(fragments, from: read.datasetInput, to: writer, scratch: scratch, statistics: &streamed)
                    statistics = streamed
                } else if encoding != .opaque && encodedLength <= PixelLimits.maxEncodedFrameBytes {
                    let frameBytes = Self.frameMemory(encodedLength: encodedLength, encoding: encoding, description: description)
                    memoryBudget.reserve(frameBytes)
                    defer { memoryBudget.release(frameBytes) }
                    let encoded = try readFrame(fragments, from: read.datasetInput, into: scratch.pixels.encoded.bytes(encodedLength))
                    do {
                        statistics = try frameProcessor.decode(encoded, encoding: encoding, description: description, scratch: scratch.pixels).statistics
                    } catch {
                        if result.warnings.allSatisfy({ $0.type != ImportWarning.frameNotDecodedType }) {
                            result.warnings.append(.frameNotDecoded(frame: index, error.message))
                        }
                    }
                    try writer.append(encoded)
                } else {
                    // Video, JPEG XL and unknown syntaxes (never decoded) and frames past the size limit: streamed.
                    var ignored = FrameStatistics(format: SampleFormat(bitsAllocated: 8, signed: false, bigEndian: false))
                    try copy(fragments, from: read.datasetInput, to: writer, scratch: scratch, statistics: &ignored)
                }
                if let statistics {
                    Self.appendChecksum(statistics, description: description, to: &entry)
                } else {
                    result.checksummed = false
                }
            }
            entry.append(("FrameSizeInBytes", .int(Int64(writer.size - offset))))
            result.frames.append(
                StoredFrame(id: id, blob: writer.blobName, offset: offset, length: writer.size - offset,
                            transferSyntaxUID: result.storedTransferSyntaxUID))
            result.entries.append(.object(entry))
        }
        return result
    }

    /// The pixel module of the instance, from the summary values (defaults as PS3.3 C.7.6.3 implies).
    static func pixelDescription(read: ReadInstance, pixel: PixelDataSummary) throws -> PixelDescription {
        let rows = integer(read.summaryValue("Rows")) ?? 0
        let columns = integer(read.summaryValue("Columns")) ?? 0
        guard rows > 0, columns > 0 else {
            throw ImportFailure.validation("", "DICOM attribute Rows or Columns does not exist for the Pixel Data present")
        }
        let bitsAllocated = integer(read.summaryValue("BitsAllocated")) ?? (pixel.tag == .pixelData ? 16 : 32)
        let bitsStored = integer(read.summaryValue("BitsStored")) ?? bitsAllocated
        let photometric: String
        switch read.summaryValue("PhotometricInterpretation") {
        case .string(let value): photometric = value.trimmingSpaces
        default: photometric = "MONOCHROME2"
        }
        return PixelDescription(
            rows: rows, columns: columns, samplesPerPixel: integer(read.summaryValue("SamplesPerPixel")) ?? 1,
            bitsAllocated: bitsAllocated, bitsStored: bitsStored,
            highBit: integer(read.summaryValue("HighBit")) ?? bitsStored - 1,
            isSigned: integer(read.summaryValue("PixelRepresentation")) == 1,
            planarConfiguration: integer(read.summaryValue("PlanarConfiguration")) ?? 0,
            photometricInterpretation: photometric, isFloat: pixel.tag != .pixelData)
    }

    /// `PixelDataChecksumFromBaseToFullResolution` (the full resolution only, spec §3.4) and min/max.
    private static func appendChecksum(
        _ statistics: FrameStatistics, description: PixelDescription, to entry: inout [(String, JSONValue)]
    ) {
        entry.append(("PixelDataChecksumFromBaseToFullResolution", .array([.object([
            ("Width", .int(Int64(description.columns))), ("Height", .int(Int64(description.rows))),
            ("Checksum", .int(Int64(statistics.crc))),
        ])])))
        if let minimum = statistics.minimum, let maximum = statistics.maximum {
            entry.append(("MinPixelValue", .int(minimum)))
            entry.append(("MaxPixelValue", .int(maximum)))
        }
    }

    /// What transcoding or checksumming one frame holds, for the memory budget: the encoded frame, the decoded,
    /// intermediate and verification buffers at their largest, and for a codestream the codec helper's shared
    /// region and its decoder's allowance (the helper's limit is the same figure).
    static func frameMemory(encodedLength: Int, encoding: PixelEncoding, description: PixelDescription) -> Int {
        let decodedBytes = description.decodeBufferBytes ?? 0
        let engine = encodedLength + 3 * decodedBytes
        switch encoding {
        case .jpeg, .jpegLS, .jpeg2000, .htj2k:
            return engine + CodecHelperPool.frameMemory(encodedBytes: encodedLength, decodedBytes: decodedBytes)
        default: return engine
        }
    }

    /// A frame that cannot be decoded is bad input; one that does not encode or verify, or whose codec helper
    /// cannot be reached, is ours.
    private static func failure(_ error: PixelError, frame: Int) -> ImportFailure {
        switch error.kind {
        case .decode, .unsupported:
            return .validation("", "Frame \(frame + 1) cannot be decoded: \(error.message)")
        case .helper:
            return ImportFailure(
                inputKey: "", exceptionType: "InternalServerException", message: "Frame \(frame + 1) was not decoded: \(error.message)")
        case .encode, .verification:
            return ImportFailure(
                inputKey: "", exceptionType: "InternalServerException",
                message: "Frame \(frame + 1) failed pixel data verification: \(error.message)")
        }
    }

    /// Reads a frame's fragments back to back into `buffer` (sized to their total).
    private func readFrame(
        _ fragments: [(offset: Int, length: Int)], from input: any P10ByteInput, into buffer: UnsafeMutableRawBufferPointer
    ) throws -> UnsafeRawBufferPointer {
        var filled = 0
        for fragment in fragments {
            let target = UnsafeMutableRawBufferPointer(rebasing: buffer[filled..<(filled + fragment.length)])
            let got = try input.read(at: fragment.offset, into: target)
            guard got == fragment.length else {
                throw ImportFailure.validation("", "Pixel Data ends early at offset \(fragment.offset + got)")
            }
            filled += fragment.length
        }
        return UnsafeRawBufferPointer(rebasing: buffer[0..<filled])
    }

    /// Copies fragments through the worker's bounded buffer, feeding the checksum and min/max on the way.
    private func copy(
        _ fragments: [(offset: Int, length: Int)],
        from input: any P10ByteInput,
        to writer: any FrameBlobWriter,
        scratch: WorkerScratch,
        statistics: inout FrameStatistics
    ) throws {
        for fragment in fragments {
            var done = 0
            while done < fragment.length {
                let chunk = min(scratch.copyBuffer.count, fragment.length - done)
                let target = UnsafeMutableRawBufferPointer(rebasing: scratch.copyBuffer[0..<chunk])
                let got = try input.read(at: fragment.offset + done, into: target)
                guard got == chunk else {
                    throw ImportFailure.validation("", "Pixel Data ends early at offset \(fragment.offset + done + got)")
                }
                let bytes = UnsafeRawBufferPointer(target)
                statistics.add(bytes)
                try writer.append(bytes)
                done += chunk
            }
        }
    }

    static func integer(_ value: JSONValue?) -> Int? {
        value.flatMap(InstanceReader.integer)
    }
}
