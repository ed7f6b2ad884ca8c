import CCodecs
import DICOMToolkit

/// The Swift face of the codec shim (`CCodecs`) and DCMTK's JPEG decoders: every call into them goes through
/// here. Decoders write the codestream's own sample width (one byte up to 8 bits of precision, else two, little
/// endian); `FrameDecoder` brings that to the decoded layout.
enum Codecs {
    /// The geometry a codec reports for a frame.
    struct Image: Hashable {
        var width: Int
        var height: Int
        var components: Int
        var bitsStored: Int
        var isSigned: Bool

        var bytesPerSample: Int { bitsStored <= 8 ? 1 : 2 }
    }

    private static let bootstrapped: Void = CCodecs_bootstrap()

    static func bootstrap() { _ = bootstrapped }

    private static func message(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static func cImage(_ image: Image) -> CCodecs_Image {
        CCodecs_Image(
            width: UInt32(image.width), height: UInt32(image.height), components: UInt32(image.components),
            bitsStored: UInt32(image.bitsStored), isSigned: image.isSigned ? 1 : 0)
    }

    private static func image(_ image: CCodecs_Image) -> Image {
        Image(
            width: Int(image.width), height: Int(image.height), components: Int(image.components),
            bitsStored: Int(image.bitsStored), isSigned: image.isSigned != 0)
    }

    private typealias Encoder = (
        UnsafePointer<CCodecs_Image>?, UnsafeRawPointer?, Int, UInt32, Int32, UnsafeMutablePointer<CCodecs_Output>?,
        UnsafeMutablePointer<CChar>?, Int
    ) -> Int32

    private typealias Decoder = (
        UnsafePointer<UInt8>?, Int, UInt32, UnsafeMutablePointer<CCodecs_Image>?, UnsafeMutableRawPointer?, Int,
        UnsafeMutablePointer<Int>?, UnsafeMutablePointer<CChar>?, Int
    ) -> Int32

    private static func encode(
        _ encoder: Encoder, _ name: String, samples: UnsafeRawBufferPointer, image: Image, decompositions: Int,
        colorTransform: Bool
    ) throws(PixelError) -> [UInt8] {
        bootstrap()
        var description = cImage(image)
        var output = CCodecs_Output(data: nil, length: 0)
        var error = [CChar](repeating: 0, count: 512)
        let status = encoder(
            &description, samples.baseAddress, samples.count, UInt32(decompositions), colorTransform ? 1 : 0, &output,
            &error, error.count)
        defer { CCodecs_free(&output) }
        guard status == 0, let data = output.data else { throw PixelError(.encode, "\(name): \(message(error))") }
        return Array(UnsafeBufferPointer(start: data, count: output.length))
    }

    private static func decode(
        _ decoder: Decoder, _ name: String, codestream: UnsafeRawBufferPointer, skipResolutions: Int,
        into output: UnsafeMutableRawBufferPointer
    ) throws(PixelError) -> (Image, Int) {
        bootstrap()
        var decoded = CCodecs_Image()
        var written = 0
        var error = [CChar](repeating: 0, count: 512)
        let status = decoder(
            codestream.baseAddress?.assumingMemoryBound(to: UInt8.self), codestream.count, UInt32(skipResolutions),
            &decoded, output.baseAddress, output.count, &written, &error, error.count)
        guard status == 0 else { throw PixelError(.decode, "\(name): \(message(error))") }
        return (image(decoded), written)
    }

    static func encodeHTJ2K(
        _ samples: UnsafeRawBufferPointer, image: Image, decompositions: Int, colorTransform: Bool
    ) throws(PixelError) -> [UInt8] {
        try encode(
            CCodecs_htj2kEncode, "HTJ2K encoder", samples: samples, image: image, decompositions: decompositions,
            colorTransform: colorTransform)
    }

    static func encodeJPEG2000Lossless(
        _ samples: UnsafeRawBufferPointer, image: Image, decompositions: Int, colorTransform: Bool
    ) throws(PixelError) -> [UInt8] {
        try encode(
            CCodecs_j2kEncodeLossless, "JPEG 2000 encoder", samples: samples, image: image,
            decompositions: decompositions, colorTransform: colorTransform)
    }

    static func decodeHTJ2K(
        _ codestream: UnsafeRawBufferPointer, skipResolutions: Int = 0, into output: UnsafeMutableRawBufferPointer
    ) throws(PixelError) -> (Image, Int) {
        try decode(CCodecs_htj2kDecode, "HTJ2K", codestream: codestream, skipResolutions: skipResolutions, into: output)
    }

    /// An HTJ2K codestream from outside, through OpenJPEG: the check before OpenJPH decodes it (see
    /// `FrameProcessor.decodeCodestream`).
    static func decodeIncomingHTJ2K(
        _ codestream: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer
    ) throws(PixelError) -> (Image, Int) {
        try decode(CCodecs_j2kDecode, "HTJ2K", codestream: codestream, skipResolutions: 0, into: output)
    }

    static func decodeJPEG2000(
        _ codestream: UnsafeRawBufferPointer, skipResolutions: Int = 0, into output: UnsafeMutableRawBufferPointer
    ) throws(PixelError) -> (Image, Int) {
        try decode(CCodecs_j2kDecode, "JPEG 2000", codestream: codestream, skipResolutions: skipResolutions, into: output)
    }

    static func decodeJPEGLS(
        _ stream: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer
    ) throws(PixelError) -> (Image, Int) {
        bootstrap()
        var decoded = CCodecs_Image()
        var written = 0
        var error = [CChar](repeating: 0, count: 512)
        let status = CCodecs_jpeglsDecode(
            stream.baseAddress?.assumingMemoryBound(to: UInt8.self), stream.count, &decoded, output.baseAddress,
            output.count, &written, &error, error.count)
        guard status == 0 else { throw PixelError(.decode, "JPEG-LS: \(message(error))") }
        return (image(decoded), written)
    }

    static func decodeJPEG(
        _ stream: UnsafeRawBufferPointer, convertYBR: Bool, into output: UnsafeMutableRawBufferPointer
    ) throws(PixelError) -> (Image, Int) {
        do {
            let (frame, written) = try DCMTK.decodeJPEG(stream, convertYBR: convertYBR, into: output)
            return (
                Image(
                    width: frame.width, height: frame.height, components: frame.components,
                    bitsStored: frame.precision, isSigned: false), written
            )
        } catch {
            throw PixelError(.decode, "JPEG: \(error.text)")
        }
    }

    /// Where each resolution's packets end in a one-tile RPCL HTJ2K codestream, lowest resolution first.
    static func htj2kResolutionEnds(_ codestream: UnsafeRawBufferPointer) throws(PixelError) -> [Int] {
        bootstrap()
        var ends = [UInt64](repeating: 0, count: 34)
        var count = 0
        var error = [CChar](repeating: 0, count: 512)
        let status = CCodecs_htj2kResolutionEnds(
            codestream.baseAddress?.assumingMemoryBound(to: UInt8.self), codestream.count, &ends, ends.count, &count,
            &error, error.count)
        guard status == 0 else { throw PixelError(.encode, "HTJ2K resolution parse: \(message(error))") }
        return ends.prefix(count).map { Int($0) }
    }
}
