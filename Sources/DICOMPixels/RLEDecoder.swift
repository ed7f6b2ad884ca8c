/// DICOM RLE Lossless (PS3.5 Annex G): a 64-byte header of up to 15 segment offsets, then one PackBits segment
/// per byte plane, most significant byte of each sample first.
enum RLEDecoder {
    /// Decodes one frame into uncompressed Pixel Data layout (interleaved samples, little endian,
    /// BitsAllocated wide, every sample of every pixel), ready for `DecodedSamples.fromNative(fullSamples: true)`.
    static func decode(
        _ frame: UnsafeRawBufferPointer, description: PixelDescription, into output: UnsafeMutableRawBufferPointer
    ) throws(PixelError) -> Int {
        guard description.bitsAllocated % 8 == 0, let samples = description.samplesPerFrame,
            let frameBytes = description.fullFrameBytes, output.count >= frameBytes
        else { throw PixelError(.unsupported, "RLE frames need BitsAllocated a multiple of 8") }
        let bytesPerSample = description.bitsAllocated / 8
        let components = description.samplesPerPixel
        let pixels = samples / components
        let segmentCount = components * bytesPerSample
        guard frame.count >= 64 else { throw PixelError(.decode, "RLE frame shorter than its 64-byte header") }
        let declared = Int(frame.loadUnaligned(fromByteOffset: 0, as: UInt32.self).littleEndian)
        guard declared == segmentCount, segmentCount <= 15 else {
            throw PixelError(.decode, "RLE header declares \(declared) segments, the pixel module needs \(segmentCount)")
        }
        var offsets: [Int] = []
        for index in 0..<segmentCount {
            offsets.append(Int(frame.loadUnaligned(fromByteOffset: 4 + 4 * index, as: UInt32.self).littleEndian))
        }
        offsets.append(frame.count)
        for segment in 0..<segmentCount {
            let start = offsets[segment]
            let end = offsets[segment + 1]
            guard start >= 64, start <= end, end <= frame.count else {
                throw PixelError(.decode, "RLE segment \(segment + 1) has offsets \(start)..<\(end) outside the frame")
            }
            // Segment order: component by component, most significant byte first (Annex G.2).
            let component = segment / bytesPerSample
            let byteInSample = bytesPerSample - 1 - segment % bytesPerSample
            let decoded = unpack(
                UnsafeRawBufferPointer(rebasing: frame[start..<end]), count: pixels, output: output,
                firstIndex: component * bytesPerSample + byteInSample, stride: components * bytesPerSample)
            guard decoded == pixels else {
                throw PixelError(.decode, "RLE segment \(segment + 1) holds \(decoded) bytes, \(pixels) expected")
            }
        }
        return frameBytes
    }

    /// PackBits: a header byte n in 0...127 copies n + 1 literal bytes, −127...−1 repeats the next byte 1 − n
    /// times, −128 is a no-op. Writes at most `count` bytes, `stride` apart.
    private static func unpack(
        _ segment: UnsafeRawBufferPointer, count: Int, output: UnsafeMutableRawBufferPointer, firstIndex: Int,
        stride: Int
    ) -> Int {
        var read = 0
        var written = 0
        while read < segment.count, written < count {
            let header = Int(Int8(bitPattern: segment[read]))
            read += 1
            if header >= 0 {
                let run = min(header + 1, count - written, segment.count - read)
                for offset in 0..<run { output[firstIndex + (written + offset) * stride] = segment[read + offset] }
                read += header + 1
                written += run
            } else if header != -128 {
                guard read < segment.count else { break }
                let run = min(1 - header, count - written)
                let value = segment[read]
                read += 1
                for offset in 0..<run { output[firstIndex + (written + offset) * stride] = value }
                written += run
            }
        }
        return written
    }
}
