/// Per-call parsing behaviour, passed by value (no process-wide strictness switches).
public struct ParseOptions: Hashable, Sendable {
    /// End the token stream at the top-level Pixel Data header instead of walking it.
    /// Equivalent of pydicom's `stop_before_pixels` and dicom-rs `read_until(PIXEL_DATA)`.
    public var stopBeforePixelData: Bool
    /// Size of the first read of a file: large enough for a typical header, small enough not to copy pixel
    /// data. Each further refill doubles, up to `readChunkSize`.
    public var initialReadSize: Int
    /// The largest read of one refill of the read window (and the window's capacity).
    public var readChunkSize: Int
    /// The largest single value the scanner will bring into memory on request (`valueBytes`); larger
    /// values can only be skipped. Equivalent of DCMTK's `maxReadLength`, inverted.
    public var maxValueLength: Int
    /// The largest inflated size accepted for a Deflated Explicit VR Little Endian data set.
    public var maxInflatedSize: Int
    /// How many warnings are kept per file; further ones are counted but not stored.
    public var maxWarnings: Int
    /// The deepest sequence nesting read (a top-level sequence is depth 1). Real Structured Reports nest a few
    /// tens of levels; a crafted file can nest millions, and every consumer that walks the tree (the metadata
    /// document, DCMTK) must stay within its stack.
    public var maxSequenceDepth: Int
    /// The most data elements and sequence items one data set may hold: each becomes a node of the metadata
    /// document, so a small file of empty items could otherwise build gigabytes of it.
    public var maxDataElements: Int
    /// The most fragments encapsulated Pixel Data may hold (each is remembered until its frames are stored).
    public var maxFragments: Int
    /// The largest NumberOfFrames (0028,0008) accepted: every frame costs a catalog row and a metadata entry.
    public var maxFrames: Int

    public init(
        stopBeforePixelData: Bool = false,
        initialReadSize: Int = 8 * 1024,
        readChunkSize: Int = 64 * 1024,
        maxValueLength: Int = 256 * 1024 * 1024,
        maxInflatedSize: Int = 1 << 30,
        maxWarnings: Int = 16,
        maxSequenceDepth: Int = 128,
        maxDataElements: Int = 500_000,
        maxFragments: Int = 1_000_000,
        maxFrames: Int = 100_000
    ) {
        self.stopBeforePixelData = stopBeforePixelData
        self.initialReadSize = initialReadSize
        self.readChunkSize = readChunkSize
        self.maxValueLength = maxValueLength
        self.maxInflatedSize = maxInflatedSize
        self.maxWarnings = maxWarnings
        self.maxSequenceDepth = maxSequenceDepth
        self.maxDataElements = maxDataElements
        self.maxFragments = maxFragments
        self.maxFrames = maxFrames
    }
}
