@testable import DICOMPixels
import Testing

/// A deterministic frame in the decoded layout: a gradient with noise-like structure so every resolution
/// carries data.
func syntheticFrame(_ description: PixelDescription) -> [UInt8] {
    let samples = description.samplesPerFrame!
    var bytes = [UInt8](repeating: 0, count: description.decodedFrameBytes!)
    let range = 1 << description.bitsStored
    for index in 0..<samples {
        let pixel = index / description.samplesPerPixel
        let x = pixel % description.columns
        let y = pixel / description.columns
        var value = (x * 37 + y * 11 + (index % description.samplesPerPixel) * 101 + (x * y) % 17) % range
        if description.isSigned { value -= range / 2 }
        if description.decodedBytesPerSample == 1 {
            bytes[index] = UInt8(truncatingIfNeeded: value)
        } else {
            bytes[2 * index] = UInt8(truncatingIfNeeded: value)
            bytes[2 * index + 1] = UInt8(truncatingIfNeeded: value >> 8)
        }
    }
    return bytes
}

@Suite struct FrameProcessorTests {
    static let descriptions: [PixelDescription] = [
        PixelDescription(rows: 200, columns: 300, bitsAllocated: 16, bitsStored: 12, isSigned: true),
        PixelDescription(rows: 512, columns: 512, bitsAllocated: 16, bitsStored: 16),
        PixelDescription(rows: 33, columns: 31, samplesPerPixel: 3, bitsAllocated: 8, photometricInterpretation: "RGB"),
        PixelDescription(rows: 1, columns: 1000, bitsAllocated: 8, bitsStored: 8, isSigned: true),
    ]

    @Test(arguments: descriptions)
    func nativeFramesComeBackBitExactFromConformingHTJ2K(description: PixelDescription) throws {
        let source = syntheticFrame(description)
        let processor = FrameProcessor(format: .htj2k)
        let scratch = PixelScratch()
        try source.withUnsafeBytes { bytes in
            let decoded = try processor.decode(bytes, encoding: .native(bigEndian: false), description: description, scratch: scratch)
            #expect(Array(decoded.samples) == source)
            #expect(decoded.statistics.crc == FrameStatistics.crc32(bytes))
            let codestream = try processor.encodeVerified(decoded, description: description, scratch: scratch)
            let parsed = try codestream.withUnsafeBytes { try HTJ2KCodestream(parsing: $0) }
            #expect(parsed.conformanceProblem() == nil)
            #expect(parsed.decompositions == description.decompositions)
            #expect(parsed.tileParts.count == description.decompositions + 1)
            #expect(parsed.tileParts.map(\.index) == Array(0..<parsed.tileParts.count))
            let back = try codestream.withUnsafeBytes {
                try FrameProcessor.decodeStored($0, transferSyntaxUID: "1.2.840.10008.1.2.4.202", description: description, scratch: scratch)
            }
            #expect(Array(back) == source)
        }
    }

    @Test func decompositionsBringTheLowestResolutionToAtMost64Pixels() {
        #expect(PixelDescription(rows: 64, columns: 64, bitsAllocated: 8).decompositions == 0)
        #expect(PixelDescription(rows: 65, columns: 64, bitsAllocated: 8).decompositions == 1)
        #expect(PixelDescription(rows: 512, columns: 512, bitsAllocated: 16).decompositions == 3)
        #expect(PixelDescription(rows: 513, columns: 100, bitsAllocated: 16).decompositions == 4)
    }

    @Test func eachTilePartPrefixDecodesToItsResolution() throws {
        let description = PixelDescription(rows: 512, columns: 400, bitsAllocated: 16, bitsStored: 16)
        let source = syntheticFrame(description)
        let processor = FrameProcessor()
        let scratch = PixelScratch()
        let codestream = try source.withUnsafeBytes { bytes in
            try processor.encodeVerified(
                processor.decode(bytes, encoding: .native(bigEndian: false), description: description, scratch: scratch),
                description: description, scratch: scratch)
        }
        let levels = description.decompositions
        for resolutions in 1...(levels + 1) {
            let skipped = levels + 1 - resolutions
            let full = try codestream.withUnsafeBytes { bytes in
                Array(try FrameProcessor.decodeStored(bytes, transferSyntaxUID: "1.2.840.10008.1.2.4.202", description: description, skipResolutions: skipped, scratch: scratch))
            }
            let prefix = try codestream.withUnsafeBytes { try HTJ2KCodestream.prefix($0, resolutions: resolutions) }
            #expect(prefix.count < codestream.count || resolutions == levels + 1)
            let fromPrefix = try prefix.withUnsafeBytes { bytes in
                Array(try FrameProcessor.decodeStored(bytes, transferSyntaxUID: "1.2.840.10008.1.2.4.202", description: description, skipResolutions: skipped, scratch: scratch))
            }
            let width = (description.columns + (1 << skipped) - 1) >> skipped
            let height = (description.rows + (1 << skipped) - 1) >> skipped
            #expect(fromPrefix.count == width * height * 2)
            #expect(fromPrefix == full, "resolution \(resolutions)")
            // OpenJPEG, an independent decoder, reads the same prefix at the same reduction.
            let independent = try prefix.withUnsafeBytes { bytes in
                Array(try FrameProcessor.decodeStored(bytes, transferSyntaxUID: "1.2.840.10008.1.2.4.90", description: description, skipResolutions: skipped, scratch: scratch))
            }
            #expect(independent == full)
        }
    }

    @Test func aCorruptedStoredFrameFailsVerification() throws {
        let description = PixelDescription(rows: 128, columns: 128, bitsAllocated: 16, bitsStored: 16)
        let source = syntheticFrame(description)
        let processor = FrameProcessor()
        let scratch = PixelScratch()
        let decoded = try source.withUnsafeBytes {
            try processor.decode($0, encoding: .native(bigEndian: false), description: description, scratch: scratch)
        }
        let checksum = decoded.statistics.crc
        var codestream = try processor.encodeVerified(decoded, description: description, scratch: scratch)
        try processor.verify(codestream, transferSyntaxUID: "1.2.840.10008.1.2.4.202", description: description, checksum: checksum, scratch: scratch)
        // A flipped bit in the last tile-part's code-block data (the full resolution): a decode error or other pixels.
        var flipped = codestream
        flipped[flipped.count - 40] ^= 0x10
        #expect(throws: PixelError.self) {
            try processor.verify(flipped, transferSyntaxUID: "1.2.840.10008.1.2.4.202", description: description, checksum: checksum, scratch: scratch)
        }
        // A corrupted SIZ: Ssiz of component 0 (offset 42) now says signed, so every sample decodes shifted.
        codestream[42] ^= 0x80
        #expect(throws: PixelError.self) {
            try processor.verify(codestream, transferSyntaxUID: "1.2.840.10008.1.2.4.202", description: description, checksum: checksum, scratch: scratch)
        }
    }

    @Test func aCodestreamCutAnywhereIsAnErrorNotATrap() throws {
        let description = PixelDescription(rows: 80, columns: 80, bitsAllocated: 8)
        let source = syntheticFrame(description)
        let processor = FrameProcessor()
        let scratch = PixelScratch()
        let codestream = try source.withUnsafeBytes { bytes in
            try processor.encodeVerified(
                processor.decode(bytes, encoding: .native(bigEndian: false), description: description, scratch: scratch),
                description: description, scratch: scratch)
        }
        for length in 0..<codestream.count {
            #expect(throws: PixelError.self) {
                try Array(codestream.prefix(length)).withUnsafeBytes { _ = try HTJ2KCodestream(parsing: $0) }
            }
        }
    }

    @Test func nativeSamplesWiderThanSixteenBitsAreNotDecoded() {
        let description = PixelDescription(rows: 2, columns: 2, bitsAllocated: 32, bitsStored: 16)
        let source = [UInt8](repeating: 1, count: 16)
        #expect(throws: PixelError.self) {
            try source.withUnsafeBytes {
                _ = try FrameProcessor().decode($0, encoding: .native(bigEndian: false), description: description, scratch: PixelScratch())
            }
        }
    }

    @Test func jpeg2000LosslessStoresBitExact() throws {
        let description = PixelDescription(rows: 100, columns: 130, bitsAllocated: 16, bitsStored: 14, isSigned: false)
        let source = syntheticFrame(description)
        let processor = FrameProcessor(format: .jpeg2000)
        let scratch = PixelScratch()
        let codestream = try source.withUnsafeBytes { bytes in
            try processor.encodeVerified(
                processor.decode(bytes, encoding: .native(bigEndian: false), description: description, scratch: scratch),
                description: description, scratch: scratch)
        }
        #expect(codestream.starts(with: [0xFF, 0x4F, 0xFF, 0x51]))
        let back = try codestream.withUnsafeBytes {
            Array(try FrameProcessor.decodeStored($0, transferSyntaxUID: "1.2.840.10008.1.2.4.90", description: description, scratch: scratch))
        }
        #expect(back == source)
    }

    @Test func unencodablePixelModulesSayWhy() {
        #expect(PixelDescription(rows: 2, columns: 2, bitsAllocated: 32).unencodableReason == "BitsAllocated 32")
        #expect(PixelDescription(rows: 2, columns: 2, bitsAllocated: 32, isFloat: true).unencodableReason == "float pixel data")
        #expect(PixelDescription(rows: 2, columns: 2, bitsAllocated: 1).unencodableReason == "BitsAllocated 1")
        #expect(PixelDescription(rows: 2, columns: 2, samplesPerPixel: 3, bitsAllocated: 8, photometricInterpretation: "YBR_PARTIAL_420").unencodableReason == "subsampled PhotometricInterpretation YBR_PARTIAL_420")
        #expect(PixelDescription(rows: 2, columns: 2, samplesPerPixel: 3, bitsAllocated: 8, planarConfiguration: 1, photometricInterpretation: "YBR_FULL_422").unencodableReason == "YBR_FULL_422 with PlanarConfiguration 1")
        #expect(PixelDescription(rows: 2, columns: 2, bitsAllocated: 16, bitsStored: 12).unencodableReason == nil)
    }
}

@Suite struct DecodedSamplesTests {
    @Test func bigEndianPlanarTwelveBitSignedBecomesInterleavedLittleEndianSignExtended() throws {
        // 2 pixels × 3 samples, planar (RRGGBB), big endian, 12 bits stored with junk in the top nibble.
        let description = PixelDescription(
            rows: 1, columns: 2, samplesPerPixel: 3, bitsAllocated: 16, bitsStored: 12, isSigned: true,
            planarConfiguration: 1, photometricInterpretation: "RGB")
        let values: [UInt16] = [0xF001, 0x0FFF, 0x1800, 0x07FF, 0xA002, 0x0003]  // R0 R1 G0 G1 B0 B1
        let source = values.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
        var output = [UInt8](repeating: 0, count: 12)
        _ = try source.withUnsafeBytes { input in
            try output.withUnsafeMutableBytes {
                try DecodedSamples.fromNative(input, description: description, bigEndian: true, into: $0)
            }
        }
        let samples = stride(from: 0, to: 12, by: 2).map { Int16(bitPattern: UInt16(output[$0]) | UInt16(output[$0 + 1]) << 8) }
        // R0 = 0x001, G0 = 0x800 → −2048, B0 = 0x002; R1 = 0xFFF → −1, G1 = 0x7FF, B1 = 3.
        #expect(samples == [1, -2048, 2, -1, 2047, 3])
    }

    /// YBR_FULL_422 holds Y1 Y2 Cb Cr per pair of pixels (PS3.3 C.7.6.3.1.2): two samples per pixel in Pixel
    /// Data, three per pixel once decoded.
    @Test func fourTwoTwoPairsExpandToThreeSamplesPerPixel() throws {
        let description = PixelDescription(
            rows: 2, columns: 2, samplesPerPixel: 3, bitsAllocated: 8, photometricInterpretation: "YBR_FULL_422")
        #expect(description.nativeFrameBytes == 8)
        #expect(description.fullFrameBytes == 12)
        #expect(description.decodedFrameBytes == 12)
        #expect(description.unencodableReason == nil)
        let source: [UInt8] = [10, 11, 100, 200, 20, 21, 101, 201]
        var output = [UInt8](repeating: 0, count: 12)
        _ = try source.withUnsafeBytes { input in
            try output.withUnsafeMutableBytes {
                try DecodedSamples.fromNative(input, description: description, bigEndian: false, into: $0)
            }
        }
        #expect(output == [10, 100, 200, 11, 100, 200, 20, 101, 201, 21, 101, 201])

        // 16-bit big-endian samples take the same path.
        let wide = PixelDescription(
            rows: 1, columns: 2, samplesPerPixel: 3, bitsAllocated: 16, photometricInterpretation: "YBR_PARTIAL_422")
        let values: [UInt16] = [0x0102, 0x0304, 0x0506, 0x0708]
        var decoded = [UInt8](repeating: 0, count: 12)
        _ = try values.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }.withUnsafeBytes { input in
            try decoded.withUnsafeMutableBytes {
                try DecodedSamples.fromNative(input, description: wide, bigEndian: true, into: $0)
            }
        }
        #expect(decoded == [2, 1, 6, 5, 8, 7, 4, 3, 6, 5, 8, 7])

        var odd = description
        odd.columns = 3
        #expect(odd.unencodableReason == "YBR_FULL_422 with an odd number of Columns")
        // Too short for its 4:2:2 size.
        #expect(throws: PixelError.self) {
            try [UInt8](repeating: 0, count: 7).withUnsafeBytes { input in
                try output.withUnsafeMutableBytes {
                    try DecodedSamples.fromNative(input, description: description, bigEndian: false, into: $0)
                }
            }
        }
    }

    @Test func eightBitsStoredInSixteenAllocatedNarrowToOneByte() throws {
        let description = PixelDescription(rows: 1, columns: 3, bitsAllocated: 16, bitsStored: 8)
        let source: [UInt8] = [0x12, 0xAB, 0xFF, 0x00, 0x00, 0x01]
        var output = [UInt8](repeating: 0, count: 3)
        _ = try source.withUnsafeBytes { input in
            try output.withUnsafeMutableBytes {
                try DecodedSamples.fromNative(input, description: description, bigEndian: false, into: $0)
            }
        }
        #expect(output == [0x12, 0xFF, 0x00])
    }
}

@Suite struct RLEDecoderTests {
    @Test func decodesTwoByteSamplesFromTheirByteSegments() throws {
        // 4 pixels of 16 bits: high bytes 0x01 ×4 (replicate run), low bytes 10 20 30 40 (literal run).
        let description = PixelDescription(rows: 2, columns: 2, bitsAllocated: 16)
        var frame = [UInt8](repeating: 0, count: 64)
        frame[0] = 2
        frame[4] = 64
        frame[8] = 66
        frame += [0xFD, 0x01]  // −3: repeat 0x01 four times
        frame += [0x03, 10, 20, 30, 40]  // 3: four literal bytes
        var output = [UInt8](repeating: 0, count: 8)
        _ = try frame.withUnsafeBytes { input in
            try output.withUnsafeMutableBytes { try RLEDecoder.decode(input, description: description, into: $0) }
        }
        #expect(output == [10, 1, 20, 1, 30, 1, 40, 1])
    }

    @Test func segmentOffsetsOutsideTheFrameAreADecodeError() {
        let description = PixelDescription(rows: 1, columns: 4, bitsAllocated: 8)
        var frame = [UInt8](repeating: 0, count: 64)
        frame[0] = 1
        frame[4] = 200
        var output = [UInt8](repeating: 0, count: 4)
        #expect(throws: PixelError.self) {
            try frame.withUnsafeBytes { input in
                try output.withUnsafeMutableBytes { try RLEDecoder.decode(input, description: description, into: $0) }
            }
        }
    }
}
