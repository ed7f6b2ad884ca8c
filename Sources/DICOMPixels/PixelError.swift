/// Why a frame could not be decoded, encoded or verified.
public struct PixelError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Kind: Hashable, Sendable {
        /// The frame's bytes do not decode as its transfer syntax says (a corrupt or truncated frame).
        case decode
        /// The codec refused to encode, or the stored codestream does not decode to the source pixels.
        case encode
        case verification
        /// The frame is valid but cannot be transcoded losslessly (bit depth, float pixels, size limit).
        case unsupported
        /// A codec helper process could not be started or reached (the engine's fault, not the frame's).
        case helper
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}

extension Array where Element == UInt8 {
    /// `withUnsafeBytes` for bodies that throw `PixelError` (the standard one is untyped `rethrows`).
    func withPixelBytes<R>(_ body: (UnsafeRawBufferPointer) throws(PixelError) -> R) throws(PixelError) -> R {
        let result: Result<R, PixelError> = withUnsafeBytes { bytes in
            do throws(PixelError) { return .success(try body(bytes)) } catch { return .failure(error) }
        }
        return try result.get()
    }
}
