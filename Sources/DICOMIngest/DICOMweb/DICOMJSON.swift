public import DICOMCore
public import DICOMIngestModel

/// DICOM JSON (PS3.18 Annex F) of a data set, from the attributes a metadata document holds (keyed by keyword,
/// or `GGGGEEEE` for private and unknown attributes, whose VRs the instance's `DICOMVRs` name; values as
/// `ElementValueDecoder` wrote them).
public enum DICOMJSON {
    /// Binary values larger than this are given as a `BulkDataURI` instead of inline (as HealthImaging does).
    public static let bulkDataThreshold = 1 << 20

    /// Where binary values past `bulkDataThreshold` are read from: `<baseURI>/<key><query>`, the key naming the
    /// value's path in the data set (`bulkDataKey`).
    public struct BulkData: Sendable {
        public var baseURI: String
        public var query: String

        public init(baseURI: String, query: String = "") {
            self.baseURI = baseURI
            self.query = query
        }
    }

    /// The data set of `attributes` (every level's, in any order) as one DICOM JSON object, its members in tag
    /// order (`write`, read back).
    public static func dataset(
        _ attributes: [(String, JSONValue)], vrs: [String: String], replacing: [DICOMTag: (VR, JSONValue)] = [:],
        omitting: Set<DICOMTag> = [], bulkData: BulkData? = nil, path: [String] = []
    ) -> JSONValue {
        var output: [UInt8] = []
        write(attributes, vrs: vrs, replacing: replacing, omitting: omitting, bulkData: bulkData, path: path, to: &output)
        return (try? JSONValue.parse(output)) ?? .object([])
    }

    /// Writes the data set of `attributes` as compact DICOM JSON, its members in tag order. `replacing` sets
    /// elements over what the attributes hold; `omitting` leaves elements out. Written straight into `output`, no
    /// tree built: a series' metadata is thousands of data sets.
    public static func write(
        _ attributes: [(String, JSONValue)], vrs: [String: String], replacing: [DICOMTag: (VR, JSONValue)] = [:],
        omitting: Set<DICOMTag> = [], bulkData: BulkData? = nil, path: [String] = [], to output: inout [UInt8]
    ) {
        var elements: [(tag: DICOMTag, vr: VR, value: JSONValue)] = []
        elements.reserveCapacity(attributes.count + replacing.count)
        for (key, value) in attributes {
            guard let (tag, vr) = tagAndVR(key, value: value, vrs: vrs), replacing[tag] == nil, !omitting.contains(tag)
            else { continue }
            elements.append((tag, vr, value))
        }
        for (tag, (vr, value)) in replacing where !omitting.contains(tag) {
            elements.append((tag, vr, value))
        }
        elements.sort { $0.tag < $1.tag }
        writeElements(elements, vrs: vrs, bulkData: bulkData, path: path, to: &output)
    }

    /// `{"GGGGEEEE": element, …}` of elements already in tag order.
    static func writeElements(
        _ elements: [(tag: DICOMTag, vr: VR, value: JSONValue)], vrs: [String: String], bulkData: BulkData? = nil,
        path: [String] = [], to output: inout [UInt8]
    ) {
        output.append(UInt8(ascii: "{"))
        for (index, element) in elements.enumerated() {
            if index > 0 { output.append(UInt8(ascii: ",")) }
            output.append(UInt8(ascii: "\""))
            writeHex(element.tag, to: &output)
            output.append(contentsOf: "\":".utf8)
            writeElement(vr: element.vr, value: element.value, vrs: vrs, bulkData: bulkData, path: path, tag: element.tag, to: &output)
        }
        output.append(UInt8(ascii: "}"))
    }

    private static let hexDigits = Array("0123456789ABCDEF".utf8)

    private static func writeHex(_ tag: DICOMTag, to output: inout [UInt8]) {
        let raw = tag.rawValue
        for shift in stride(from: 28, through: 0, by: -4) { output.append(hexDigits[Int((raw >> UInt32(shift)) & 0xF)]) }
    }

    /// One element: `{"vr": …, "Value": […]}`, `InlineBinary` for binary VRs (or a `BulkDataURI` past
    /// `bulkDataThreshold`, its key from the path of `tag` under `path`), no `Value` when empty (F.2.5).
    static func writeElement(
        vr: VR, value: JSONValue, vrs: [String: String], bulkData: BulkData? = nil, path: [String] = [], tag: DICOMTag? = nil,
        to output: inout [UInt8]
    ) {
        output.append(contentsOf: "{\"vr\":\"".utf8)
        output.append(UInt8(truncatingIfNeeded: vr.rawValue >> 8))
        output.append(UInt8(truncatingIfNeeded: vr.rawValue))
        output.append(UInt8(ascii: "\""))
        let here = { tag.map { path + [$0.hexKey] } ?? path }
        if vr.isBulkBinary {
            if case .string(let base64) = value, !base64.isEmpty {
                if let bulkData, base64.utf8.count / 4 * 3 > bulkDataThreshold {
                    output.append(contentsOf: ",\"BulkDataURI\":".utf8)
                    JSONValue.writeString(bulkData.baseURI + "/" + bulkDataKey(here()) + bulkData.query, to: &output)
                } else {
                    output.append(contentsOf: ",\"InlineBinary\":".utf8)
                    JSONValue.writeString(base64, to: &output)
                }
            }
            output.append(UInt8(ascii: "}"))
            return
        }
        switch value {
        case .null, .array([]):
            break
        case .array(let items):
            output.append(contentsOf: ",\"Value\":[".utf8)
            let itemPath = vr == .SQ ? here() : path
            for (index, item) in items.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                writeValue(item, vr: vr, vrs: vrs, bulkData: bulkData, path: vr == .SQ ? itemPath + [String(index)] : path, to: &output)
            }
            output.append(UInt8(ascii: "]"))
        default:
            output.append(contentsOf: ",\"Value\":[".utf8)
            writeValue(value, vr: vr, vrs: vrs, bulkData: bulkData, path: vr == .SQ ? here() + ["0"] : path, to: &output)
            output.append(UInt8(ascii: "]"))
        }
        output.append(UInt8(ascii: "}"))
    }

    /// One value of a `Value` array: PN as its component groups (F.2.2), IS and DS as numbers (F.2.3), sequence
    /// items as data sets (`path` naming the item), an empty string value as `null` (F.2.5).
    static func writeValue(
        _ value: JSONValue, vr: VR, vrs: [String: String], bulkData: BulkData? = nil, path: [String] = [], to output: inout [UInt8]
    ) {
        switch (vr, value) {
        case (.SQ, .object(let members)):
            write(members, vrs: vrs, bulkData: bulkData, path: path, to: &output)
        case (_, .string(let text)) where text.isEmpty:
            output.append(contentsOf: "null".utf8)
        case (.PN, .string(let text)):
            output.append(UInt8(ascii: "{"))
            var first = true
            for (index, group) in text.split(separator: "=", maxSplits: 2, omittingEmptySubsequences: false).enumerated()
            where !group.isEmpty {
                if !first { output.append(UInt8(ascii: ",")) }
                first = false
                output.append(contentsOf: ["\"Alphabetic\":", "\"Ideographic\":", "\"Phonetic\":"][index].utf8)
                JSONValue.writeString(String(group), to: &output)
            }
            output.append(UInt8(ascii: "}"))
        case (.IS, .string(let text)):
            let trimmed = text.trimmingSpaces
            if trimmed.isEmpty {
                output.append(contentsOf: "null".utf8)
            } else if let number = Int64(trimmed.hasPrefix("+") ? String(trimmed.dropFirst()) : trimmed) {
                output.append(contentsOf: String(number).utf8)
            } else {
                JSONValue.writeString(trimmed, to: &output)
            }
        case (.DS, .string(let text)):
            let trimmed = text.trimmingSpaces
            guard !trimmed.isEmpty else {
                output.append(contentsOf: "null".utf8)
                return
            }
            guard let number = Double(trimmed), number.isFinite else {
                JSONValue.writeString(trimmed, to: &output)
                return
            }
            if let whole = Int64(exactly: number), !trimmed.contains("."), !trimmed.lowercased().contains("e") {
                output.append(contentsOf: String(whole).utf8)
            } else {
                JSONValue.double(number).write(to: &output)
            }
        default:
            value.write(to: &output)
        }
    }

    /// 32 hex digits naming a value's path (tags, and item indexes within sequences): FNV-1a, twice with other
    /// offsets, of the path's text. Stable across versions of the same instance.
    public static func bulkDataKey(_ path: [String]) -> String {
        let text = Array(path.joined(separator: ".").utf8)
        func fnv(_ offset: UInt64) -> UInt64 {
            var hash = offset
            for byte in text {
                hash ^= UInt64(byte)
                hash = hash &* 0x0000_0100_0000_01B3
            }
            return hash
        }
        let digits = [fnv(0xCBF2_9CE4_8422_2325), fnv(0x6C62_272E_07BB_0142)].map { String($0, radix: 16) }
        return digits.map { String(repeating: "0", count: 16 - $0.count) + $0 }.joined()
    }

    /// The binary value a bulk data key names among `attributes`, base64 as the document holds it.
    public static func bulkValue(key: String, in attributes: [(String, JSONValue)], vrs: [String: String], path: [String] = []) -> String? {
        for (name, value) in attributes {
            guard let (tag, vr) = tagAndVR(name, value: value, vrs: vrs) else { continue }
            let here = path + [tag.hexKey]
            if vr.isBulkBinary, case .string(let base64) = value, bulkDataKey(here) == key { return base64 }
            if vr == .SQ, case .array(let items) = value {
                for (index, item) in items.enumerated() {
                    guard case .object(let members) = item else { continue }
                    if let found = bulkValue(key: key, in: members, vrs: vrs, path: here + [String(index)]) { return found }
                }
            }
        }
        return nil
    }

    /// The tag and VR of a document key: a keyword's from the dictionary (an ambiguous one US, or SS when a value
    /// is negative, when it holds numbers), a `GGGGEEEE` key's from `DICOMVRs`, else the dictionary's, else UN. Nil
    /// for a key that is neither.
    static func tagAndVR(_ key: String, value: JSONValue, vrs: [String: String]) -> (DICOMTag, VR)? {
        if key.utf8.count == 8, key.utf8.allSatisfy(isHexDigit), let tag = DICOMTag(hexKey: key) {
            let vr = vrs[key].flatMap { VR($0) } ?? DICOMDictionary.entry(for: tag)?.vr ?? .UN
            return (tag, vr)
        }
        guard let tag = DICOMDictionary.tag(forKeyword: key), let entry = DICOMDictionary.entry(for: tag) else { return nil }
        // An attribute the dictionary allows several VRs (US or SS, US or OW for lookup data) holds numbers when the
        // file gave it US or SS, base64 when OB or OW.
        if entry.isAmbiguousVR, isNumeric(value) { return (tag, hasNegativeNumber(value) ? .SS : .US) }
        return (tag, entry.vr)
    }

    private static func isHexDigit(_ byte: UInt8) -> Bool {
        (0x30...0x39).contains(byte) || (0x41...0x46).contains(byte) || (0x61...0x66).contains(byte)
    }

    private static func isNumeric(_ value: JSONValue) -> Bool {
        switch value {
        case .int, .uint: return true
        case .array(let values): return !values.isEmpty && values.allSatisfy(isNumeric)
        default: return false
        }
    }

    private static func hasNegativeNumber(_ value: JSONValue) -> Bool {
        switch value {
        case .int(let number): return number < 0
        case .array(let values): return values.contains(where: hasNegativeNumber)
        default: return false
        }
    }
}
