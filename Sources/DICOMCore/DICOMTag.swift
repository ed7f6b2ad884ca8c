/// A DICOM attribute tag: a (group, element) pair (PS3.5 §7.1).
///
/// Stored as one `UInt32` (`group << 16 | element`) so that tags compare in the order the standard
/// requires data elements to appear in a data set (PS3.5 §7.1: ascending tag order).
public struct DICOMTag: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32

    @inlinable
    public init(rawValue: UInt32) {
        self.rawValue = rawValue
    }

    @inlinable
    public init(group: UInt16, element: UInt16) {
        self.rawValue = UInt32(group) << 16 | UInt32(element)
    }

    @inlinable
    public var group: UInt16 { UInt16(truncatingIfNeeded: rawValue >> 16) }

    @inlinable
    public var element: UInt16 { UInt16(truncatingIfNeeded: rawValue) }

    /// Private data elements live in odd groups (PS3.5 §7.8).
    @inlinable
    public var isPrivate: Bool { group & 1 == 1 }

    /// Private Creator elements reserve a block: (gggg,0010)–(gggg,00FF) in an odd group (PS3.5 §7.8.1).
    @inlinable
    public var isPrivateCreator: Bool { isPrivate && element >= 0x0010 && element <= 0x00FF }

    /// Group Length elements (gggg,0000) (PS3.5 §7.2).
    @inlinable
    public var isGroupLength: Bool { element == 0 }

    /// The eight upper-case hex digits `GGGGEEEE` used as a key in the HealthImaging metadata document.
    public var hexKey: String {
        let digits: [UInt8] = Array("0123456789ABCDEF".utf8)
        var bytes = [UInt8](repeating: 0, count: 8)
        var value = rawValue
        for index in stride(from: 7, through: 0, by: -1) {
            bytes[index] = digits[Int(value & 0xF)]
            value >>= 4
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `(GGGG,EEEE)`, as DCMTK and the standard print tags.
    public var description: String {
        let key = hexKey
        return "(\(key.prefix(4)),\(key.suffix(4)))"
    }

    @inlinable
    public static func < (lhs: DICOMTag, rhs: DICOMTag) -> Bool { lhs.rawValue < rhs.rawValue }

    /// Parses `GGGGEEEE` (8 hex digits).
    public init?(hexKey: some StringProtocol) {
        guard hexKey.utf8.count == 8, let value = UInt32(hexKey, radix: 16) else { return nil }
        self.rawValue = value
    }
}

// MARK: - Well-known tags used by the engine

extension DICOMTag {
    public static let fileMetaInformationGroupLength = DICOMTag(group: 0x0002, element: 0x0000)
    public static let fileMetaInformationVersion = DICOMTag(group: 0x0002, element: 0x0001)
    public static let mediaStorageSOPClassUID = DICOMTag(group: 0x0002, element: 0x0002)
    public static let mediaStorageSOPInstanceUID = DICOMTag(group: 0x0002, element: 0x0003)
    public static let transferSyntaxUID = DICOMTag(group: 0x0002, element: 0x0010)
    public static let implementationClassUID = DICOMTag(group: 0x0002, element: 0x0012)

    public static let specificCharacterSet = DICOMTag(group: 0x0008, element: 0x0005)
    public static let imageType = DICOMTag(group: 0x0008, element: 0x0008)
    public static let sopClassUID = DICOMTag(group: 0x0008, element: 0x0016)
    public static let sopInstanceUID = DICOMTag(group: 0x0008, element: 0x0018)
    public static let studyDate = DICOMTag(group: 0x0008, element: 0x0020)
    public static let studyTime = DICOMTag(group: 0x0008, element: 0x0030)
    public static let accessionNumber = DICOMTag(group: 0x0008, element: 0x0050)
    public static let modality = DICOMTag(group: 0x0008, element: 0x0060)
    public static let studyDescription = DICOMTag(group: 0x0008, element: 0x1030)
    public static let seriesDescription = DICOMTag(group: 0x0008, element: 0x103E)

    public static let patientName = DICOMTag(group: 0x0010, element: 0x0010)
    public static let patientID = DICOMTag(group: 0x0010, element: 0x0020)
    public static let patientBirthDate = DICOMTag(group: 0x0010, element: 0x0030)
    public static let patientSex = DICOMTag(group: 0x0010, element: 0x0040)

    public static let studyInstanceUID = DICOMTag(group: 0x0020, element: 0x000D)
    public static let seriesInstanceUID = DICOMTag(group: 0x0020, element: 0x000E)
    public static let studyID = DICOMTag(group: 0x0020, element: 0x0010)
    public static let seriesNumber = DICOMTag(group: 0x0020, element: 0x0011)
    public static let instanceNumber = DICOMTag(group: 0x0020, element: 0x0013)

    public static let samplesPerPixel = DICOMTag(group: 0x0028, element: 0x0002)
    public static let photometricInterpretation = DICOMTag(group: 0x0028, element: 0x0004)
    public static let planarConfiguration = DICOMTag(group: 0x0028, element: 0x0006)
    public static let numberOfFrames = DICOMTag(group: 0x0028, element: 0x0008)
    public static let rows = DICOMTag(group: 0x0028, element: 0x0010)
    public static let columns = DICOMTag(group: 0x0028, element: 0x0011)
    public static let bitsAllocated = DICOMTag(group: 0x0028, element: 0x0100)
    public static let bitsStored = DICOMTag(group: 0x0028, element: 0x0101)
    public static let highBit = DICOMTag(group: 0x0028, element: 0x0102)
    public static let pixelRepresentation = DICOMTag(group: 0x0028, element: 0x0103)

    public static let floatPixelData = DICOMTag(group: 0x7FE0, element: 0x0008)
    public static let doubleFloatPixelData = DICOMTag(group: 0x7FE0, element: 0x0009)
    public static let extendedOffsetTable = DICOMTag(group: 0x7FE0, element: 0x0001)
    public static let extendedOffsetTableLengths = DICOMTag(group: 0x7FE0, element: 0x0002)
    public static let pixelData = DICOMTag(group: 0x7FE0, element: 0x0010)

    /// Item, Item Delimitation Item and Sequence Delimitation Item (PS3.5 §7.5).
    public static let item = DICOMTag(group: 0xFFFE, element: 0xE000)
    public static let itemDelimitationItem = DICOMTag(group: 0xFFFE, element: 0xE00D)
    public static let sequenceDelimitationItem = DICOMTag(group: 0xFFFE, element: 0xE0DD)

    /// Pixel Data, Float Pixel Data and Double Float Pixel Data: the bulk image elements a header scan stops at.
    @inlinable
    public var isPixelData: Bool {
        rawValue == 0x7FE0_0010 || rawValue == 0x7FE0_0008 || rawValue == 0x7FE0_0009
    }
}
