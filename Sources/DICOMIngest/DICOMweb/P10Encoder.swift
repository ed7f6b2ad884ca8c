import DICOMCore
public import DICOMIngestModel
import DICOMPixels
import Foundation

/// A DICOM P10 file (PS3.10 §7) rebuilt from an instance's metadata document attributes, for GetDICOMInstance and
/// `export`: a file meta group for the answer's transfer syntax, then the data set in Explicit VR Little Endian
/// (sequences and items of undefined length), Pixel Data last and written by the caller frame by frame, so an
/// instance is never held whole.
///
/// Text is written as UTF-8, the form the document keeps it in: where any text is not ASCII, Specific Character
/// Set becomes `ISO_IR 192`; otherwise the source's is kept.
public struct P10Encoder {
    /// The UID this implementation writes as Implementation Class UID (a UUID-derived UID, PS3.5 §B.2).
    public static let implementationClassUID = "2.25.186004217117390574651287254311935361843"
    public static let implementationVersionName = "DICOM_INGEST_1"

    /// The longest native Pixel Data an element's 32-bit length can give (0xFFFFFFFF means undefined).
    public static let maximumNativePixelDataBytes = 0xFFFF_FFFE

    /// The bytes before Pixel Data's value: preamble, `DICM`, file meta, every attribute but pixel data, and Pixel
    /// Data's header (with `pixelDataLength`, or undefined for encapsulated frames); not acceptable for native Pixel
    /// Data past `maximumNativePixelDataBytes`.
    public static func header(
        _ instance: StoredInstance, sopClassUID: String, transferSyntaxUID: String, encapsulated: Bool,
        pixelDataLength: Int?
    ) throws -> [UInt8] {
        var output = [UInt8](repeating: 0, count: 128)
        output.append(contentsOf: Array("DICM".utf8))
        var meta = Writer()
        meta.element(.fileMetaInformationVersion, .OB, [0, 1])
        meta.text(.mediaStorageSOPClassUID, .UI, sopClassUID)
        meta.text(.mediaStorageSOPInstanceUID, .UI, instance.sopInstanceUID)
        meta.text(.transferSyntaxUID, .UI, transferSyntaxUID)
        meta.text(.implementationClassUID, .UI, implementationClassUID)
        meta.text(DICOMTag(group: 0x0002, element: 0x0013), .SH, implementationVersionName)
        var length = Writer()
        length.element(.fileMetaInformationGroupLength, .UL, littleEndian(UInt32(meta.bytes.count)))
        output.append(contentsOf: length.bytes)
        output.append(contentsOf: meta.bytes)

        var elements: [(DICOMTag, VR, JSONValue)] = []
        for (key, value) in instance.attributes {
            guard let (tag, vr) = DICOMJSON.tagAndVR(key, value: value, vrs: instance.vrs), tag.group != 0x0002,
                tag != .pixelData, tag != .floatPixelData, tag != .doubleFloatPixelData
            else { continue }
            elements.removeAll { $0.0 == tag }
            elements.append((tag, vr, value))
        }
        elements.sort { $0.0 < $1.0 }
        let unicode = elements.contains { needsUnicode($0.2) }
        var dataset = Writer()
        for (tag, vr, value) in elements {
            if tag == .specificCharacterSet && unicode { continue }
            if unicode && tag > .specificCharacterSet && !dataset.wroteCharacterSet {
                dataset.text(.specificCharacterSet, .CS, "ISO_IR 192")
                dataset.wroteCharacterSet = true
            }
            try dataset.encode(tag, vr, value, vrs: instance.vrs)
        }
        if unicode && !dataset.wroteCharacterSet { dataset.text(.specificCharacterSet, .CS, "ISO_IR 192") }
        output.append(contentsOf: dataset.bytes)
        if encapsulated {
            output.append(contentsOf: Writer.header(.pixelData, .OB, length: 0xFFFF_FFFF))
            // An empty Basic Offset Table: the frames follow, one fragment each (PS3.5 §A.4).
            output.append(contentsOf: Writer.item(length: 0))
        } else if let pixelDataLength {
            guard (0...maximumNativePixelDataBytes).contains(pixelDataLength) else {
                throw IngestServiceError(
                    .notAcceptableException,
                    "Uncompressed Pixel Data of \(pixelDataLength) bytes does not fit a DICOM element; ask for the instance as stored")
            }
            let description = instance.pixelDescription
            output.append(contentsOf: Writer.header(.pixelData, description.bitsAllocated > 8 ? .OW : .OB, length: UInt32(pixelDataLength)))
        }
        return output
    }

    /// One encapsulated frame: an item holding the frame's bytes (an odd frame padded with a zero).
    public static func fragment(_ frame: [UInt8]) -> [UInt8] {
        var output = Writer.item(length: UInt32((frame.count + 1) & ~1))
        output.append(contentsOf: frame)
        if frame.count % 2 == 1 { output.append(0) }
        return output
    }

    /// The end of encapsulated Pixel Data.
    public static let sequenceDelimiter: [UInt8] = [0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]

    private static func needsUnicode(_ value: JSONValue) -> Bool {
        switch value {
        case .string(let text): return !text.utf8.allSatisfy { $0 < 0x80 }
        case .array(let values): return values.contains(where: needsUnicode)
        case .object(let members): return members.contains { needsUnicode($0.1) }
        default: return false
        }
    }

    static func littleEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value.littleEndian) { Array($0) }
    }

    struct Writer {
        var bytes: [UInt8] = []
        var wroteCharacterSet = false

        static func header(_ tag: DICOMTag, _ vr: VR, length: UInt32) -> [UInt8] {
            var output = littleEndian(tag.group) + littleEndian(tag.element)
            output.append(UInt8(vr.rawValue >> 8))
            output.append(UInt8(vr.rawValue & 0xFF))
            if vr.hasLongExplicitLength {
                output += [0, 0] + littleEndian(length)
            } else {
                output += littleEndian(UInt16(truncatingIfNeeded: length))
            }
            return output
        }

        static func item(length: UInt32) -> [UInt8] {
            [0xFE, 0xFF, 0x00, 0xE0] + littleEndian(length)
        }

        mutating func element(_ tag: DICOMTag, _ vr: VR, _ value: [UInt8]) {
            var value = value
            if value.count % 2 == 1 { value.append(vr == .UI ? 0 : (vr.isString ? 0x20 : 0)) }
            // A value too long for its VR's 16-bit length (an implicit VR source allows one) is written as UN
            // (PS3.5 §6.2.2, CP-1066); readers take the VR from the dictionary again.
            let written = !vr.hasLongExplicitLength && value.count > 0xFFFE ? VR.UN : vr
            bytes += Self.header(tag, written, length: UInt32(value.count))
            bytes += value
        }

        mutating func text(_ tag: DICOMTag, _ vr: VR, _ value: String) {
            element(tag, vr, Array(value.utf8))
        }

        /// One attribute from its document form (`ElementValueDecoder`'s): text joined at `\`, numbers and AT
        /// in binary, binary from base64, sequences item by item.
        mutating func encode(_ tag: DICOMTag, _ vr: VR, _ value: JSONValue, vrs: [String: String]) throws {
            let values: [JSONValue]
            switch value {
            case .null: values = []
            case .array(let items): values = items
            default: values = [value]
            }
            if vr == .SQ {
                bytes += Self.header(tag, .SQ, length: 0xFFFF_FFFF)
                for case .object(let members) in values {
                    bytes += Self.item(length: 0xFFFF_FFFF)
                    var items: [(DICOMTag, VR, JSONValue)] = []
                    for (key, member) in members {
                        guard let (itemTag, itemVR) = DICOMJSON.tagAndVR(key, value: member, vrs: vrs) else { continue }
                        items.append((itemTag, itemVR, member))
                    }
                    for (itemTag, itemVR, member) in items.sorted(by: { $0.0 < $1.0 }) {
                        try encode(itemTag, itemVR, member, vrs: vrs)
                    }
                    bytes += [0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0]
                }
                bytes += P10Encoder.sequenceDelimiter
                return
            }
            if vr.isBulkBinary {
                guard case .string(let base64)? = values.first, !base64.isEmpty else { return element(tag, vr, []) }
                guard let data = Data(base64Encoded: base64) else {
                    throw IngestServiceError.internal("Attribute \(tag) holds base64 that does not decode")
                }
                return element(tag, vr, [UInt8](data))
            }
            if vr.isString {
                let texts = values.map { value -> String in
                    switch value {
                    case .string(let text): return text
                    case .int(let number): return String(number)
                    case .uint(let number): return String(number)
                    case .double(let number): return String(number)
                    default: return ""
                    }
                }
                return element(tag, vr, Array(texts.joined(separator: "\\").utf8))
            }
            var encoded: [UInt8] = []
            for value in values {
                switch (vr, value) {
                case (.AT, .string(let key)):
                    guard let attribute = DICOMTag(hexKey: key) else { continue }
                    encoded += littleEndian(attribute.group) + littleEndian(attribute.element)
                case (.US, _): encoded += littleEndian(UInt16(truncatingIfNeeded: value.integer))
                case (.SS, _): encoded += littleEndian(Int16(truncatingIfNeeded: value.integer))
                case (.UL, _): encoded += littleEndian(UInt32(truncatingIfNeeded: value.integer))
                case (.SL, _): encoded += littleEndian(Int32(truncatingIfNeeded: value.integer))
                case (.SV, _): encoded += littleEndian(value.integer)
                case (.UV, .uint(let number)): encoded += littleEndian(number)
                case (.UV, _): encoded += littleEndian(UInt64(bitPattern: value.integer))
                case (.FL, _): encoded += littleEndian(Float(value.number).bitPattern)
                case (.FD, _): encoded += littleEndian(value.number.bitPattern)
                default: continue
                }
            }
            element(tag, vr, encoded)
        }
    }
}

extension JSONValue {
    fileprivate var integer: Int64 {
        switch self {
        case .int(let value): return value
        case .uint(let value): return Int64(bitPattern: value)
        case .double(let value): return Int64(exactly: value.rounded()) ?? 0
        default: return 0
        }
    }

    fileprivate var number: Double {
        switch self {
        case .int(let value): return Double(value)
        case .uint(let value): return Double(value)
        case .double(let value): return value
        default: return 0
        }
    }
}
