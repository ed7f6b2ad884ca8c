/// The pixel stage for one frame: decode what arrived into the decoded layout (`PixelDescription`), checksum it,
/// encode it losslessly in the data store's format and prove the stored codestream by decoding it again.
public struct FrameProcessor: Sendable {
    public let format: LosslessCodec

    public init(format: LosslessCodec = .htj2k) {
        self.format = format
    }

    /// A frame decoded into the worker's scratch, with its checksum and min/max (valid until the next decode).
    public struct DecodedFrame {
        public var samples: UnsafeRawBufferPointer
        public var statistics: FrameStatistics
    }

    /// Decodes one frame (`encoded`: the uncompressed frame or all fragments of an encapsulated one).
    public func decode(
        _ encoded: UnsafeRawBufferPointer, encoding: PixelEncoding, description: PixelDescription,
        scratch: PixelScratch
    ) throws(PixelError) -> DecodedFrame {
        guard let decodedBytes = description.decodedFrameBytes, let samples = description.samplesPerFrame,
            let bufferBytes = description.decodeBufferBytes, description.bitsStored >= 1, description.bitsStored <= 16
        else { throw PixelError(.unsupported, "frames of this pixel module cannot be decoded here") }
        let output = scratch.decoded.bytes(bufferBytes)
        switch encoding {
        case .native(let bigEndian):
            _ = try DecodedSamples.fromNative(encoded, description: description, bigEndian: bigEndian, into: output)
        case .rle:
            guard let nativeBytes = description.fullFrameBytes, nativeBytes <= PixelLimits.maxDecodeBufferBytes else {
                throw PixelError(.unsupported, "RLE frames over \(PixelLimits.maxDecodeBufferBytes) bytes are not decoded")
            }
            let native = scratch.intermediate.bytes(nativeBytes)
            _ = try RLEDecoder.decode(encoded, description: description, into: native)
            _ = try DecodedSamples.fromNative(
                UnsafeRawBufferPointer(native), description: description, bigEndian: false, fullSamples: true, into: output)
        case .jpeg, .jpegLS, .jpeg2000, .htj2k:
            let (image, _) = try Self.decodeCodestream(encoded, encoding: encoding, description: description, into: output)
            guard image.width == description.columns, image.height == description.rows,
                image.components == description.samplesPerPixel
            else {
                throw PixelError(
                    .decode,
                    "the frame decodes to \(image.width)×\(image.height)×\(image.components), the pixel module says "
                        + "\(description.columns)×\(description.rows)×\(description.samplesPerPixel)")
            }
            DecodedSamples.normalizeInPlace(output, samples: samples, codecWidth: image.bytesPerSample, description: description)
        case .opaque:
            throw PixelError(.unsupported, "frames of this transfer syntax are not decoded")
        }
        let decoded = UnsafeRawBufferPointer(rebasing: output[0..<decodedBytes])
        var statistics = FrameStatistics(format: description.decodedSampleFormat)
        statistics.add(decoded)
        return DecodedFrame(samples: decoded, statistics: statistics)
    }

    /// Encodes a decoded frame in the data store's lossless format, then decodes the result and compares its CRC-32
    /// with `frame`'s: a frame that does not come back bit-exact is never stored.
    public func encodeVerified(
        _ frame: DecodedFrame, description: PixelDescription, scratch: PixelScratch
    ) throws(PixelError) -> [UInt8] {
        if let reason = description.unencodableReason { throw PixelError(.unsupported, reason) }
        let image = Codecs.Image(
            width: description.columns, height: description.rows, components: description.samplesPerPixel,
            bitsStored: description.bitsStored, isSigned: description.isSigned)
        let colorTransform = description.samplesPerPixel == 3
        let codestream: [UInt8]
        switch format {
        case .htj2k:
            let single = try Codecs.encodeHTJ2K(
                frame.samples, image: image, decompositions: description.decompositions, colorTransform: colorTransform)
            codestream = try single.withPixelBytes { (bytes) throws(PixelError) -> [UInt8] in
                let ends = try Codecs.htj2kResolutionEnds(bytes)
                return try HTJ2KCodestream.splittingAtResolutions(bytes, resolutionEnds: ends)
            }
        case .jpeg2000:
            codestream = try Codecs.encodeJPEG2000Lossless(
                frame.samples, image: image, decompositions: description.decompositions, colorTransform: colorTransform)
        }
        try verify(codestream, transferSyntaxUID: format.transferSyntaxUID, description: description,
                   checksum: frame.statistics.crc, scratch: scratch)
        return codestream
    }

    /// Decodes a stored codestream and checks that its CRC-32 is `checksum`.
    public func verify(
        _ codestream: [UInt8], transferSyntaxUID: String, description: PixelDescription, checksum: UInt32,
        scratch: PixelScratch
    ) throws(PixelError) {
        let decoded = try codestream.withPixelBytes { (bytes) throws(PixelError) -> UInt32 in
            // The codestream our encoder has just written is not outside input: no OpenJPEG gate (it would double
            // the verification's cost on every frame).
            let stored = try Self.decodeStored(
                bytes, transferSyntaxUID: transferSyntaxUID, description: description, scratch: scratch, fromOutside: false)
            return FrameStatistics.crc32(stored)
        }
        guard decoded == checksum else {
            throw PixelError(
                .verification,
                "the stored frame decodes to CRC-32 \(decoded), the source frame's is \(checksum)")
        }
    }

    /// Decodes a frame stored as HTJ2K or JPEG 2000 into `scratch` (the decoder's own output, as a client gets it),
    /// dropping `skipResolutions` resolutions. The result points into `scratch`: valid while `scratch` lives and
    /// until its next decode.
    /// - Parameter fromOutside: whether the codestream may be crafted (a frame kept as it arrived, or read back from
    ///   storage): such codestreams are decoded in a codec helper process, HTJ2K after OpenJPEG's checks.
    public static func decodeStored(
        _ codestream: UnsafeRawBufferPointer, transferSyntaxUID: String, description: PixelDescription,
        skipResolutions: Int = 0, scratch: PixelScratch, fromOutside: Bool = true
    ) throws(PixelError) -> UnsafeRawBufferPointer {
        guard let bufferBytes = description.decodeBufferBytes else {
            throw PixelError(.unsupported, "the frame needs more than \(PixelLimits.maxDecodeBufferBytes) bytes to decode")
        }
        let output = scratch.verify.bytes(bufferBytes)
        let encoding = PixelEncoding(transferSyntaxUID: transferSyntaxUID)
        let (image, written): (Codecs.Image, Int)
        switch encoding {
        case .htj2k where fromOutside:
            (image, written) = try CodecHelperPool.shared.decode(.htj2k, codestream, skipResolutions: skipResolutions, into: output)
        case .htj2k: (image, written) = try Codecs.decodeHTJ2K(codestream, skipResolutions: skipResolutions, into: output)
        case .jpeg2000 where fromOutside:
            (image, written) = try CodecHelperPool.shared.decode(.jpeg2000, codestream, skipResolutions: skipResolutions, into: output)
        case .jpeg2000: (image, written) = try Codecs.decodeJPEG2000(codestream, skipResolutions: skipResolutions, into: output)
        default: throw PixelError(.unsupported, "stored frames of \(transferSyntaxUID) are not decoded here")
        }
        if skipResolutions == 0 {
            guard image.width == description.columns, image.height == description.rows,
                image.components == description.samplesPerPixel
            else { throw PixelError(.verification, "the stored frame decodes to \(image.width)×\(image.height)") }
        }
        return UnsafeRawBufferPointer(rebasing: output[0..<written])
    }

    /// Codestreams from outside are decoded in a codec helper process (`CodecHelperPool`).
    private static func decodeCodestream(
        _ encoded: UnsafeRawBufferPointer, encoding: PixelEncoding, description: PixelDescription,
        into output: UnsafeMutableRawBufferPointer
    ) throws(PixelError) -> (Codecs.Image, Int) {
        let operation: CodecHelperPool.Operation
        switch encoding {
        case .jpeg: operation = description.photometricInterpretation.hasPrefix("YBR") ? .jpegYBR : .jpeg
        case .jpegLS: operation = .jpegLS
        case .jpeg2000: operation = .jpeg2000
        case .htj2k: operation = .htj2k
        default: throw PixelError(.unsupported, "frames of this transfer syntax are not decoded as codestreams")
        }
        return try CodecHelperPool.shared.decode(operation, encoded, into: output)
    }
}

extension PixelDescription {
    /// The sample format of the decoded layout, for `FrameStatistics`.
    public var decodedSampleFormat: SampleFormat {
        SampleFormat(bitsAllocated: decodedBytesPerSample * 8, signed: isSigned, bigEndian: false)
    }
}
