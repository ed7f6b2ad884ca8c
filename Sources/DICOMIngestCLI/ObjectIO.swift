import DICOMIngest
import DICOMIngestS3
import Foundation

/// The prefixes the command line can open: `file://` through the engine's local I/O, `s3://` through the S3
/// adapter (one client, configured from `--endpoint-url` and the AWS environment).
struct CommandLineObjectIO: ObjectIOFactory {
    let local = LocalObjectIOFactory()
    let s3: S3Client?

    init(endpointURL: String?) throws {
        s3 = try S3Client(configuration: S3Configuration.resolve(endpointOverride: endpointURL))
    }

    private func client() throws -> S3Client {
        guard let s3 else { throw ObjectIOError(.invalidPrefix, "S3 is not configured") }
        return s3
    }

    func source(for uri: String) throws -> any ObjectSource {
        if let location = S3Location(uri: uri) {
            return S3ObjectSource(client: try client(), location: location)
        }
        return try local.source(for: uri)
    }

    func sink(for uri: String, datastoreId: String, jobId: String) throws -> any ResultSink {
        if let location = S3Location(uri: uri) {
            return try S3ResultSink(client: try client(), output: location, datastoreId: datastoreId, jobId: jobId)
        }
        return try local.sink(for: uri, datastoreId: datastoreId, jobId: jobId)
    }
}
