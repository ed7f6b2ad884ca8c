/// Conversions into the decoded layout (`PixelDescription`): from uncompressed Pixel Data, and from what a codec
/// wrote (whose sample width follows the codestream's precision, not BitsStored).
enum DecodedSamples {
    /// Converts one uncompressed frame (`description.nativeFrameBytes` bytes, BitsAllocated 8 or 16; with
    /// `bigEndian` and 8-bit samples, the frame's whole 16-bit words, padding byte included) into the
    /// decoded layout: interleaves planes, expands 4:2:2 pairs, swaps big-endian samples, narrows to one byte when
    /// BitsStored ≤ 8, and masks or sign-extends to BitsStored (the bits above HighBit are not pixel data,
    /// PS3.5 §8.1.1).
    ///
    /// - Parameter fullSamples: the frame holds every sample of every pixel even when the photometric
    ///   interpretation is 4:2:2 (a decoded RLE frame does).
    static func fromNative(
        _ source: UnsafeRawBufferPointer, description: PixelDescription, bigEndian: Bool, fullSamples: Bool = false,
        into output: UnsafeMutableRawBufferPointer
    ) throws(PixelError) -> Int {
        let subsampled = description.isHorizontallySubsampled && !fullSamples
        guard let samples = description.samplesPerFrame, let decodedBytes = description.decodedFrameBytes,
            let nativeBytes = subsampled ? description.nativeFrameBytes : description.fullFrameBytes,
            output.count >= decodedBytes,
            source.count >= (bigEndian && description.bitsAllocated == 8 ? (nativeBytes + 1) & ~1 : nativeBytes)
        else { throw PixelError(.decode, "the frame is shorter than its pixel module says") }
        guard description.bitsAllocated == 8 || description.bitsAllocated == 16 else {
            throw PixelError(.unsupported, "samples of BitsAllocated \(description.bitsAllocated) are not decoded")
        }
        let components = description.samplesPerPixel
        let pixels = samples / components
        let planar = description.planarConfiguration == 1 && components > 1
        let inputWidth = description.bitsAllocated / 8
        let outputWidth = description.decodedBytesPerSample
        let normalize = Normalizer(bitsStored: description.bitsStored, isSigned: description.isSigned)
        if !planar && !subsampled && inputWidth == 2 && outputWidth == 2 && !bigEndian {
            // The common case (little-endian 16-bit samples, interleaved): one masking pass the compiler vectorizes.
            for index in 0..<samples {
                let value = source.loadUnaligned(fromByteOffset: 2 * index, as: UInt16.self)
                output.storeBytes(
                    of: UInt16(truncatingIfNeeded: normalize(UInt32(value))), toByteOffset: 2 * index, as: UInt16.self)
            }
            return decodedBytes
        }
        @inline(__always) func sample(_ sourceIndex: Int) -> UInt32 {
            if inputWidth == 1 {
                // Big endian 8-bit samples come in byte-swapped 16-bit words (OW, PS3.5 §7.3).
                return UInt32(source[bigEndian ? sourceIndex ^ 1 : sourceIndex])
            }
            let first = UInt32(source[2 * sourceIndex])
            let second = UInt32(source[2 * sourceIndex + 1])
            return bigEndian ? first << 8 | second : second << 8 | first
        }
        if subsampled {
            guard !planar, description.columns % 2 == 0 else {
                throw PixelError(
                    .unsupported, "\(description.photometricInterpretation) frames need PlanarConfiguration 0 and even Columns")
            }
            // Each pair of pixels arrives as Y1 Y2 Cb Cr and leaves as Y1 Cb Cr Y2 Cb Cr.
            for pair in 0..<(pixels / 2) {
                let y1 = normalize(sample(4 * pair)), y2 = normalize(sample(4 * pair + 1))
                let cb = normalize(sample(4 * pair + 2)), cr = normalize(sample(4 * pair + 3))
                store(y1, at: 6 * pair, width: outputWidth, into: output)
                store(cb, at: 6 * pair + 1, width: outputWidth, into: output)
                store(cr, at: 6 * pair + 2, width: outputWidth, into: output)
                store(y2, at: 6 * pair + 3, width: outputWidth, into: output)
                store(cb, at: 6 * pair + 4, width: outputWidth, into: output)
                store(cr, at: 6 * pair + 5, width: outputWidth, into: output)
            }
            return decodedBytes
        }
        for index in 0..<samples {
            // Output sample `index` is component `index % components` of pixel `index / components`.
            let sourceIndex = planar ? (index % components) * pixels + index / components : index
            store(normalize(sample(sourceIndex)), at: index, width: outputWidth, into: output)
        }
        return decodedBytes
    }

    /// Brings a codec's output (`codecWidth` bytes per sample, `samples` samples, at the start of `buffer`) to the
    /// decoded layout in place: narrows or widens the samples, then masks or sign-extends them to BitsStored.
    static func normalizeInPlace(
        _ buffer: UnsafeMutableRawBufferPointer, samples: Int, codecWidth: Int, description: PixelDescription
    ) {
        let outputWidth = description.decodedBytesPerSample
        let normalize = Normalizer(bitsStored: description.bitsStored, isSigned: description.isSigned)
        if codecWidth == outputWidth && normalize.isIdentity(width: outputWidth) { return }
        func load(_ index: Int) -> UInt32 {
            codecWidth == 1 ? UInt32(buffer[index]) : UInt32(buffer[2 * index]) | UInt32(buffer[2 * index + 1]) << 8
        }
        if outputWidth > codecWidth {
            // Widening in place: walk backwards so no sample is overwritten before it is read.
            for index in stride(from: samples - 1, through: 0, by: -1) {
                store(normalize(load(index)), at: index, width: outputWidth, into: buffer)
            }
        } else {
            for index in 0..<samples { store(normalize(load(index)), at: index, width: outputWidth, into: buffer) }
        }
    }

    @inline(__always)
    private static func store(_ value: UInt32, at index: Int, width: Int, into output: UnsafeMutableRawBufferPointer) {
        if width == 1 {
            output[index] = UInt8(truncatingIfNeeded: value)
        } else {
            output[2 * index] = UInt8(truncatingIfNeeded: value)
            output[2 * index + 1] = UInt8(truncatingIfNeeded: value >> 8)
        }
    }

    /// Keeps the low BitsStored bits of a sample; for signed pixels, copies bit BitsStored − 1 into the bits above.
    struct Normalizer {
        let mask: UInt32
        let signBit: UInt32
        let isSigned: Bool

        init(bitsStored: Int, isSigned: Bool) {
            let bits = min(max(bitsStored, 1), 16)
            mask = (1 << UInt32(bits)) - 1
            signBit = 1 << UInt32(bits - 1)
            self.isSigned = isSigned
        }

        /// True when normalizing changes nothing at this sample width.
        func isIdentity(width: Int) -> Bool { mask == (1 << UInt32(8 * width)) - 1 }

        @inline(__always)
        func callAsFunction(_ value: UInt32) -> UInt32 {
            let low = value & mask
            return isSigned && low & signBit != 0 ? low | ~mask : low
        }
    }
}
