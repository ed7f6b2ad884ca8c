/// Random-access bytes the scanner reads from: a file, an object in a store, or memory.
///
/// The scanner never opens anything itself; the caller hands it an input. Reads are absolute and
/// stateless so the scanner can skip over pixel data without reading it.
public protocol P10ByteInput {
    /// Total size in bytes.
    var length: Int { get }
    /// Copies up to `buffer.count` bytes starting at `offset` into `buffer` and returns how many were
    /// copied (fewer only at the end of the input).
    func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws(DICOMParseError) -> Int
}

/// An input over bytes already in memory (tests, inflated deflate streams, small objects).
public struct MemoryByteInput: P10ByteInput, Sendable {
    public var bytes: [UInt8]

    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    public var length: Int { bytes.count }

    public func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws(DICOMParseError) -> Int {
        guard offset < bytes.count else { return 0 }
        let count = min(buffer.count, bytes.count - offset)
        bytes.withUnsafeBytes { source in
            buffer.baseAddress!.copyMemory(from: source.baseAddress! + offset, byteCount: count)
        }
        return count
    }
}

/// The memory behind a scanner's read window.
///
/// One buffer per worker thread, reused across files, so scanning a file allocates nothing for I/O.
/// Not thread-safe: used by one scanner at a time (a scanner may grow it for a large value).
public final class P10ReadBuffer {
    private(set) var storage: UnsafeMutableRawBufferPointer

    public init(capacity: Int = 64 * 1024) {
        storage = .allocate(byteCount: max(capacity, 16), alignment: 16)
    }

    deinit {
        storage.deallocate()
    }

    /// The capacity currently allocated.
    public var capacity: Int { storage.count }

    /// Gives back memory a large value made the window grow to, once the scanner that needed it is done (the
    /// window must not stay at the size of the largest value a worker ever read).
    public func shrink(to capacity: Int) {
        guard storage.count > max(capacity, 16) else { return }
        grow(to: max(capacity, 16))
    }

    func grow(to capacity: Int) {
        let newStorage = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity, alignment: 16)
        storage.deallocate()
        storage = newStorage
    }
}
