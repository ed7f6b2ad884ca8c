import DICOMParser

/// Archive formats opened inside an input prefix (beyond HealthImaging): each member is imported and reported
/// as `<archive key>!<member path>`.
enum ArchiveFormat {
    case zip
    case tar
    case tarGzip
    case gzip

    init?(key: String) {
        let lower = key.lowercased()
        if lower.hasSuffix(".zip") { self = .zip }
        else if lower.hasSuffix(".tar") { self = .tar }
        else if lower.hasSuffix(".tar.gz") || lower.hasSuffix(".tgz") { self = .tarGzip }
        else if lower.hasSuffix(".gz") { self = .gzip }
        else { return nil }
    }
}

/// Reads archive members one at a time in bounded memory: members stored without compression are read in place
/// (a window of the archive), compressed ones are inflated as a stream into a `SpillBuffer` (memory up to
/// `BoundedMemory.spillThreshold`, then an unlinked temporary file). A `.tar.gz` is inflated member by member,
/// never whole. Every header field is checked before it is used; anything that is not a regular member still
/// gets a result line, except directories and the records that describe the next member.
enum ArchiveReader {
    struct Member {
        var key: String
        var input: any P10ByteInput
    }

    /// The largest member imported (HealthImaging's per-file quota of the older documents, spec §5.1).
    static let maxMemberBytes = 4 << 30

    static func forEachMember(
        of input: any P10ByteInput,
        format: ArchiveFormat,
        key: String,
        _ body: (Result<Member, ImportFailure>) -> Void
    ) {
        do {
            switch format {
            case .zip:
                try forEachZipMember(of: input, key: key, body)
            case .tar:
                var source = RandomAccessTarSource(input: input)
                try forEachTarMember(of: &source, key: key, body)
            case .tarGzip, .gzip:
                var source = InflatedTarSource(
                    inflater: try StreamInflater(input: input, offset: 0, length: input.length, format: .gzip))
                let first = try source.peek(512)
                if format == .tarGzip || (first.count == 512 && first[257..<262].elementsEqual("ustar".utf8)) {
                    try forEachTarMember(of: &source, key: key, body)
                } else {
                    let name = String((key.split(separator: "/").last ?? Substring(key)).dropLast(3))
                    let member = try source.rest(maxBytes: maxMemberBytes)
                    body(.success(Member(key: key + "!" + name, input: member)))
                }
            }
        } catch {
            body(.failure(.validation(key, "The archive cannot be read: \(error.message)")))
        }
    }

    // MARK: - tar (POSIX ustar, PAX extended headers, GNU long names)

    /// Reads members until the end-of-archive block. A member whose data is cut short or past the limit fails
    /// alone; a header that is not a tar header (bad checksum, bad size) ends the archive with one failure line.
    static func forEachTarMember<Source: TarSource>(
        of source: inout Source,
        key: String,
        _ body: (Result<Member, ImportFailure>) -> Void
    ) throws(DICOMParseError) {
        var longName: String?
        var sawEntry = false
        // A tar may hold one name several times (later copies update earlier ones): each gets a key of its own.
        var memberKeys: [String: Int] = [:]
        while true {
            let header = try source.read(512)
            if header.isEmpty || header.allSatisfy({ $0 == 0 }) { break }
            guard header.count == 512 else {
                return body(.failure(.validation(key, "The tar archive ends inside a header at offset \(source.position - header.count)")))
            }
            let headerOffset = source.position - 512
            guard TarHeader.checksumMatches(header) else {
                return body(.failure(.validation(key, "The tar archive is corrupt at offset \(headerOffset): header checksum mismatch")))
            }
            guard let size = TarHeader.size(header) else {
                return body(.failure(.validation(key, "The tar archive is corrupt at offset \(headerOffset): invalid size field")))
            }
            sawEntry = true
            var name = TarHeader.name(header)
            if let long = longName {
                name = long
                longName = nil
            }
            let padding = (512 - size % 512) % 512
            let type = header[156]
            let isRecord = [UInt8(ascii: "L"), UInt8(ascii: "x"), UInt8(ascii: "K"), UInt8(ascii: "g"), UInt8(ascii: "5")].contains(type)
            let memberKey = isRecord ? key : ObjectName.unique(key + "!" + name, seen: &memberKeys)
            switch type {
            case UInt8(ascii: "L"), UInt8(ascii: "x"):
                // GNU long name / PAX records: they name the next member.
                guard size <= 1 << 20 else {
                    return body(.failure(.validation(key, "The tar archive is corrupt at offset \(headerOffset): a \(size)-byte name record")))
                }
                let record = try source.read(size)
                guard record.count == size else { return body(.failure(.validation(key, "The tar archive ends inside a name record"))) }
                longName = type == UInt8(ascii: "L") ? ObjectName.key(record.prefix { $0 != 0 }) : (TarHeader.paxPath(record) ?? longName)
                guard try source.skip(padding) else { return }
                continue
            case UInt8(ascii: "0"), 0, UInt8(ascii: "7"):
                // Regular and contiguous files (type 7 is a regular file to POSIX readers).
                guard size <= maxMemberBytes else {
                    body(.failure(.validation(memberKey, "The archive member holds \(size) bytes, more than the \(maxMemberBytes) a file may have")))
                    guard try source.skip(size + padding) else { return }
                    continue
                }
                let member: any P10ByteInput
                do {
                    member = try source.member(size)
                } catch {
                    return body(.failure(.validation(memberKey, "The archive member is truncated: \(error.message)")))
                }
                body(.success(Member(key: memberKey, input: member)))
                guard try source.skip(padding) else { return }
                continue
            case UInt8(ascii: "1"), UInt8(ascii: "2"):
                let target = TarHeader.linkName(header)
                let kind = type == UInt8(ascii: "1") ? "a hard link" : "a symbolic link"
                body(.failure(.validation(memberKey, "The archive member is \(kind) to \(target); links in archives are not followed")))
            case UInt8(ascii: "5"):
                break
            case UInt8(ascii: "K"), UInt8(ascii: "g"):
                // A long link name, global PAX records: nothing to import.
                break
            default:
                let kind = type == UInt8(ascii: "3") || type == UInt8(ascii: "4") ? "a device" : type == UInt8(ascii: "6") ? "a FIFO" : "of tar type \(ObjectName.key([type]))"
                body(.failure(.validation(memberKey, "The archive member is \(kind), not a regular file")))
            }
            guard try source.skip(size + padding) else { return }
        }
        if !sawEntry {
            body(.failure(.validation(key, "The tar archive holds no files")))
        }
    }

    // MARK: - zip (stored and deflated entries, ZIP64)

    private static func forEachZipMember(
        of input: any P10ByteInput,
        key: String,
        _ body: (Result<Member, ImportFailure>) -> Void
    ) throws(DICOMParseError) {
        func fail(_ message: String) { body(.failure(.validation(key, message))) }
        guard let directory = try ZipDirectory(input) else {
            return fail("The zip archive has no usable end of central directory record")
        }
        var entries: [ZipEntry] = []
        var position = directory.offset
        let directoryEnd = directory.offset + directory.size
        var directoryIsCorrupt = false
        while position < directoryEnd {
            guard let entry = try ZipEntry(centralHeaderAt: position, in: input, directoryEnd: directoryEnd) else {
                // The entries before it are still imported; the archive's own line says where it broke.
                fail("The zip central directory is corrupt at offset \(position)")
                directoryIsCorrupt = true
                break
            }
            entries.append(entry)
            position = entry.nextHeader
        }
        // Two entries sharing compressed bytes would inflate the same data again for each: a zip bomb.
        var claimed: [(start: Int, end: Int, index: Int)] = []
        var overlapping = Set<Int>()
        for (index, entry) in entries.enumerated() where !entry.isDirectory {
            claimed.append((entry.localHeaderOffset, entry.localHeaderOffset + 30 + entry.compressedSize, index))
        }
        claimed.sort { $0.start < $1.start }
        var reach = -1
        for range in claimed {
            if range.start < reach { overlapping.insert(range.index) }
            reach = max(reach, range.end)
        }
        var sawMember = false
        var memberKeys: [String: Int] = [:]
        for (index, entry) in entries.enumerated() where !entry.isDirectory {
            sawMember = true
            let memberKey = ObjectName.unique(key + "!" + entry.name, seen: &memberKeys)
            if overlapping.contains(index) {
                body(.failure(.validation(memberKey, "The zip member's data overlaps another member's: not read (a zip bomb)")))
                continue
            }
            do {
                body(.success(Member(key: memberKey, input: try entry.open(in: input))))
            } catch {
                body(.failure(.validation(memberKey, "The zip member cannot be read: \(error.message)")))
            }
        }
        if !sawMember && !directoryIsCorrupt { fail("The zip archive holds no files") }
    }
}

/// The fields of a 512-byte tar header (POSIX ustar, PS: GNU base-256 sizes).
enum TarHeader {
    static func field(_ header: [UInt8], _ start: Int, _ length: Int) -> ArraySlice<UInt8> {
        header[start..<(start + length)].prefix { $0 != 0 }
    }

    static func name(_ header: [UInt8]) -> String {
        var name = Array(field(header, 0, 100))
        let prefix = field(header, 345, 155)
        if !prefix.isEmpty && header[257..<262].elementsEqual("ustar".utf8) { name = Array(prefix) + [0x2F] + name }
        return ObjectName.key(name)
    }

    static func linkName(_ header: [UInt8]) -> String { ObjectName.key(field(header, 157, 100)) }

    /// The size field: octal digits (leading spaces or zeros, ended by a space or NUL), or GNU base-256 (first
    /// byte 0x80, big endian). Negative, non-octal and out-of-range sizes are nil.
    static func size(_ header: [UInt8]) -> Int? {
        let raw = header[124..<136]
        if raw.first == 0x80 {
            var value = 0
            for byte in raw.dropFirst() {
                let (shifted, overflow) = value.multipliedReportingOverflow(by: 256)
                guard !overflow else { return nil }
                value = shifted | Int(byte)
            }
            return value
        }
        return octal(raw)
    }

    static func octal(_ raw: ArraySlice<UInt8>) -> Int? {
        var digits = raw.drop { $0 == 0x20 }
        while let last = digits.last, last == 0x20 || last == 0 { digits = digits.dropLast() }
        guard digits.count <= 21 else { return nil }
        var value = 0
        for byte in digits {
            guard byte >= 0x30, byte <= 0x37 else { return nil }
            value = value * 8 + Int(byte - 0x30)
        }
        return value
    }

    /// The header checksum: the sum of its bytes with the checksum field read as spaces, unsigned (POSIX) or
    /// signed (some historic writers).
    static func checksumMatches(_ header: [UInt8]) -> Bool {
        guard let stored = octal(header[148..<156]) else { return false }
        var unsigned = 0
        var signed = 0
        for (index, byte) in header.enumerated() {
            let value = (148..<156).contains(index) ? 0x20 : byte
            unsigned += Int(value)
            signed += Int(Int8(bitPattern: value))
        }
        return stored == unsigned || stored == signed
    }

    /// PAX records: "<length> <key>=<value>\n"; `path` overrides the next member's name.
    static func paxPath(_ records: [UInt8]) -> String? {
        var position = 0
        while position < records.count {
            guard let space = records[position...].firstIndex(of: 0x20), space - position <= 20,
                let length = Int(String(decoding: records[position..<space], as: UTF8.self)), length > 0,
                space < position + length, length <= records.count - position
            else { return nil }
            let record = records[(space + 1)..<(position + length)]
            if let equals = record.firstIndex(of: 0x3D), record[record.startIndex..<equals].elementsEqual("path".utf8) {
                return ObjectName.key(record[(equals + 1)...].dropLast(record.last == 0x0A ? 1 : 0))
            }
            position += length
        }
        return nil
    }
}

/// The bytes of a tar archive, read front to back.
protocol TarSource {
    /// Bytes consumed so far.
    var position: Int { get }
    /// The next `count` bytes, fewer at the end of the archive.
    mutating func read(_ count: Int) throws(DICOMParseError) -> [UInt8]
    /// The next `count` bytes as an input of their own, advancing past them; throws when the archive ends first.
    mutating func member(_ count: Int) throws(DICOMParseError) -> any P10ByteInput
    /// Skips `count` bytes; false when the archive ends first.
    mutating func skip(_ count: Int) throws(DICOMParseError) -> Bool
}

/// An uncompressed tar: members are windows of the archive, read in place.
struct RandomAccessTarSource: TarSource {
    let input: any P10ByteInput
    private(set) var position = 0

    init(input: any P10ByteInput) {
        self.input = input
    }

    mutating func read(_ count: Int) throws(DICOMParseError) -> [UInt8] {
        let available = max(0, min(count, input.length - position))
        var bytes = [UInt8](repeating: 0, count: available)
        let source = input
        let start = position
        let got = try bytes.withUnsafeMutableBytes { target in
            Result { () throws(DICOMParseError) -> Int in try source.read(at: start, into: target) }
        }.get()
        position += got
        return Array(bytes.prefix(got))
    }

    mutating func member(_ count: Int) throws(DICOMParseError) -> any P10ByteInput {
        guard count <= input.length - position else {
            throw DICOMParseError(.truncated, offset: input.length, message: "\(count) bytes declared, \(input.length - position) left")
        }
        defer { position += count }
        return SliceByteInput(base: input, offset: position, length: count)
    }

    mutating func skip(_ count: Int) throws(DICOMParseError) -> Bool {
        guard count <= input.length - position else {
            position = input.length
            return false
        }
        position += count
        return true
    }
}

/// A tar read through an inflating stream (`.tar.gz`): each member is inflated into its own `SpillBuffer`.
struct InflatedTarSource: TarSource {
    let inflater: StreamInflater
    private(set) var position = 0
    /// Bytes inflated ahead by `peek`.
    private var pending: [UInt8] = []
    /// The one buffer every copy inflates through (a tar header read must not allocate 256 KiB).
    private let piece = InflateBuffer(byteCount: 256 << 10)

    init(inflater: StreamInflater) {
        self.inflater = inflater
    }

    /// The next `count` bytes, without consuming them.
    mutating func peek(_ count: Int) throws(DICOMParseError) -> [UInt8] {
        if pending.count < count { pending += try inflate(count - pending.count) }
        return Array(pending.prefix(count))
    }

    mutating func read(_ count: Int) throws(DICOMParseError) -> [UInt8] {
        var bytes = Array(pending.prefix(count))
        pending.removeFirst(bytes.count)
        if bytes.count < count { bytes += try inflate(count - bytes.count) }
        position += bytes.count
        return bytes
    }

    mutating func member(_ count: Int) throws(DICOMParseError) -> any P10ByteInput {
        let output = SpillBuffer(maxBytes: count)
        let copied = try copy(count) { (piece) throws(DICOMParseError) in try output.append(piece) }
        guard copied == count else {
            throw DICOMParseError(.truncated, offset: position, message: "\(count) bytes declared, \(copied) in the archive")
        }
        return output
    }

    mutating func skip(_ count: Int) throws(DICOMParseError) -> Bool {
        try copy(count) { _ in } == count
    }

    /// Everything left, as one input of at most `maxBytes`.
    mutating func rest(maxBytes: Int) throws(DICOMParseError) -> SpillBuffer {
        let output = SpillBuffer(maxBytes: maxBytes)
        _ = try copy(Int.max) { (piece) throws(DICOMParseError) in try output.append(piece) }
        return output
    }

    /// Passes the next `count` bytes (fewer at the end) to `sink` in pieces; returns how many.
    private mutating func copy(
        _ count: Int, _ sink: (UnsafeRawBufferPointer) throws(DICOMParseError) -> Void
    ) throws(DICOMParseError) -> Int {
        var done = min(count, pending.count)
        if done > 0 {
            try pending.withUnsafeBytes { pending in
                Result { () throws(DICOMParseError) in try sink(UnsafeRawBufferPointer(rebasing: pending[0..<done])) }
            }.get()
            pending.removeFirst(done)
        }
        let piece = self.piece.bytes
        while done < count {
            let got = try inflater.read(into: UnsafeMutableRawBufferPointer(rebasing: piece[0..<min(piece.count, count - done)]))
            if got == 0 { break }
            try sink(UnsafeRawBufferPointer(rebasing: piece[0..<got]))
            done += got
        }
        position += done
        return done
    }

    private mutating func inflate(_ count: Int) throws(DICOMParseError) -> [UInt8] {
        var bytes: [UInt8] = []
        _ = try copy(count) { (piece) throws(DICOMParseError) in bytes.append(contentsOf: piece) }
        position -= bytes.count
        return bytes
    }
}

/// Memory owned for as long as the reader that inflates through it.
final class InflateBuffer {
    let bytes: UnsafeMutableRawBufferPointer

    init(byteCount: Int) {
        bytes = .allocate(byteCount: byteCount, alignment: 16)
    }

    deinit {
        bytes.deallocate()
    }
}

/// The end of central directory record, ZIP64 included (APPNOTE 4.3.14–4.3.16).
struct ZipDirectory {
    var offset: Int
    var size: Int

    init?(_ input: any P10ByteInput) throws(DICOMParseError) {
        let tailLength = min(input.length, 65_557)
        let tail = try ZipBytes.read(input, at: input.length - tailLength, count: tailLength)
        guard tail.count == tailLength,
            let end = stride(from: tail.count - 22, through: 0, by: -1).first(where: { ZipBytes.u32(tail, $0) == 0x0605_4B50 })
        else { return nil }
        var size = ZipBytes.u32(tail, end + 12)
        var offset = ZipBytes.u32(tail, end + 16)
        if size == 0xFFFF_FFFF || offset == 0xFFFF_FFFF || ZipBytes.u16(tail, end + 10) == 0xFFFF {
            // ZIP64: the locator sits just before the record and points at the ZIP64 end of central directory.
            let locatorAt = input.length - tailLength + end - 20
            guard locatorAt >= 0 else { return nil }
            let locator = try ZipBytes.read(input, at: locatorAt, count: 20)
            guard locator.count == 20, ZipBytes.u32(locator, 0) == 0x0706_4B50,
                let recordAt = ZipBytes.u64(locator, 8), recordAt <= input.length - 56
            else { return nil }
            let record = try ZipBytes.read(input, at: recordAt, count: 56)
            guard record.count == 56, ZipBytes.u32(record, 0) == 0x0606_4B50,
                let size64 = ZipBytes.u64(record, 40), let offset64 = ZipBytes.u64(record, 48)
            else { return nil }
            size = size64
            offset = offset64
        }
        guard offset <= input.length, size <= input.length - offset else { return nil }
        self.offset = offset
        self.size = size
    }
}

/// One central directory entry (APPNOTE 4.3.12), its sizes and offset checked against the archive.
struct ZipEntry {
    var name: String
    var method: Int
    var flags: Int
    var compressedSize: Int
    var size: Int
    var localHeaderOffset: Int
    var nextHeader: Int
    var isDirectory: Bool

    init?(centralHeaderAt position: Int, in input: any P10ByteInput, directoryEnd: Int) throws(DICOMParseError) {
        guard position <= directoryEnd - 46 else { return nil }
        let fixed = try ZipBytes.read(input, at: position, count: 46)
        guard fixed.count == 46, ZipBytes.u32(fixed, 0) == 0x0201_4B50 else { return nil }
        let nameLength = ZipBytes.u16(fixed, 28)
        let extraLength = ZipBytes.u16(fixed, 30)
        let commentLength = ZipBytes.u16(fixed, 32)
        nextHeader = position + 46 + nameLength + extraLength + commentLength
        guard nextHeader <= directoryEnd else { return nil }
        let variable = try ZipBytes.read(input, at: position + 46, count: nameLength + extraLength)
        guard variable.count == nameLength + extraLength else { return nil }
        flags = ZipBytes.u16(fixed, 8)
        method = ZipBytes.u16(fixed, 10)
        compressedSize = ZipBytes.u32(fixed, 20)
        size = ZipBytes.u32(fixed, 24)
        localHeaderOffset = ZipBytes.u32(fixed, 42)
        let nameBytes = variable[0..<nameLength]
        // Bit 11: the name is UTF-8; otherwise IBM 437, whose ASCII half is the same (other bytes are encoded).
        name = ObjectName.key(nameBytes)
        isDirectory = nameBytes.last == 0x2F
        // ZIP64 extended information (header 0x0001): the 64-bit values of the fields set to 0xFFFFFFFF, in order.
        var extra = nameLength
        while extra + 4 <= variable.count {
            let id = ZipBytes.u16(variable, extra)
            let length = ZipBytes.u16(variable, extra + 2)
            let data = extra + 4
            guard data + length <= variable.count else { break }
            if id == 0x0001 {
                var field = data
                func next() -> Int? {
                    guard field + 8 <= data + length else { return nil }
                    defer { field += 8 }
                    return ZipBytes.u64(variable, field)
                }
                if size == 0xFFFF_FFFF { guard let value = next() else { return nil }; size = value }
                if compressedSize == 0xFFFF_FFFF { guard let value = next() else { return nil }; compressedSize = value }
                if localHeaderOffset == 0xFFFF_FFFF { guard let value = next() else { return nil }; localHeaderOffset = value }
            }
            extra = data + length
        }
    }

    /// The member's bytes: a window of the archive when stored, an inflated `SpillBuffer` when deflated.
    func open(in input: any P10ByteInput) throws(DICOMParseError) -> any P10ByteInput {
        guard flags & 1 == 0 else { throw DICOMParseError(.unsupportedTransferSyntax, offset: localHeaderOffset, message: "the member is encrypted") }
        guard size <= ArchiveReader.maxMemberBytes else {
            throw DICOMParseError(.valueTooLong, offset: localHeaderOffset, message: "\(size) bytes, more than the \(ArchiveReader.maxMemberBytes) a file may have")
        }
        guard localHeaderOffset <= input.length - 30 else {
            throw DICOMParseError(.truncated, offset: localHeaderOffset, message: "its local header is past the end of the archive")
        }
        let local = try ZipBytes.read(input, at: localHeaderOffset, count: 30)
        guard local.count == 30, ZipBytes.u32(local, 0) == 0x0403_4B50 else {
            throw DICOMParseError(.invalidLength, offset: localHeaderOffset, message: "no local header where the directory says")
        }
        let dataStart = localHeaderOffset + 30 + ZipBytes.u16(local, 26) + ZipBytes.u16(local, 28)
        guard dataStart <= input.length, compressedSize <= input.length - dataStart else {
            throw DICOMParseError(.truncated, offset: dataStart, message: "its \(compressedSize) compressed bytes run past the end of the archive")
        }
        switch method {
        case 0:
            guard compressedSize == size else {
                throw DICOMParseError(.invalidLength, offset: dataStart, message: "stored with \(compressedSize) bytes but declares \(size)")
            }
            return SliceByteInput(base: input, offset: dataStart, length: size)
        case 8:
            // Inflated up to the declared size and one byte more, so a member that inflates past it is caught
            // without inflating the rest.
            let inflater = try StreamInflater(input: input, offset: dataStart, length: compressedSize, format: .raw)
            let inflated: SpillBuffer
            do {
                inflated = try inflater.readAll(maxBytes: size)
            } catch where error.code == .valueTooLong {
                throw DICOMParseError(.invalidLength, offset: dataStart, message: "it inflates to more than its declared \(size) bytes")
            }
            guard inflated.length == size else {
                throw DICOMParseError(.invalidLength, offset: dataStart, message: "it inflates to \(inflated.length) bytes but declares \(size)")
            }
            return inflated
        default:
            throw DICOMParseError(.unsupportedTransferSyntax, offset: dataStart, message: "compression method \(method) is not supported")
        }
    }
}

/// Little-endian fields of zip records.
enum ZipBytes {
    static func read(_ input: any P10ByteInput, at offset: Int, count: Int) throws(DICOMParseError) -> [UInt8] {
        guard offset >= 0, count >= 0, offset <= input.length else { return [] }
        var bytes = [UInt8](repeating: 0, count: min(count, input.length - offset))
        let got = try bytes.withUnsafeMutableBytes { target in
            Result { () throws(DICOMParseError) -> Int in try input.read(at: offset, into: target) }
        }.get()
        return Array(bytes.prefix(got))
    }

    static func u16(_ bytes: [UInt8], _ at: Int) -> Int { Int(bytes[at]) | Int(bytes[at + 1]) << 8 }
    static func u32(_ bytes: [UInt8], _ at: Int) -> Int { u16(bytes, at) | u16(bytes, at + 2) << 16 }
    /// A 64-bit field, nil when it does not fit in `Int`.
    static func u64(_ bytes: [UInt8], _ at: Int) -> Int? {
        let value = UInt64(u32(bytes, at)) | UInt64(u32(bytes, at + 4)) << 32
        return Int(exactly: value)
    }
}
