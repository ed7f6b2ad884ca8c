/// The Image Pixel module values that say how a frame's samples are laid out (PS3.3 C.7.6.3), and the layout a
/// decoded frame has in this engine: interleaved samples, one byte each when BitsStored is at most 8, else two
/// bytes little endian, masked to BitsStored (sign-extended when PixelRepresentation is 1). That is the buffer
/// HealthImaging's frame checksums are computed over (spec §3.4).
public struct PixelDescription: Hashable, Sendable {
    public var rows: Int
    public var columns: Int
    public var samplesPerPixel: Int
    public var bitsAllocated: Int
    public var bitsStored: Int
    public var highBit: Int
    public var isSigned: Bool
    /// 0: samples interleaved per pixel; 1: one plane per sample (PS3.3 C.7.6.3.1.3).
    public var planarConfiguration: Int
    public var photometricInterpretation: String
    /// Float pixels (Float Pixel Data, Double Float Pixel Data) are never transcoded.
    public var isFloat: Bool

    public init(
        rows: Int, columns: Int, samplesPerPixel: Int = 1, bitsAllocated: Int, bitsStored: Int? = nil,
        highBit: Int? = nil, isSigned: Bool = false, planarConfiguration: Int = 0,
        photometricInterpretation: String = "MONOCHROME2", isFloat: Bool = false
    ) {
        self.rows = rows
        self.columns = columns
        self.samplesPerPixel = samplesPerPixel
        self.bitsAllocated = bitsAllocated
        let stored = bitsStored ?? bitsAllocated
        self.bitsStored = stored
        self.highBit = highBit ?? stored - 1
        self.isSigned = isSigned
        self.planarConfiguration = planarConfiguration
        self.photometricInterpretation = photometricInterpretation
        self.isFloat = isFloat
    }

    /// Bytes per sample once decoded.
    public var decodedBytesPerSample: Int { bitsStored <= 8 ? 1 : 2 }

    /// Samples in one frame, or nil when the product overflows.
    public var samplesPerFrame: Int? {
        let (pixels, overflow) = rows.multipliedReportingOverflow(by: columns)
        let (samples, overflow2) = pixels.multipliedReportingOverflow(by: samplesPerPixel)
        return overflow || overflow2 || rows <= 0 || columns <= 0 || samplesPerPixel <= 0 ? nil : samples
    }

    /// Bytes of one decoded frame, or nil when it overflows.
    public var decodedFrameBytes: Int? {
        guard let samples = samplesPerFrame else { return nil }
        let (bytes, overflow) = samples.multipliedReportingOverflow(by: decodedBytesPerSample)
        return overflow ? nil : bytes
    }

    /// What a worker reserves to decode one frame: two bytes a sample, the widest a codec writes; nil when that
    /// overflows or passes `PixelLimits.maxDecodeBufferBytes`.
    public var decodeBufferBytes: Int? {
        guard let samples = samplesPerFrame else { return nil }
        let (bytes, overflow) = samples.multipliedReportingOverflow(by: 2)
        return overflow || bytes > PixelLimits.maxDecodeBufferBytes ? nil : bytes
    }

    /// True for YBR_FULL_422 and YBR_PARTIAL_422: Cb and Cr are sampled at half the horizontal rate of Y, so
    /// uncompressed Pixel Data holds two samples per pixel, Y1 Y2 Cb Cr for each pair (PS3.3 C.7.6.3.1.2). The
    /// decoded layout holds all three samples of every pixel (the pair's Cb and Cr repeated, as pydicom and DCMTK
    /// expand it), so the 4:2:2 samples can be read back exactly.
    public var isHorizontallySubsampled: Bool {
        samplesPerPixel == 3 && photometricInterpretation.hasSuffix("_422")
    }

    /// Bytes of one frame as uncompressed Pixel Data holds it (two samples per pixel for 4:2:2 data), or nil when
    /// it overflows or is not byte aligned.
    public var nativeFrameBytes: Int? {
        guard let samples = isHorizontallySubsampled ? samplesPerFrame.map({ $0 / 3 * 2 }) : samplesPerFrame else {
            return nil
        }
        return Self.bytes(samples: samples, bitsAllocated: bitsAllocated)
    }

    /// Bytes of one frame with every sample of every pixel, BitsAllocated wide (what an RLE frame decodes to:
    /// one segment per sample at full size, PS3.5 G.2), or nil when it overflows or is not byte aligned.
    public var fullFrameBytes: Int? {
        samplesPerFrame.flatMap { Self.bytes(samples: $0, bitsAllocated: bitsAllocated) }
    }

    private static func bytes(samples: Int, bitsAllocated: Int) -> Int? {
        guard bitsAllocated > 0 else { return nil }
        let (bits, overflow) = samples.multipliedReportingOverflow(by: bitsAllocated)
        return overflow || bits % 8 != 0 ? nil : bits / 8
    }

    /// Why frames so described cannot be stored losslessly as HTJ2K or JPEG 2000, or nil when they can.
    public var unencodableReason: String? {
        if isFloat { return "float pixel data" }
        guard bitsAllocated == 8 || bitsAllocated == 16 else { return "BitsAllocated \(bitsAllocated)" }
        guard bitsStored >= 1, bitsStored <= bitsAllocated else {
            return "BitsStored \(bitsStored) with BitsAllocated \(bitsAllocated)"
        }
        guard highBit == bitsStored - 1 else { return "HighBit \(highBit) with BitsStored \(bitsStored)" }
        guard samplesPerPixel == 1 || samplesPerPixel == 3 else { return "SamplesPerPixel \(samplesPerPixel)" }
        guard !photometricInterpretation.hasSuffix("_420") else {
            return "subsampled PhotometricInterpretation \(photometricInterpretation)"
        }
        if isHorizontallySubsampled {
            guard planarConfiguration == 0 else { return "\(photometricInterpretation) with PlanarConfiguration 1" }
            guard columns % 2 == 0 else { return "\(photometricInterpretation) with an odd number of Columns" }
        }
        guard decodeBufferBytes != nil else {
            return "a frame needing more than \(PixelLimits.maxDecodeBufferBytes) bytes to decode"
        }
        return nil
    }

    /// The wavelet levels PS3.5 asks of HTJ2K Lossless RPCL codestreams: the fewest that bring the lowest
    /// resolution to at most 64 pixels in both directions.
    public var decompositions: Int {
        var levels = 0
        while (columns - 1) >> levels >= 64 || (rows - 1) >> levels >= 64 { levels += 1 }
        return levels
    }
}

/// Sizes the pixel stage refuses to go past, whatever the input says.
public enum PixelLimits {
    /// The largest decode buffer (two bytes a sample) a frame may need to be transcoded; larger frames are stored
    /// as they arrived, with a warning.
    public static let maxDecodeBufferBytes = 256 << 20
    /// The largest encoded frame (all its fragments) read into memory for decoding.
    public static let maxEncodedFrameBytes = 256 << 20
}
