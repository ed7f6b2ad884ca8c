import Dispatch
public import DICOMIngest
public import DICOMParser
import Synchronization

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
    /// Ranged GETs issued at once when reading ahead in a large object.
    public var parallelRanges: Int
    /// Size of the first ranged GET of a large object (the header).
    public var headerRange: Int

    public init(
        client: S3Client, location: S3Location, wholeObjectLimit: Int = 16 << 20, readAhead: Int = 4 << 20,
        parallelRanges: Int = 4, headerRange: Int = 256 << 10
    ) {
        self.client = client
        self.location = location
        self.wholeObjectLimit = wholeObjectLimit
        self.readAhead = readAhead
        self.parallelRanges = max(1, parallelRanges)
        self.headerRange = max(1, headerRange)
    }

    /// A source for header scans: every object is read from a small first range, never fetched whole.
    public static func forHeaderScans(client: S3Client, location: S3Location) -> S3ObjectSource {
        S3ObjectSource(client: client, location: location, wholeObjectLimit: 0, readAhead: 1 << 20, parallelRanges: 1, headerRange: 64 << 10)
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
            let page = Self.listPage(String(decoding: response.body, as: UTF8.self))
            for object in page.objects { try body(object) }
            token = page.nextToken
        } while token != nil
    }

    /// The objects of one ListObjectsV2 page (folder markers left out) and the token of the next page.
    static func listPage(_ text: String) -> (objects: [SourceObject], nextToken: String?) {
        var objects: [SourceObject] = []
        for entry in XML.blocks("Contents", in: text) {
            let entryText = String(entry)
            guard let key = XML.firstValue("Key", in: entryText) else { continue }
            let size = XML.firstValue("Size", in: entryText).flatMap(Int.init)
            if key.hasSuffix("/") && (size ?? 0) == 0 { continue }
            objects.append(SourceObject(key: key, size: size, location: key))
        }
        let truncated = XML.firstValue("IsTruncated", in: text) == "true"
        return (objects, truncated ? XML.firstValue("NextContinuationToken", in: text) : nil)
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
            wholeObjectLimit: wholeObjectLimit, readAhead: readAhead, parallelRanges: parallelRanges,
            headerRange: headerRange)
    }
}

/// One S3 object as random-access bytes: small objects are fetched whole on first read, large ones through a
/// read-ahead window filled by `parallelRanges` concurrent ranged GETs of `readAhead` bytes each (so a header scan
/// costs one request, and streaming a 2 GB multi-frame object keeps several requests in flight with at most
/// `parallelRanges × readAhead` bytes in memory).
final class S3ObjectInput: P10ByteInput {
    let client: S3Client
    let bucket: String
    let key: String
    let length: Int
    private let wholeObjectLimit: Int
    private let readAhead: Int
    private let parallelRanges: Int
    private let headerRange: Int
    private var cache: [UInt8] = []
    private var cacheStart = 0
    private var requests = 0

    init(
        client: S3Client, bucket: String, key: String, length: Int, wholeObjectLimit: Int, readAhead: Int,
        parallelRanges: Int, headerRange: Int
    ) {
        self.headerRange = headerRange
        self.client = client
        self.bucket = bucket
        self.key = key
        self.length = length
        self.wholeObjectLimit = wholeObjectLimit
        self.readAhead = readAhead
        self.parallelRanges = parallelRanges
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
        var ranges: [ClosedRange<Int>] = []
        if length <= wholeObjectLimit {
            ranges = [position...(length - 1)]
        } else if requests == 0 {
            // The first request of a large object reads a header-sized range.
            ranges = [position...(min(length, position + max(minimum, headerRange)) - 1)]
        } else {
            let total = max(minimum, readAhead * parallelRanges)
            var start = position
            while start < min(length, position + total) {
                let end = min(length, start + max(readAhead, minimum), position + total) - 1
                ranges.append(start...end)
                start = end + 1
            }
        }
        requests += ranges.count
        let fetch = ranges
        let parts = Mutex([Result<[UInt8], any Error>?](repeating: nil, count: ranges.count))
        let client = self.client
        let bucket = self.bucket
        let key = self.key
        DispatchQueue.concurrentPerform(iterations: ranges.count) { index in
            let range = fetch[index]
            let result = Result { () throws -> [UInt8] in
                try client.send(method: .GET, bucket: bucket, key: key, headers: [("range", "bytes=\(range.lowerBound)-\(range.upperBound)")]).body
            }
            parts.withLock { $0[index] = result }
        }
        var filled: [UInt8] = []
        filled.reserveCapacity(ranges.reduce(0) { $0 + $1.count })
        for (index, part) in parts.withLock({ $0 }).enumerated() {
            switch part {
            case .success(let bytes)?:
                guard bytes.count == ranges[index].count else {
                    throw DICOMParseError(
                        .ioError, offset: ranges[index].lowerBound,
                        message: "S3 returned \(bytes.count) bytes for a \(ranges[index].count)-byte range")
                }
                filled.append(contentsOf: bytes)
            case .failure(let error)?:
                throw DICOMParseError(.ioError, offset: ranges[index].lowerBound, message: "cannot read s3://\(bucket)/\(key): \(error)")
            case nil:
                throw DICOMParseError(.ioError, offset: ranges[index].lowerBound, message: "range not fetched")
            }
        }
        cache = filled
        cacheStart = position
    }
}
