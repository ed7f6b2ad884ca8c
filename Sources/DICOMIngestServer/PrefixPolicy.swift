import DICOMIngest
public import DICOMIngestModel
import Foundation
import Glibc

/// An input or output prefix as role checks must see it, whatever its spelling: the bucket and key of an
/// `s3://` URI, the real path of a `file://` URI (percent-decoded, `.` and `..` resolved, symbolic links followed).
/// `file:///allowed/../../etc/` is `/etc`, and `s3://in-other/` is not under `s3://in`.
public enum NormalizedPrefix: Hashable, Sendable, CustomStringConvertible {
    case s3(bucket: String, key: String)
    /// An absolute path with no `.`, `..`, symbolic link, repeated or trailing `/` (but `/` itself).
    case local(path: String)

    /// - Throws: `ValidationException` for a URI that is neither `s3://bucket/…` nor an absolute `file://` path.
    public init(uri: String) throws(IngestServiceError) {
        if uri.hasPrefix("s3://") {
            let rest = uri.dropFirst("s3://".count)
            let bucket = rest.prefix { $0 != "/" }
            guard !bucket.isEmpty else { throw IngestServiceError.validation("\(uri) names no bucket") }
            self = .s3(bucket: String(bucket), key: String(rest.dropFirst(bucket.count).drop { $0 == "/" }))
        } else if uri.hasPrefix("file://") {
            let path = (try? LocalObjectIOFactory.path(of: uri)) ?? ""
            guard path.hasPrefix("/") else { throw IngestServiceError.validation("\(uri) is not an absolute file:// URI") }
            self = .local(path: Self.resolve(path))
        } else {
            throw IngestServiceError.validation("\(uri) is neither an s3:// nor a file:// URI")
        }
    }

    /// Whether everything under `self` is under `allowed`: the same bucket and a key that starts with the allowed
    /// key; or a path at or below the allowed folder (whole components: `/data2` is not under `/data`).
    public func isWithin(_ allowed: NormalizedPrefix) -> Bool {
        switch (self, allowed) {
        case (.s3(let bucket, let key), .s3(let allowedBucket, let allowedKey)):
            return bucket == allowedBucket && key.hasPrefix(allowedKey)
        case (.local(let path), .local(let root)):
            return root == "/" || path == root || path.hasPrefix(root + "/")
        default:
            return false
        }
    }

    public var description: String {
        switch self {
        case .s3(let bucket, let key): return "s3://\(bucket)/\(key)"
        case .local(let path): return "file://\(path)"
        }
    }

    /// Walks the path a component at a time: an existing component is replaced by its `realpath` (so a link and
    /// a `..` after it resolve as the kernel would), a missing one (an output folder not created yet) is kept.
    static func resolve(_ path: String) -> String {
        var resolved = "/"
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            switch component {
            case ".": continue
            case "..": resolved = (resolved as NSString).deletingLastPathComponent
            default:
                let candidate = resolved == "/" ? "/" + component : resolved + "/" + component
                if let real = realpath(candidate, nil) {
                    resolved = String(cString: real)
                    free(real)
                } else {
                    resolved = candidate
                }
            }
            if resolved.isEmpty { resolved = "/" }
        }
        return resolved
    }
}
