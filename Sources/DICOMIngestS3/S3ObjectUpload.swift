import DICOMIngest

/// One object written as a stream: bytes accumulate until a part of `partSize` is full, which goes up as a part of
/// a multipart upload started on first need; `finish` writes a small object with one PutObject, or uploads the last
/// part and completes the upload. An object appears whole or not at all; `abort` drops an unfinished upload.
struct S3ObjectUpload {
    let client: S3Client
    let bucket: String
    let key: String
    /// S3's minimum part size is 5 MiB (except for the last part).
    let partSize: Int
    private(set) var buffer: [UInt8] = []
    private var uploadId: String?
    private var parts: [(number: Int, etag: String)] = []
    /// Bytes appended so far.
    private(set) var size = 0

    init(client: S3Client, bucket: String, key: String, partSize: Int = 8 << 20) {
        self.client = client
        self.bucket = bucket
        self.key = key
        self.partSize = max(5 << 20, partSize)
    }

    mutating func append(_ bytes: some Collection<UInt8>) throws {
        buffer.append(contentsOf: bytes)
        size += bytes.count
        if buffer.count >= partSize { try uploadPart() }
    }

    /// - Parameter headers: headers of a PutObject (a multipart upload's object gets none).
    mutating func finish(headers: [(String, String)] = []) throws {
        do {
            if let uploadId {
                if !buffer.isEmpty { try uploadPart() }
                let list = parts.map { "<Part><PartNumber>\($0.number)</PartNumber><ETag>\(XML.escape($0.etag))</ETag></Part>" }
                _ = try client.send(
                    method: .POST, bucket: bucket, key: key, query: [("uploadId", uploadId)],
                    body: Array("<CompleteMultipartUpload>\(list.joined())</CompleteMultipartUpload>".utf8))
                self.uploadId = nil
            } else {
                _ = try client.send(method: .PUT, bucket: bucket, key: key, headers: headers, body: buffer)
            }
            buffer = []
        } catch let error as S3Error {
            throw error.objectIOError
        }
    }

    /// Drops an unfinished multipart upload (its parts would otherwise be kept, and billed, by S3).
    mutating func abort() {
        guard let uploadId else { return }
        _ = try? client.send(method: .DELETE, bucket: bucket, key: key, query: [("uploadId", uploadId)])
        self.uploadId = nil
    }

    private mutating func uploadPart() throws {
        do {
            if uploadId == nil {
                let created = try client.send(method: .POST, bucket: bucket, key: key, query: [("uploads", "")])
                guard let id = XML.firstValue("UploadId", in: String(decoding: created.body, as: UTF8.self)) else {
                    throw ObjectIOError(.io, "CreateMultipartUpload for \(key) returned no UploadId")
                }
                uploadId = id
            }
            let number = parts.count + 1
            let response = try client.send(
                method: .PUT, bucket: bucket, key: key, query: [("partNumber", String(number)), ("uploadId", uploadId!)],
                body: buffer)
            parts.append((number, response.header("ETag") ?? ""))
            buffer.removeAll(keepingCapacity: true)
        } catch let error as S3Error {
            throw error.objectIOError
        }
    }
}
