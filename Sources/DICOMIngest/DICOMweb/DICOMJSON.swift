public import DICOMCore
public import DICOMIngestModel

/// DICOM JSON (PS3.18 Annex F) of a data set, from the attributes a metadata document holds (keyed by keyword,
/// or `GGGGEEEE` for private and unknown attributes, whose VRs the instance's `DICOMVRs` name; values as
/// `ElementValueDecoder` wrote them).
public enum DICOMJSON {
    /// The data set of `attributes` (every level's, in any order) as one DICOM JSON object, its members in tag
    /// order. `replacing` sets elements over what the attributes hold; `omitting` leaves elements out.
    public static func dataset(
        _ attributes: [(String, JSONValue)], vrs: [String: String], replacing: [DICOMTag: (VR, JSONValue)] = [:],
        omitting: Set<DICOMTag> = []
    ) -> JSONValue {
        var elements: [(DICOMTag, JSONValue)] = []
        elements.reserveCapacity(attributes.count + replacing.count)
        for (key, value) in attributes {
            guard let (tag, vr) = tagAndVR(key, value: value, vrs: vrs), replacing[tag] == nil, !omitting.contains(tag)
            else { continue }
            elements.append((tag, element(vr: vr, value: value, vrs: vrs)))
        }
        for (tag, (vr, value)) in replacing where !omitting.contains(tag) {
            elements.append((tag, element(vr: vr, value: value, vrs: vrs)))
        }
        elements.sort { $0.0 < $1.0 }
        return .object(elements.map { ($0.0.hexKey, $0.1) })
    }

    /// The tag and VR of a document key: a keyword's from the dictionary (an ambiguous US-or-SS one is SS when a
    /// value is negative, as the file's explicit VR made it), a `GGGGEEEE` key's from `DICOMVRs`, else the
    /// dictionary's, else UN. Nil for a key that is neither.
    static func tagAndVR(_ key: String, value: JSONValue, vrs: [String: String]) -> (DICOMTag, VR)? {
        if key.utf8.count == 8, key.utf8.allSatisfy(isHexDigit), let tag = DICOMTag(hexKey: key) {
            let vr = vrs[key].flatMap { VR($0) } ?? DICOMDictionary.entry(for: tag)?.vr ?? .UN
            return (tag, vr)
        }
        guard let tag = DICOMDictionary.tag(forKeyword: key), let entry = DICOMDictionary.entry(for: tag) else { return nil }
        if entry.isAmbiguousVR, entry.vr == .US, hasNegativeNumber(value) { return (tag, .SS) }
        return (tag, entry.vr)
    }

    private static func isHexDigit(_ byte: UInt8) -> Bool {
        (0x30...0x39).contains(byte) || (0x41...0x46).contains(byte) || (0x61...0x66).contains(byte)
    }

    private static func hasNegativeNumber(_ value: JSONValue) -> Bool {
        switch value {
        case .int(let number): return number < 0
        case .array(let values): return values.contains(where: hasNegativeNumber)
        default: return false
        }
    }

    /// One element: `{"vr": …, "Value": […]}`, `InlineBinary` for binary VRs, no `Value` when empty (F.2.5).
    static func element(vr: VR, value: JSONValue, vrs: [String: String]) -> JSONValue {
        var members: [(String, JSONValue)] = [("vr", .string(vr.description))]
        if vr.isBulkBinary {
            if case .string(let base64) = value, !base64.isEmpty { members.append(("InlineBinary", .string(base64))) }
            return .object(members)
        }
        let values: [JSONValue]
        switch value {
        case .null: values = []
        case .array(let items): values = items
        default: values = [value]
        }
        guard !values.isEmpty else { return .object(members) }
        members.append(("Value", .array(values.map { self.value($0, vr: vr, vrs: vrs) })))
        return .object(members)
    }

    /// One value of a `Value` array: PN as its component groups (F.2.2), IS and DS as numbers (F.2.3), sequence
    /// items as data sets, an empty string value as `null` (F.2.5).
    static func value(_ value: JSONValue, vr: VR, vrs: [String: String]) -> JSONValue {
        switch (vr, value) {
        case (.SQ, .object(let members)):
            return dataset(members, vrs: vrs)
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
