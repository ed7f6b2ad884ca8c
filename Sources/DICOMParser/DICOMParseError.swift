public import DICOMCore

/// A malformation the fast path cannot read past, with the byte offset and tag where it was found.
///
/// Codes are an open set of static members over a private enum, so adding one is not a breaking change.
public struct DICOMParseError: Error, Hashable, Sendable, CustomStringConvertible, LocatedDiagnostic {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case notDICOM = "NOT_DICOM"
            case truncated = "TRUNCATED"
            case invalidLength = "INVALID_LENGTH"
            case invalidVR = "INVALID_VR"
            case unexpectedTag = "UNEXPECTED_TAG"
            case missingTransferSyntax = "MISSING_TRANSFER_SYNTAX"
            case unsupportedTransferSyntax = "UNSUPPORTED_TRANSFER_SYNTAX"
            case deflateFailed = "DEFLATE_FAILED"
            case valueTooLong = "VALUE_TOO_LONG"
            case ioError = "IO_ERROR"
            case nestingTooDeep = "NESTING_TOO_DEEP"
            case limitExceeded = "LIMIT_EXCEEDED"
        }
        private var base: Base

        /// No `DICM` prefix at offset 128 and the bytes do not look like a raw data set either.
        public static var notDICOM: Self { Self(base: .notDICOM) }
        /// The input ends inside an element header or value.
        public static var truncated: Self { Self(base: .truncated) }
        /// A length overruns its enclosing item or sequence, or is otherwise impossible.
        public static var invalidLength: Self { Self(base: .invalidLength) }
        /// The two VR bytes of an explicit-VR element are not a VR of PS3.5 Table 6.2-1.
        public static var invalidVR: Self { Self(base: .invalidVR) }
        /// A tag that cannot appear here, e.g. a data element where a sequence expects an item.
        public static var unexpectedTag: Self { Self(base: .unexpectedTag) }
        /// The file meta group has no Transfer Syntax UID and the encoding cannot be inferred.
        public static var missingTransferSyntax: Self { Self(base: .missingTransferSyntax) }
        /// The transfer syntax cannot be parsed (e.g. a deflated stream that is not raw deflate).
        public static var unsupportedTransferSyntax: Self { Self(base: .unsupportedTransferSyntax) }
        /// The deflate stream of a Deflated Explicit VR Little Endian file is corrupt.
        public static var deflateFailed: Self { Self(base: .deflateFailed) }
        /// A value is longer than `ParseOptions.maxValueLength` allows to load.
        public static var valueTooLong: Self { Self(base: .valueTooLong) }
        /// Reading the input failed.
        public static var ioError: Self { Self(base: .ioError) }
        /// Sequences nest deeper than `ParseOptions.maxSequenceDepth`.
        public static var nestingTooDeep: Self { Self(base: .nestingTooDeep) }
        /// More elements, fragments or frames than `ParseOptions` allows.
        public static var limitExceeded: Self { Self(base: .limitExceeded) }

        /// Stable upper-case name, used in scan and import reports.
        public var description: String { base.rawValue }
    }

    public var code: Code
    /// Byte offset in the input where the problem was found (in the inflated stream for deflated files).
    public var offset: Int
    /// The element being read, when known.
    public var tag: DICOMTag?
    public var message: String

    public init(_ code: Code, offset: Int, tag: DICOMTag? = nil, message: String) {
        self.code = code
        self.offset = offset
        self.tag = tag
        self.message = message
    }

    public var description: String { "\(code): \(locatedMessage)" }
}

/// Something the fast path read past, and how it read it.
public struct P10Warning: Hashable, Sendable, CustomStringConvertible, LocatedDiagnostic {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public var rawValue: String
        public init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        public static let missingPreamble = Code("MISSING_PREAMBLE")
        public static let missingFileMeta = Code("MISSING_FILE_META")
        public static let groupLengthMismatch = Code("GROUP_LENGTH_MISMATCH")
        public static let missingGroupLength = Code("MISSING_GROUP_LENGTH")
        public static let implicitFileMeta = Code("IMPLICIT_FILE_META")
        public static let encodingMismatch = Code("ENCODING_MISMATCH")
        public static let unknownTransferSyntax = Code("UNKNOWN_TRANSFER_SYNTAX")
        public static let oddLength = Code("ODD_LENGTH")
        public static let outOfOrderTag = Code("OUT_OF_ORDER_TAG")
        public static let duplicateTag = Code("DUPLICATE_TAG")
        public static let unterminatedSequence = Code("UNTERMINATED_SEQUENCE")
        public static let trailingPadding = Code("TRAILING_BYTES")
    }

    public var code: Code
    public var offset: Int
    public var tag: DICOMTag?
    public var message: String

    public init(_ code: Code, offset: Int, tag: DICOMTag? = nil, message: String) {
        self.code = code
        self.offset = offset
        self.tag = tag
        self.message = message
    }

    public var description: String { "\(code): \(locatedMessage)" }
}

/// A parse finding tied to a byte offset and, when known, a tag.
public protocol LocatedDiagnostic {
    var message: String { get }
    var offset: Int { get }
    var tag: DICOMTag? { get }
}

extension LocatedDiagnostic {
    /// `message at offset N in (GGGG,EEEE)`: the form reports use, so a user can find the byte.
    public var locatedMessage: String {
        var text = "\(message) at offset \(offset)"
        if let tag { text += " in \(tag)" }
        return text
    }
}
