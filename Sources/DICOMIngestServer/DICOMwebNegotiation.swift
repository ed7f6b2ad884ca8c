import DICOMIngestModel

/// One media range of an `Accept` header (RFC 9110 §12.5.1) with the parameters DICOMweb gives it (PS3.18 §8.7:
/// `type` of a multipart body, `transfer-syntax`), values quoted or not.
struct MediaRange: Hashable, Sendable {
    /// Lower-cased `type/subtype`.
    var mediaType: String
    /// Lower-cased names; values as sent, unquoted.
    var parameters: [String: String]
    var quality: Double

    /// The most ranges an `Accept` header may hold, and the longest header read.
    static let maximumRanges = 32
    static let maximumHeaderBytes = 4096

    /// The ranges of an `Accept` header, best first (a missing header accepts anything); bad request for a header
    /// past the limits or a range that is not `type/subtype`.
    static func parse(_ header: String?) throws -> [MediaRange] {
        guard let header, !header.allSatisfy({ $0 == " " || $0 == "\t" }) else {
            return [MediaRange(mediaType: "*/*", parameters: [:], quality: 1)]
        }
        guard header.utf8.count <= maximumHeaderBytes else {
            throw IngestServiceError.validation("The Accept header is longer than \(maximumHeaderBytes) bytes")
        }
        let pieces = split(header, at: ",")
        guard pieces.count <= maximumRanges else {
            throw IngestServiceError.validation("The Accept header names more than \(maximumRanges) media ranges")
        }
        var ranges: [MediaRange] = []
        for piece in pieces {
            let fields = split(piece, at: ";")
            let mediaType = fields[0].trimmed.lowercased()
            let parts = mediaType.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 2, parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(isTokenCharacter) }) else {
                throw IngestServiceError.validation("The Accept header's media range \"\(String(piece.prefix(100)))\" is not type/subtype")
            }
            var parameters: [String: String] = [:]
            var quality = 1.0
            for field in fields.dropFirst() {
                guard let equals = field.firstIndex(of: "=") else { continue }
                let name = field[..<equals].trimmed.lowercased()
                var value = field[field.index(after: equals)...].trimmed
                if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") { value = String(value.dropFirst().dropLast()) }
                if name == "q" {
                    guard let number = Double(value), (0...1).contains(number) else {
                        throw IngestServiceError.validation("The Accept header's q=\(String(value.prefix(20))) is not a number from 0 to 1")
                    }
                    quality = number
                } else {
                    parameters[name] = value
                }
            }
            ranges.append(MediaRange(mediaType: mediaType, parameters: parameters, quality: quality))
        }
        // Stable: of equal quality, the order the client wrote wins.
        return ranges.enumerated().sorted { ($0.element.quality, -$0.offset) > ($1.element.quality, -$1.offset) }.map(\.element)
    }

    /// `text` split at `separator` outside double quotes.
    private static func split(_ text: some StringProtocol, at separator: Character) -> [Substring] {
        let text = Substring(text)
        var pieces: [Substring] = []
        var start = text.startIndex
        var quoted = false
        var index = text.startIndex
        while index < text.endIndex {
            let character = text[index]
            if character == "\"" { quoted.toggle() }
            if character == separator && !quoted {
                pieces.append(text[start..<index])
                start = text.index(after: index)
            }
            index = text.index(after: index)
        }
        pieces.append(text[start...])
        return pieces
    }

    private static func isTokenCharacter(_ character: Character) -> Bool {
        character.isASCII && (character.isLetter || character.isNumber || "!#$&^_.+-*".contains(character))
    }
}

extension StringProtocol {
    fileprivate var trimmed: String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}

/// How WADO-RS answers a frame request (PS3.18 §8.7.3, `../shared/spec/dicomweb.md` §2).
enum FrameAnswer: Hashable, Sendable {
    /// Explicit VR Little Endian samples, decoded from what is stored.
    case native
    /// The stored bytes, in the syntax they are stored in.
    case stored

    static let explicitVRLittleEndian = "1.2.840.10008.1.2.1"

    /// The first range of `ranges` that can be served for frames stored as `storedUID` (`canServeNative`: whether
    /// they decode to native samples): `application/octet-stream` without a syntax or with ELE is native (as
    /// stored when it cannot be, as HealthImaging answers instances kept as they came), `*` is as stored, and a
    /// media type or syntax is served only where it is the stored one. Not acceptable otherwise.
    static func negotiate(_ ranges: [MediaRange], storedUID: String, canServeNative: Bool) throws -> FrameAnswer {
        let storedType = DICOMwebMediaType.frame(storedUID)
        for range in ranges where range.quality > 0 {
            var inner = range.mediaType
            if inner == "multipart/related" || inner == "multipart/*" {
                inner = range.parameters["type"]?.lowercased() ?? "application/octet-stream"
            }
            let syntax = range.parameters["transfer-syntax"]
            switch inner {
            case "*/*", "application/octet-stream":
                switch syntax {
                case nil: return canServeNative ? .native : .stored
                case "*": return .stored
                case explicitVRLittleEndian? where canServeNative: return .native
                case storedUID? where storedType == "application/octet-stream": return .stored
                default: continue
                }
            case storedType where syntax == nil || syntax == "*" || syntax == storedUID:
                return .stored
            default:
                continue
            }
        }
        let asked = ranges.map { range in
            ([range.mediaType] + range.parameters.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }).joined(separator: "; ")
        }
        throw IngestServiceError(
            .notAcceptableException,
            "None of the media types accepted (\(asked.joined(separator: ", ").prefix(300))) can be served for frames stored as \(storedUID); accept transfer-syntax=* for them as stored")
    }
}

/// How WADO-RS answers an instance request: the syntax of the P10 file, and whether it comes as one
/// `application/dicom` body or as a part of `multipart/related` (each as asked: HealthImaging's examples ask the
/// first, dicomweb-client the second).
struct InstanceAnswer: Hashable, Sendable {
    var frames: FrameAnswer
    var multipart: Bool

    /// The first range that can be served: `application/dicom` (alone or as the `type` of a multipart body) with
    /// no syntax or ELE is ELE (as stored when the frames cannot be decoded), `*` or the stored syntax is as stored.
    static func negotiate(_ ranges: [MediaRange], storedUID: String, canServeNative: Bool) throws -> InstanceAnswer {
        for range in ranges where range.quality > 0 {
            var multipart = false
            var inner = range.mediaType
            if inner == "multipart/related" || inner == "multipart/*" {
                multipart = true
                inner = range.parameters["type"]?.lowercased() ?? "application/dicom"
            }
            guard inner == "application/dicom" || inner == "*/*" else { continue }
            switch range.parameters["transfer-syntax"] {
            case nil: return InstanceAnswer(frames: canServeNative ? .native : .stored, multipart: multipart)
            case "*": return InstanceAnswer(frames: .stored, multipart: multipart)
            case FrameAnswer.explicitVRLittleEndian? where canServeNative: return InstanceAnswer(frames: .native, multipart: multipart)
            case storedUID?: return InstanceAnswer(frames: .stored, multipart: multipart)
            default: continue
            }
        }
        throw IngestServiceError(
            .notAcceptableException,
            "No media type accepted can be served for an instance stored as \(storedUID); accept application/dicom with transfer-syntax=* for it as stored")
    }
}

/// DICOMweb's media types by transfer syntax (PS3.18 Table 8.7.3-5).
enum DICOMwebMediaType {
    static func frame(_ uid: String) -> String {
        switch uid {
        case "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.2":
            return "application/octet-stream"
        case "1.2.840.10008.1.2.5": return "image/dicom-rle"
        case "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70":
            return "image/jpeg"
        case "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81": return "image/jls"
        case "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91": return "image/jp2"
        case "1.2.840.10008.1.2.4.92", "1.2.840.10008.1.2.4.93": return "image/jpx"
        case "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203": return "image/jphc"
        case "1.2.840.10008.1.2.4.110", "1.2.840.10008.1.2.4.111", "1.2.840.10008.1.2.4.112": return "image/jxl"
        case "1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.4.100.1", "1.2.840.10008.1.2.4.101", "1.2.840.10008.1.2.4.101.1":
            return "video/mpeg"
        default:
            if uid.hasPrefix("1.2.840.10008.1.2.4.10") { return "video/mp4" }
            return "application/octet-stream"
        }
    }
}
