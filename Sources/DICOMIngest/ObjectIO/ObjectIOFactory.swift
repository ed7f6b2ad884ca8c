/// Opens sources and sinks for the URIs of import requests; the composition root decides which schemes exist
/// (`file://` here, `s3://` with the S3 adapter), so the engine and the server stay free of transports.
public protocol ObjectIOFactory: Sendable {
    /// - Throws: `ObjectIOError.invalidPrefix` for a scheme this factory cannot open.
    func source(for uri: String) throws -> any ObjectSource
    func sink(for uri: String, datastoreId: String, jobId: String) throws -> any ResultSink
}

/// Local prefixes only: `file:///absolute/path`.
public struct LocalObjectIOFactory: ObjectIOFactory {
    public init() {}

    public static func path(of uri: String) throws -> String {
        guard uri.hasPrefix("file://") else { throw ObjectIOError(.invalidPrefix, "unsupported prefix \(uri)") }
        let encoded = String(uri.dropFirst("file://".count))
        return encoded.removingPercentEncodingIfPossible
    }

    public func source(for uri: String) throws -> any ObjectSource {
        LocalDirectorySource(root: try Self.path(of: uri))
    }

    public func sink(for uri: String, datastoreId: String, jobId: String) throws -> any ResultSink {
        try LocalDirectorySink(outputRoot: try Self.path(of: uri), datastoreId: datastoreId, jobId: jobId)
    }
}

extension String {
    /// Percent-decoding without Foundation's optional: a `%` not followed by two hex digits is kept as is.
    var removingPercentEncodingIfPossible: String {
        let encoded = Array(utf8)
        var decoded: [UInt8] = []
        decoded.reserveCapacity(encoded.count)
        var index = 0
        while index < encoded.count {
            if encoded[index] == UInt8(ascii: "%"), index + 2 < encoded.count,
                let value = UInt8(String(decoding: encoded[(index + 1)...(index + 2)], as: UTF8.self), radix: 16)
            {
                decoded.append(value)
                index += 3
            } else {
                decoded.append(encoded[index])
                index += 1
            }
        }
        return String(decoding: decoded, as: UTF8.self)
    }
}
