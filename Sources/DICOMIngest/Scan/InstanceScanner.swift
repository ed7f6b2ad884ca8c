import DICOMCore
import DICOMIngestModel
public import DICOMParser
import DICOMToolkit

/// Scans one file: the fast path first, DCMTK where the fast path declines a file that is still DICOM.
///
/// Decisions on lenient input (tested in `InstanceScannerTests`):
/// - No preamble or file meta but a plausible data set: read it, WARNING (`MISSING_FILE_META`).
/// - Meta declares one encoding, the data set uses another: read as the data set is, WARNING (`ENCODING_MISMATCH`).
/// - Unknown transfer syntax: read as explicit VR LE with encapsulated pixel data, WARNING.
/// - Truncated anywhere (header or pixel data): ERROR `TRUNCATED` with the offset and tag.
/// - Duplicated or out-of-order tags: WARNING.
/// - Missing Study, Series or SOP Instance UID: WARNING (the file cannot be imported).
/// - Junk (no DICM prefix and no plausible data set): ERROR `NOT_DICOM`, never OK.
/// - Structure the fast path rejects (bad VR, item where none may be) but DCMTK reads: WARNING
///   `FAST_PATH_DECLINED`, attributes from DCMTK; otherwise ERROR with the fast path's reason.
public struct InstanceScanner: Sendable {
    public let parseOptions: ParseOptions
    public let useDCMTKFallback: Bool
    private let reader: InstanceReader

    public init(parseOptions: ParseOptions = ParseOptions(), useDCMTKFallback: Bool = true) {
        self.parseOptions = parseOptions
        self.useDCMTKFallback = useDCMTKFallback
        self.reader = InstanceReader(
            options: .init(buildMetadata: false, summaryTags: InstanceReader.scanSummaryTags, parse: parseOptions))
    }

    static let requiredUIDs = ["SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"]

    /// Scans the file at `path`, reporting it as `inputFile`.
    public func scan(path: String, inputFile: String, buffer: P10ReadBuffer) -> FileScanResult {
        let input: FileByteInput
        do {
            input = try FileByteInput(path: path)
        } catch {
            return Self.unreadable(inputFile, error.message)
        }
        return scan(input: input, inputFile: inputFile, buffer: buffer, localPath: path)
    }

    /// Scans any input (a local file, an S3 object), reporting it as `inputFile`. The DCMTK fallback needs a
    /// local file, so it runs only when `localPath` is given.
    public func scan(input: any P10ByteInput, inputFile: String, buffer: P10ReadBuffer, localPath: String?) -> FileScanResult {
        let bytesRead = { (input as? FileByteInput)?.bytesRead ?? 0 }
        do {
            let read = try reader.read(input: input, buffer: buffer)
            var scanned = result(for: read, inputFile: inputFile, byteCount: input.length)
            scanned.bytesRead = bytesRead()
            return scanned
        } catch {
            var message = error.locatedMessage
            if useDCMTKFallback, let localPath, [.invalidVR, .unexpectedTag, .invalidLength].contains(error.code) {
                do {
                    return try scanWithDCMTK(path: localPath, inputFile: inputFile, byteCount: input.length, declined: error)
                } catch let refused as DCMTKError where refused.code == DCMTK.tooManyItemsCode {
                    message += "; not read by DCMTK: \(refused.text)"
                } catch {
                    // DCMTK cannot read it either: the fast path's reason stands.
                }
            }
            return FileScanResult(
                inputFile: inputFile, status: .error,
                error: .init(type: error.code.description, message: message), byteCount: input.length,
                bytesRead: bytesRead())
        }
    }

    /// The result for an object that could not be opened.
    public static func unreadable(_ inputFile: String, _ message: String) -> FileScanResult {
        FileScanResult(inputFile: inputFile, status: .error, error: .init(type: "IO_ERROR", message: message), byteCount: 0)
    }

    func result(for read: ReadInstance, inputFile: String, byteCount: Int) -> FileScanResult {
        var warnings = read.warnings.map { warning in
            FileScanResult.Issue(type: warning.code.rawValue, message: warning.locatedMessage)
        }
        var attributes = read.summary
        if read.summaryValue("TransferSyntaxUID") == nil, let uid = read.transferSyntaxUID {
            attributes.insert(("TransferSyntaxUID", .string(uid)), at: 0)
        }
        for keyword in Self.requiredUIDs where Self.isMissing(read.summaryValue(keyword)) {
            warnings.append(.init(type: "MISSING_UID", message: "DICOM attribute \(keyword) does not exist"))
        }
        if let pixel = read.pixelData, pixel.isEncapsulated {
            if pixel.fragments.isEmpty {
                warnings.append(.init(type: "EMPTY_PIXEL_DATA", message: "encapsulated Pixel Data has no fragments"))
            } else if pixel.frames == nil {
                warnings.append(
                    .init(
                        type: "FRAME_LAYOUT",
                        message:
                            "cannot assign \(pixel.fragments.count) fragments to \(read.numberOfFrames) frames: no usable offset table"
                    ))
            }
        }
        return FileScanResult(
            inputFile: inputFile, status: warnings.isEmpty ? .ok : .warning, warnings: warnings,
            attributes: attributes, byteCount: byteCount)
    }

    static func isMissing(_ value: JSONValue?) -> Bool {
        switch value {
        case .none, .null: return true
        case .string(let text): return text.isEmpty
        default: return false
        }
    }

    /// The full-parse path: DCMTK reads files whose structure the fast path refuses.
    func scanWithDCMTK(path: String, inputFile: String, byteCount: Int, declined: DICOMParseError) throws -> FileScanResult {
        try DCMTK.withFile(at: path) { file in
            var attributes: [(String, JSONValue)] = []
            let characterSet = SpecificCharacterSet(
                terms: file.string(.specificCharacterSet)?.split(separator: "\\", omittingEmptySubsequences: false)
                    .map { String($0).trimmingSpaces } ?? [])
            let decoder = ElementValueDecoder(isBigEndian: false, characterSet: characterSet)
            for tag in InstanceReader.scanSummaryTags {
                guard let entry = DICOMDictionary.entry(for: tag) else { continue }
                if entry.vr.isString, let raw = file.rawString(tag) {
                    let value = raw.withUnsafeBytes {
                        decoder.json(vr: entry.vr, bytes: $0, multiplicity: entry.multiplicity)
                    }
                    attributes.append((entry.keyword, value))
                } else if !entry.vr.isString, let number = file.unsigned(tag) {
                    attributes.append((entry.keyword, .int(Int64(number))))
                }
            }
            if !attributes.contains(where: { $0.0 == "TransferSyntaxUID" }), let uid = try? file.transferSyntaxUID {
                attributes.insert(("TransferSyntaxUID", .string(uid)), at: 0)
            }
            var warnings = [
                FileScanResult.Issue(
                    type: "FAST_PATH_DECLINED",
                    message: "\(declined.code): \(declined.locatedMessage); attributes read by DCMTK")
            ]
            for keyword in Self.requiredUIDs
            where Self.isMissing(attributes.first(where: { $0.0 == keyword })?.1) {
                warnings.append(.init(type: "MISSING_UID", message: "DICOM attribute \(keyword) does not exist"))
            }
            return FileScanResult(
                inputFile: inputFile, status: .warning, warnings: warnings, attributes: attributes, byteCount: byteCount)
        }
    }
}
