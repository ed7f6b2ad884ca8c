public import DICOMCore

/// The header of one data element: where it is and how long its value is (PS3.5 §7.1).
public struct DataElementHeader: Hashable, Sendable {
    /// The Value Length that marks an undefined length (PS3.5 §7.1.1).
    public static let undefinedLength: UInt32 = 0xFFFF_FFFF

    public var tag: DICOMTag
    /// The VR from the file (explicit VR) or from the dictionary (implicit VR).
    public var vr: VR
    public var length: UInt32
    /// Offset of the first byte of the header.
    public var offset: Int
    /// Offset of the first byte of the value.
    public var valueOffset: Int

    public init(tag: DICOMTag, vr: VR, length: UInt32, offset: Int, valueOffset: Int) {
        self.tag = tag
        self.vr = vr
        self.length = length
        self.offset = offset
        self.valueOffset = valueOffset
    }

    @inlinable
    public var hasUndefinedLength: Bool { length == Self.undefinedLength }
}

/// One step of the token stream a `P10Scanner` yields, modelled on dicom-rs `DataToken`.
///
/// Tokens carry positions, never values: a consumer asks the scanner for the bytes of the values it needs.
public enum P10Token: Hashable, Sendable {
    /// A primitive data element with a defined length; its value is `header.length` bytes at
    /// `header.valueOffset`.
    case element(DataElementHeader)
    /// A sequence (VR SQ, or UN of undefined length read as an implicit VR LE sequence per CP-246).
    case sequenceStart(DataElementHeader)
    /// An item of a sequence; `length` may be `DataElementHeader.undefinedLength`.
    case itemStart(offset: Int, length: UInt32)
    case itemEnd
    case sequenceEnd
    /// Pixel Data of undefined length: a sequence of fragments (PS3.5 §A.4).
    case encapsulatedPixelDataStart(DataElementHeader)
    /// One fragment; the first one after `encapsulatedPixelDataStart` is the Basic Offset Table.
    case fragment(valueOffset: Int, length: Int)
    case encapsulatedPixelDataEnd
}

/// What the scanner learned from the preamble and the file meta group (PS3.10 §7.1).
public struct FileMetaSummary: Hashable, Sendable {
    /// The 128-byte preamble and `DICM` prefix were present.
    public var hasPreamble = false
    /// A group 0002 file meta information was present.
    public var hasFileMeta = false
    /// The value of File Meta Information Group Length (0002,0000), if present.
    public var groupLength: UInt32?
    /// Transfer Syntax UID (0002,0010) as written in the file.
    public var transferSyntaxUID: String?
    /// Where the data set proper begins.
    public var datasetOffset = 0

    public init() {}
}
