public import DICOMIngestModel

/// The verdict on one file of a scan: one JSON line of the `scan` report.
public struct FileScanResult: Sendable {
    public enum Status: String, Sendable {
        case ok = "OK"
        case warning = "WARNING"
        case error = "ERROR"
    }

    public struct Issue: Hashable, Sendable {
        /// Stable upper-case code (`NOT_DICOM`, `TRUNCATED`, `ODD_LENGTH`, …).
        public var type: String
        public var message: String

        public init(type: String, message: String) {
            self.type = type
            self.message = message
        }

        var json: JSONValue { .object([("type", .string(type)), ("message", .string(message))]) }
    }

    public var inputFile: String
    public var status: Status
    public var error: Issue?
    public var warnings: [Issue]
    public var attributes: [(String, JSONValue)]
    /// Size of the file in bytes.
    public var byteCount: Int
    /// Bytes read from it.
    public var bytesRead: Int

    public init(
        inputFile: String,
        status: Status,
        error: Issue? = nil,
        warnings: [Issue] = [],
        attributes: [(String, JSONValue)] = [],
        byteCount: Int,
        bytesRead: Int = 0
    ) {
        self.inputFile = inputFile
        self.status = status
        self.error = error
        self.warnings = warnings
        self.attributes = attributes
        self.byteCount = byteCount
        self.bytesRead = bytesRead
    }

    public func attribute(_ keyword: String) -> JSONValue? {
        attributes.first { $0.0 == keyword }?.1
    }

    /// The report line: `{"inputFile","status","error"?,"warnings","attributes"}`.
    public var json: JSONValue {
        var members: [(String, JSONValue)] = [("inputFile", .string(inputFile)), ("status", .string(status.rawValue))]
        if let error { members.append(("error", error.json)) }
        members.append(("warnings", .array(warnings.map(\.json))))
        members.append(("attributes", .object(attributes)))
        return .object(members)
    }
}
