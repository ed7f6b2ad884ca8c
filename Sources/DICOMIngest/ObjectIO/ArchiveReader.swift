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

/// Reads archive members one at a time into memory (each at most `maxMemberSize` bytes; a larger member is
/// reported as a failure, never loaded).
enum ArchiveReader {
    struct Member {
        var key: String
        var input: MemoryByteInput
    }

    static let maxMemberSize = 1 << 30

    static func forEachMember(
        of input: any P10ByteInput,
        format: ArchiveFormat,
        key: String,
        _ body: (Result<Member, ImportFailure>) -> Void
    ) {
        func fail(_ message: String) {
            body(.failure(.validation(key, message)))
        }
        switch format {
        case .zip:
            forEachZipMember(of: input, key: key, body)
        case .tar:
            forEachTarMember(of: input, key: key, body)
        case .tarGzip, .gzip:
            guard input.length <= maxMemberSize, let compressed = readAll(input),
                let inflated = Compression.gunzip(compressed, limit: maxMemberSize)
            else {
                return fail("The gzip archive cannot be read (corrupt, or larger than \(maxMemberSize) bytes inflated)")
            }
            let memory = MemoryByteInput(inflated)
            if format == .tarGzip || isTar(memory) {
                forEachTarMember(of: memory, key: key, body)
            } else {
                let name = String((key.split(separator: "/").last ?? Substring(key)).dropLast(3))
                body(.success(Member(key: key + "!" + name, input: memory)))
            }
        }
    }

    static func readAll(_ input: any P10ByteInput, at offset: Int = 0, count: Int? = nil) -> [UInt8]? {
        let length = count ?? input.length - offset
        guard length >= 0, offset + length <= input.length else { return nil }
        var bytes = [UInt8](repeating: 0, count: length)
        let got = try? bytes.withUnsafeMutableBytes { try input.read(at: offset, into: $0) }
        return got == length ? bytes : nil
    }

    static func isTar(_ input: any P10ByteInput) -> Bool {
        guard let magic = readAll(input, at: 257, count: 5) else { return false }
        return magic == Array("ustar".utf8)
    }

    // MARK: - tar (POSIX ustar, PAX extended headers, GNU long names)

    private static func forEachTarMember(
        of input: any P10ByteInput,
        key: String,
        _ body: (Result<Member, ImportFailure>) -> Void
    ) {
        var offset = 0
        var longName: String?
        var sawMember = false
        while offset + 512 <= input.length, let header = readAll(input, at: offset, count: 512) {
            if header.allSatisfy({ $0 == 0 }) { break }
            func field(_ start: Int, _ length: Int) -> String {
                String(decoding: header[start..<(start + length)].prefix { $0 != 0 }, as: UTF8.self)
            }
            let sizeText = field(124, 12).filter { $0 != " " }
            guard let size = Int(sizeText, radix: 8) else {
                body(.failure(.validation(key, "The tar archive is corrupt at offset \(offset)")))
                return
            }
            let type = header[156]
            var name = field(0, 100)
            let prefix = field(345, 155)
            if !prefix.isEmpty && header[257..<262].elementsEqual("ustar".utf8) { name = prefix + "/" + name }
            if let long = longName {
                name = long
                longName = nil
            }
            let dataOffset = offset + 512
            offset = dataOffset + (size + 511) / 512 * 512
            switch type {
            case UInt8(ascii: "L"):
                longName = readAll(input, at: dataOffset, count: size).map {
                    String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
                }
            case UInt8(ascii: "x"):
                // PAX records: "<length> <key>=<value>\n"; `path` overrides the next member's name.
                if let records = readAll(input, at: dataOffset, count: size) {
                    longName = paxPath(records) ?? longName
                }
            case UInt8(ascii: "0"), 0:
                sawMember = true
                let memberKey = key + "!" + name
                guard size <= maxMemberSize, let bytes = readAll(input, at: dataOffset, count: size) else {
                    body(.failure(.validation(memberKey, "The archive member is truncated or larger than \(maxMemberSize) bytes")))
                    continue
                }
                body(.success(Member(key: memberKey, input: MemoryByteInput(bytes))))
            default:
                continue
            }
        }
        if !sawMember {
            body(.failure(.validation(key, "The tar archive holds no files")))
        }
    }

    static func paxPath(_ records: [UInt8]) -> String? {
        var position = 0
        while position < records.count {
            guard let space = records[position...].firstIndex(of: 0x20),
                let length = Int(String(decoding: records[position..<space], as: UTF8.self)), length > 0,
                space < position + length, position + length <= records.count
            else { return nil }
            let record = records[(space + 1)..<(position + length)]
            if let equals = record.firstIndex(of: 0x3D), String(decoding: record[record.startIndex..<equals], as: UTF8.self) == "path" {
                return String(decoding: record[(equals + 1)...].dropLast(record.last == 0x0A ? 1 : 0), as: UTF8.self)
            }
            position += length
        }
        return nil
    }

    // MARK: - zip (stored and deflated entries)

    private static func forEachZipMember(
        of input: any P10ByteInput,
        key: String,
        _ body: (Result<Member, ImportFailure>) -> Void
    ) {
        func fail(_ message: String) { body(.failure(.validation(key, message))) }
        let tailLength = min(input.length, 65_557)
        guard let tail = readAll(input, at: input.length - tailLength, count: tailLength) else {
            return fail("The zip archive cannot be read")
        }
        func u16(_ bytes: [UInt8], _ at: Int) -> Int { Int(bytes[at]) | Int(bytes[at + 1]) << 8 }
        func u32(_ bytes: [UInt8], _ at: Int) -> Int { u16(bytes, at) | u16(bytes, at + 2) << 16 }
        guard let end = stride(from: tail.count - 22, through: 0, by: -1).first(where: { u32(tail, $0) == 0x0605_4B50 })
        else { return fail("The zip archive has no end of central directory record") }
        let entryCount = u16(tail, end + 10)
        let directorySize = u32(tail, end + 12)
        let directoryOffset = u32(tail, end + 16)
        guard entryCount != 0xFFFF, directoryOffset != 0xFFFF_FFFF,
            let directory = readAll(input, at: directoryOffset, count: directorySize)
        else { return fail("The zip archive uses ZIP64 or its central directory is unreadable") }
        var position = 0
        var sawMember = false
        for _ in 0..<entryCount {
            guard position + 46 <= directory.count, u32(directory, position) == 0x0201_4B50 else {
                return fail("The zip central directory is corrupt")
            }
            let method = u16(directory, position + 10)
            let compressedSize = u32(directory, position + 20)
            let size = u32(directory, position + 24)
            let nameLength = u16(directory, position + 28)
            let extraLength = u16(directory, position + 30)
            let commentLength = u16(directory, position + 32)
            let localOffset = u32(directory, position + 42)
            guard position + 46 + nameLength <= directory.count else {
                return fail("The zip central directory is corrupt")
            }
            let name = String(decoding: directory[(position + 46)..<(position + 46 + nameLength)], as: UTF8.self)
            position += 46 + nameLength + extraLength + commentLength
            if name.hasSuffix("/") { continue }
            sawMember = true
            let memberKey = key + "!" + name
            guard size <= maxMemberSize, let local = readAll(input, at: localOffset, count: 30), u32(local, 0) == 0x0403_4B50,
                let data = readAll(input, at: localOffset + 30 + u16(local, 26) + u16(local, 28), count: compressedSize)
            else {
                body(.failure(.validation(memberKey, "The zip member is unreadable or larger than \(maxMemberSize) bytes")))
                continue
            }
            switch method {
            case 0:
                body(.success(Member(key: memberKey, input: MemoryByteInput(data))))
            case 8:
                guard let inflated = Compression.inflateRaw(data[...], limit: maxMemberSize), inflated.count == size else {
                    body(.failure(.validation(memberKey, "The zip member's deflate data is corrupt")))
                    continue
                }
                body(.success(Member(key: memberKey, input: MemoryByteInput(inflated))))
            default:
                body(.failure(.validation(memberKey, "The zip member uses unsupported compression method \(method)")))
            }
        }
        if !sawMember { fail("The zip archive holds no files") }
    }
}
