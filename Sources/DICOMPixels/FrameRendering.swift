import CZlib

/// Turns a stored frame into something a person can look at: an 8-bit PNG after the modality LUT (rescale
/// slope and intercept) and the first VOI window (PS3.3 C.11.2), else a min/max stretch.
public enum FrameRendering {
    public struct Window: Hashable, Sendable {
        public var center: Double
        public var width: Double

        public init(center: Double, width: Double) {
            self.center = center
            self.width = width
        }
    }

    /// A decoded frame (`description`'s decoded layout), possibly at a reduced resolution.
    public struct Decoded {
        public var samples: [UInt8]
        public var width: Int
        public var height: Int
    }

    /// Decodes a stored frame whatever it is stored as, dropping `skipResolutions` resolutions (HTJ2K and
    /// JPEG 2000 only).
    /// `scratch`: buffers of the caller's to decode into (reused from call to call on one thread); new ones when nil.
    /// `fromOutside`: whether the codestream may be crafted (`FrameProcessor.decodeStored`); false only for bytes
    /// known to be ones that decoded safely before.
    public static func decodeStored(
        _ bytes: [UInt8], transferSyntaxUID: String, description: PixelDescription, skipResolutions: Int = 0,
        scratch given: PixelScratch? = nil, fromOutside: Bool = true
    ) throws(PixelError) -> Decoded {
        let scratch = given ?? PixelScratch()
        defer { scratch.trim() }
        let encoding = PixelEncoding(transferSyntaxUID: transferSyntaxUID)
        let samples: [UInt8]
        switch encoding {
        case .htj2k, .jpeg2000:
            samples = try bytes.withPixelBytes { (stored) throws(PixelError) -> [UInt8] in
                Array(try FrameProcessor.decodeStored(
                    stored, transferSyntaxUID: transferSyntaxUID, description: description,
                    skipResolutions: skipResolutions, scratch: scratch, fromOutside: fromOutside))
            }
        default:
            guard skipResolutions == 0 else {
                throw PixelError(.unsupported, "frames stored as \(transferSyntaxUID) have no lower resolutions")
            }
            samples = try bytes.withPixelBytes { (stored) throws(PixelError) -> [UInt8] in
                Array(try FrameProcessor().decode(stored, encoding: encoding, description: description, scratch: scratch).samples)
            }
        }
        // The samples were copied out of `scratch`'s buffers: it must live until here.
        withExtendedLifetime(scratch) {}
        let width = (description.columns + (1 << skipResolutions) - 1) >> skipResolutions
        let height = (description.rows + (1 << skipResolutions) - 1) >> skipResolutions
        return Decoded(samples: samples, width: width, height: height)
    }

    /// An 8-bit greyscale or RGB PNG of a decoded frame.
    public static func png(
        _ frame: Decoded, description: PixelDescription, rescaleSlope: Double = 1, rescaleIntercept: Double = 0,
        window: Window? = nil
    ) -> [UInt8] {
        let components = description.samplesPerPixel == 3 ? 3 : 1
        let count = frame.width * frame.height * components
        let width = description.decodedBytesPerSample
        var values = [Double](repeating: 0, count: count)
        for index in 0..<min(count, frame.samples.count / width) {
            var raw: Int
            if width == 1 {
                raw = description.isSigned ? Int(Int8(bitPattern: frame.samples[index])) : Int(frame.samples[index])
            } else {
                let bits = UInt16(frame.samples[2 * index]) | UInt16(frame.samples[2 * index + 1]) << 8
                raw = description.isSigned ? Int(Int16(bitPattern: bits)) : Int(bits)
            }
            values[index] = components == 1 ? Double(raw) * rescaleSlope + rescaleIntercept : Double(raw)
        }
        let low: Double
        let high: Double
        if components == 1, let window, window.width >= 1 {
            // PS3.3 C.11.2.1.2.1: linear between c − 0.5 − (w − 1)/2 and c − 0.5 + (w − 1)/2.
            low = window.center - 0.5 - (window.width - 1) / 2
            high = window.center - 0.5 + (window.width - 1) / 2
        } else if components == 1 {
            low = values.min() ?? 0
            high = values.max() ?? 0
        } else {
            low = 0
            high = Double((1 << min(description.bitsStored, 16)) - 1)
        }
        let invert = description.photometricInterpretation == "MONOCHROME1"
        var rows: [UInt8] = []
        rows.reserveCapacity(frame.height * (frame.width * components + 1))
        for y in 0..<frame.height {
            rows.append(0)  // filter type None
            for x in 0..<(frame.width * components) {
                let value = values[y * frame.width * components + x]
                var scaled = high > low ? (value - low) / (high - low) * 255 : (value > low ? 255 : 0)
                scaled = min(max(scaled.rounded(), 0), 255)
                rows.append(UInt8(invert ? 255 - scaled : scaled))
            }
        }
        var output: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        var header: [UInt8] = []
        appendBigEndian(UInt32(frame.width), to: &header)
        appendBigEndian(UInt32(frame.height), to: &header)
        header += [8, components == 3 ? 2 : 0, 0, 0, 0]
        appendChunk("IHDR", header, to: &output)
        appendChunk("IDAT", deflate(rows), to: &output)
        appendChunk("IEND", [], to: &output)
        return output
    }

    private static func deflate(_ bytes: [UInt8]) -> [UInt8] {
        var length = compressBound(UInt(bytes.count))
        var output = [UInt8](repeating: 0, count: Int(length))
        let status = output.withUnsafeMutableBufferPointer { target in
            bytes.withUnsafeBufferPointer { source in
                compress2(target.baseAddress, &length, source.baseAddress, UInt(bytes.count), 6)
            }
        }
        precondition(status == Z_OK, "zlib compress2 cannot fail with a compressBound buffer")
        return Array(output.prefix(Int(length)))
    }

    private static func appendChunk(_ type: String, _ data: [UInt8], to output: inout [UInt8]) {
        appendBigEndian(UInt32(data.count), to: &output)
        let body = Array(type.utf8) + data
        output += body
        appendBigEndian(body.withUnsafeBytes { FrameStatistics.crc32($0) }, to: &output)
    }

    private static func appendBigEndian(_ value: UInt32, to output: inout [UInt8]) {
        output += [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)]
    }
}
