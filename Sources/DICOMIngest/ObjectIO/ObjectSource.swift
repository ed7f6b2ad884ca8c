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

    public init(key: String, size: Int?, location: String) {
        self.key = key
        self.size = size
        self.location = location
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
