/// How a transfer syntax encodes frames, and whether HealthImaging stores them as they are (spec §5.3).
public enum PixelEncoding: Hashable, Sendable {
    /// Uncompressed samples (Implicit/Explicit VR Little Endian, Deflated, Explicit VR Big Endian).
    case native(bigEndian: Bool)
    case rle
    /// JPEG baseline, extended and lossless (PS3.5 §A.4.1–A.4.3).
    case jpeg
    case jpegLS
    case jpeg2000
    case htj2k
    /// MPEG-2, H.264, HEVC, JPEG XL and syntaxes we do not know: frames are kept, never decoded.
    case opaque

    public init(transferSyntaxUID uid: String) {
        switch uid {
        case "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.1.99": self = .native(bigEndian: false)
        case "1.2.840.10008.1.2.2": self = .native(bigEndian: true)
        case "1.2.840.10008.1.2.5": self = .rle
        case "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70":
            self = .jpeg
        case "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81": self = .jpegLS
        case "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.92", "1.2.840.10008.1.2.4.93":
            self = .jpeg2000
        case "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203": self = .htj2k
        default: self = .opaque
        }
    }
}

/// What the pixel stage does with the frames of one transfer syntax (spec §5.3).
public enum StoragePlan: Hashable, Sendable {
    /// Decode, store losslessly in the data store's format, verify.
    case transcode
    /// Store the frames as they arrived (lossy or video syntaxes); decode them only to checksum them.
    case keep

    /// HealthImaging keeps JPEG baseline (.50), JPEG 2000 lossy (.91), HTJ2K lossy (.203), the video syntaxes and
    /// JPEG XL; everything it can decode losslessly (JPEG extended .51 included) is transcoded.
    public init(transferSyntaxUID uid: String) {
        switch uid {
        case "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.203": self = .keep
        default: self = PixelEncoding(transferSyntaxUID: uid) == .opaque ? .keep : .transcode
        }
    }
}

/// The codecs lossless frames can be stored with (a data store's `losslessStorageFormat`, spec §5.3).
public enum LosslessCodec: Hashable, Sendable, CaseIterable {
    /// HTJ2K Lossless RPCL, the default.
    case htj2k
    /// JPEG 2000 lossless, through OpenJPEG.
    case jpeg2000

    /// The transfer syntax stored frames are in.
    public var transferSyntaxUID: String {
        switch self {
        case .htj2k: return "1.2.840.10008.1.2.4.202"
        case .jpeg2000: return "1.2.840.10008.1.2.4.90"
        }
    }
}
