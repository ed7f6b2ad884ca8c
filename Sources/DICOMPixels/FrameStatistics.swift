import CZlib

/// How samples are laid out, for checksums and min/max.
public struct SampleFormat: Hashable, Sendable {
    public var bitsAllocated: Int
    public var signed: Bool
    public var bigEndian: Bool

    public init(bitsAllocated: Int, signed: Bool, bigEndian: Bool) {
        self.bitsAllocated = bitsAllocated
        self.signed = signed
        self.bigEndian = bigEndian
    }
}

/// CRC-32 over the little-endian samples of a frame (what a decoder hands back), and integer min/max, fed in
/// chunks of any size.
public struct FrameStatistics: Sendable {
    public let format: SampleFormat
    public private(set) var crc: UInt32 = 0
    public private(set) var minimum: Int64?
    public private(set) var maximum: Int64?
    /// A byte left over when a chunk ends in the middle of a 16-bit sample.
    private var carry: UInt8?

    public init(format: SampleFormat) {
        self.format = format
    }

    public mutating func add(_ bytes: UnsafeRawBufferPointer) {
        switch format.bitsAllocated {
        case 8:
            crc = Self.crc32(bytes, continuing: crc)
            if format.signed {
                scan(bytes.bindMemory(to: Int8.self))
            } else {
                scan(bytes.bindMemory(to: UInt8.self))
            }
        case 16 where !format.bigEndian && carry == nil && bytes.count % 2 == 0
            && Int(bitPattern: bytes.baseAddress) % 2 == 0:
            // The common case: whole little-endian samples, aligned (chunks start at the buffer's start).
            crc = Self.crc32(bytes, continuing: crc)
            if format.signed {
                scan(bytes.bindMemory(to: Int16.self))
            } else {
                scan(bytes.bindMemory(to: UInt16.self))
            }
        case 16:
            var pairs: [UInt8] = []
            pairs.reserveCapacity(bytes.count + 1)
            if let carry { pairs.append(carry) }
            pairs.append(contentsOf: bytes)
            let usable = pairs.count & ~1
            carry = pairs.count > usable ? pairs.last : nil
            if format.bigEndian {
                for index in stride(from: 0, to: usable, by: 2) { pairs.swapAt(index, index + 1) }
            }
            pairs.withUnsafeBytes { raw in
                let whole = UnsafeRawBufferPointer(rebasing: raw[0..<usable])
                crc = Self.crc32(whole, continuing: crc)
                let copy = Array(whole)
                copy.withUnsafeBytes { aligned in
                    if format.signed { scan(aligned.bindMemory(to: Int16.self)) } else { scan(aligned.bindMemory(to: UInt16.self)) }
                }
            }
        default:
            crc = Self.crc32(bytes, continuing: crc)
        }
    }

    /// CRC-32 (IEEE 802.3, zlib's polynomial: HealthImaging's frame checksum, spec §3.4) of `bytes`.
    public static func crc32(_ bytes: UnsafeRawBufferPointer, continuing previous: UInt32 = 0) -> UInt32 {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return previous }
        return UInt32(CZlib.crc32(UInt(previous), base.assumingMemoryBound(to: Bytef.self), UInt32(bytes.count)))
    }

    /// Min/max over a run of samples, in a loop the compiler vectorizes.
    private mutating func scan<T: FixedWidthInteger>(_ samples: UnsafeBufferPointer<T>) {
        guard let first = samples.first else { return }
        var low = first
        var high = first
        for sample in samples {
            low = Swift.min(low, sample)
            high = Swift.max(high, sample)
        }
        minimum = Swift.min(minimum ?? Int64(low), Int64(low))
        maximum = Swift.max(maximum ?? Int64(high), Int64(high))
    }
}
