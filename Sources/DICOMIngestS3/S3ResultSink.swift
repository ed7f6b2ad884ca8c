public import DICOMIngest
import Foundation
import Synchronization

/// Writes a job's result files to `s3://bucket/prefix/<datastoreId>-DicomImport-<jobId>/`.
///
/// Each NDJSON file is streamed (`S3ObjectUpload`): lines accumulate in memory until a part of `partSize` bytes is
/// full, which is uploaded as a part of a multipart upload started on first need; `finish` completes the uploads (or
/// writes small files with one PutObject) and then writes the manifest. If finishing fails, the open uploads are
/// aborted.
public final class S3ResultSink: ResultSink {
    private struct State {
        var uploads: [ResultFile: S3ObjectUpload] = [:]
        var finished = false
    }

    public let client: S3Client
    public let bucket: String
    /// The job folder's key prefix, ending in `/`.
    public let folderKey: String
    public let jobFolderURI: String
    /// Size of one multipart part (S3's minimum is 5 MiB except for the last).
    public let partSize: Int
    private let state = Mutex(State())

    public init(client: S3Client, output: S3Location, datastoreId: String, jobId: String, partSize: Int = 8 << 20) throws {
        self.client = client
        self.bucket = output.bucket
        self.folderKey = output.folderPrefix + JobOutputFolder.name(datastoreId: datastoreId, jobId: jobId) + "/"
        self.jobFolderURI = "s3://\(output.bucket)/\(folderKey)"
        self.partSize = max(5 << 20, partSize)
        // Fail the job early, with a clear message, when the bucket cannot be written.
        do {
            _ = try client.send(method: .HEAD, bucket: bucket)
        } catch let error as S3Error {
            if error.status == 404 { throw ObjectIOError(.notFound, "The output bucket \(bucket) does not exist") }
            throw error.objectIOError
        }
    }

    private func upload(_ file: ResultFile) -> S3ObjectUpload {
        S3ObjectUpload(client: client, bucket: bucket, key: folderKey + file.rawValue, partSize: partSize)
    }

    public func append(_ line: [UInt8], to file: ResultFile) throws {
        try state.withLock { state in
            guard !state.finished else { return }
            var upload = state.uploads[file] ?? self.upload(file)
            try upload.append(line)
            try upload.append(CollectionOfOne(UInt8(0x0A)))
            state.uploads[file] = upload
        }
    }

    public func finish(manifest: [UInt8]) throws {
        try state.withLock { state in
            guard !state.finished else { return }
            state.finished = true
            do {
                for file in ResultFile.allCases {
                    var upload = state.uploads[file] ?? self.upload(file)
                    try upload.finish()
                    state.uploads[file] = nil
                }
                _ = try client.send(
                    method: .PUT, bucket: bucket, key: folderKey + "job-output-manifest.json",
                    headers: [("content-type", "application/json")], body: manifest)
            } catch {
                for (file, var upload) in state.uploads {
                    upload.abort()
                    state.uploads[file] = nil
                }
                throw (error as? S3Error)?.objectIOError ?? error
            }
        }
    }
}
