import Glibc

/// Decodes text values according to Specific Character Set (0008,0005) (PS3.3 §C.12.1.1.2, PS3.5 §6.1).
///
/// Fast paths for the common cases (the default repertoire, ISO_IR 100 and ISO_IR 192) run natively; other
/// single-byte and multi-byte repertoires go through glibc's iconv. ISO 2022 code extensions (PS3.5 §6.1.2.5) are
/// handled here, on top of iconv: a value is split at each ESC, each piece is decoded with the repertoire its
/// escape sequence designates, and the delimiters of the VR (`^` and `=` in PN; CR, LF, TAB, FF in text) switch
/// back to the first repertoire. The rules follow pydicom's `decode_bytes`, including its choice of Latin-1 for
/// the default repertoire, so results match pydicom on its character-set test files.
public struct SpecificCharacterSet: Hashable, Sendable {
    /// An encoding as iconv names it, or one of the native fast paths.
    enum Encoding: Hashable, Sendable {
        case latin1
        case utf8
        case iconv(String)
        /// iconv decodes the escape sequence itself (ISO-2022-JP family), so the fragment keeps it.
        case iconvKeepingEscape(String)
    }

    /// The defined terms as found in the file (empty for the default repertoire).
    public let terms: [String]
    let encodings: [Encoding]

    /// The default repertoire (ISO-IR 6), decoded as Latin-1 like pydicom.
    public static let `default` = SpecificCharacterSet(terms: [])

    public init(terms: [String]) {
        self.terms = terms
        var encodings = terms.map { Self.encoding(forTerm: $0) ?? .latin1 }
        if encodings.isEmpty { encodings = [.latin1] }
        self.encodings = encodings
    }

    /// True when values need no code-extension handling and decode with one native step.
    var isNativeSingleStep: Bool {
        encodings.count == 1 && (encodings[0] == .latin1 || encodings[0] == .utf8)
    }

    /// Maps a defined term to an encoding; tolerates the common misspellings pydicom corrects
    /// (`ISO_IR100`, `ISO-IR 100`, `ISO IR 100`).
    static func encoding(forTerm rawTerm: String) -> Encoding? {
        let term = normalized(rawTerm)
        switch term {
        case "", "ISO_IR 6", "ISO 2022 IR 6", "ISO_IR 100", "ISO 2022 IR 100": return .latin1
        case "ISO_IR 192": return .utf8
        case "ISO_IR 13", "ISO 2022 IR 13": return .iconv("SHIFT_JIS")
        case "ISO_IR 101", "ISO 2022 IR 101": return .iconv("ISO-8859-2")
        case "ISO_IR 109", "ISO 2022 IR 109": return .iconv("ISO-8859-3")
        case "ISO_IR 110", "ISO 2022 IR 110": return .iconv("ISO-8859-4")
        case "ISO_IR 144", "ISO 2022 IR 144": return .iconv("ISO-8859-5")
        case "ISO_IR 127", "ISO 2022 IR 127": return .iconv("ISO-8859-6")
        case "ISO_IR 126", "ISO 2022 IR 126": return .iconv("ISO-8859-7")
        case "ISO_IR 138", "ISO 2022 IR 138": return .iconv("ISO-8859-8")
        case "ISO_IR 148", "ISO 2022 IR 148": return .iconv("ISO-8859-9")
        case "ISO_IR 203", "ISO 2022 IR 203": return .iconv("ISO-8859-15")
        case "ISO_IR 166", "ISO 2022 IR 166": return .iconv("TIS-620")
        case "ISO 2022 IR 87": return .iconvKeepingEscape("ISO-2022-JP")
        case "ISO 2022 IR 159": return .iconvKeepingEscape("ISO-2022-JP-2")
        case "ISO 2022 IR 149": return .iconv("EUC-KR")
        case "ISO 2022 IR 58", "ISO 2022 58": return .iconv("GB2312")
        case "GB18030": return .iconv("GB18030")
        case "GBK", "ISO 2022 GBK": return .iconv("GBK")
        default: return nil
        }
    }

    private static func normalized(_ term: String) -> String {
        var text = term.trimmingSpaces
        if text.hasPrefix("ISO-IR ") || text.hasPrefix("ISO IR ") {
            text = "ISO_IR " + text.dropFirst(7)
        } else if text.hasPrefix("ISO_IR"), !text.hasPrefix("ISO_IR "), text.count > 6 {
            text = "ISO_IR " + text.dropFirst(6)
        }
        return text
    }

    /// Escape sequences of PS3.3 Tables C.12-3 and C.12-4 and the encodings they designate.
    private static let escapeSequences: [([UInt8], Encoding)] = [
        ([0x1B, 0x28, 0x42], .latin1),  // ESC ( B: ISO-IR 6
        ([0x1B, 0x2D, 0x41], .latin1),  // ESC - A: ISO-IR 100
        ([0x1B, 0x29, 0x49], .iconv("SHIFT_JIS")),  // ESC ) I: ISO-IR 13 katakana
        ([0x1B, 0x28, 0x4A], .iconv("SHIFT_JIS")),  // ESC ( J: ISO-IR 14 romaji
        ([0x1B, 0x24, 0x42], .iconvKeepingEscape("ISO-2022-JP")),  // ESC $ B: ISO-IR 87
        ([0x1B, 0x2D, 0x42], .iconv("ISO-8859-2")),
        ([0x1B, 0x2D, 0x43], .iconv("ISO-8859-3")),
        ([0x1B, 0x2D, 0x44], .iconv("ISO-8859-4")),
        ([0x1B, 0x2D, 0x46], .iconv("ISO-8859-7")),
        ([0x1B, 0x2D, 0x47], .iconv("ISO-8859-6")),
        ([0x1B, 0x2D, 0x48], .iconv("ISO-8859-8")),
        ([0x1B, 0x2D, 0x4C], .iconv("ISO-8859-5")),
        ([0x1B, 0x2D, 0x4D], .iconv("ISO-8859-9")),
        ([0x1B, 0x2D, 0x54], .iconv("TIS-620")),
        ([0x1B, 0x24, 0x29, 0x43], .iconv("EUC-KR")),  // ESC $ ) C: ISO-IR 149
        ([0x1B, 0x24, 0x28, 0x44], .iconvKeepingEscape("ISO-2022-JP-2")),  // ESC $ ( D: ISO-IR 159
        ([0x1B, 0x24, 0x29, 0x41], .iconv("GB2312")),  // ESC $ ) A: ISO-IR 58
    ]

    static let personNameDelimiters: Set<UInt8> = [0x5E]
    static let textDelimiters: Set<UInt8> = [0x0D, 0x0A, 0x09, 0x0C]

    /// Decodes one value (already split at backslashes where the VR is multi-valued).
    /// PN values are decoded per component group (`=`), the others as text.
    public func decode(_ bytes: ArraySlice<UInt8>, isPersonName: Bool) -> String {
        if isNativeSingleStep || !bytes.contains(0x1B) && encodings.count == 1 {
            return Self.decode(bytes, with: encodings[0])
        }
        if isPersonName {
            return bytes.split(separator: 0x3D, omittingEmptySubsequences: false)
                .map { decodeWithExtensions($0, delimiters: Self.personNameDelimiters) }
                .joined(separator: "=")
        }
        return decodeWithExtensions(bytes, delimiters: Self.textDelimiters)
    }

    private func decodeWithExtensions(_ bytes: ArraySlice<UInt8>, delimiters: Set<UInt8>) -> String {
        guard let firstEscape = bytes.firstIndex(of: 0x1B) else {
            return Self.decode(bytes, with: encodings[0])
        }
        var result = Self.decode(bytes[bytes.startIndex..<firstEscape], with: encodings[0])
        var start = firstEscape
        while start < bytes.endIndex {
            let next = bytes[(start + 1)...].firstIndex(of: 0x1B) ?? bytes.endIndex
            result += decodeEscapedFragment(bytes[start..<next], delimiters: delimiters)
            start = next
        }
        return result
    }

    private func decodeEscapedFragment(_ fragment: ArraySlice<UInt8>, delimiters: Set<UInt8>) -> String {
        let isFourByte =
            fragment.count >= 4 && fragment[fragment.startIndex + 1] == 0x24
            && (fragment[fragment.startIndex + 2] == 0x28 || fragment[fragment.startIndex + 2] == 0x29)
        let sequenceLength = isFourByte ? 4 : 3
        let sequence = Array(fragment.prefix(sequenceLength))
        guard let designated = Self.escapeSequences.first(where: { $0.0 == sequence })?.1,
            encodings.contains(designated) || designated == .latin1
        else {
            return Self.decode(fragment, with: encodings[0])
        }
        if case .iconvKeepingEscape = designated {
            return Self.decode(fragment, with: designated)
        }
        let body = fragment.dropFirst(sequenceLength)
        if let delimiter = body.firstIndex(where: { delimiters.contains($0) }) {
            return Self.decode(body[body.startIndex..<delimiter], with: designated)
                + Self.decode(body[delimiter...], with: encodings[0])
        }
        return Self.decode(body, with: designated)
    }

    static func decode(_ bytes: ArraySlice<UInt8>, with encoding: Encoding) -> String {
        switch encoding {
        case .latin1:
            if bytes.allSatisfy({ $0 < 0x80 }) {
                return String(decoding: bytes, as: UTF8.self)
            }
            var scalars = String.UnicodeScalarView()
            for byte in bytes { scalars.append(Unicode.Scalar(byte)) }
            return String(scalars)
        case .utf8:
            return String(decoding: bytes, as: UTF8.self)
        case .iconv(let name), .iconvKeepingEscape(let name):
            return Iconv.decode(bytes, from: name)
        }
    }
}

/// glibc iconv to UTF-8, replacing undecodable bytes with U+FFFD (as Python's `errors="replace"` does).
enum Iconv {
    static func decode(_ bytes: ArraySlice<UInt8>, from encoding: String) -> String {
        guard !bytes.isEmpty else { return "" }
        let descriptor = iconv_open("UTF-8", encoding)
        guard let descriptor, Int(bitPattern: descriptor) != -1 else {
            return SpecificCharacterSet.decode(bytes, with: .latin1)
        }
        defer { iconv_close(descriptor) }
        var input = Array(bytes)
        var output = [UInt8](repeating: 0, count: input.count * 4 + 16)
        var produced = 0
        input.withUnsafeMutableBytes { inputBuffer in
            output.withUnsafeMutableBytes { outputBuffer in
                var inPointer = inputBuffer.baseAddress!.assumingMemoryBound(to: CChar.self) as UnsafeMutablePointer<CChar>?
                var inLeft = inputBuffer.count
                var outPointer = outputBuffer.baseAddress!.assumingMemoryBound(to: CChar.self) as UnsafeMutablePointer<CChar>?
                var outLeft = outputBuffer.count
                while inLeft > 0 {
                    let result = iconv(descriptor, &inPointer, &inLeft, &outPointer, &outLeft)
                    if result != -1 { break }
                    if errno == E2BIG { break }
                    // EILSEQ or EINVAL: emit U+FFFD and skip one byte.
                    guard outLeft >= 3 else { break }
                    for byte in [UInt8(0xEF), 0xBF, 0xBD] {
                        outPointer!.pointee = CChar(bitPattern: byte)
                        outPointer! += 1
                    }
                    outLeft -= 3
                    inPointer! += 1
                    inLeft -= 1
                }
                _ = iconv(descriptor, nil, nil, &outPointer, &outLeft)
                produced = outputBuffer.count - outLeft
            }
        }
        return String(decoding: output.prefix(produced), as: UTF8.self)
    }
}

extension StringProtocol {
    /// The text without leading and trailing spaces (DICOM pads with 0x20).
    var trimmingSpaces: String {
        let text = String(self)
        guard let first = text.firstIndex(where: { $0 != " " }) else { return "" }
        let last = text.lastIndex(where: { $0 != " " })!
        return String(text[first...last])
    }
}
