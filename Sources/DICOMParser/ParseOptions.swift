/// Per-call parsing behaviour, passed by value (no process-wide strictness switches).
public struct ParseOptions: Hashable, Sendable {
    /// End the token stream at the top-level Pixel Data header instead of walking it.
    /// Equivalent of pydicom's `stop_before_pixels` and dicom-rs `read_until(PIXEL_DATA)`.
    public var stopBeforePixelData: Bool
    /// How many bytes one refill of the read window asks for. The first read of a file is this large, so
    /// a typical header is parsed with one read.
    public var readChunkSize: Int
    /// The largest single value the scanner will bring into memory on request (`valueBytes`); larger
    /// values can only be skipped. Equivalent of DCMTK's `maxReadLength`, inverted.
    public var maxValueLength: Int
    /// The largest inflated size accepted for a Deflated Explicit VR Little Endian data set.
    public var maxInflatedSize: Int
    /// How many warnings are kept per file; further ones are counted but not stored.
    public var maxWarnings: Int

    public init(
        stopBeforePixelData: Bool = false,
        readChunkSize: Int = 64 * 1024,
        maxValueLength: Int = 256 * 1024 * 1024,
        maxInflatedSize: Int = 1 << 30,
        maxWarnings: Int = 16
    ) {
        self.stopBeforePixelData = stopBeforePixelData
        self.readChunkSize = readChunkSize
        self.maxValueLength = maxValueLength
        self.maxInflatedSize = maxInflatedSize
        self.maxWarnings = maxWarnings
    }
}
