public import DICOMCore
public import DICOMIngestModel
public import DICOMParser

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
}

/// Reads one object, validates it, stores its frames (streamed through a bounded buffer, never the whole
/// file in memory) and returns its metadata pieces. Runs on the worker pool, one object per call.
public struct InstancePreparer: Sendable {
    public let frameStorage: any FrameStorage
    public let datastoreId: String

    static let summaryTags: [DICOMTag] = [
        .sopInstanceUID, .sopClassUID, .studyInstanceUID, .seriesInstanceUID, .patientID, .patientName, .studyDate,
        .accessionNumber, .studyID, .seriesNumber, .rows, .columns, .samplesPerPixel, .bitsAllocated,
        .pixelRepresentation, .patientBirthDate, .patientSex, .studyTime, .studyDescription,
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

    public init(frameStorage: any FrameStorage, datastoreId: String) {
        self.frameStorage = frameStorage
        self.datastoreId = datastoreId
    }

    public func prepare(
        key inputKey: String,
        input: any P10ByteInput,
        scratch: WorkerScratch
    ) -> Result<PreparedInstance, ImportFailure> {
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
        if let pixel = read.pixelData {
            do {
                let stored = try storeFrames(pixel: pixel, read: read, transferSyntaxUID: transferSyntaxUID, scratch: scratch)
                frames = stored.frames
                frameEntries = stored.entries
                if let problem = stored.offsetTableProblem { warnings.append(.invalidOffsetTable(problem)) }
            } catch let failure as ImportFailure {
                return .failure(ImportFailure(inputKey: inputKey, exceptionType: failure.exceptionType, message: failure.message))
            } catch {
                return .failure(ImportFailure(inputKey: inputKey, exceptionType: "InternalServerException", message: "storing frames failed: \(error)"))
            }
        }

        var instance: [(String, JSONValue)] = [
            ("DICOM", .object(metadata.instance)), ("DICOMVRs", .object(metadata.vrs)),
            ("StoredTransferSyntaxUID", .string(transferSyntaxUID)),
        ]
        if !frameEntries.isEmpty {
            if frameEntries.first?["PixelDataChecksumFromBaseToFullResolution"] != nil {
                instance.append(("ChecksumType", .string("DECOMPRESSED")))
            }
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
        var offsetTableProblem: String?
    }

    private func storeFrames(
        pixel: PixelDataSummary,
        read: ReadInstance,
        transferSyntaxUID: String,
        scratch: WorkerScratch
    ) throws -> StoredFrames {
        let input = read.datasetInput
        let rows = Self.integer(read.summaryValue("Rows")) ?? 0
        let columns = Self.integer(read.summaryValue("Columns")) ?? 0
        let samples = Self.integer(read.summaryValue("SamplesPerPixel")) ?? 1
        let bitsAllocated = Self.integer(read.summaryValue("BitsAllocated")) ?? (pixel.tag == .pixelData ? 16 : 32)
        let signed = Self.integer(read.summaryValue("PixelRepresentation")) == 1
        let frameCount = read.numberOfFrames
        let writer = try scratch.blobWriter(storage: frameStorage, datastoreId: datastoreId)
        var frames: [StoredFrame] = []
        var entries: [JSONValue] = []

        if pixel.isEncapsulated {
            guard let layout = pixel.frames else {
                throw ImportFailure.validation(
                    "", "Cannot determine frame boundaries: \(pixel.fragments.count) fragments for \(frameCount) frames and no usable offset table")
            }
            for range in layout {
                let offset = writer.size
                for fragment in pixel.fragments[range] {
                    _ = try copy(from: input, at: fragment.valueOffset, count: fragment.length, to: writer, scratch: scratch, sample: nil)
                }
                let id = ResourceID.make()
                frames.append(StoredFrame(id: id, blob: writer.blobName, offset: offset, length: writer.size - offset, transferSyntaxUID: transferSyntaxUID))
                entries.append(.object([("ID", .string(id)), ("FrameSizeInBytes", .int(Int64(writer.size - offset)))]))
            }
            return StoredFrames(frames: frames, entries: entries, offsetTableProblem: pixel.offsetTableProblem)
        }

        let frameBits = rows * columns * samples * bitsAllocated
        guard rows > 0, columns > 0, frameBits > 0 else {
            throw ImportFailure.validation("", "DICOM attribute Rows or Columns does not exist for the Pixel Data present")
        }
        guard frameBits % 8 == 0 else {
            throw ImportFailure.validation("", "Frames of \(frameBits) bits are not byte aligned (BitsAllocated \(bitsAllocated))")
        }
        let frameSize = frameBits / 8
        guard pixel.length >= frameSize * frameCount else {
            throw ImportFailure.validation(
                "", "Pixel Data holds \(pixel.length) bytes but Rows, Columns, SamplesPerPixel, BitsAllocated and NumberOfFrames need \(frameSize * frameCount)")
        }
        let sampleFormat = SampleFormat(bitsAllocated: bitsAllocated, signed: signed, bigEndian: read.datasetIsBigEndian)
        for index in 0..<frameCount {
            let offset = writer.size
            var statistics = FrameStatistics(format: sampleFormat)
            try copy(from: input, at: pixel.valueOffset + index * frameSize, count: frameSize, to: writer, scratch: scratch, sample: &statistics)
            let id = ResourceID.make()
            frames.append(StoredFrame(id: id, blob: writer.blobName, offset: offset, length: frameSize, transferSyntaxUID: transferSyntaxUID))
            var entry: [(String, JSONValue)] = [
                ("ID", .string(id)),
                ("PixelDataChecksumFromBaseToFullResolution", .array([.object([
                    ("Width", .int(Int64(columns))), ("Height", .int(Int64(rows))), ("Checksum", .int(Int64(statistics.crc))),
                ])])),
            ]
            if let minimum = statistics.minimum, let maximum = statistics.maximum {
                entry.append(("MinPixelValue", .int(minimum)))
                entry.append(("MaxPixelValue", .int(maximum)))
            }
            entry.append(("FrameSizeInBytes", .int(Int64(frameSize))))
            entries.append(.object(entry))
        }
        return StoredFrames(frames: frames, entries: entries, offsetTableProblem: nil)
    }

    /// Copies `count` bytes through the worker's bounded buffer, feeding the checksum and min/max on the way.
    @discardableResult
    private func copy(
        from input: any P10ByteInput,
        at start: Int,
        count: Int,
        to writer: any FrameBlobWriter,
        scratch: WorkerScratch,
        sample statistics: UnsafeMutablePointer<FrameStatistics>?
    ) throws -> Int {
        var done = 0
        while done < count {
            let chunk = min(scratch.copyBuffer.count, count - done)
            let target = UnsafeMutableRawBufferPointer(rebasing: scratch.copyBuffer[0..<chunk])
            let got = try input.read(at: start + done, into: target)
            guard got == chunk else {
                throw ImportFailure.validation("", "Pixel Data ends early at offset \(start + done + got)")
            }
            let bytes = UnsafeRawBufferPointer(target)
            statistics?.pointee.add(bytes)
            try writer.append(bytes)
            done += chunk
        }
        return done
    }

    private func copy(
        from input: any P10ByteInput,
        at start: Int,
        count: Int,
        to writer: any FrameBlobWriter,
        scratch: WorkerScratch,
        sample statistics: inout FrameStatistics
    ) throws {
        try withUnsafeMutablePointer(to: &statistics) { pointer in
            _ = try copy(from: input, at: start, count: count, to: writer, scratch: scratch, sample: pointer)
        }
    }

    static func integer(_ value: JSONValue?) -> Int? {
        value.flatMap(InstanceReader.integer)
    }
}

/// How native samples are laid out, for checksums and min/max.
struct SampleFormat {
    var bitsAllocated: Int
    var signed: Bool
    var bigEndian: Bool
}

/// CRC-32 over the little-endian samples of a frame (what a decoder hands back), and integer min/max.
struct FrameStatistics {
    let format: SampleFormat
    var crc: UInt32 = 0
    var minimum: Int64?
    var maximum: Int64?
    /// A byte left over when a chunk ends in the middle of a 16-bit sample.
    private var carry: UInt8?

    init(format: SampleFormat) {
        self.format = format
    }

    mutating func add(_ bytes: UnsafeRawBufferPointer) {
        switch format.bitsAllocated {
        case 8:
            crc = Compression.crc32(bytes, continuing: crc)
            if format.signed {
                scan(bytes.bindMemory(to: Int8.self))
            } else {
                scan(bytes.bindMemory(to: UInt8.self))
            }
        case 16 where !format.bigEndian && carry == nil && bytes.count % 2 == 0
            && Int(bitPattern: bytes.baseAddress) % 2 == 0:
            // The common case: whole little-endian samples, aligned (chunks start at the buffer's start).
            crc = Compression.crc32(bytes, continuing: crc)
            if format.signed {
                scan(bytes.bindMemory(to: Int16.self))
            } else {
                scan(bytes.bindMemory(to: UInt16.self))
            }
        case 16:
            var pairs: [UInt8] = []
            pairs.reserveCapacity(bytes.count + 1)
            if let carry { pairs.append(carry) }
            pairs.append(contentsOf: bytes)
            let usable = pairs.count & ~1
            carry = pairs.count > usable ? pairs.last : nil
            if format.bigEndian {
                for index in stride(from: 0, to: usable, by: 2) { pairs.swapAt(index, index + 1) }
            }
            pairs.withUnsafeBytes { raw in
                let whole = UnsafeRawBufferPointer(rebasing: raw[0..<usable])
                crc = Compression.crc32(whole, continuing: crc)
                let copy = Array(whole)
                copy.withUnsafeBytes { aligned in
                    if format.signed { scan(aligned.bindMemory(to: Int16.self)) } else { scan(aligned.bindMemory(to: UInt16.self)) }
                }
            }
        default:
            crc = Compression.crc32(bytes, continuing: crc)
        }
    }

    /// Min/max over a run of samples, in a loop the compiler vectorizes.
    private mutating func scan<T: FixedWidthInteger>(_ samples: UnsafeBufferPointer<T>) {
        guard let first = samples.first else { return }
        var low = first
        var high = first
        for sample in samples {
            low = Swift.min(low, sample)
            high = Swift.max(high, sample)
        }
        minimum = Swift.min(minimum ?? Int64(low), Int64(low))
        maximum = Swift.max(maximum ?? Int64(high), Int64(high))
    }
}
