import CZlib

/// Inflates a compressed region of an input a chunk at a time, so no stream is ever held whole: deflated data
/// sets (PS3.5 §A.5), zip entries, gzip files and `.tar.gz` archives.
public final class StreamInflater {
    public enum Format: Sendable {
        /// Raw deflate (RFC 1951), as in zip entries and deflated data sets.
        case raw
        /// gzip (RFC 1952), every member of a multi-member file.
        case gzip
        /// A zlib or gzip header, detected.
        case zlibOrGzip
    }

    private let input: any P10ByteInput
    private let format: Format
    private var position: Int
    private let end: Int
    private let stream: UnsafeMutablePointer<z_stream>
    private let chunk: UnsafeMutableRawBufferPointer
    private var finished = false
    /// The decompression-bomb cap: `BoundedMemory.inflationLimit` of the compressed length.
    private let maxOutput: Int
    private let compressedLength: Int
    private var produced = 0

    /// - Parameters: `offset`, `length`: where the compressed bytes are in `input`.
    public init(input: any P10ByteInput, offset: Int, length: Int, format: Format) throws(DICOMParseError) {
        self.input = input
        self.format = format
        position = offset
        end = offset + length
        maxOutput = BoundedMemory.inflationLimit(compressedBytes: length)
        compressedLength = length
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        chunk = .allocate(byteCount: 64 << 10, alignment: 16)
        let windowBits: Int32
        switch format {
        case .raw: windowBits = -MAX_WBITS
        case .gzip: windowBits = MAX_WBITS + 16
        case .zlibOrGzip: windowBits = MAX_WBITS + 32
        }
        guard inflateInit2_(stream, windowBits, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            chunk.deallocate()
            stream.deallocate()
            throw DICOMParseError(.deflateFailed, offset: offset, message: "zlib initialisation failed")
        }
    }

    deinit {
        inflateEnd(stream)
        stream.deinitialize(count: 1)
        stream.deallocate()
        chunk.deallocate()
    }

    /// Fills `buffer` with the next inflated bytes and returns how many; 0 only at the end of the stream.
    /// A stream cut short (input ends without a final block) ends where its data ends, as zlib's tools read it.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(DICOMParseError) -> Int {
        let count = try inflateSome(into: buffer)
        produced += count
        guard produced <= maxOutput else {
            throw DICOMParseError(
                .valueTooLong, offset: position,
                message: "\(compressedLength) compressed bytes inflate past \(maxOutput) bytes (more than \(BoundedMemory.maxInflationRatio) times their size): a decompression bomb")
        }
        return count
    }

    private func inflateSome(into buffer: UnsafeMutableRawBufferPointer) throws(DICOMParseError) -> Int {
        guard !finished, buffer.count > 0 else { return 0 }
        stream.pointee.next_out = buffer.baseAddress!.assumingMemoryBound(to: UInt8.self)
        stream.pointee.avail_out = UInt32(min(buffer.count, Int(UInt32.max)))
        while stream.pointee.avail_out > 0 {
            if stream.pointee.avail_in == 0 && position < end {
                let count = min(chunk.count, end - position)
                let got = try input.read(at: position, into: UnsafeMutableRawBufferPointer(rebasing: chunk[0..<count]))
                guard got > 0 else { break }
                position += got
                stream.pointee.next_in = chunk.baseAddress!.assumingMemoryBound(to: UInt8.self)
                stream.pointee.avail_in = UInt32(got)
            }
            let hadInput = stream.pointee.avail_in
            let status = inflate(stream, Z_NO_FLUSH)
            switch status {
            case Z_STREAM_END:
                // A gzip file may hold several members one after another (RFC 1952 §2.2).
                if format == .gzip, try nextBytesAreGzipMember() {
                    inflateReset(stream)
                    continue
                }
                finished = true
                return filled(buffer)
            case Z_OK:
                continue
            case Z_BUF_ERROR where hadInput == 0 && position >= end:
                finished = true
                return filled(buffer)
            case Z_BUF_ERROR where stream.pointee.avail_in < hadInput:
                continue
            case Z_BUF_ERROR where hadInput == 0:
                continue
            default:
                let reason = stream.pointee.msg.map { String(cString: $0) } ?? "zlib status \(status)"
                throw DICOMParseError(.deflateFailed, offset: position, message: "the compressed data is corrupt: \(reason)")
            }
        }
        if stream.pointee.avail_in == 0 && position >= end && stream.pointee.avail_out > 0 { finished = true }
        return filled(buffer)
    }

    /// Inflates everything into a `SpillBuffer` of at most `maxBytes`.
    public func readAll(maxBytes: Int) throws(DICOMParseError) -> SpillBuffer {
        let output = SpillBuffer(maxBytes: maxBytes)
        let piece = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 << 10, alignment: 16)
        defer { piece.deallocate() }
        while true {
            let got = try read(into: piece)
            if got == 0 { return output }
            try output.append(UnsafeRawBufferPointer(rebasing: piece[0..<got]))
        }
    }

    private func filled(_ buffer: UnsafeMutableRawBufferPointer) -> Int {
        buffer.count - Int(stream.pointee.avail_out)
    }

    private func nextBytesAreGzipMember() throws(DICOMParseError) -> Bool {
        if stream.pointee.avail_in >= 2 {
            return stream.pointee.next_in[0] == 0x1F && stream.pointee.next_in[1] == 0x8B
        }
        var magic: [UInt8] = [0, 0]
        let buffered = Int(stream.pointee.avail_in)
        for index in 0..<buffered { magic[index] = stream.pointee.next_in[index] }
        let source = input
        let start = position
        let got = try magic.withUnsafeMutableBytes { target in
            Result { () throws(DICOMParseError) -> Int in
                try source.read(at: start, into: UnsafeMutableRawBufferPointer(rebasing: target[buffered..<2]))
            }
        }.get()
        return buffered + got == 2 && position + got <= end && magic == [0x1F, 0x8B]
    }
}

/// Inflates the data set of a Deflated Explicit VR Little Endian file (PS3.5 §A.5): a raw deflate stream
/// (RFC 1951) without zlib header. Streams that carry a zlib or gzip header anyway are accepted too.
enum Inflater {
    static func inflate(
        _ input: any P10ByteInput, offset: Int, limit: Int
    ) throws(DICOMParseError) -> SpillBuffer {
        let length = input.length - offset
        do {
            return try StreamInflater(input: input, offset: offset, length: length, format: .raw).readAll(maxBytes: limit)
        } catch where error.code == .deflateFailed {
            do {
                return try StreamInflater(input: input, offset: offset, length: length, format: .zlibOrGzip)
                    .readAll(maxBytes: limit)
            } catch {
                throw DICOMParseError(
                    error.code, offset: offset, message: "deflated data set cannot be inflated: \(error.message)")
            }
        }
    }
}
