import DICOMIngest
import DICOMIngestS3
import Foundation
import Synchronization

/// The prefixes the command line can open: `file://` through the engine's local I/O, `s3://` through the S3
/// adapter. The S3 client (configured from `--endpoint-url` and the AWS environment) is created on first use, so
/// local jobs never start an HTTP client.
final class CommandLineObjectIO: ObjectIOFactory {
    private let local = LocalObjectIOFactory()
    private let endpointURL: String?
    private let client = Mutex<S3Client?>(nil)

    init(endpointURL: String?) {
        self.endpointURL = endpointURL
    }

    private func s3() throws -> S3Client {
        try client.withLock { client in
            if let client { return client }
            let created = S3Client(configuration: try S3Configuration.resolve(endpointOverride: endpointURL))
            client = created
            return created
        }
    }

    func source(for uri: String) throws -> any ObjectSource {
        if let location = S3Location(uri: uri) {
            return S3ObjectSource(client: try s3(), location: location)
        }
        return try local.source(for: uri)
    }

    /// A source for `scan`: S3 objects are read from a small header range, never fetched whole.
    func scanSource(for uri: String) throws -> any ObjectSource {
        if let location = S3Location(uri: uri) {
            return S3ObjectSource.forHeaderScans(client: try s3(), location: location)
        }
        return try local.source(for: uri)
    }

    func sink(for uri: String, datastoreId: String, jobId: String) throws -> any ResultSink {
        if let location = S3Location(uri: uri) {
            return try S3ResultSink(client: try s3(), output: location, datastoreId: datastoreId, jobId: jobId)
        }
        return try local.sink(for: uri, datastoreId: datastoreId, jobId: jobId)
    }
}
