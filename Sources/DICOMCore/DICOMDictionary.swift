/// The standard data dictionary (PS3.6 Table 6-1): keyword, VR and VM of every public attribute.
///
/// Generated from DCMTK's `dicom.dic` (see `tools/generate-dictionary.py`) and parsed once, on first use,
/// into a hash table. Repeating groups (50xx, 60xx, 7Fxx) and element ranges are kept in a short list
/// that is consulted only when the exact lookup misses.
public enum DICOMDictionary {
    /// Value Multiplicity (PS3.5 §6.4): how many values an attribute may hold.
    public struct Multiplicity: Hashable, Sendable {
        public var minimum: Int
        /// `nil` when unbounded ("1-n", "2-2n").
        public var maximum: Int?

        public init(minimum: Int, maximum: Int?) {
            self.minimum = minimum
            self.maximum = maximum
        }

        /// True when the attribute may hold more than one value, which makes the metadata document
        /// render it as a JSON array even when a file carries one value (spec §3.2).
        public var allowsMultipleValues: Bool { maximum.map { $0 > 1 } ?? true }

        init(parsing text: Substring) {
            let parts = text.split(separator: "-", maxSplits: 1)
            let minimum = Int(parts[0]) ?? 1
            self.minimum = minimum
            if parts.count == 1 {
                self.maximum = minimum
            } else {
                self.maximum = Int(parts[1])
            }
        }
    }

    public struct Entry: Hashable, Sendable {
        public var tag: DICOMTag
        public var keyword: String
        /// The VR used when a data set is implicit VR. DCMTK's ambiguous pseudo VRs are resolved the way
        /// DCMTK resolves them without context: US-or-SS → US, OB-or-OW → OW, lookup tables → OW.
        public var vr: VR
        /// The VR is one of several allowed (US or SS, OB or OW); an explicit VR in the file wins.
        public var isAmbiguousVR: Bool
        public var multiplicity: Multiplicity
    }

    private struct RangeEntry: Sendable {
        var groupRange: ClosedRange<UInt16>
        var elementRange: ClosedRange<UInt16>
        var entry: Entry
    }

    /// Built once, then read-only; a class so lookups do not copy (and retain) three collections per call.
    private final class Tables: Sendable {
        let exact: [UInt32: Entry]
        let ranges: [RangeEntry]
        let byKeyword: [String: DICOMTag]

        init(exact: [UInt32: Entry], ranges: [RangeEntry], byKeyword: [String: DICOMTag]) {
            self.exact = exact
            self.ranges = ranges
            self.byKeyword = byKeyword
        }
    }

    /// Parses `standardData` byte by byte (about 1 ms for 5,000 rows; `split` on Substrings took ten times that,
    /// paid by every short-lived CLI run).
    private static let tables: Tables = {
        var exact: [UInt32: Entry] = [:]
        var ranges: [RangeEntry] = []
        var byKeyword: [String: DICOMTag] = [:]
        exact.reserveCapacity(5_000)
        byKeyword.reserveCapacity(5_000)
        var text = standardData
        text.withUTF8 { bytes in
            var fields: [Range<Int>] = []
            fields.reserveCapacity(7)
            var fieldStart = 0
            for index in 0...bytes.count {
                let byte: UInt8 = index < bytes.count ? bytes[index] : 0x0A
                if byte == 0x09 || byte == 0x0A {
                    fields.append(fieldStart..<index)
                    fieldStart = index + 1
                }
                guard byte == 0x0A else { continue }
                defer { fields.removeAll(keepingCapacity: true) }
                guard fields.count == 7 else { continue }
                func hex(_ range: Range<Int>) -> UInt16 {
                    var value: UInt16 = 0
                    for position in range {
                        let digit = bytes[position]
                        value = value << 4 | UInt16(digit <= 0x39 ? digit - 0x30 : (digit | 0x20) - 0x57)
                    }
                    return value
                }
                func text(_ range: Range<Int>) -> Substring {
                    Substring(decoding: UnsafeBufferPointer(rebasing: bytes[range]), as: UTF8.self)
                }
                let groupFrom = hex(fields[0]), groupTo = hex(fields[1])
                let elementFrom = hex(fields[2]), elementTo = hex(fields[3])
                let (vr, ambiguous) = resolve(pseudoVR: text(fields[4]))
                let tag = DICOMTag(group: groupFrom, element: elementFrom)
                let entry = Entry(
                    tag: tag, keyword: String(text(fields[6])), vr: vr, isAmbiguousVR: ambiguous,
                    multiplicity: Multiplicity(parsing: text(fields[5])))
                if groupFrom == groupTo && elementFrom == elementTo {
                    exact[tag.rawValue] = entry
                } else {
                    ranges.append(
                        RangeEntry(groupRange: groupFrom...groupTo, elementRange: elementFrom...elementTo, entry: entry))
                }
                if byKeyword[entry.keyword] == nil {
                    byKeyword[entry.keyword] = tag
                }
            }
        }
        return Tables(exact: exact, ranges: ranges, byKeyword: byKeyword)
    }()

    private static func resolve(pseudoVR: Substring) -> (VR, Bool) {
        switch pseudoVR {
        case "xs": return (.US, true)
        case "ox", "px": return (.OW, true)
        case "lt": return (.OW, true)
        case "up": return (.UL, false)
        case "na": return (.UN, false)
        default: return (VR(pseudoVR) ?? .UN, false)
        }
    }

    /// Looks up a public attribute; private attributes and unknown tags return `nil`.
    public static func entry(for tag: DICOMTag) -> Entry? {
        let tables = self.tables
        if let entry = tables.exact[tag.rawValue] {
            return entry
        }
        // Repeating groups (PS3.5 §7.6) use even groups only.
        for range in tables.ranges
        where range.groupRange.contains(tag.group) && range.elementRange.contains(tag.element)
            && (range.groupRange.count == 1 || tag.group & 1 == 0)
        {
            var entry = range.entry
            entry.tag = tag
            return entry
        }
        return nil
    }

    /// The tag of a standard keyword (`"PatientName"` → (0010,0010)).
    public static func tag(forKeyword keyword: String) -> DICOMTag? {
        tables.byKeyword[keyword]
    }

    /// The VR to use for `tag` in an implicit-VR data set (PS3.5 §7.1.3): the dictionary's, else UL for
    /// group lengths, LO for private creators, UN for everything else.
    public static func implicitVR(for tag: DICOMTag) -> VR {
        if tag.isGroupLength { return .UL }
        if tag.isPrivateCreator { return .LO }
        if tag.isPrivate { return .UN }
        return entry(for: tag)?.vr ?? .UN
    }
}
