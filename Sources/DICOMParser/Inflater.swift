import CZlib

/// Inflates the data set of a Deflated Explicit VR Little Endian file (PS3.5 §A.5): a raw deflate stream
/// (RFC 1951) without zlib header. Streams that carry a zlib or gzip header anyway are accepted too.
enum Inflater {
    static func inflate(_ compressed: [UInt8], limit: Int, startOffset: Int) throws(DICOMParseError) -> [UInt8] {
        if let raw = try? inflate(compressed, windowBits: -MAX_WBITS, limit: limit) {
            return raw
        }
        // 15 + 32: detect a zlib or gzip header.
        do {
            return try inflate(compressed, windowBits: MAX_WBITS + 32, limit: limit)
        } catch {
            throw DICOMParseError(
                error.code, offset: startOffset, message: "deflated data set cannot be inflated: \(error.message)")
        }
    }

    private static func inflate(_ compressed: [UInt8], windowBits: Int32, limit: Int) throws(DICOMParseError) -> [UInt8]
    {
        var stream = z_stream()
        guard inflateInit2_(&stream, windowBits, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw DICOMParseError(.deflateFailed, offset: 0, message: "zlib initialisation failed")
        }
        defer { inflateEnd(&stream) }
        var output = [UInt8]()
        output.reserveCapacity(min(limit, max(compressed.count * 4, 4096)))
        var chunk = [UInt8](repeating: 0, count: 256 * 1024)
        var status: Int32 = Z_OK
        compressed.withUnsafeBufferPointer { source in
            stream.next_in = UnsafeMutablePointer(mutating: source.baseAddress)
            stream.avail_in = UInt32(source.count)
            repeat {
                chunk.withUnsafeMutableBufferPointer { target in
                    stream.next_out = target.baseAddress
                    stream.avail_out = UInt32(target.count)
                    status = CZlib.inflate(&stream, Z_NO_FLUSH)
                    let produced = target.count - Int(stream.avail_out)
                    output.append(contentsOf: target[0..<produced])
                }
            } while status == Z_OK && output.count <= limit && (stream.avail_in > 0 || stream.avail_out == 0)
        }
        if output.count > limit {
            throw DICOMParseError(.valueTooLong, offset: 0, message: "inflated data set exceeds \(limit) bytes")
        }
        // A stream without a final block (Z_OK/Z_BUF_ERROR with all input consumed) still yields usable bytes,
        // but a data error does not.
        guard status == Z_STREAM_END || ((status == Z_OK || status == Z_BUF_ERROR) && !output.isEmpty) else {
            throw DICOMParseError(.deflateFailed, offset: 0, message: "zlib status \(status)")
        }
        return output
    }
}
