import CZlib

/// zlib helpers: gzip (metadata documents).
public enum Compression {
    /// A gzip member (RFC 1952) of `bytes`.
    public static func gzip(_ bytes: [UInt8], level: Int32 = 6) -> [UInt8] {
        var stream = z_stream()
        // 15 + 16: zlib window with a gzip wrapper.
        guard deflateInit2_(
            &stream, level, Z_DEFLATED, MAX_WBITS + 16, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION,
            Int32(MemoryLayout<z_stream>.size)) == Z_OK
        else { fatalError("zlib deflateInit2 failed") }
        defer { deflateEnd(&stream) }
        var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, UInt(bytes.count))) + 32)
        var input = bytes
        let produced = input.withUnsafeMutableBufferPointer { source in
            output.withUnsafeMutableBufferPointer { target in
                stream.next_in = source.baseAddress
                stream.avail_in = UInt32(source.count)
                stream.next_out = target.baseAddress
                stream.avail_out = UInt32(target.count)
                _ = deflate(&stream, Z_FINISH)
                return target.count - Int(stream.avail_out)
            }
        }
        return Array(output.prefix(produced))
    }

    /// Inflates a gzip stream (all its members); `nil` when it is not valid gzip or exceeds `limit` bytes.
    public static func gunzip(_ bytes: [UInt8], limit: Int = Int.max) -> [UInt8]? {
        inflate(bytes, windowBits: MAX_WBITS + 16, limit: limit)
    }

    /// Inflates raw deflate data (RFC 1951, as in zip entries); `nil` when invalid or over `limit` bytes.
    public static func inflateRaw(_ bytes: ArraySlice<UInt8>, limit: Int = Int.max) -> [UInt8]? {
        inflate(Array(bytes), windowBits: -MAX_WBITS, limit: limit)
    }

    private static func inflate(_ bytes: [UInt8], windowBits: Int32, limit: Int) -> [UInt8]? {
        var stream = z_stream()
        guard inflateInit2_(&stream, windowBits, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            return nil
        }
        defer { inflateEnd(&stream) }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 256 * 1024)
        var input = bytes
        var status: Int32 = Z_OK
        input.withUnsafeMutableBufferPointer { source in
            stream.next_in = source.baseAddress
            stream.avail_in = UInt32(source.count)
            while true {
                chunk.withUnsafeMutableBufferPointer { target in
                    stream.next_out = target.baseAddress
                    stream.avail_out = UInt32(target.count)
                    status = CZlib.inflate(&stream, Z_NO_FLUSH)
                    output.append(contentsOf: target[0..<(target.count - Int(stream.avail_out))])
                }
                if output.count > limit { status = Z_MEM_ERROR; break }
                // A gzip file may hold several members one after another (RFC 1952 §2.2).
                if status == Z_STREAM_END && stream.avail_in > 0 && windowBits > MAX_WBITS {
                    guard inflateReset(&stream) == Z_OK else { break }
                    continue
                }
                if status != Z_OK { break }
            }
        }
        return status == Z_STREAM_END ? output : nil
    }
}
