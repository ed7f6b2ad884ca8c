public import DICOMIngest
import Foundation
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

extension S3FrameStorage {
    /// Deletes the frame objects no committed frame names and that were written before `cutoff` (seconds since
    /// 1970; an object written since may belong to a running job that has not staged its instance yet), a page of
    /// the listing at a time, so memory stays bounded however many objects the prefix holds. An object no frame
    /// names is one of an instance whose job was killed between the upload and the staging, or of a deleted image
    /// set.
    /// - Parameter referenced: which of the blob names given some committed frame names (a catalog query).
    /// - Returns: the objects deleted and their bytes.
    public func reclaimUnreferencedObjects(
        before cutoff: Double, referenced: ([String]) throws -> Set<String>
    ) throws -> (objects: Int, bytes: Int) {
        var reclaimed = (objects: 0, bytes: 0)
        var token: String?
        let prefix = location.folderPrefix
        let times = ListedTimes()
        repeat {
            var query = [("list-type", "2"), ("max-keys", "1000")]
            if !prefix.isEmpty { query.append(("prefix", prefix)) }
            if let token { query.append(("continuation-token", token)) }
            let text: String
            do {
                text = String(decoding: try client.send(method: .GET, bucket: location.bucket, query: query).body, as: UTF8.self)
            } catch let error as S3Error {
                throw error.objectIOError
            }
            var candidates: [(name: String, size: Int)] = []
            for entry in XML.blocks("Contents", in: text) {
                let entryText = String(entry)
                guard let key = XML.firstValue("Key", in: entryText), key.hasPrefix(prefix), key.hasSuffix(".frames"),
                    let modified = XML.firstValue("LastModified", in: entryText).flatMap(times.seconds),
                    // A second of slack for clocks that differ between this machine and the object store.
                    modified < cutoff - 1
                else { continue }
                candidates.append((String(key.dropFirst(prefix.count)), XML.firstValue("Size", in: entryText).flatMap(Int.init) ?? 0))
            }
            let kept = candidates.isEmpty ? [] : try referenced(candidates.map(\.name))
            for candidate in candidates where !kept.contains(candidate.name) {
                do {
                    _ = try client.send(method: .DELETE, bucket: location.bucket, key: prefix + candidate.name)
                } catch let error as S3Error {
                    throw error.objectIOError
                }
                reclaimed.objects += 1
                reclaimed.bytes += candidate.size
            }
            token = XML.firstValue("IsTruncated", in: text) == "true" ? XML.firstValue("NextContinuationToken", in: text) : nil
        } while token != nil
        return reclaimed
    }
}

/// ISO 8601 times as S3 lists them (`2026-11-30T13:00:00.000Z`, or without the fraction), in seconds since 1970;
/// the formatters are made once per listing, not once per object.
struct ListedTimes {
    private let fractional = ISO8601DateFormatter()
    private let whole = ISO8601DateFormatter()

    init() {
        fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        whole.formatOptions = [.withInternetDateTime]
    }

    func seconds(_ text: String) -> Double? {
        (fractional.date(from: text) ?? whole.date(from: text))?.timeIntervalSince1970
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
