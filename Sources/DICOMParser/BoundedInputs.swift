import Glibc

/// A window `[offset, offset + length)` of another input: an archive member stored without compression is read
/// in place, never copied.
public struct SliceByteInput: P10ByteInput {
    public let base: any P10ByteInput
    public let offset: Int
    public let length: Int

    /// - Precondition: the window lies inside `base` (callers check lengths read from headers first).
    public init(base: any P10ByteInput, offset: Int, length: Int) {
        precondition(offset >= 0 && length >= 0 && offset <= base.length && length <= base.length - offset)
        self.base = base
        self.offset = offset
        self.length = length
    }

    public func read(at position: Int, into buffer: UnsafeMutableRawBufferPointer) throws(DICOMParseError) -> Int {
        guard position >= 0, position < length else { return 0 }
        let count = min(buffer.count, length - position)
        return try base.read(at: offset + position, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count]))
    }
}

/// Bytes produced in order (an inflated stream), kept for random access in bounded memory: in memory up to
/// `memoryLimit`, then in an unlinked temporary file (gone when the buffer is, or when the process dies).
/// Refuses to grow past `maxBytes`.
public final class SpillBuffer: P10ByteInput {
    public let memoryLimit: Int
    public let maxBytes: Int
    private var memory: [UInt8] = []
    private var descriptor: Int32 = -1
    public private(set) var length = 0

    public init(memoryLimit: Int = BoundedMemory.spillThreshold, maxBytes: Int) {
        self.memoryLimit = memoryLimit
        self.maxBytes = maxBytes
    }

    deinit {
        if descriptor >= 0 { close(descriptor) }
    }

    /// Whether the bytes went to a temporary file.
    public var isSpilled: Bool { descriptor >= 0 }

    /// Appends `bytes`.
    /// - Throws: `valueTooLong` past `maxBytes`, `ioError` when the temporary file cannot be written.
    public func append(_ bytes: UnsafeRawBufferPointer) throws(DICOMParseError) {
        guard bytes.count <= maxBytes - length else {
            throw DICOMParseError(.valueTooLong, offset: length, message: "more than \(maxBytes) bytes once inflated")
        }
        if descriptor < 0 && length + bytes.count <= memoryLimit {
            memory.append(contentsOf: bytes)
            length += bytes.count
            return
        }
        if descriptor < 0 {
            try openTemporaryFile()
            let kept = memory
            memory = []
            try kept.withUnsafeBytes { kept in Result { () throws(DICOMParseError) in try write(kept, at: 0) } }.get()
        }
        try write(bytes, at: length)
        length += bytes.count
    }

    public func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws(DICOMParseError) -> Int {
        guard offset >= 0, offset < length else { return 0 }
        let count = min(buffer.count, length - offset)
        if descriptor < 0 {
            memory.withUnsafeBytes { source in
                buffer.baseAddress!.copyMemory(from: source.baseAddress! + offset, byteCount: count)
            }
            return count
        }
        var total = 0
        while total < count {
            let got = pread(descriptor, buffer.baseAddress! + total, count - total, off_t(offset + total))
            if got < 0 && errno == EINTR { continue }
            guard got > 0 else {
                throw DICOMParseError(.ioError, offset: offset + total, message: "temporary file read failed: \(String(cString: strerror(errno)))")
            }
            total += got
        }
        return total
    }

    private func openTemporaryFile() throws(DICOMParseError) {
        let folder = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        var template = Array((folder + "/dicom-ingest-spill-XXXXXX").utf8CString)
        let opened = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard opened >= 0 else {
            throw DICOMParseError(.ioError, offset: 0, message: "cannot create a temporary file in \(folder): \(String(cString: strerror(errno)))")
        }
        // Unlinked at once: nothing is left behind, whatever happens to the process.
        _ = template.withUnsafeBufferPointer { unlink($0.baseAddress!) }
        _ = fcntl(opened, F_SETFD, FD_CLOEXEC)
        descriptor = opened
    }

    private func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws(DICOMParseError) {
        var done = 0
        while done < bytes.count {
            let wrote = pwrite(descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            if wrote < 0 && errno == EINTR { continue }
            guard wrote > 0 else {
                throw DICOMParseError(.ioError, offset: offset + done, message: "temporary file write failed: \(String(cString: strerror(errno)))")
            }
            done += wrote
        }
    }
}

/// Limits of inputs that are produced rather than read in place, named in one place.
public enum BoundedMemory {
    /// Inflated bytes kept in memory per stream; the rest goes to a temporary file.
    public static let spillThreshold = 8 << 20
    /// A compressed stream may inflate to at most this many times its compressed size (past
    /// `inflationAllowance`): DICOM deflates 2–20×, all-zero pixels about 1000×, a decompression bomb more.
    public static let maxInflationRatio = 200
    /// What any stream may inflate to, whatever its ratio.
    public static let inflationAllowance = 64 << 20

    /// The most bytes `compressedBytes` may inflate to.
    public static func inflationLimit(compressedBytes: Int) -> Int {
        let (scaled, overflow) = compressedBytes.multipliedReportingOverflow(by: maxInflationRatio)
        return overflow ? Int.max : max(scaled, inflationAllowance)
    }
}
