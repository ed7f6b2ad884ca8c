public import DICOMCore
public import DICOMIngestModel

/// The checks HealthImaging documents for an UpdateImageSetMetadata document (spec §1.5 "Constraints
/// HealthImaging applies to an update", the dicom-metadata-constraints page), each refusal a ValidationException
/// naming the attribute.
///
/// Always refused: text that is not UTF-8, a NUL or a lone surrogate in a string, a key given twice in one object,
/// a name that is neither a DICOM keyword of the dictionary nor the tag (8 hex digits) of a private attribute, a
/// value that does not fit its VR (type, characters, length; HealthImaging's import length limits, spec §5.4).
/// Only with `force`: a sequence (VR SQ), more than one value, an attribute at a level other than its own (patient,
/// study, series, instance; `MetadataLevel`), and private attributes, which HealthImaging lets change at the
/// instance level only; a private data element needs its creator, in the update or in the level it changes.
enum MetadataUpdateRules {
    /// Refuses bytes that are not UTF-8, and `\u` escapes of lone surrogates, before they are parsed (the parser
    /// would keep U+FFFD in their place).
    static func checkText(_ bytes: [UInt8], _ name: String) throws(IngestServiceError) {
        guard String(validating: bytes, as: UTF8.self) != nil else { throw .validation("\(name) is not valid UTF-8") }
        // Backslashes occur only inside strings in JSON: each starts a two-character escape or a `\uXXXX` one.
        func unit(at index: Int) -> UInt32? {
            guard index + 6 <= bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else { return nil }
            return UInt32(String(decoding: bytes[(index + 2)..<(index + 6)], as: UTF8.self), radix: 16)
        }
        let loneSurrogate = IngestServiceError.validation("\(name) holds an escape that is not a character (a lone surrogate)")
        var index = 0
        while index < bytes.count {
            guard bytes[index] == UInt8(ascii: "\\") else {
                index += 1
                continue
            }
            guard let code = unit(at: index) else {
                index += 2
                continue
            }
            switch code {
            case 0xD800...0xDBFF:
                guard let low = unit(at: index + 6), (0xDC00...0xDFFF).contains(low) else { throw loneSurrogate }
                index += 12
            case 0xDC00...0xDFFF:
                throw loneSurrogate
            default:
                index += 6
            }
        }
    }

    /// Refuses duplicate keys and NUL characters anywhere in a parsed document.
    static func checkStructure(_ value: JSONValue, _ name: String) throws(IngestServiceError) {
        func text(_ string: String) throws(IngestServiceError) {
            if string.utf8.contains(0) { throw .validation("\(name) holds a NUL character") }
        }
        func walk(_ value: JSONValue) throws(IngestServiceError) {
            switch value {
            case .string(let string): try text(string)
            case .array(let items): for item in items { try walk(item) }
            case .object(let members):
                var keys = Set<String>()
                for (key, member) in members {
                    try text(key)
                    guard keys.insert(key).inserted else { throw .validation("\(name) gives \(key) twice in one object") }
                    try walk(member)
                }
            default: break
            }
        }
        try walk(value)
    }

    /// What a key of a `DICOM` object names.
    enum Attribute {
        case standard(DICOMDictionary.Entry)
        case privateCreator(DICOMTag)
        case privateData(DICOMTag, creator: DICOMTag)
    }

    static func attribute(_ name: String) throws(IngestServiceError) -> Attribute {
        if let tag = DICOMDictionary.tag(forKeyword: name), let entry = DICOMDictionary.entry(for: tag) {
            return .standard(entry)
        }
        guard name.utf8.count == 8, name.utf8.allSatisfy({ hexDigit($0) }), let raw = UInt32(name, radix: 16) else {
            throw .validation("\(name) is not a DICOM attribute (a keyword of the dictionary, or a private tag as 8 hex digits)")
        }
        let tag = DICOMTag(rawValue: raw)
        guard tag.group & 1 == 1, tag.group > 0x0007, tag.group != 0xFFFF else {
            throw .validation("\(name) is not a private attribute; standard attributes are named by keyword")
        }
        if tag.element >= 0x0010 && tag.element <= 0x00FF { return .privateCreator(tag) }
        guard tag.element >= 0x1000 else { throw .validation("\(name) is not a private creator or private data element") }
        return .privateData(tag, creator: DICOMTag(group: tag.group, element: tag.element >> 8))
    }

    private static func hexDigit(_ byte: UInt8) -> Bool {
        (0x30...0x39).contains(byte) || (0x41...0x46).contains(byte)
    }

    /// Checks one attribute of a level (`place` names the level for messages); `value` is nil for a removal.
    static func check(
        _ name: String, _ value: JSONValue?, level: MetadataLevel, place: String, force: Bool
    ) throws(IngestServiceError) {
        switch try attribute(name) {
        case .standard(let entry):
            let own = MetadataLevel.of(entry.tag)
            if own != level && !force {
                throw .validation("\(name) belongs at the \(own) level, not in \(place) (only with force=true)")
            }
            if let value { try checkValue(value, entry: entry, name: name, force: force) }
        case .privateCreator, .privateData:
            guard level == .instance && force else {
                throw .validation("Private attribute \(name) can be changed at the instance level only, with force=true")
            }
            if let value { try checkPrivate(value, name: name) }
        }
    }

    /// A private data element's creator must be in the level once the update is applied.
    static func checkCreators(_ names: [String], in members: [(String, JSONValue)]) throws {
        let present = Set(members.map(\.0))
        for name in names {
            guard case .privateData(_, let creator)? = try? attribute(name) else { continue }
            let creatorKey = String(creator.rawValue, radix: 16, uppercase: true).leftPadded(to: 8)
            guard present.contains(creatorKey) else {
                throw ImageSetStoreError(.invalid, "Private attribute \(name) has no private creator \(creatorKey) at its level")
            }
        }
    }

    private static let numericVRs: Set<VR> = [.US, .SS, .UL, .SL, .FL, .FD, .SV, .UV]
    private static let binaryVRs: Set<VR> = [.OB, .OD, .OF, .OL, .OV, .OW, .UN]

    private static func checkValue(
        _ value: JSONValue, entry: DICOMDictionary.Entry, name: String, force: Bool
    ) throws(IngestServiceError) {
        if case .null = value { return }
        if entry.vr == .SQ {
            guard force else { throw .validation("\(name) is a sequence: it changes only with force=true") }
            guard case .array(let items) = value else { throw .validation("\(name) is a sequence: its value is an array of items") }
            for item in items {
                guard case .object(let members) = item else { throw .validation("Each item of \(name) is an object") }
                for (member, memberValue) in members {
                    guard case .standard(let memberEntry) = try attribute(member) else { continue }
                    try checkValue(memberValue, entry: memberEntry, name: "\(name).\(member)", force: force)
                }
            }
            return
        }
        let values: [JSONValue]
        if case .array(let items) = value {
            if items.count > 1 && !force { throw .validation("\(name) has \(items.count) values: multi-valued changes need force=true") }
            if items.count > 1 && !entry.multiplicity.allowsMultipleValues {
                throw .validation("\(name) takes one value (VM \(entry.multiplicity.minimum)), not \(items.count)")
            }
            values = items
        } else {
            values = [value]
        }
        for single in values { try checkSingle(single, vr: entry.vr, name: name) }
        if let limit = InstancePreparer.lengthLimits.first(where: { $0.1 == name })?.2, case .string(let text) = value,
            text.count > limit
        {
            throw .validation("\(name) exceeds the maximum length of \(limit) characters")
        }
    }

    private static func checkSingle(_ value: JSONValue, vr: VR, name: String) throws(IngestServiceError) {
        if case .null = value { return }
        if numericVRs.contains(vr) {
            let range: ClosedRange<Double>?
            switch vr {
            case .US: range = 0...65535
            case .SS: range = -32768...32767
            case .UL: range = 0...4_294_967_295
            case .SL: range = -2_147_483_648...2_147_483_647
            default: range = nil
            }
            let number: Double
            switch value {
            case .int(let integer): number = Double(integer)
            case .uint(let integer): number = Double(integer)
            case .double(let real):
                guard range == nil || real.rounded() == real else { throw .validation("\(name) (VR \(vr)) takes an integer") }
                number = real
            default: throw .validation("\(name) (VR \(vr)) takes a number")
            }
            if let range, !range.contains(number) { throw .validation("\(name) (VR \(vr)) takes a number in \(range)") }
            return
        }
        guard case .string(let text) = value else { throw .validation("\(name) (VR \(vr)) takes a string") }
        if binaryVRs.contains(vr) {
            guard text.utf8.allSatisfy({ base64Byte($0) }) else { throw .validation("\(name) (VR \(vr)) takes base64 text") }
            return
        }
        if vr != .LT && vr != .ST && vr != .UT && text.contains("\\") {
            throw .validation("\(name) holds a backslash, the separator of values: give several values as an array")
        }
        let trimmed = text.trimmingSpaces
        func matches(_ allowed: (UInt8) -> Bool) -> Bool { trimmed.utf8.allSatisfy(allowed) }
        let digit = { (byte: UInt8) in (0x30...0x39).contains(byte) }
        let fits: Bool
        switch vr {
        case .AE: fits = text.utf8.count <= 16
        case .AS: fits = trimmed.isEmpty || (trimmed.utf8.count == 4 && trimmed.utf8.prefix(3).allSatisfy(digit) && "DWMY".utf8.contains(trimmed.utf8.last!))
        case .AT: fits = trimmed.utf8.count == 8 && trimmed.utf8.allSatisfy { hexDigit($0) }
        case .CS: fits = text.utf8.count <= 16 && matches { digit($0) || (0x41...0x5A).contains($0) || $0 == 0x20 || $0 == 0x5F }
        case .DA: fits = trimmed.isEmpty || (trimmed.utf8.count == 8 && matches(digit))
        case .DS: fits = text.utf8.count <= 16 && (trimmed.isEmpty || Double(trimmed) != nil)
        case .DT: fits = text.utf8.count <= 26 && matches { digit($0) || $0 == 0x2E || $0 == 0x2B || $0 == 0x2D }
        case .IS: fits = text.utf8.count <= 12 && (trimmed.isEmpty || Int32(trimmed) != nil)
        case .LO: fits = text.count <= 64
        case .LT: fits = text.count <= 10240
        case .PN: fits = text.split(separator: "=", omittingEmptySubsequences: false).count <= 3
            && text.split(separator: "=", omittingEmptySubsequences: false).allSatisfy { $0.count <= 64 }
        case .SH: fits = text.count <= 16
        case .ST: fits = text.count <= 1024
        case .TM: fits = text.utf8.count <= 16 && matches { digit($0) || $0 == 0x2E }
        case .UI: fits = text.utf8.count <= 64 && matches { digit($0) || $0 == 0x2E }
        default: fits = true
        }
        guard fits else { throw .validation("\(name) does not fit its VR \(vr): \"\(text.prefix(80))\"") }
    }

    private static func base64Byte(_ byte: UInt8) -> Bool {
        (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte) || (0x30...0x39).contains(byte) || byte == 0x2B
            || byte == 0x2F || byte == 0x3D
    }

    /// A private value is its creator's text or base64 bytes (the metadata document's form, spec §3.2).
    private static func checkPrivate(_ value: JSONValue, name: String) throws(IngestServiceError) {
        switch value {
        case .null, .string: return
        default: throw .validation("\(name) takes a string (a private creator, or base64 bytes)")
        }
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        String(repeating: "0", count: max(0, width - count)) + self
    }
}
