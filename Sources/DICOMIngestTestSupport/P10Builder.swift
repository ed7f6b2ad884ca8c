public import DICOMCore

/// Writes DICOM bytes for tests: preamble, file meta, elements in any of the three uncompressed encodings,
/// sequences and items of defined or undefined length, encapsulated pixel data, and deliberately broken
/// variants (the caller can append raw bytes or truncate the result).
public struct P10Builder {
    public enum Encoding: Sendable {
        case explicitLittle, implicitLittle, explicitBig
    }

    public var encoding: Encoding
    public private(set) var body: [UInt8] = []
    private var meta: [UInt8] = []
    private var openDefinedLength: [(lengthOffset: Int, start: Int)] = []

    /// - Parameters:
    ///   - transferSyntaxUID: written as (0002,0010); `nil` writes no file meta group (a raw data set).
    ///   - encoding: how the data set elements are written.
    public init(transferSyntaxUID: String?, encoding: Encoding = .explicitLittle) {
        self.encoding = encoding
        if let transferSyntaxUID {
            var group: [UInt8] = []
            Self.appendExplicitLE(&group, tag: .fileMetaInformationVersion, vr: .OB, value: [0, 1])
            Self.appendExplicitLE(&group, tag: .mediaStorageSOPClassUID, vr: .UI, value: Self.padUID("1.2.840.10008.5.1.4.1.1.2"))
            Self.appendExplicitLE(&group, tag: .mediaStorageSOPInstanceUID, vr: .UI, value: Self.padUID("1.2.3.4.5"))
            Self.appendExplicitLE(&group, tag: .transferSyntaxUID, vr: .UI, value: Self.padUID(transferSyntaxUID))
            var length: [UInt8] = []
            Self.appendExplicitLE(&length, tag: .fileMetaInformationGroupLength, vr: .UL, value: Self.le32(UInt32(group.count)))
            meta = length + group
        }
    }

    /// Preamble + `DICM` + meta + body (or just the body without meta).
    public func build(preamble: Bool = true) -> [UInt8] {
        if meta.isEmpty { return body }
        return (preamble ? [UInt8](repeating: 0, count: 128) + Array("DICM".utf8) : []) + meta + body
    }

    public static func padUID(_ uid: String) -> [UInt8] {
        var bytes = Array(uid.utf8)
        if bytes.count % 2 == 1 { bytes.append(0) }
        return bytes
    }

    public static func padText(_ text: String) -> [UInt8] {
        var bytes = Array(text.utf8)
        if bytes.count % 2 == 1 { bytes.append(0x20) }
        return bytes
    }

    public static func le16(_ value: UInt16) -> [UInt8] { [UInt8(value & 0xFF), UInt8(value >> 8)] }
    public static func le32(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8((value >> (8 * $0)) & 0xFF) } }

    private static func appendExplicitLE(_ out: inout [UInt8], tag: DICOMTag, vr: VR, value: [UInt8]) {
        out += le16(tag.group) + le16(tag.element)
        out += Array(vr.description.utf8)
        if vr.hasLongExplicitLength {
            out += [0, 0] + le32(UInt32(value.count))
        } else {
            out += le16(UInt16(value.count))
        }
        out += value
    }

    private func u16(_ value: UInt16) -> [UInt8] {
        encoding == .explicitBig ? [UInt8(value >> 8), UInt8(value & 0xFF)] : Self.le16(value)
    }

    private func u32(_ value: UInt32) -> [UInt8] {
        encoding == .explicitBig ? Self.le32(value).reversed() : Self.le32(value)
    }

    private mutating func header(_ tag: DICOMTag, vr: VR, length: UInt32) {
        body += u16(tag.group) + u16(tag.element)
        switch encoding {
        case .implicitLittle:
            body += u32(length)
        case .explicitLittle, .explicitBig:
            body += Array(vr.description.utf8)
            if vr.hasLongExplicitLength {
                body += [0, 0] + u32(length)
            } else {
                body += u16(UInt16(truncatingIfNeeded: length))
            }
        }
    }

    /// An element with raw value bytes (already in the builder's byte order).
    public mutating func element(_ tag: DICOMTag, _ vr: VR, bytes: [UInt8]) {
        header(tag, vr: vr, length: UInt32(bytes.count))
        body += bytes
    }

    /// A string element, padded to even length (UI with NUL, others with space).
    public mutating func string(_ tag: DICOMTag, _ vr: VR, _ text: String) {
        element(tag, vr, bytes: vr == .UI ? Self.padUID(text) : Self.padText(text))
    }

    public mutating func uint16(_ tag: DICOMTag, _ value: UInt16) {
        element(tag, .US, bytes: u16(value))
    }

    /// Starts a sequence; `definedLength` patches the length when `endSequence` is called.
    public mutating func beginSequence(_ tag: DICOMTag, vr: VR = .SQ, definedLength: Bool = false) {
        header(tag, vr: vr, length: 0xFFFF_FFFF)
        if definedLength {
            openDefinedLength.append((body.count - 4, body.count))
        } else {
            openDefinedLength.append((-1, body.count))
        }
    }

    public mutating func endSequence() {
        let open = openDefinedLength.removeLast()
        if open.lengthOffset >= 0 {
            patchLength(at: open.lengthOffset, UInt32(body.count - open.start))
        } else {
            body += itemTag(.sequenceDelimitationItem, length: 0)
        }
    }

    public mutating func beginItem(definedLength: Bool = false) {
        body += itemTag(.item, length: 0xFFFF_FFFF)
        openDefinedLength.append(definedLength ? (body.count - 4, body.count) : (-1, body.count))
    }

    public mutating func endItem() {
        let open = openDefinedLength.removeLast()
        if open.lengthOffset >= 0 {
            patchLength(at: open.lengthOffset, UInt32(body.count - open.start))
        } else {
            body += itemTag(.itemDelimitationItem, length: 0)
        }
    }

    /// `depth` undefined-length sequences, each in the one item of the one above (a crafted file's shape).
    public mutating func nestedSequences(depth: Int, tag: DICOMTag = DICOMTag(group: 0x0040, element: 0xA730)) {
        for _ in 0..<depth {
            beginSequence(tag)
            beginItem()
        }
        for _ in 0..<depth {
            endItem()
            endSequence()
        }
    }

    /// Encapsulated Pixel Data (PS3.5 §A.4): a Basic Offset Table item then one item per fragment.
    public mutating func encapsulatedPixelData(basicOffsetTable: [UInt32], fragments: [[UInt8]]) {
        header(.pixelData, vr: .OB, length: 0xFFFF_FFFF)
        body += itemTag(.item, length: UInt32(basicOffsetTable.count * 4))
        for offset in basicOffsetTable { body += u32(offset) }
        for fragment in fragments {
            body += itemTag(.item, length: UInt32(fragment.count))
            body += fragment
        }
        body += itemTag(.sequenceDelimitationItem, length: 0)
    }

    /// Appends bytes as they are (for broken variants).
    public mutating func raw(_ bytes: [UInt8]) {
        body += bytes
    }

    private func itemTag(_ tag: DICOMTag, length: UInt32) -> [UInt8] {
        u16(tag.group) + u16(tag.element) + u32(length)
    }

    private mutating func patchLength(at offset: Int, _ length: UInt32) {
        let bytes = u32(length)
        for index in 0..<4 { body[offset + index] = bytes[index] }
    }
}
