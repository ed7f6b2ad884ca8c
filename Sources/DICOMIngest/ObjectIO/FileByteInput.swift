import Glibc
public import DICOMParser

/// A local file read with `pread`, so the scanner can jump over pixel data without reading it.
public final class FileByteInput: P10ByteInput {
    private let descriptor: Int32
    public let length: Int
    public let path: String
    /// Bytes actually read so far (a header scan reads a small fraction of `length`).
    public private(set) var bytesRead = 0

    /// Opens `path` read-only.
    public convenience init(path: String) throws(DICOMParseError) {
        try self.init(pathBytes: Array(path.utf8))
    }

    /// Opens the file whose path is these bytes (which need not be UTF-8), read-only.
    public init(pathBytes: [UInt8]) throws(DICOMParseError) {
        let path = String(decoding: pathBytes, as: UTF8.self)
        let descriptor = (pathBytes + [0]).withUnsafeBufferPointer { bytes in
            bytes.withMemoryRebound(to: CChar.self) { open($0.baseAddress!, O_RDONLY | O_CLOEXEC) }
        }
        guard descriptor >= 0 else {
            throw DICOMParseError(.ioError, offset: 0, message: "cannot open: \(String(cString: strerror(errno)))")
        }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            let message = String(cString: strerror(errno))
            close(descriptor)
            throw DICOMParseError(.ioError, offset: 0, message: "cannot stat: \(message)")
        }
        self.descriptor = descriptor
        self.length = Int(status.st_size)
        self.path = path
    }

    deinit {
        close(descriptor)
    }

    public func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws(DICOMParseError) -> Int {
        var total = 0
        while total < buffer.count {
            let count = pread(descriptor, buffer.baseAddress! + total, buffer.count - total, off_t(offset + total))
            if count < 0 {
                if errno == EINTR { continue }
                throw DICOMParseError(
                    .ioError, offset: offset + total, message: "read failed: \(String(cString: strerror(errno)))")
            }
            if count == 0 { break }
            total += count
        }
        bytesRead += total
        return total
    }
}
