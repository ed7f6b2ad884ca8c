public import DICOMCore
public import DICOMIngestModel

/// Turns the raw bytes of one element into its JSON form in the HealthImaging metadata document (spec §3.2).
///
/// - Strings: text in the character set of the data set; multi-valued VRs split at `\` into arrays; IS and DS keep
///   their raw text including padding (as HealthImaging shows them); UI loses trailing NUL and spaces; other
///   strings lose trailing spaces.
/// - PN: the plain string with `^` and `=` separators (not the DICOM JSON object form).
/// - US, SS, UL, SL, SV, UV, FL, FD: JSON numbers.
/// - AT: `GGGGEEEE` strings.
/// - OB, OW, OD, OF, OL, OV, UN: base64 of the little-endian bytes.
/// - Empty values: `null` (binary: `""`).
/// - Arrays whenever the dictionary's VM allows more than one value, or more than one value is present.
public struct ElementValueDecoder: Sendable {
    public var isBigEndian: Bool
    public var characterSet: SpecificCharacterSet

    public init(isBigEndian: Bool, characterSet: SpecificCharacterSet = .default) {
        self.isBigEndian = isBigEndian
        self.characterSet = characterSet
    }

    public func json(
        vr: VR,
        bytes: UnsafeRawBufferPointer,
        multiplicity: DICOMDictionary.Multiplicity?
    ) -> JSONValue {
        if bytes.isEmpty {
            return vr.isBulkBinary ? .string("") : .null
        }
        let multiValued = multiplicity?.allowsMultipleValues ?? false
        if vr.isString {
            return stringJSON(vr: vr, bytes: bytes, multiValued: multiValued)
        }
        if vr == .AT {
            let values = stride(from: 0, to: bytes.count - 3, by: 4).map { index -> JSONValue in
                let group = readUInt16(bytes, index)
                let element = readUInt16(bytes, index + 2)
                return .string(DICOMTag(group: group, element: element).hexKey)
            }
            return collapse(values, multiValued: multiValued)
        }
        if let width = vr.numericWidth {
            var values: [JSONValue] = []
            values.reserveCapacity(bytes.count / width)
            var index = 0
            while index + width <= bytes.count {
                values.append(number(vr: vr, bytes: bytes, at: index))
                index += width
            }
            return collapse(values, multiValued: multiValued)
        }
        return .string(Base64.encode(littleEndianBytes(bytes, unit: vr.swapUnit)))
    }

    private func collapse(_ values: [JSONValue], multiValued: Bool) -> JSONValue {
        if values.count == 1 && !multiValued { return values[0] }
        if values.isEmpty { return .null }
        return .array(values)
    }

    private func stringJSON(vr: VR, bytes: UnsafeRawBufferPointer, multiValued: Bool) -> JSONValue {
        let raw = ArraySlice(bytes)
        let pieces: [ArraySlice<UInt8>]
        if vr.isSingleValuedText {
            pieces = [raw]
        } else {
            pieces = raw.split(separator: 0x5C, omittingEmptySubsequences: false)
        }
        let values = pieces.map { piece -> JSONValue in
            .string(decodeString(piece, vr: vr))
        }
        if values.count == 1 && !multiValued {
            if case .string(let text) = values[0], text.isEmpty, vr != .IS && vr != .DS { return .null }
            return values[0]
        }
        return .array(values)
    }

    private func decodeString(_ piece: ArraySlice<UInt8>, vr: VR) -> String {
        switch vr {
        case .IS, .DS:
            return String(decoding: piece, as: UTF8.self)
        case .UI:
            var end = piece.endIndex
            while end > piece.startIndex && (piece[end - 1] == 0 || piece[end - 1] == 0x20) { end -= 1 }
            return String(decoding: piece[piece.startIndex..<end], as: UTF8.self)
        default:
            var end = piece.endIndex
            while end > piece.startIndex && (piece[end - 1] == 0x20 || piece[end - 1] == 0) { end -= 1 }
            let trimmed = piece[piece.startIndex..<end]
            if vr == .PN {
                // Trailing empty component groups carry nothing (PS3.5 §6.2.1.1); pydicom drops them too.
                var groupsEnd = trimmed.endIndex
                while groupsEnd > trimmed.startIndex && trimmed[groupsEnd - 1] == 0x3D { groupsEnd -= 1 }
                return characterSet.decode(trimmed[trimmed.startIndex..<groupsEnd], isPersonName: true)
            }
            if vr.usesSpecificCharacterSet {
                return characterSet.decode(trimmed, isPersonName: false)
            }
            return SpecificCharacterSet.decode(trimmed, with: .latin1)
        }
    }

    private func readUInt16(_ bytes: UnsafeRawBufferPointer, _ index: Int) -> UInt16 {
        let raw = bytes.loadUnaligned(fromByteOffset: index, as: UInt16.self)
        return isBigEndian ? UInt16(bigEndian: raw) : UInt16(littleEndian: raw)
    }

    private func number(vr: VR, bytes: UnsafeRawBufferPointer, at index: Int) -> JSONValue {
        switch vr {
        case .US:
            return .int(Int64(readUInt16(bytes, index)))
        case .SS:
            return .int(Int64(Int16(bitPattern: readUInt16(bytes, index))))
        case .UL:
            return .int(Int64(load32(bytes, index)))
        case .SL:
            return .int(Int64(Int32(bitPattern: load32(bytes, index))))
        case .FL:
            return .double(Double(Float(bitPattern: load32(bytes, index))))
        case .FD:
            return .double(Double(bitPattern: load64(bytes, index)))
        case .SV:
            return .int(Int64(bitPattern: load64(bytes, index)))
        default:
            return .uint(load64(bytes, index))
        }
    }

    private func load32(_ bytes: UnsafeRawBufferPointer, _ index: Int) -> UInt32 {
        let raw = bytes.loadUnaligned(fromByteOffset: index, as: UInt32.self)
        return isBigEndian ? UInt32(bigEndian: raw) : UInt32(littleEndian: raw)
    }

    private func load64(_ bytes: UnsafeRawBufferPointer, _ index: Int) -> UInt64 {
        let raw = bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)
        return isBigEndian ? UInt64(bigEndian: raw) : UInt64(littleEndian: raw)
    }

    private func littleEndianBytes(_ bytes: UnsafeRawBufferPointer, unit: Int) -> [UInt8] {
        var copy = Array(bytes)
        guard isBigEndian && unit > 1 else { return copy }
        var index = 0
        while index + unit <= copy.count {
            copy[index..<(index + unit)].reverse()
            index += unit
        }
        return copy
    }
}

/// Standard base64 (RFC 4648 §4) with padding.
public enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    public static func encode(_ bytes: [UInt8]) -> String {
        var output = [UInt8]()
        output.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index + 3 <= bytes.count {
            let value = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
            output.append(alphabet[Int(value >> 18 & 63)])
            output.append(alphabet[Int(value >> 12 & 63)])
            output.append(alphabet[Int(value >> 6 & 63)])
            output.append(alphabet[Int(value & 63)])
            index += 3
        }
        let remaining = bytes.count - index
        if remaining > 0 {
            let value = UInt32(bytes[index]) << 16 | (remaining == 2 ? UInt32(bytes[index + 1]) << 8 : 0)
            output.append(alphabet[Int(value >> 18 & 63)])
            output.append(alphabet[Int(value >> 12 & 63)])
            output.append(remaining == 2 ? alphabet[Int(value >> 6 & 63)] : UInt8(ascii: "="))
            output.append(UInt8(ascii: "="))
        }
        return String(decoding: output, as: UTF8.self)
    }
}
