/// Works out which fragments of encapsulated Pixel Data make up each frame (PS3.5 §A.4).
///
/// Sources, most authoritative first: the Extended Offset Table (7FE0,0001), the Basic Offset Table (the first
/// item), one fragment per frame, fragments that begin a codestream (JPEG SOI `FFD8`, JPEG 2000 SOC `FF4F`).
/// A single frame always owns every fragment.
public enum EncapsulatedFrames {
    /// One data fragment: its value's offset and length (the item header is the 8 bytes before it).
    public struct Fragment: Hashable, Sendable {
        public var valueOffset: Int
        public var length: Int

        public init(valueOffset: Int, length: Int) {
            self.valueOffset = valueOffset
            self.length = length
        }

        /// Offset of the fragment's Item tag, which offset tables point at.
        public var itemOffset: Int { valueOffset - 8 }
    }

    public enum Source: String, Hashable, Sendable {
        case singleFrame
        case extendedOffsetTable
        case basicOffsetTable
        case oneFragmentPerFrame
        case codestreamMarkers
    }

    public struct Layout: Hashable, Sendable {
        /// For each frame, the range of indices into the data fragments (Basic Offset Table excluded).
        public var frames: [Range<Int>]
        public var source: Source
        /// Set when an offset table was present but could not be used (HealthImaging's `InvalidOffsetTable`).
        public var offsetTableProblem: String?
    }

    /// - Parameters:
    ///   - fragments: the data fragments, Basic Offset Table excluded.
    ///   - basicOffsetTable: the Basic Offset Table's offsets (empty when the table is empty).
    ///   - extendedOffsetTable: offsets from (7FE0,0001), if present.
    ///   - numberOfFrames: Number of Frames (0028,0008), 1 when absent.
    ///   - startsCodestream: for each fragment, whether its first bytes are a codestream start marker.
    /// - Returns: the layout, or `nil` when no rule gives `numberOfFrames` frames.
    public static func layout(
        fragments: [Fragment],
        basicOffsetTable: [UInt64],
        extendedOffsetTable: [UInt64]?,
        numberOfFrames: Int,
        startsCodestream: [Bool]
    ) -> Layout? {
        guard !fragments.isEmpty else { return nil }
        if numberOfFrames <= 1 {
            return Layout(frames: [0..<fragments.count], source: .singleFrame)
        }
        let firstItem = fragments[0].itemOffset
        var problem: String?

        func frames(startingAt offsets: [UInt64]) -> [Range<Int>]? {
            guard offsets.count == numberOfFrames else { return nil }
            var starts: [Int] = []
            starts.reserveCapacity(offsets.count)
            var index = 0
            for offset in offsets {
                // Offsets come from the file: one past every fragment is simply not a frame start.
                let (target, overflow) = firstItem.addingReportingOverflow(Int(clamping: offset))
                guard !overflow else { return nil }
                while index < fragments.count && fragments[index].itemOffset < target { index += 1 }
                guard index < fragments.count, fragments[index].itemOffset == target else { return nil }
                if let last = starts.last, last >= index { return nil }
                starts.append(index)
            }
            guard starts.first == 0 else { return nil }
            return zip(starts, starts.dropFirst().map { $0 } + [fragments.count]).map { $0..<$1 }
        }

        if let extended = extendedOffsetTable {
            if let frames = frames(startingAt: extended) {
                return Layout(frames: frames, source: .extendedOffsetTable)
            }
            problem = "Extended Offset Table does not match the fragments"
        }
        if !basicOffsetTable.isEmpty {
            if let frames = frames(startingAt: basicOffsetTable) {
                return Layout(frames: frames, source: .basicOffsetTable, offsetTableProblem: problem)
            }
            problem = "Basic Offset Table has \(basicOffsetTable.count) entries that do not match the fragments"
        }
        if fragments.count == numberOfFrames {
            return Layout(
                frames: (0..<numberOfFrames).map { $0..<($0 + 1) }, source: .oneFragmentPerFrame,
                offsetTableProblem: problem)
        }
        let starts = startsCodestream.indices.filter { startsCodestream[$0] }
        if starts.count == numberOfFrames, starts.first == 0 {
            let frames = zip(starts, starts.dropFirst().map { $0 } + [fragments.count]).map { $0..<$1 }
            return Layout(frames: frames, source: .codestreamMarkers, offsetTableProblem: problem)
        }
        return nil
    }

    /// Whether `prefix` (the first bytes of a fragment) begins a JPEG (`FFD8`) or JPEG 2000 (`FF4F`) codestream.
    public static func beginsCodestream(_ prefix: UnsafeRawBufferPointer) -> Bool {
        guard prefix.count >= 2, prefix[0] == 0xFF else { return false }
        return prefix[1] == 0xD8 || prefix[1] == 0x4F
    }
}
