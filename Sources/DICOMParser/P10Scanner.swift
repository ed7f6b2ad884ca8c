public import DICOMCore

/// A pull tokenizer over a DICOM P10 file (PS3.10 §7) or a raw data set.
///
/// Reads the preamble and `DICM` prefix, the file meta group (explicit VR little endian, PS3.10 §7.1), then the
/// data set in the encoding its transfer syntax names: implicit VR LE, explicit VR LE or BE, deflated explicit VR
/// LE. Sequences and items of defined or undefined length nest up to `ParseOptions.maxSequenceDepth`; UN of
/// undefined length is read as an
/// implicit VR LE sequence (CP-246); encapsulated pixel data yields its fragments (PS3.5 §A.4).
///
/// The scanner reads through a bounded window (`P10ReadBuffer`) and skips values it is not asked for, so a header
/// scan of a 2 GB file reads a few kilobytes. It allocates nothing per element; values stay raw until a consumer
/// asks for their bytes.
public struct P10Scanner {
    private enum Phase {
        case start
        case meta
        case dataset
        case finished
    }

    private enum ContainerKind {
        case sequence
        case item
        case pixelSequence
    }

    private struct Container {
        var kind: ContainerKind
        /// Absolute end offset for defined lengths.
        var end: Int?
        /// Contents are implicit VR little endian whatever the data set says (CP-246).
        var forcesImplicitLittleEndian: Bool
        var tag: DICOMTag
        /// Last element tag seen in this item, for order checks (PS3.5 §7.1).
        var lastTag: UInt32 = 0
    }

    public let options: ParseOptions
    private var input: any P10ByteInput
    private let buffer: P10ReadBuffer
    /// The buffer's memory, held here so the hot path reads plain struct fields (no class access checks).
    private var window: UnsafeMutableRawBufferPointer
    /// The input bytes `[windowStart, windowStart + windowCount)` are in `window`.
    private var windowStart = 0
    private var windowCount = 0
    private var offset = 0
    private var phase = Phase.start
    private var stack: [Container] = []
    private var rootLastTag: UInt32 = 0
    private var explicitVR = true
    private var bigEndian = false
    private var metaGroupLengthEnd: Int?
    /// Size of the next window refill: starts small, doubles up to the window's capacity.
    private var readSize: Int
    /// The last read skipped a stray delimiter and produced no token.
    private var skippedStrayDelimiter = false
    /// Elements and items, and fragments, read so far (bounded by `options`).
    private var elementCount = 0
    private var fragmentCount = 0

    /// What the preamble and file meta group said.
    public private(set) var fileMeta = FileMetaSummary()
    /// The encoding the data set is read with; `nil` until the file meta group has been read.
    public private(set) var transferSyntax: TransferSyntax?
    /// The data set was inflated from a deflate stream; offsets after `fileMeta.datasetOffset` refer to it.
    public private(set) var isInflated = false
    /// Up to `options.maxWarnings` things read past.
    public private(set) var warnings: [P10Warning] = []
    /// All warnings, including those not stored.
    public private(set) var warningCount = 0

    /// Creates a scanner over `input`, reading through `buffer` (reused across files by its owner).
    public init(input: any P10ByteInput, buffer: P10ReadBuffer, options: ParseOptions = ParseOptions()) {
        self.input = input
        self.buffer = buffer
        self.options = options
        self.readSize = max(16, options.initialReadSize)
        if buffer.capacity != options.readChunkSize {
            // Back to the usual size, whatever the last file's largest value was.
            buffer.grow(to: options.readChunkSize)
        }
        self.window = buffer.storage
    }

    /// Size of the input being tokenized (the inflated size for deflated data sets).
    public var inputLength: Int { input.length }

    /// The data set's byte order as actually read (detection may override the declared transfer syntax).
    public var isBigEndian: Bool { bigEndian }

    /// The input that token offsets refer to: the one given, or the inflated data set of a deflated file.
    public var currentInput: any P10ByteInput { input }

    /// Nesting depth: 0 at the top level of the data set.
    public var depth: Int { stack.count }

    // MARK: - Tokens

    /// Returns the next token, or `nil` at the end of the data set (or at Pixel Data when
    /// `options.stopBeforePixelData` is set).
    public mutating func next() throws(DICOMParseError) -> P10Token? {
        // Stray delimiters are skipped by this loop, not by recursion: a file may hold millions of them.
        while true {
            let token = try readNext()
            if skippedStrayDelimiter {
                skippedStrayDelimiter = false
                continue
            }
            switch token {
            case .element, .sequenceStart, .itemStart:
                elementCount += 1
                guard elementCount <= options.maxDataElements else {
                    throw DICOMParseError(
                        .limitExceeded, offset: offset, tag: stack.last?.tag,
                        message: "more than \(options.maxDataElements) data elements and items")
                }
            case .fragment:
                fragmentCount += 1
                guard fragmentCount <= options.maxFragments else {
                    throw DICOMParseError(
                        .limitExceeded, offset: offset, tag: .pixelData,
                        message: "more than \(options.maxFragments) Pixel Data fragments")
                }
            default:
                break
            }
            return token
        }
    }

    private mutating func readNext() throws(DICOMParseError) -> P10Token? {
        switch phase {
        case .start:
            try readPreamble()
        case .finished:
            return nil
        case .meta, .dataset:
            break
        }

        if let top = stack.last, let end = top.end, offset >= end {
            guard offset == end else {
                throw DICOMParseError(
                    .invalidLength, offset: offset, tag: top.tag,
                    message: "content overruns the end of its \(top.kind == .item ? "item" : "sequence") at \(end)")
            }
            stack.removeLast()
            return endToken(for: top.kind)
        }

        let remaining = input.length - offset
        if remaining <= 0 || (stack.isEmpty && remaining < 8) {
            return try finishAtEndOfInput(remaining: remaining)
        }

        if phase == .meta {
            try ensure(offset, 4)
            if u16(offset, bigEndian: false) != 0x0002 {
                try beginDataset()
                if phase == .finished { return nil }
            }
        }

        if let top = stack.last, top.kind != .item {
            return try readItemOrDelimiter(in: top)
        }
        return try readElement()
    }

    private mutating func finishAtEndOfInput(remaining: Int) throws(DICOMParseError) -> P10Token? {
        if let top = stack.popLast() {
            if let end = top.end {
                throw DICOMParseError(
                    .truncated, offset: input.length, tag: top.tag,
                    message: "input ends before the end of a container that declares its end at \(end)")
            }
            warn(.unterminatedSequence, tag: top.tag, "undefined-length container not delimited before end of input")
            return endToken(for: top.kind)
        }
        if remaining > 0 {
            warn(.trailingPadding, tag: nil, "\(remaining) trailing byte(s) after the last element ignored")
        }
        if phase == .meta {
            // A file that holds only the meta group.
            try beginDataset()
        }
        phase = .finished
        return nil
    }

    private func endToken(for kind: ContainerKind) -> P10Token {
        switch kind {
        case .sequence: return .sequenceEnd
        case .item: return .itemEnd
        case .pixelSequence: return .encapsulatedPixelDataEnd
        }
    }

    // MARK: - Elements

    private var currentIsImplicitLittleEndian: Bool {
        stack.last?.forcesImplicitLittleEndian ?? false
    }

    private mutating func readElement() throws(DICOMParseError) -> P10Token? {
        let forcedImplicit = currentIsImplicitLittleEndian
        let isBig = forcedImplicit ? false : bigEndian
        let isExplicit = forcedImplicit ? false : (phase == .meta ? metaIsExplicit : explicitVR)
        let start = offset
        try ensure(start, 8)
        let tag = DICOMTag(group: u16(start, bigEndian: isBig), element: u16(start + 2, bigEndian: isBig))

        if phase == .dataset, stack.isEmpty, (0..<8).allSatisfy({ byte(start + $0) == 0 }) {
            // Zero bytes after the last top-level element are a writer's block padding, not a (0000,0000) element:
            // the data set ends here, as DCMTK and pydicom read it.
            warn(.trailingPadding, tag: nil, "\(input.length - start) bytes of zero padding after the last element ignored")
            offset = input.length
            phase = .finished
            return nil
        }

        switch tag {
        case .itemDelimitationItem:
            offset = start + 8
            if let top = stack.last, top.kind == .item, top.end == nil {
                stack.removeLast()
                return .itemEnd
            }
            warn(.unterminatedSequence, tag: tag, "stray Item Delimitation Item skipped")
            skippedStrayDelimiter = true
            return nil
        case .sequenceDelimitationItem:
            if let top = stack.last, top.kind == .item {
                // The writer left out the item delimiter: close the item, then let the sequence see the delimiter.
                warn(.unterminatedSequence, tag: top.tag, "item closed by a Sequence Delimitation Item")
                stack.removeLast()
                return .itemEnd
            }
            offset = start + 8
            warn(.unterminatedSequence, tag: tag, "stray Sequence Delimitation Item skipped")
            skippedStrayDelimiter = true
            return nil
        case .item:
            throw DICOMParseError(
                .unexpectedTag, offset: start, tag: tag, message: "Item tag found where a data element was expected")
        default:
            break
        }

        var vr: VR
        var length: UInt32
        var valueOffset: Int
        if isExplicit {
            let byte0 = byte(start + 4)
            let byte1 = byte(start + 5)
            guard let explicit = VR(byte0: byte0, byte1: byte1) else {
                throw DICOMParseError(
                    .invalidVR, offset: start + 4, tag: tag,
                    message: "bytes 0x\(hex(byte0))\(hex(byte1)) are not a value representation")
            }
            vr = explicit
            if vr.hasLongExplicitLength {
                try ensure(start, 12)
                length = u32(start + 8, bigEndian: isBig)
                valueOffset = start + 12
            } else {
                length = UInt32(u16(start + 6, bigEndian: isBig))
                valueOffset = start + 8
            }
        } else {
            vr = DICOMDictionary.implicitVR(for: tag)
            length = u32(start + 4, bigEndian: isBig)
            valueOffset = start + 8
        }

        // A standard attribute written as UN with a defined length is read with its dictionary VR, as pydicom and
        // DCMTK's `dcmEnableUnknownVRConversion` do (the value bytes are the same; PS3.5 §6.2.2).
        if isExplicit && vr == .UN && length != DataElementHeader.undefinedLength && !tag.isPrivate,
            let known = DICOMDictionary.entry(for: tag), known.vr != .SQ, known.vr != .UN
        {
            vr = known.vr
        }
        checkOrder(tag, at: start)
        let header = DataElementHeader(tag: tag, vr: vr, length: length, offset: start, valueOffset: valueOffset)

        if tag.isPixelData && stack.isEmpty && options.stopBeforePixelData {
            offset = valueOffset
            phase = .finished
            if header.hasUndefinedLength {
                return .encapsulatedPixelDataStart(header)
            }
            try checkValueBounds(header)
            return .element(header)
        }

        if header.hasUndefinedLength {
            offset = valueOffset
            if tag == .pixelData {
                stack.append(Container(kind: .pixelSequence, end: nil, forcesImplicitLittleEndian: forcedImplicit, tag: tag))
                return .encapsulatedPixelDataStart(header)
            }
            if vr == .SQ || vr == .UN || !isExplicit {
                // PS3.5 §7.5.1; an undefined-length UN holds an implicit VR LE sequence (PS3.5 §6.2.2, CP-246).
                let implicitContent = forcedImplicit || vr == .UN
                try checkNesting(tag: tag, at: start)
                stack.append(Container(kind: .sequence, end: nil, forcesImplicitLittleEndian: implicitContent, tag: tag))
                return .sequenceStart(header)
            }
            throw DICOMParseError(
                .invalidLength, offset: start, tag: tag, message: "undefined length on a \(vr) element")
        }

        if vr == .SQ {
            let end = valueOffset + Int(length)
            try checkContainerEnd(end, tag: tag, at: start)
            try checkNesting(tag: tag, at: start)
            offset = valueOffset
            stack.append(Container(kind: .sequence, end: end, forcesImplicitLittleEndian: forcedImplicit, tag: tag))
            return .sequenceStart(header)
        }

        try checkValueBounds(header)
        if length & 1 == 1 {
            warn(.oddLength, tag: tag, "odd value length \(length)")
        }
        offset = valueOffset + Int(length)
        if phase == .meta {
            try noteMetaElement(header)
        }
        return .element(header)
    }

    private mutating func readItemOrDelimiter(in container: Container) throws(DICOMParseError) -> P10Token? {
        let isBig = container.forcesImplicitLittleEndian ? false : bigEndian
        let start = offset
        try ensure(start, 8)
        let tag = DICOMTag(group: u16(start, bigEndian: isBig), element: u16(start + 2, bigEndian: isBig))
        let length = u32(start + 4, bigEndian: isBig)
        let valueOffset = start + 8
        switch tag {
        case .item:
            if container.kind == .pixelSequence {
                guard length != DataElementHeader.undefinedLength else {
                    throw DICOMParseError(
                        .invalidLength, offset: start, tag: .pixelData,
                        message: "fragment item with undefined length")
                }
                let end = valueOffset + Int(length)
                try checkContainerEnd(end, tag: .pixelData, at: start)
                offset = end
                return .fragment(valueOffset: valueOffset, length: Int(length))
            }
            var end: Int?
            if length != DataElementHeader.undefinedLength {
                end = valueOffset + Int(length)
                try checkContainerEnd(end!, tag: container.tag, at: start)
            }
            offset = valueOffset
            stack.append(
                Container(
                    kind: .item, end: end, forcesImplicitLittleEndian: container.forcesImplicitLittleEndian,
                    tag: container.tag))
            return .itemStart(offset: start, length: length)
        case .sequenceDelimitationItem:
            offset = valueOffset
            stack.removeLast()
            if container.end != nil {
                warn(.unterminatedSequence, tag: container.tag, "Sequence Delimitation Item in a defined-length sequence")
            }
            return endToken(for: container.kind)
        case .itemDelimitationItem:
            offset = valueOffset
            warn(.unterminatedSequence, tag: container.tag, "stray Item Delimitation Item in a sequence skipped")
            skippedStrayDelimiter = true
            return nil
        default:
            throw DICOMParseError(
                .unexpectedTag, offset: start, tag: container.tag,
                message: "expected an Item (FFFE,E000) in the sequence but found \(tag)")
        }
    }

    /// Refuses a sequence that would open deeper than `options.maxSequenceDepth`.
    private func checkNesting(tag: DICOMTag, at start: Int) throws(DICOMParseError) {
        let open = stack.reduce(0) { $0 + ($1.kind == .sequence ? 1 : 0) }
        guard open < options.maxSequenceDepth else {
            throw DICOMParseError(
                .nestingTooDeep, offset: start, tag: tag,
                message: "sequences nest deeper than \(options.maxSequenceDepth) levels")
        }
    }

    private mutating func checkOrder(_ tag: DICOMTag, at start: Int) {
        let last: UInt32
        if stack.isEmpty {
            last = rootLastTag
            rootLastTag = max(rootLastTag, tag.rawValue)
        } else {
            last = stack[stack.count - 1].lastTag
            stack[stack.count - 1].lastTag = max(last, tag.rawValue)
        }
        if tag.rawValue == last {
            warn(.duplicateTag, tag: tag, "element appears twice; both are reported, readers keep the first")
        } else if tag.rawValue < last {
            warn(.outOfOrderTag, tag: tag, "element out of ascending tag order")
        }
    }

    private func checkValueBounds(_ header: DataElementHeader) throws(DICOMParseError) {
        let end = header.valueOffset + Int(header.length)
        if let containerEnd = stack.last?.end, end > containerEnd {
            throw DICOMParseError(
                .invalidLength, offset: header.offset, tag: header.tag,
                message: "value length \(header.length) overruns the enclosing item, which ends at \(containerEnd)")
        }
        if end > input.length {
            throw DICOMParseError(
                .truncated, offset: header.offset, tag: header.tag,
                message:
                    "value of \(header.length) bytes at offset \(header.valueOffset) runs past the end of the input (\(input.length) bytes)"
            )
        }
    }

    private func checkContainerEnd(_ end: Int, tag: DICOMTag, at start: Int) throws(DICOMParseError) {
        if let containerEnd = stack.last?.end, end > containerEnd {
            throw DICOMParseError(
                .invalidLength, offset: start, tag: tag,
                message: "length overruns the enclosing container, which ends at \(containerEnd)")
        }
        if end > input.length {
            throw DICOMParseError(
                .truncated, offset: start, tag: tag,
                message: "declared end \(end) is past the end of the input (\(input.length) bytes)")
        }
    }

    // MARK: - Values

    /// Calls `body` with the `count` bytes at `offset`, bringing them into the window if needed.
    /// The pointer is valid only inside `body`.
    public mutating func withBytes<R>(
        at offset: Int,
        count: Int,
        _ body: (UnsafeRawBufferPointer) -> R
    ) throws(DICOMParseError) -> R {
        try ensure(offset, count)
        return body(UnsafeRawBufferPointer(rebasing: window[(offset - windowStart)..<(offset - windowStart + count)]))
    }

    /// The value bytes of a primitive element, as stored (no byte swapping).
    public mutating func valueBytes(of header: DataElementHeader) throws(DICOMParseError) -> [UInt8] {
        try withBytes(at: header.valueOffset, count: Int(header.length)) { Array($0) }
    }

    /// Skips to the end of the current sequence or item without tokenizing its content, when its length is
    /// defined; otherwise returns `false` and the caller keeps pulling tokens.
    public mutating func skipCurrentContainerIfDefinedLength() -> Bool {
        guard let top = stack.last, let end = top.end else { return false }
        offset = end
        return true
    }

    // MARK: - Window

    private mutating func ensure(_ start: Int, _ count: Int) throws(DICOMParseError) {
        if start >= windowStart && start + count <= windowStart + windowCount {
            return
        }
        guard start + count <= input.length else {
            throw DICOMParseError(
                .truncated, offset: start, tag: stack.last?.tag,
                message: "needs \(count) bytes but the input has \(max(0, input.length - start)) left")
        }
        if count > window.count {
            guard count <= options.maxValueLength else {
                throw DICOMParseError(
                    .valueTooLong, offset: start, tag: nil,
                    message: "value of \(count) bytes exceeds the \(options.maxValueLength)-byte limit")
            }
            buffer.grow(to: count)
            window = buffer.storage
            windowCount = 0
        }
        // Inside encapsulated pixel data only item headers are read, far apart: read small.
        let wanted: Int
        if stack.last?.kind == .pixelSequence {
            wanted = max(count, 4096)
        } else {
            wanted = max(count, readSize)
            readSize = min(readSize * 2, window.count)
        }
        let toRead = min(wanted, window.count, input.length - start)
        let target = UnsafeMutableRawBufferPointer(rebasing: window[0..<toRead])
        let got = try input.read(at: start, into: target)
        windowStart = start
        windowCount = got
        guard got >= count else {
            throw DICOMParseError(
                .truncated, offset: start + got, tag: nil, message: "input ended early (read \(got) of \(count) bytes)")
        }
    }

    @inline(__always)
    private func byte(_ at: Int) -> UInt8 {
        window[at - windowStart]
    }

    @inline(__always)
    private func u16(_ at: Int, bigEndian: Bool) -> UInt16 {
        let raw = window.loadUnaligned(fromByteOffset: at - windowStart, as: UInt16.self)
        return bigEndian ? UInt16(bigEndian: raw) : UInt16(littleEndian: raw)
    }

    @inline(__always)
    private func u32(_ at: Int, bigEndian: Bool) -> UInt32 {
        let raw = window.loadUnaligned(fromByteOffset: at - windowStart, as: UInt32.self)
        return bigEndian ? UInt32(bigEndian: raw) : UInt32(littleEndian: raw)
    }

    private mutating func warn(_ code: P10Warning.Code, tag: DICOMTag?, _ message: String) {
        warningCount += 1
        if warnings.count < options.maxWarnings {
            warnings.append(P10Warning(code, offset: offset, tag: tag, message: message))
        }
    }

    private func hex(_ value: UInt8) -> String {
        let digits = Array("0123456789ABCDEF".utf8)
        return String(decoding: [digits[Int(value >> 4)], digits[Int(value & 0xF)]], as: UTF8.self)
    }

    // MARK: - Preamble, file meta group and encoding detection

    /// The file meta group is explicit VR LE (PS3.10 §7.1); some writers emit it implicit.
    private var metaIsExplicit = true

    private static let dicmPrefix: [UInt8] = Array("DICM".utf8)
    private static let preambleLength = 128

    private mutating func readPreamble() throws(DICOMParseError) {
        let length = input.length
        if length >= Self.preambleLength + 4 {
            try ensure(0, Self.preambleLength + 4)
            if (0..<4).allSatisfy({ byte(Self.preambleLength + $0) == Self.dicmPrefix[$0] }) {
                fileMeta.hasPreamble = true
                offset = Self.preambleLength + 4
                try enterMeta()
                return
            }
        } else if length >= 8 {
            try ensure(0, length)
        } else {
            throw DICOMParseError(.notDICOM, offset: 0, message: "input of \(length) bytes is too short to be DICOM")
        }
        if (0..<4).allSatisfy({ byte($0) == Self.dicmPrefix[$0] }) {
            warn(.missingPreamble, tag: nil, "no 128-byte preamble before DICM")
            offset = 4
            try enterMeta()
            return
        }
        if u16(0, bigEndian: false) == 0x0002 {
            warn(.missingPreamble, tag: nil, "no preamble or DICM prefix; file meta group starts at offset 0")
            offset = 0
            try enterMeta()
            return
        }
        guard let inferred = inferEncoding(at: 0, requireStartGroup: true) else {
            throw DICOMParseError(
                .notDICOM, offset: Self.preambleLength,
                message: "no DICM prefix at offset 128 and the first bytes are not a DICOM data set")
        }
        warn(.missingFileMeta, tag: nil, "no preamble or file meta group; read as a raw data set in \(inferred.name)")
        offset = 0
        fileMeta.datasetOffset = 0
        use(inferred)
        phase = .dataset
    }

    private mutating func enterMeta() throws(DICOMParseError) {
        phase = .meta
        fileMeta.hasFileMeta = true
        try ensure(offset, 8)
        let byte0 = byte(offset + 4)
        let byte1 = byte(offset + 5)
        if VR(byte0: byte0, byte1: byte1) == nil {
            metaIsExplicit = false
            warn(.implicitFileMeta, tag: nil, "file meta group is implicit VR; PS3.10 §7.1 requires explicit VR")
        }
    }

    private mutating func noteMetaElement(_ header: DataElementHeader) throws(DICOMParseError) {
        switch header.tag {
        case .fileMetaInformationGroupLength where header.length == 4:
            let value = try withBytes(at: header.valueOffset, count: 4) {
                UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self))
            }
            fileMeta.groupLength = value
            metaGroupLengthEnd = header.valueOffset + 4 + Int(value)
        case .transferSyntaxUID:
            let bytes = try valueBytes(of: header)
            fileMeta.transferSyntaxUID = Self.trimmedUID(bytes)
        default:
            break
        }
    }

    static func trimmedUID(_ bytes: [UInt8]) -> String {
        var end = bytes.count
        while end > 0 && (bytes[end - 1] == 0 || bytes[end - 1] == 0x20) { end -= 1 }
        var start = 0
        while start < end && bytes[start] == 0x20 { start += 1 }
        return String(decoding: bytes[start..<end], as: UTF8.self)
    }

    private mutating func beginDataset() throws(DICOMParseError) {
        fileMeta.datasetOffset = offset
        if let expected = metaGroupLengthEnd, expected != offset {
            warn(
                .groupLengthMismatch, tag: .fileMetaInformationGroupLength,
                "group length says the meta group ends at \(expected), it ends at \(offset)")
        } else if fileMeta.groupLength == nil {
            warn(.missingGroupLength, tag: .fileMetaInformationGroupLength, "file meta group has no group length")
        }

        var syntax: TransferSyntax
        if let uid = fileMeta.transferSyntaxUID, !uid.isEmpty {
            if let known = TransferSyntax.lookup(uid: uid) {
                syntax = known
            } else {
                warn(
                    .unknownTransferSyntax, tag: .transferSyntaxUID,
                    "unknown transfer syntax \(uid); read as explicit VR little endian with encapsulated pixel data")
                syntax = .encapsulated(uid, "Unknown")
            }
        } else if offset >= input.length {
            throw DICOMParseError(
                .missingTransferSyntax, offset: offset, tag: .transferSyntaxUID,
                message: "DICOM attribute TransferSyntaxUID does not exist")
        } else if let inferred = inferEncoding(at: offset, requireStartGroup: false) {
            warn(.encodingMismatch, tag: .transferSyntaxUID, "no Transfer Syntax UID; data set reads as \(inferred.name)")
            syntax = inferred
        } else {
            throw DICOMParseError(
                .missingTransferSyntax, offset: offset, tag: .transferSyntaxUID,
                message: "DICOM attribute TransferSyntaxUID does not exist and the encoding cannot be inferred")
        }

        transferSyntax = syntax
        phase = .dataset
        if offset >= input.length {
            use(syntax)
            return
        }
        if syntax.isDeflated {
            try inflateDataset()
            use(syntax)
            return
        }
        use(syntax)
        detectEncodingMismatch(declared: syntax)
    }

    private mutating func use(_ syntax: TransferSyntax) {
        transferSyntax = transferSyntax ?? syntax
        explicitVR = syntax.isExplicitVR
        bigEndian = syntax.isBigEndian
    }

    /// Some writers declare one encoding in the meta group and write another (DCMTK reads them by detection).
    /// The first data set element decides, and only when the declared encoding cannot explain it.
    private mutating func detectEncodingMismatch(declared: TransferSyntax) {
        guard (try? ensure(offset, 8)) != nil, !isConsistent(declared, at: offset),
            let actual = inferEncoding(at: offset, requireStartGroup: false),
            actual.isExplicitVR != declared.isExplicitVR || actual.isBigEndian != declared.isBigEndian
        else { return }
        warn(
            .encodingMismatch, tag: .transferSyntaxUID,
            "file meta declares \(declared.name) but the data set is \(actual.name); read as \(actual.name)")
        explicitVR = actual.isExplicitVR
        bigEndian = actual.isBigEndian
    }

    /// Whether the element at `start` reads sensibly in `syntax`.
    private func isConsistent(_ syntax: TransferSyntax, at start: Int) -> Bool {
        let tag = DICOMTag(group: u16(start, bigEndian: syntax.isBigEndian), element: u16(start + 2, bigEndian: syntax.isBigEndian))
        let swapped = DICOMTag(group: u16(start, bigEndian: !syntax.isBigEndian), element: u16(start + 2, bigEndian: !syntax.isBigEndian))
        let known = tag.isPrivate ? nil : DICOMDictionary.entry(for: tag)
        if known == nil && !tag.isPrivate && !swapped.isPrivate && DICOMDictionary.entry(for: swapped) != nil {
            return false
        }
        let vrBytes = VR(byte0: byte(start + 4), byte1: byte(start + 5))
        if syntax.isExplicitVR { return vrBytes != nil }
        if let vrBytes, let known, vrBytes == known.vr { return false }
        return true
    }

    /// Guesses the encoding of the element at `start` from its bytes, preferring the byte order under which the
    /// dictionary knows the tag: explicit when its VR bytes are a valid VR that agrees with the dictionary,
    /// implicit when its length is plausible. Returns `nil` when nothing fits.
    private mutating func inferEncoding(at start: Int, requireStartGroup: Bool) -> TransferSyntax? {
        guard (try? ensure(start, 8)) != nil else { return nil }
        let tagLE = DICOMTag(group: u16(start, bigEndian: false), element: u16(start + 2, bigEndian: false))
        let tagBE = DICOMTag(group: u16(start, bigEndian: true), element: u16(start + 2, bigEndian: true))
        func plausible(_ tag: DICOMTag) -> Bool {
            if requireStartGroup {
                return [0x0002, 0x0004, 0x0008, 0x0010, 0x0018, 0x0020, 0x0028].contains(tag.group)
                    && tag.element < 0x2000
            }
            return tag.group >= 0x0008 && tag.group != 0xFFFE && tag.group != 0xFFFF
        }
        let entryLE = DICOMDictionary.entry(for: tagLE)
        let entryBE = DICOMDictionary.entry(for: tagBE)
        if let vrBytes = VR(byte0: byte(start + 4), byte1: byte(start + 5)) {
            func agrees(_ entry: DICOMDictionary.Entry?) -> Bool {
                entry.map { $0.vr == vrBytes || $0.isAmbiguousVR } ?? true
            }
            if plausible(tagLE) && entryLE != nil && agrees(entryLE) { return .explicitVRLittleEndian }
            if plausible(tagBE) && entryBE != nil && agrees(entryBE) { return .explicitVRBigEndian }
            if plausible(tagLE) && agrees(entryLE) { return .explicitVRLittleEndian }
            if plausible(tagBE) && agrees(entryBE) { return .explicitVRBigEndian }
        }
        if plausible(tagLE) {
            let length = u32(start + 4, bigEndian: false)
            if length == DataElementHeader.undefinedLength || Int(length) <= input.length - start - 8 {
                return .implicitVRLittleEndian
            }
        }
        return nil
    }

    private mutating func inflateDataset() throws(DICOMParseError) {
        // Inflated into bounded memory (a temporary file past `BoundedMemory.spillThreshold`): a small file may
        // inflate to `maxInflatedSize`.
        input = try Inflater.inflate(input, offset: offset, limit: options.maxInflatedSize)
        offset = 0
        windowStart = 0
        windowCount = 0
        isInflated = true
    }
}
