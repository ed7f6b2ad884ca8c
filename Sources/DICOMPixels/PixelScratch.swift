/// A worker's reusable pixel buffers: the encoded frame, the decoded frame, the decode of what was stored (for
/// verification) and an intermediate for RLE. They grow to the largest frame seen and are released after a frame
/// past `retainedBytes`, so memory stays bounded by the frames in flight, one per worker.
public final class PixelScratch {
    public let encoded = GrowableBuffer()
    let decoded = GrowableBuffer()
    let verify = GrowableBuffer()
    let intermediate = GrowableBuffer()
    private let retainedBytes: Int

    public init(retainedBytes: Int = 16 << 20) {
        self.retainedBytes = retainedBytes
    }

    /// Frees buffers that a large frame grew past `retainedBytes`.
    public func trim() {
        for buffer in [encoded, decoded, verify, intermediate] where buffer.capacity > retainedBytes { buffer.release() }
    }
}

/// Raw memory that grows on demand and is never shared between threads.
public final class GrowableBuffer {
    private var storage = UnsafeMutableRawBufferPointer(start: nil, count: 0)

    public init() {}

    deinit { storage.deallocate() }

    public var capacity: Int { storage.count }

    /// At least `count` bytes; earlier contents are not kept.
    public func bytes(_ count: Int) -> UnsafeMutableRawBufferPointer {
        if storage.count < count {
            storage.deallocate()
            storage = .allocate(byteCount: max(count, 4096), alignment: 16)
        }
        return UnsafeMutableRawBufferPointer(rebasing: storage[0..<count])
    }

    func release() {
        storage.deallocate()
        storage = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    }
}
