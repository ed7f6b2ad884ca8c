public import DICOMCore
public import DICOMIngestModel
public import DICOMParser

/// The metadata document pieces of one instance (spec §3.1): the `DICOM` objects of each level and the
/// instance's `DICOMVRs`.
public struct InstanceMetadata: Hashable, Sendable {
    public var patient: [(String, JSONValue)] = []
    public var study: [(String, JSONValue)] = []
    public var series: [(String, JSONValue)] = []
    public var instance: [(String, JSONValue)] = []
    /// VRs of private and non-dictionary attributes, keyed `GGGGEEEE`.
    public var vrs: [(String, JSONValue)] = []

    public init() {}

    public static func == (lhs: InstanceMetadata, rhs: InstanceMetadata) -> Bool {
        JSONValue.object(lhs.patient) == .object(rhs.patient) && JSONValue.object(lhs.study) == .object(rhs.study)
            && JSONValue.object(lhs.series) == .object(rhs.series)
            && JSONValue.object(lhs.instance) == .object(rhs.instance) && JSONValue.object(lhs.vrs) == .object(rhs.vrs)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(JSONValue.object(instance))
    }

    /// A top-level attribute by keyword, wherever its level put it.
    public subscript(keyword: String) -> JSONValue? {
        for level in [patient, study, series, instance] {
            if let value = level.first(where: { $0.0 == keyword })?.1 { return value }
        }
        return nil
    }
}

/// Where the pixel data of an instance is and, for encapsulated data, which fragments form each frame.
public struct PixelDataSummary: Hashable, Sendable {
    public var tag: DICOMTag
    /// OB, OW, OF, OD or UN as written: in Explicit VR Big Endian, OW bytes are swapped in 16-bit words even
    /// for 8-bit samples (PS3.5 §7.3).
    public var vr: VR
    public var isEncapsulated: Bool
    /// Native pixel data: the value's offset and length.
    public var valueOffset: Int
    public var length: Int
    /// Encapsulated: the data fragments (Basic Offset Table excluded).
    public var fragments: [EncapsulatedFrames.Fragment]
    /// Encapsulated: for each frame, its range of fragment indices; `nil` when it could not be determined.
    public var frames: [Range<Int>]?
    public var frameSource: EncapsulatedFrames.Source?
    /// An offset table was present but unusable (HealthImaging's `InvalidOffsetTable` warning).
    public var offsetTableProblem: String?
}

/// What reading one instance produced.
public struct ReadInstance {
    public var fileMeta: FileMetaSummary
    /// The transfer syntax the data set was read in (the one declared, or the one detected).
    public var transferSyntaxUID: String?
    /// The requested summary attributes present in the file, in request order, keyed by keyword.
    public var summary: [(String, JSONValue)]
    /// The full metadata document pieces, when requested.
    public var metadata: InstanceMetadata?
    public var pixelData: PixelDataSummary?
    public var numberOfFrames: Int
    public var warnings: [P10Warning]
    /// The bytes `pixelData` offsets refer to (the inflated data set for deflated files).
    public var datasetInput: any P10ByteInput
    /// The data set is explicit VR big endian (native samples need swapping).
    public var datasetIsBigEndian: Bool

    /// A summary attribute by keyword.
    public func summaryValue(_ keyword: String) -> JSONValue? {
        summary.first { $0.0 == keyword }?.1
    }
}

/// Reads one instance with the fast path: a token walk that decodes only what was asked for.
///
/// With `buildMetadata` every element outside pixel data is decoded into the metadata document; otherwise only
/// the top-level `summaryTags` are decoded and nested sequences are skipped whole where their length is defined.
public struct InstanceReader: Sendable {
    public struct Options: Sendable {
        public var buildMetadata: Bool
        public var summaryTags: [DICOMTag]
        public var parse: ParseOptions

        public init(buildMetadata: Bool, summaryTags: [DICOMTag], parse: ParseOptions = ParseOptions()) {
            self.buildMetadata = buildMetadata
            self.summaryTags = summaryTags
            self.parse = parse
        }
    }

    /// Attributes the `scan` report shows (issue: inventory before import), in output order.
    public static let scanSummaryTags: [DICOMTag] = [
        .transferSyntaxUID, .sopClassUID, .sopInstanceUID, .studyInstanceUID, .seriesInstanceUID, .patientID,
        .patientName, .studyDate, .accessionNumber, .studyID, .seriesNumber, .modality, .rows, .columns,
        .numberOfFrames, .bitsAllocated,
    ]

    public let options: Options
    private let summaryTagSet: Set<UInt32>

    public init(options: Options) {
        self.options = options
        self.summaryTagSet = Set(options.summaryTags.map(\.rawValue))
    }

    /// One open sequence or item while building the metadata document.
    private struct OpenNode {
        var tag: DICOMTag
        var key: String
        var isSequence: Bool
        var members: [(String, JSONValue)] = []
        var items: [JSONValue] = []
        var characterSet: SpecificCharacterSet
    }

    public func read(
        input: any P10ByteInput,
        buffer: P10ReadBuffer
    ) throws(DICOMParseError) -> ReadInstance {
        var scanner = P10Scanner(input: input, buffer: buffer, options: options.parse)
        defer { buffer.shrink(to: options.parse.readChunkSize) }
        var summary: [DICOMTag: JSONValue] = [:]
        var metadata = options.buildMetadata ? InstanceMetadata() : nil
        var characterSet = SpecificCharacterSet.default
        var nodes: [OpenNode] = []
        var numberOfFrames = 1
        var extendedOffsets: [UInt64]?
        var pixel: PixelDataSummary?
        var basicOffsetTable: [UInt64] = []
        var inTopLevelPixelData = false
        var sawBasicOffsetTable = false
        var vrKeys = Set<String>()

        func decoder(for set: SpecificCharacterSet) -> ElementValueDecoder {
            ElementValueDecoder(isBigEndian: scanner.isBigEndian, characterSet: set)
        }

        while let token = try scanner.next() {
            switch token {
            case .element(let header):
                let depth = scanner.depth
                let tag = header.tag
                if depth == 0 && tag.isPixelData {
                    pixel = PixelDataSummary(
                        tag: tag, vr: header.vr, isEncapsulated: false, valueOffset: header.valueOffset, length: Int(header.length),
                        fragments: [], frames: nil, frameSource: nil, offsetTableProblem: nil)
                    if metadata != nil { place(tag: tag, vr: header.vr, value: .null, into: &metadata!, vrKeys: &vrKeys) }
                    continue
                }
                let wantsSummary = depth == 0 && summaryTagSet.contains(tag.rawValue)
                let isCharacterSet = tag == .specificCharacterSet && (depth == 0 || metadata != nil)
                let isFrameCount = depth == 0 && tag == .numberOfFrames
                let isExtendedOffsets = depth == 0 && tag == .extendedOffsetTable
                guard metadata != nil || wantsSummary || isCharacterSet || isFrameCount || isExtendedOffsets else {
                    continue
                }
                let nodeCharacterSet = nodes.last?.characterSet ?? characterSet
                let entry = DICOMDictionary.entry(for: tag)
                let valueDecoder = decoder(for: nodeCharacterSet)
                let value = try scanner.withBytes(at: header.valueOffset, count: Int(header.length)) { bytes in
                    valueDecoder.json(vr: header.vr, bytes: bytes, multiplicity: entry?.multiplicity)
                }
                if isCharacterSet {
                    let terms = Self.strings(value)
                    if nodes.isEmpty { characterSet = SpecificCharacterSet(terms: terms) }
                    else { nodes[nodes.count - 1].characterSet = SpecificCharacterSet(terms: terms) }
                }
                if isFrameCount, let count = Self.integer(value), count > 0 {
                    guard count <= options.parse.maxFrames else {
                        throw DICOMParseError(
                            .limitExceeded, offset: header.offset, tag: tag,
                            message: "NumberOfFrames \(count) is more than the \(options.parse.maxFrames) frames an instance may have")
                    }
                    numberOfFrames = count
                }
                if isExtendedOffsets {
                    extendedOffsets = try scanner.withBytes(at: header.valueOffset, count: Int(header.length)) {
                        Self.uint64s($0)
                    }
                }
                if wantsSummary { summary[tag] = value }
                guard metadata != nil else { continue }
                if nodes.isEmpty {
                    place(tag: tag, vr: header.vr, value: value, into: &metadata!, vrKeys: &vrKeys)
                } else {
                    nodes[nodes.count - 1].members.append((key(for: tag, entry: entry), value))
                    noteVR(tag: tag, vr: header.vr, entry: entry, metadata: &metadata!, vrKeys: &vrKeys)
                }

            case .sequenceStart(let header):
                if metadata == nil {
                    if scanner.skipCurrentContainerIfDefinedLength() { _ = try scanner.next() }
                    continue
                }
                let entry = DICOMDictionary.entry(for: header.tag)
                nodes.append(
                    OpenNode(
                        tag: header.tag, key: key(for: header.tag, entry: entry), isSequence: true,
                        characterSet: nodes.last?.characterSet ?? characterSet))
                if header.vr == .UN || entry == nil {
                    noteVR(tag: header.tag, vr: header.vr == .UN ? .SQ : header.vr, entry: entry,
                        metadata: &metadata!, vrKeys: &vrKeys)
                }

            case .itemStart:
                guard metadata != nil, let parent = nodes.last else { continue }
                nodes.append(OpenNode(tag: .item, key: "", isSequence: false, characterSet: parent.characterSet))

            case .itemEnd:
                guard metadata != nil, let item = nodes.popLast(), !nodes.isEmpty else { continue }
                nodes[nodes.count - 1].items.append(.object(item.members))

            case .sequenceEnd:
                guard metadata != nil, let sequence = nodes.popLast() else { continue }
                let value: JSONValue = sequence.items.isEmpty ? .null : .array(sequence.items)
                if nodes.isEmpty {
                    place(key: sequence.key, level: MetadataLevel.of(sequence.tag), value: value, into: &metadata!)
                } else {
                    nodes[nodes.count - 1].members.append((sequence.key, value))
                }

            case .encapsulatedPixelDataStart(let header):
                if scanner.depth == 1 || (scanner.depth == 0 && options.parse.stopBeforePixelData) {
                    inTopLevelPixelData = true
                    pixel = PixelDataSummary(
                        tag: header.tag, vr: header.vr, isEncapsulated: true, valueOffset: header.valueOffset, length: 0,
                        fragments: [], frames: nil, frameSource: nil, offsetTableProblem: nil)
                    if metadata != nil {
                        place(tag: header.tag, vr: header.vr, value: .null, into: &metadata!, vrKeys: &vrKeys)
                    }
                } else if metadata != nil, !nodes.isEmpty {
                    nodes[nodes.count - 1].members.append((key(for: header.tag, entry: nil), .null))
                }

            case .fragment(let valueOffset, let length):
                guard inTopLevelPixelData else { continue }
                if !sawBasicOffsetTable {
                    sawBasicOffsetTable = true
                    if length > 0 {
                        basicOffsetTable = try scanner.withBytes(at: valueOffset, count: length) {
                            Self.uint32s($0).map(UInt64.init)
                        }
                    }
                } else {
                    pixel?.fragments.append(EncapsulatedFrames.Fragment(valueOffset: valueOffset, length: length))
                }

            case .encapsulatedPixelDataEnd:
                inTopLevelPixelData = false
            }
        }

        if var encapsulated = pixel, encapsulated.isEncapsulated, !encapsulated.fragments.isEmpty {
            var startsCodestream: [Bool] = []
            let needsMarkers =
                numberOfFrames > 1 && extendedOffsets == nil && basicOffsetTable.isEmpty
                && encapsulated.fragments.count != numberOfFrames
            if needsMarkers {
                for fragment in encapsulated.fragments {
                    let count = min(2, fragment.length)
                    startsCodestream.append(
                        try scanner.withBytes(at: fragment.valueOffset, count: count) {
                            EncapsulatedFrames.beginsCodestream($0)
                        })
                }
            }
            if let layout = EncapsulatedFrames.layout(
                fragments: encapsulated.fragments, basicOffsetTable: basicOffsetTable,
                extendedOffsetTable: extendedOffsets, numberOfFrames: numberOfFrames,
                startsCodestream: startsCodestream)
            {
                encapsulated.frames = layout.frames
                encapsulated.frameSource = layout.source
                encapsulated.offsetTableProblem = layout.offsetTableProblem
            }
            encapsulated.length = encapsulated.fragments.reduce(0) { $0 + $1.length }
            pixel = encapsulated
        }

        return ReadInstance(
            fileMeta: scanner.fileMeta,
            transferSyntaxUID: scanner.transferSyntax?.uid ?? scanner.fileMeta.transferSyntaxUID,
            summary: options.summaryTags.compactMap { tag in
                summary[tag].map { (DICOMDictionary.entry(for: tag)?.keyword ?? tag.hexKey, $0) }
            },
            metadata: metadata,
            pixelData: pixel,
            numberOfFrames: numberOfFrames,
            warnings: scanner.warnings,
            datasetInput: scanner.currentInput,
            datasetIsBigEndian: scanner.isBigEndian)
    }

    // MARK: - Placement

    private func key(for tag: DICOMTag, entry: DICOMDictionary.Entry?) -> String {
        if !tag.isPrivate, let entry { return entry.keyword }
        return tag.hexKey
    }

    private func noteVR(
        tag: DICOMTag,
        vr: VR,
        entry: DICOMDictionary.Entry?,
        metadata: inout InstanceMetadata,
        vrKeys: inout Set<String>
    ) {
        guard tag.isPrivate || entry == nil else { return }
        let key = tag.hexKey
        if vrKeys.insert(key).inserted {
            metadata.vrs.append((key, .string(vr.description)))
        }
    }

    private func place(
        tag: DICOMTag,
        vr: VR,
        value: JSONValue,
        into metadata: inout InstanceMetadata,
        vrKeys: inout Set<String>
    ) {
        let entry = tag.isPrivate ? nil : DICOMDictionary.entry(for: tag)
        noteVR(tag: tag, vr: vr, entry: entry, metadata: &metadata, vrKeys: &vrKeys)
        place(key: key(for: tag, entry: entry), level: MetadataLevel.of(tag), value: value, into: &metadata)
    }

    private func place(key: String, level: MetadataLevel, value: JSONValue, into metadata: inout InstanceMetadata) {
        switch level {
        case .patient: metadata.patient.append((key, value))
        case .study: metadata.study.append((key, value))
        case .series: metadata.series.append((key, value))
        case .instance: metadata.instance.append((key, value))
        }
    }

    // MARK: - Value helpers

    static func strings(_ value: JSONValue) -> [String] {
        switch value {
        case .string(let text): return [text]
        case .array(let values): return values.map { $0.stringValue ?? "" }
        default: return []
        }
    }

    static func integer(_ value: JSONValue) -> Int? {
        switch value {
        case .int(let number): return Int(number)
        case .uint(let number): return Int(exactly: number)
        case .string(let text): return Int(text.trimmingSpaces)
        case .array(let values): return values.first.flatMap(integer)
        default: return nil
        }
    }

    static func uint32s(_ bytes: UnsafeRawBufferPointer) -> [UInt32] {
        stride(from: 0, to: bytes.count - 3, by: 4).map {
            UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: $0, as: UInt32.self))
        }
    }

    /// The Extended Offset Table (7FE0,0001) is only used with encapsulated Pixel Data, whose transfer
    /// syntaxes are all explicit VR little endian (PS3.5 §A.4), so its values are always little endian.
    static func uint64s(_ bytes: UnsafeRawBufferPointer) -> [UInt64] {
        stride(from: 0, to: bytes.count - 7, by: 8).map {
            UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: $0, as: UInt64.self))
        }
    }
}
