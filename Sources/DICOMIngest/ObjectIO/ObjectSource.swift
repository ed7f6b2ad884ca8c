public import DICOMParser

/// One object under an input prefix.
public struct SourceObject: Hashable, Sendable {
    /// The key reported as `inputFile` (spec §2.3): bucket-relative for S3, the absolute path without its
    /// leading `/` for local prefixes (the file system plays the bucket).
    public var key: String
    /// Size in bytes, when the listing tells it (S3 does; a local listing does not stat every file).
    public var size: Int?
    /// Where the source finds it (an absolute path, an object key).
    public var location: String
    /// The location's bytes, when they are not valid UTF-8 (local names from old archives): `location` is then
    /// only for display.
    public var rawLocation: [UInt8]?
    /// Set when the listing already knows the object cannot be read (a link out of the prefix, a FIFO, a folder
    /// that cannot be listed): opening it fails with this reason, so it still gets its result line.
    public var unreadableReason: String?

    public init(key: String, size: Int?, location: String, rawLocation: [UInt8]? = nil, unreadableReason: String? = nil) {
        self.key = key
        self.size = size
        self.location = location
        self.rawLocation = rawLocation
        self.unreadableReason = unreadableReason
    }
}

/// Lists and reads the objects under an input prefix. Implementations: `LocalDirectorySource`; S3 lives in
/// its own target.
public protocol ObjectSource: Sendable {
    /// Calls `body` for every object under the prefix, streaming (the list is never held whole).
    /// - Throws: when the prefix cannot be listed at all (a job-level failure).
    func forEachObject(_ body: (SourceObject) throws -> Void) throws
    /// Opens one object for random-access reads.
    func open(_ object: SourceObject) throws -> any P10ByteInput
}

/// Where an import writes its result files (spec §2.1): one folder per job under the output prefix.
public protocol ResultSink: Sendable {
    /// Appends one NDJSON line (without its newline) to `SUCCESS/success.ndjson`, `FAILURE/failure.ndjson` or
    /// `WARNING/warning.ndjson`.
    func append(_ line: [UInt8], to file: ResultFile) throws
    /// Writes `job-output-manifest.json` and closes everything; the sink is unusable afterwards.
    func finish(manifest: [UInt8]) throws
    /// The job folder's URI, with a trailing slash (as the manifest reports it).
    var jobFolderURI: String { get }
}

/// The folder of a job's result files under its output prefix (spec §2.1): `<datastoreId>-DicomImport-<jobId>`.
public enum JobOutputFolder {
    public static func name(datastoreId: String, jobId: String) -> String {
        "\(datastoreId)-DicomImport-\(jobId)"
    }
}

public enum ResultFile: String, Sendable, CaseIterable {
    case success = "SUCCESS/success.ndjson"
    case failure = "FAILURE/failure.ndjson"
    case warning = "WARNING/warning.ndjson"
}

/// Errors of the object I/O layer, mapped to service errors in one place (`IngestServiceError.init(_:)`).
public struct ObjectIOError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Kind: Hashable, Sendable {
        case notFound
        case accessDenied
        case invalidPrefix
        case io
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}

/// Names of archive members and local files as `inputFile` keys: UTF-8 as it is; a name that is not valid UTF-8
/// (Latin-1 names from old archives) has its invalid bytes percent-encoded (`%E9`) and its `%` encoded as `%25`.
/// A valid name that reads exactly like such an encoding would share its key, as would two archive members of the
/// same name: `unique` tells them apart with a `%00<n>` suffix, which no name can produce (no name holds NUL).
public enum ObjectName {
    /// `key` the first time it is seen, `key%00<n>` for its n-th occurrence (n ≥ 2).
    public static func unique(_ key: String, seen: inout [String: Int]) -> String {
        let occurrence = (seen[key] ?? 0) + 1
        seen[key] = occurrence
        return occurrence == 1 ? key : key + "%00" + String(occurrence)
    }

    public static func key<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> String {
        if let text = String(validating: bytes, as: UTF8.self) { return text }
        var output = ""
        var pending: [UInt8] = []
        var index = bytes.startIndex
        func flushValid() {
            output += String(decoding: pending, as: UTF8.self)
            pending.removeAll(keepingCapacity: true)
        }
        while index != bytes.endIndex {
            let byte = bytes[index]
            let length = byte < 0x80 ? 1 : byte >> 5 == 0b110 ? 2 : byte >> 4 == 0b1110 ? 3 : byte >> 3 == 0b11110 ? 4 : 0
            let end = bytes.index(index, offsetBy: length, limitedBy: bytes.endIndex)
            if length > 0, let end, let scalar = String(validating: bytes[index..<end], as: UTF8.self) {
                if scalar == "%" { flushValid(); output += "%25" } else { pending.append(contentsOf: bytes[index..<end]) }
                index = end
            } else {
                flushValid()
                output += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
                index = bytes.index(after: index)
            }
        }
        flushValid()
        return output
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

