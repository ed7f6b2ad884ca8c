public import DICOMIngest
import Synchronization

/// Frames in objects under an S3 prefix, `<prefix><datastoreId>/<2 hex>/<32 hex>.frames`, one object per instance,
/// so that processes on many machines can share one frame store (with a PostgreSQL catalog).
///
/// An object appears whole once its PutObject (or CompleteMultipartUpload) returns, and S3 keeps what it has
/// acknowledged: the preparer finishes each instance's object before the instance is staged
/// (`blobsEndWithEachInstance`), so `makeDurable` has nothing left to do. A multi-frame instance larger than a part
/// is streamed up in parts of 8 MiB, never held whole.
public final class S3FrameStorage: FrameStorage {
    public let client: S3Client
    public let location: S3Location
    /// Sizes of the objects this process finished, until the engine asks for them (`makeDurable`).
    private let finished = Mutex<[String: Int]>([:])

    public init(client: S3Client, location: S3Location) {
        self.client = client
        self.location = location
    }

    public var blobsEndWithEachInstance: Bool { true }

    public func makeBlobWriter(datastoreId: String) throws -> any FrameBlobWriter {
        let id = ResourceID.make()
        let name = "\(datastoreId)/\(id.prefix(2))/\(id).frames"
        return S3FrameBlobWriter(
            upload: S3ObjectUpload(client: client, bucket: location.bucket, key: location.folderPrefix + name), name: name
        ) { size in self.finished.withLock { $0[name] = size } }
    }

    public func read(blob: String, offset: Int, length: Int) throws -> [UInt8] {
        guard length > 0 else { return [] }
        do {
            let response = try client.send(
                method: .GET, bucket: location.bucket, key: location.folderPrefix + blob,
                headers: [("range", "bytes=\(offset)-\(offset + length - 1)")])
            guard response.body.count == length else {
                throw ObjectIOError(.io, "frame object \(blob) is shorter than the catalog says")
            }
            return response.body
        } catch let error as S3Error {
            throw error.objectIOError
        }
    }

    /// The object's size: it was finished before its instance reached the engine.
    public func makeDurable(blob: String, withName: Bool) throws -> Int {
        if let size = finished.withLock({ $0.removeValue(forKey: blob) }) { return size }
        do {
            let head = try client.send(method: .HEAD, bucket: location.bucket, key: location.folderPrefix + blob)
            return head.header("Content-Length").flatMap(Int.init) ?? 0
        } catch let error as S3Error {
            throw error.objectIOError
        }
    }
}

/// One frame object being written; nothing is visible until `finish`.
final class S3FrameBlobWriter: FrameBlobWriter {
    let blobName: String
    private var upload: S3ObjectUpload
    private var done = false
    private let finished: (Int) -> Void

    init(upload: S3ObjectUpload, name: String, finished: @escaping (Int) -> Void) {
        self.upload = upload
        blobName = name
        self.finished = finished
    }

    deinit {
        if !done { upload.abort() }
    }

    var size: Int { upload.size }

    func append(_ bytes: UnsafeRawBufferPointer) throws {
        try upload.append(bytes)
    }

    func finish() throws {
        guard !done else { return }
        try upload.finish(headers: [("content-type", "application/octet-stream")])
        done = true
        finished(upload.size)
    }
}
