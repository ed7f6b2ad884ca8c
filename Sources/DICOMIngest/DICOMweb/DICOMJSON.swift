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
    /// order. `replacing` sets elements over what the attributes hold; `omitting` leaves elements out.
    public static func dataset(
        _ attributes: [(String, JSONValue)], vrs: [String: String], replacing: [DICOMTag: (VR, JSONValue)] = [:],
        omitting: Set<DICOMTag> = [], bulkData: BulkData? = nil, path: [String] = []
    ) -> JSONValue {
        var elements: [(DICOMTag, JSONValue)] = []
        elements.reserveCapacity(attributes.count + replacing.count)
        for (key, value) in attributes {
            guard let (tag, vr) = tagAndVR(key, value: value, vrs: vrs), replacing[tag] == nil, !omitting.contains(tag)
            else { continue }
            elements.append((tag, element(vr: vr, value: value, vrs: vrs, bulkData: bulkData, path: path + [tag.hexKey])))
        }
        for (tag, (vr, value)) in replacing where !omitting.contains(tag) {
            elements.append((tag, element(vr: vr, value: value, vrs: vrs)))
        }
        elements.sort { $0.0 < $1.0 }
        return .object(elements.map { ($0.0.hexKey, $0.1) })
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

    /// One element: `{"vr": …, "Value": […]}`, `InlineBinary` for binary VRs, no `Value` when empty (F.2.5).
    static func element(vr: VR, value: JSONValue, vrs: [String: String], bulkData: BulkData? = nil, path: [String] = []) -> JSONValue {
        var members: [(String, JSONValue)] = [("vr", .string(vr.description))]
        if vr.isBulkBinary {
            guard case .string(let base64) = value, !base64.isEmpty else { return .object(members) }
            if let bulkData, base64.utf8.count / 4 * 3 > bulkDataThreshold {
                members.append(("BulkDataURI", .string(bulkData.baseURI + "/" + bulkDataKey(path) + bulkData.query)))
            } else {
                members.append(("InlineBinary", .string(base64)))
            }
            return .object(members)
        }
        let values: [JSONValue]
        switch value {
        case .null: values = []
        case .array(let items): values = items
        default: values = [value]
        }
        guard !values.isEmpty else { return .object(members) }
        members.append(("Value", .array(values.enumerated().map { index, item in
            self.value(item, vr: vr, vrs: vrs, bulkData: bulkData, path: path + [String(index)])
        })))
        return .object(members)
    }

    /// One value of a `Value` array: PN as its component groups (F.2.2), IS and DS as numbers (F.2.3), sequence
    /// items as data sets, an empty string value as `null` (F.2.5).
    static func value(_ value: JSONValue, vr: VR, vrs: [String: String], bulkData: BulkData? = nil, path: [String] = []) -> JSONValue {
        switch (vr, value) {
        case (.SQ, .object(let members)):
            return dataset(members, vrs: vrs, bulkData: bulkData, path: path)
        case (_, .string(let text)) where text.isEmpty:
            return .null
        case (.PN, .string(let text)):
            let groups = text.split(separator: "=", maxSplits: 2, omittingEmptySubsequences: false)
            var name: [(String, JSONValue)] = []
            for (index, group) in groups.enumerated() where !group.isEmpty {
                name.append((["Alphabetic", "Ideographic", "Phonetic"][index], .string(String(group))))
            }
            return .object(name)
        case (.IS, .string(let text)):
            let trimmed = text.trimmingSpaces
            if trimmed.isEmpty { return .null }
            return Int64(trimmed.hasPrefix("+") ? String(trimmed.dropFirst()) : trimmed).map(JSONValue.int) ?? .string(trimmed)
        case (.DS, .string(let text)):
            let trimmed = text.trimmingSpaces
            if trimmed.isEmpty { return .null }
            guard let number = Double(trimmed), number.isFinite else { return .string(trimmed) }
            if let whole = Int64(exactly: number), !trimmed.contains("."), !trimmed.lowercased().contains("e") {
                return .int(whole)
            }
            return .double(number)
        default:
            return value
        }
    }
}
