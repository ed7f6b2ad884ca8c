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
    /// Percent-decoding without Foundation's optional (undecodable text is returned as is).
    var removingPercentEncodingIfPossible: String {
        var bytes: [UInt8] = []
        var iterator = Array(utf8).makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%"), let high = iterator.next(), let low = iterator.next(),
                let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16)
            {
                bytes.append(value)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
