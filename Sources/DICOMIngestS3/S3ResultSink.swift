public import DICOMIngest
import Foundation
import Synchronization

/// Writes a job's result files to `s3://bucket/prefix/<datastoreId>-DicomImport-<jobId>/`.
///
/// Each NDJSON file is streamed: lines accumulate in memory until a part of `partSize` bytes is full, which is
/// uploaded as a part of a multipart upload started on first need; `finish` completes the uploads (or writes
/// small files with one PutObject) and then writes the manifest. If finishing fails, the open uploads are aborted.
public final class S3ResultSink: ResultSink {
    private struct Upload {
        var buffer: [UInt8] = []
        var uploadId: String?
        var parts: [(number: Int, etag: String)] = []
    }

    private struct State {
        var uploads: [ResultFile: Upload] = [:]
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
        self.folderKey = output.folderPrefix + "\(datastoreId)-DicomImport-\(jobId)/"
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

    public func append(_ line: [UInt8], to file: ResultFile) throws {
        try state.withLock { state in
            guard !state.finished else { return }
            var upload = state.uploads[file] ?? Upload()
            upload.buffer.append(contentsOf: line)
            upload.buffer.append(0x0A)
            if upload.buffer.count >= partSize {
                try uploadPart(&upload, file: file)
            }
            state.uploads[file] = upload
        }
    }

    public func finish(manifest: [UInt8]) throws {
        try state.withLock { state in
            guard !state.finished else { return }
            state.finished = true
            do {
                for file in ResultFile.allCases {
                    var upload = state.uploads[file] ?? Upload()
                    if upload.uploadId == nil {
                        _ = try client.send(method: .PUT, bucket: bucket, key: folderKey + file.rawValue, body: upload.buffer)
                    } else {
                        if !upload.buffer.isEmpty { try uploadPart(&upload, file: file) }
                        try complete(upload, file: file)
                    }
                    state.uploads[file] = nil
                }
                _ = try client.send(
                    method: .PUT, bucket: bucket, key: folderKey + "job-output-manifest.json",
                    headers: [("content-type", "application/json")], body: manifest)
            } catch {
                for (file, upload) in state.uploads {
                    if let id = upload.uploadId {
                        _ = try? client.send(method: .DELETE, bucket: bucket, key: folderKey + file.rawValue, query: [("uploadId", id)])
                    }
                }
                throw (error as? S3Error)?.objectIOError ?? error
            }
        }
    }

    private func uploadPart(_ upload: inout Upload, file: ResultFile) throws {
        let key = folderKey + file.rawValue
        do {
            if upload.uploadId == nil {
                let created = try client.send(method: .POST, bucket: bucket, key: key, query: [("uploads", "")])
                guard let id = XML.firstValue("UploadId", in: String(decoding: created.body, as: UTF8.self)) else {
                    throw ObjectIOError(.io, "CreateMultipartUpload for \(key) returned no UploadId")
                }
                upload.uploadId = id
            }
            let number = upload.parts.count + 1
            let response = try client.send(
                method: .PUT, bucket: bucket, key: key,
                query: [("partNumber", String(number)), ("uploadId", upload.uploadId!)], body: upload.buffer)
            upload.parts.append((number, response.header("ETag") ?? ""))
            upload.buffer.removeAll(keepingCapacity: true)
        } catch let error as S3Error {
            throw error.objectIOError
        }
    }

    private func complete(_ upload: Upload, file: ResultFile) throws {
        let parts = upload.parts.map { "<Part><PartNumber>\($0.number)</PartNumber><ETag>\(XML.escape($0.etag))</ETag></Part>" }
        let body = "<CompleteMultipartUpload>\(parts.joined())</CompleteMultipartUpload>"
        _ = try client.send(
            method: .POST, bucket: bucket, key: folderKey + file.rawValue, query: [("uploadId", upload.uploadId!)],
            body: Array(body.utf8))
    }
}
