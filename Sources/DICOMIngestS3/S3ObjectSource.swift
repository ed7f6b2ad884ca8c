public import DICOMIngest
public import DICOMParser

/// The objects under an `s3://bucket/prefix`, listed page by page with ListObjectsV2 (never the whole listing in
/// memory) and read with ranged GETs.
///
/// Keys are reported bucket-relative, including the prefix, as HealthImaging's `inputFile` (spec §2.3). Zero-byte
/// "folder" markers (keys ending in `/`) are not objects to import and are skipped.
public struct S3ObjectSource: ObjectSource {
    public let client: S3Client
    public let location: S3Location
    /// Objects up to this size are fetched with one GET on first read; larger ones with ranged GETs.
    public var wholeObjectLimit: Int
    /// Bytes fetched per ranged GET beyond the first.
    public var readAhead: Int

    public init(client: S3Client, location: S3Location, wholeObjectLimit: Int = 16 << 20, readAhead: Int = 8 << 20) {
        self.client = client
        self.location = location
        self.wholeObjectLimit = wholeObjectLimit
        self.readAhead = readAhead
    }

    public func forEachObject(_ body: (SourceObject) throws -> Void) throws {
        var token: String?
        repeat {
            var query = [("list-type", "2"), ("max-keys", String(client.configuration.listPageSize))]
            if !location.prefix.isEmpty { query.append(("prefix", location.prefix)) }
            if let token { query.append(("continuation-token", token)) }
            let response: S3Client.Response
            do {
                response = try client.send(method: .GET, bucket: location.bucket, query: query)
            } catch let error as S3Error {
                if error.code == "NoSuchBucket" {
                    throw ObjectIOError(.notFound, "The bucket \(location.bucket) does not exist")
                }
                throw error.objectIOError
            }
            let text = String(decoding: response.body, as: UTF8.self)
            for entry in XML.blocks("Contents", in: text) {
                let entryText = String(entry)
                guard let key = XML.firstValue("Key", in: entryText) else { continue }
                let size = XML.firstValue("Size", in: entryText).flatMap(Int.init)
                if key.hasSuffix("/") && (size ?? 0) == 0 { continue }
                try body(SourceObject(key: key, size: size, location: key))
            }
            let truncated = XML.firstValue("IsTruncated", in: text) == "true"
            token = truncated ? XML.firstValue("NextContinuationToken", in: text) : nil
        } while token != nil
    }

    public func open(_ object: SourceObject) throws -> any P10ByteInput {
        let size: Int
        if let known = object.size {
            size = known
        } else {
            do {
                let head = try client.send(method: .HEAD, bucket: location.bucket, key: object.location)
                size = head.header("Content-Length").flatMap(Int.init) ?? 0
            } catch let error as S3Error {
                throw error.objectIOError
            }
        }
        return S3ObjectInput(
            client: client, bucket: location.bucket, key: object.location, length: size,
            wholeObjectLimit: wholeObjectLimit, readAhead: readAhead)
    }
}

/// One S3 object as random-access bytes: small objects are fetched whole on first read, large ones through a
/// read-ahead window of ranged GETs (so a header scan costs one request and a frame copy one per `readAhead`).
final class S3ObjectInput: P10ByteInput {
    let client: S3Client
    let bucket: String
    let key: String
    let length: Int
    private let wholeObjectLimit: Int
    private let readAhead: Int
    private var cache: [UInt8] = []
    private var cacheStart = 0
    private var requests = 0

    init(client: S3Client, bucket: String, key: String, length: Int, wholeObjectLimit: Int, readAhead: Int) {
        self.client = client
        self.bucket = bucket
        self.key = key
        self.length = length
        self.wholeObjectLimit = wholeObjectLimit
        self.readAhead = readAhead
    }

    func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws(DICOMParseError) -> Int {
        guard offset < length else { return 0 }
        let count = min(buffer.count, length - offset)
        var copied = 0
        while copied < count {
            let position = offset + copied
            if position < cacheStart || position >= cacheStart + cache.count {
                try fill(at: position, minimum: count - copied)
            }
            let available = min(count - copied, cacheStart + cache.count - position)
            cache.withUnsafeBytes { source in
                (buffer.baseAddress! + copied).copyMemory(from: source.baseAddress! + (position - cacheStart), byteCount: available)
            }
            copied += available
        }
        return copied
    }

    private func fill(at position: Int, minimum: Int) throws(DICOMParseError) {
        let wanted: Int
        if length <= wholeObjectLimit {
            wanted = length - position
        } else {
            // The first request of a large object reads a header-sized range; later ones read ahead.
            wanted = max(minimum, requests == 0 ? 256 << 10 : readAhead)
        }
        let end = min(length, position + wanted) - 1
        requests += 1
        do {
            let response = try client.send(
                method: .GET, bucket: bucket, key: key, headers: [("range", "bytes=\(position)-\(end)")])
            guard response.body.count == end - position + 1 else {
                throw DICOMParseError(.ioError, offset: position, message: "S3 returned \(response.body.count) bytes for a \(end - position + 1)-byte range")
            }
            cache = response.body
            cacheStart = position
        } catch let error as DICOMParseError {
            throw error
        } catch {
            throw DICOMParseError(.ioError, offset: position, message: "cannot read s3://\(bucket)/\(key): \(error)")
        }
    }
}
