/// A DICOM Value Representation (PS3.5 §6.2), stored as its two ASCII characters.
public struct VR: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The two characters packed big-endian: `"OB"` is `0x4F42`.
    public var rawValue: UInt16

    @inlinable
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// Builds a VR from the two bytes as they appear in an explicit-VR element header,
    /// or returns `nil` when they are not one of the VRs defined in PS3.5 Table 6.2-1.
    @inlinable
    public init?(byte0: UInt8, byte1: UInt8) {
        let candidate = VR(rawValue: UInt16(byte0) << 8 | UInt16(byte1))
        guard candidate.isKnown else { return nil }
        self = candidate
    }

    public init?(_ text: some StringProtocol) {
        let bytes = Array(text.utf8)
        guard bytes.count == 2 else { return nil }
        self.init(byte0: bytes[0], byte1: bytes[1])
    }

    public var description: String {
        String(decoding: [UInt8(rawValue >> 8), UInt8(rawValue & 0xFF)], as: UTF8.self)
    }

    @usableFromInline
    static func code(_ text: StaticString) -> VR {
        let pointer = text.utf8Start
        return VR(rawValue: UInt16(pointer[0]) << 8 | UInt16(pointer[1]))
    }

    public static let AE = code("AE"), AS = code("AS"), AT = code("AT"), CS = code("CS"), DA = code("DA")
    public static let DS = code("DS"), DT = code("DT"), FD = code("FD"), FL = code("FL"), IS = code("IS")
    public static let LO = code("LO"), LT = code("LT"), OB = code("OB"), OD = code("OD"), OF = code("OF")
    public static let OL = code("OL"), OV = code("OV"), OW = code("OW"), PN = code("PN"), SH = code("SH")
    public static let SL = code("SL"), SQ = code("SQ"), SS = code("SS"), ST = code("ST"), SV = code("SV")
    public static let TM = code("TM"), UC = code("UC"), UI = code("UI"), UL = code("UL"), UN = code("UN")
    public static let UR = code("UR"), US = code("US"), UT = code("UT"), UV = code("UV")

    /// All VRs of PS3.5 Table 6.2-1, sorted by raw value.
    public static let all: [VR] = [
        .AE, .AS, .AT, .CS, .DA, .DS, .DT, .FD, .FL, .IS, .LO, .LT, .OB, .OD, .OF, .OL, .OV, .OW, .PN, .SH,
        .SL, .SQ, .SS, .ST, .SV, .TM, .UC, .UI, .UL, .UN, .UR, .US, .UT, .UV,
    ].sorted { $0.rawValue < $1.rawValue }

    @inlinable
    public var isKnown: Bool {
        switch self {
        case .AE, .AS, .AT, .CS, .DA, .DS, .DT, .FD, .FL, .IS, .LO, .LT, .OB, .OD, .OF, .OL, .OV, .OW, .PN, .SH,
            .SL, .SQ, .SS, .ST, .SV, .TM, .UC, .UI, .UL, .UN, .UR, .US, .UT, .UV:
            return true
        default:
            return false
        }
    }

    /// VRs whose explicit-VR header has two reserved bytes and a 32-bit length (PS3.5 §7.1.2, Table 7.1-1).
    @inlinable
    public var hasLongExplicitLength: Bool {
        switch self {
        case .OB, .OD, .OF, .OL, .OV, .OW, .SQ, .UC, .UN, .UR, .UT, .SV, .UV: return true
        default: return false
        }
    }

    /// Character-string VRs, whose values are text in the data set's character repertoire.
    @inlinable
    public var isString: Bool {
        switch self {
        case .AE, .AS, .CS, .DA, .DS, .DT, .IS, .LO, .LT, .PN, .SH, .ST, .TM, .UC, .UI, .UR, .UT: return true
        default: return false
        }
    }

    /// String VRs whose characters may come from Specific Character Set (PS3.5 §6.1.2.3); the others are
    /// restricted to the default repertoire.
    @inlinable
    public var usesSpecificCharacterSet: Bool {
        switch self {
        case .LO, .LT, .PN, .SH, .ST, .UC, .UT: return true
        default: return false
        }
    }

    /// Text VRs that hold a single value: a backslash in them is a character, not a value separator
    /// (PS3.5 §6.4).
    @inlinable
    public var isSingleValuedText: Bool {
        switch self {
        case .LT, .ST, .UT, .UR: return true
        default: return false
        }
    }

    /// Binary VRs whose value is a byte or word stream rather than a list of numbers.
    @inlinable
    public var isBulkBinary: Bool {
        switch self {
        case .OB, .OD, .OF, .OL, .OV, .OW, .UN: return true
        default: return false
        }
    }

    /// Size of one binary number for the numeric VRs, `nil` for the others.
    @inlinable
    public var numericWidth: Int? {
        switch self {
        case .US, .SS: return 2
        case .UL, .SL, .FL, .AT: return 4
        case .FD, .SV, .UV: return 8
        default: return nil
        }
    }

    /// Word size used when a value must be byte-swapped between little and big endian.
    @inlinable
    public var swapUnit: Int {
        switch self {
        case .US, .SS, .OW, .AT: return 2
        case .UL, .SL, .FL, .OF, .OL: return 4
        case .FD, .OD, .SV, .UV, .OV: return 8
        default: return 1
        }
    }
}
