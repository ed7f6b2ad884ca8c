/// A transfer syntax: how a data set after the file meta group is encoded (PS3.5 §10, Annex A).
public struct TransferSyntax: Hashable, Sendable, CustomStringConvertible {
    public enum PixelEncoding: Hashable, Sendable {
        /// Pixel Data is a plain value (PS3.5 §A.1–A.3).
        case native
        /// Pixel Data is a sequence of fragments in items (PS3.5 §A.4).
        case encapsulated
    }

    public var uid: String
    public var name: String
    public var isExplicitVR: Bool
    public var isBigEndian: Bool
    /// The data set after the file meta group is a raw deflate stream (PS3.5 §A.5).
    public var isDeflated: Bool
    public var pixelEncoding: PixelEncoding

    public init(
        uid: String,
        name: String,
        isExplicitVR: Bool,
        isBigEndian: Bool,
        isDeflated: Bool,
        pixelEncoding: PixelEncoding
    ) {
        self.uid = uid
        self.name = name
        self.isExplicitVR = isExplicitVR
        self.isBigEndian = isBigEndian
        self.isDeflated = isDeflated
        self.pixelEncoding = pixelEncoding
    }

    public var description: String { "\(name) (\(uid))" }

    public static let implicitVRLittleEndian = TransferSyntax(
        uid: "1.2.840.10008.1.2", name: "Implicit VR Little Endian",
        isExplicitVR: false, isBigEndian: false, isDeflated: false, pixelEncoding: .native)
    public static let explicitVRLittleEndian = TransferSyntax(
        uid: "1.2.840.10008.1.2.1", name: "Explicit VR Little Endian",
        isExplicitVR: true, isBigEndian: false, isDeflated: false, pixelEncoding: .native)
    public static let deflatedExplicitVRLittleEndian = TransferSyntax(
        uid: "1.2.840.10008.1.2.1.99", name: "Deflated Explicit VR Little Endian",
        isExplicitVR: true, isBigEndian: false, isDeflated: true, pixelEncoding: .native)
    public static let explicitVRBigEndian = TransferSyntax(
        uid: "1.2.840.10008.1.2.2", name: "Explicit VR Big Endian",
        isExplicitVR: true, isBigEndian: true, isDeflated: false, pixelEncoding: .native)

    /// An encapsulated (compressed) syntax: explicit VR little endian with fragment-encoded pixel data.
    public static func encapsulated(_ uid: String, _ name: String) -> TransferSyntax {
        TransferSyntax(
            uid: uid, name: name, isExplicitVR: true, isBigEndian: false, isDeflated: false,
            pixelEncoding: .encapsulated)
    }

    /// Every transfer syntax defined in PS3.6 Table A-1 that a P10 file may carry.
    public static let known: [TransferSyntax] = [
        .implicitVRLittleEndian, .explicitVRLittleEndian, .deflatedExplicitVRLittleEndian, .explicitVRBigEndian,
        .encapsulated("1.2.840.10008.1.2.4.50", "JPEG Baseline (Process 1)"),
        .encapsulated("1.2.840.10008.1.2.4.51", "JPEG Extended (Process 2 & 4)"),
        .encapsulated("1.2.840.10008.1.2.4.53", "JPEG Spectral Selection, Non-Hierarchical (Process 6 & 8)"),
        .encapsulated("1.2.840.10008.1.2.4.55", "JPEG Full Progression, Non-Hierarchical (Process 10 & 12)"),
        .encapsulated("1.2.840.10008.1.2.4.57", "JPEG Lossless, Non-Hierarchical (Process 14)"),
        .encapsulated("1.2.840.10008.1.2.4.70", "JPEG Lossless, SV1"),
        .encapsulated("1.2.840.10008.1.2.4.80", "JPEG-LS Lossless"),
        .encapsulated("1.2.840.10008.1.2.4.81", "JPEG-LS Near-Lossless"),
        .encapsulated("1.2.840.10008.1.2.4.90", "JPEG 2000 Lossless"),
        .encapsulated("1.2.840.10008.1.2.4.91", "JPEG 2000"),
        .encapsulated("1.2.840.10008.1.2.4.92", "JPEG 2000 Part 2 Multi-component Lossless"),
        .encapsulated("1.2.840.10008.1.2.4.93", "JPEG 2000 Part 2 Multi-component"),
        .encapsulated("1.2.840.10008.1.2.4.94", "JPIP Referenced"),
        .encapsulated("1.2.840.10008.1.2.4.100", "MPEG2 Main Profile / Main Level"),
        .encapsulated("1.2.840.10008.1.2.4.100.1", "Fragmentable MPEG2 Main Profile / Main Level"),
        .encapsulated("1.2.840.10008.1.2.4.101", "MPEG2 Main Profile / High Level"),
        .encapsulated("1.2.840.10008.1.2.4.101.1", "Fragmentable MPEG2 Main Profile / High Level"),
        .encapsulated("1.2.840.10008.1.2.4.102", "MPEG-4 AVC/H.264 High Profile / Level 4.1"),
        .encapsulated("1.2.840.10008.1.2.4.102.1", "Fragmentable MPEG-4 AVC/H.264 High Profile / Level 4.1"),
        .encapsulated("1.2.840.10008.1.2.4.103", "MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1"),
        .encapsulated("1.2.840.10008.1.2.4.103.1", "Fragmentable MPEG-4 AVC/H.264 BD-compatible High Profile"),
        .encapsulated("1.2.840.10008.1.2.4.104", "MPEG-4 AVC/H.264 High Profile For 2D Video"),
        .encapsulated("1.2.840.10008.1.2.4.104.1", "Fragmentable MPEG-4 AVC/H.264 High Profile For 2D Video"),
        .encapsulated("1.2.840.10008.1.2.4.105", "MPEG-4 AVC/H.264 High Profile For 3D Video"),
        .encapsulated("1.2.840.10008.1.2.4.105.1", "Fragmentable MPEG-4 AVC/H.264 High Profile For 3D Video"),
        .encapsulated("1.2.840.10008.1.2.4.106", "MPEG-4 AVC/H.264 Stereo High Profile"),
        .encapsulated("1.2.840.10008.1.2.4.106.1", "Fragmentable MPEG-4 AVC/H.264 Stereo High Profile"),
        .encapsulated("1.2.840.10008.1.2.4.107", "HEVC/H.265 Main Profile / Level 5.1"),
        .encapsulated("1.2.840.10008.1.2.4.108", "HEVC/H.265 Main 10 Profile / Level 5.1"),
        .encapsulated("1.2.840.10008.1.2.4.110", "JPEG XL Lossless"),
        .encapsulated("1.2.840.10008.1.2.4.111", "JPEG XL JPEG Recompression"),
        .encapsulated("1.2.840.10008.1.2.4.112", "JPEG XL"),
        .encapsulated("1.2.840.10008.1.2.4.201", "High-Throughput JPEG 2000 Lossless"),
        .encapsulated("1.2.840.10008.1.2.4.202", "High-Throughput JPEG 2000 with RPCL Options Lossless"),
        .encapsulated("1.2.840.10008.1.2.4.203", "High-Throughput JPEG 2000"),
        .encapsulated("1.2.840.10008.1.2.5", "RLE Lossless"),
    ]

    private static let byUID: [String: TransferSyntax] = Dictionary(
        uniqueKeysWithValues: known.map { ($0.uid, $0) })

    /// Looks a UID up in the table of known transfer syntaxes.
    public static func lookup(uid: String) -> TransferSyntax? {
        byUID[uid]
    }

    /// RLE Lossless puts each frame in exactly one fragment (PS3.5 §A.4.2).
    public var isRLE: Bool { uid == "1.2.840.10008.1.2.5" }
}
