public import DICOMCore

/// The Swift face of DCMTK: the full parser and the JPEG, JPEG-LS and RLE decoders.
///
/// Call `bootstrap()` once before workers start (codec registration is not thread-safe); after that, any
/// number of threads may each open their own files. Handles never escape `withFile`.
public enum DCMTK {
    private static let bootstrapResult: Result<Void, DCMTKError> = Result { () throws(DCMTKError) in
        try DCMTKCalls.bootstrap()
    }

    /// Loads the dictionary, registers decoders and silences DCMTK's logger, once per process.
    public static func bootstrap() throws(DCMTKError) {
        try bootstrapResult.get()
    }

    /// Options for opening a file.
    public struct OpenOptions: Sendable {
        /// Values longer than this stay on disk until used (DCMTK's `maxReadLength`).
        public var maxReadLength: UInt32

        public init(maxReadLength: UInt32 = 4096) {
            self.maxReadLength = maxReadLength
        }
    }

    /// The geometry of a decoded JPEG frame.
    public struct JPEGFrame: Hashable, Sendable {
        public var width: Int
        public var height: Int
        public var components: Int
        /// The SOF sample precision: samples were written one byte each up to 8, two bytes little endian above.
        public var precision: Int
    }

    /// Decodes one JPEG frame (baseline, extended or lossless) from memory into interleaved samples.
    /// `convertYBR` converts lossy YCbCr to RGB, as DCMTK does for YBR photometric interpretations.
    public static func decodeJPEG(
        _ stream: UnsafeRawBufferPointer, convertYBR: Bool, into buffer: UnsafeMutableRawBufferPointer
    ) throws(DCMTKError) -> (frame: JPEGFrame, written: Int) {
        try bootstrap()
        return try DCMTKCalls.decodeJPEG(stream, convertYBR: convertYBR, into: buffer)
    }

    /// Opens `path`, runs `body` with the open file and closes it.
    public static func withFile<R>(
        at path: String,
        options: OpenOptions = OpenOptions(),
        _ body: (borrowing DCMTKFile) throws -> R
    ) throws -> R {
        try bootstrap()
        let handle = try DCMTKCalls.open(path: path, maxReadLength: options.maxReadLength)
        let file = DCMTKFile(handle: handle)
        defer { DCMTKCalls.close(handle) }
        return try body(file)
    }
}

/// An open file, valid only inside `DCMTK.withFile`.
public struct DCMTKFile: ~Copyable {
    let handle: OpaquePointer

    /// The transfer syntax the file was read in.
    public var transferSyntaxUID: String {
        get throws(DCMTKError) { try DCMTKCalls.transferSyntax(handle) }
    }

    /// The raw bytes of a top-level string element, or `nil` when the element is absent.
    public func rawString(_ tag: DICOMTag) -> [UInt8]? {
        try? DCMTKCalls.rawString(handle, group: tag.group, element: tag.element)
    }

    /// A top-level string element with trailing padding removed, or `nil` when absent.
    public func string(_ tag: DICOMTag) -> String? {
        guard var bytes = rawString(tag) else { return nil }
        while let last = bytes.last, last == 0 || last == 0x20 { bytes.removeLast() }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A top-level unsigned integer (US, UL or IS), or `nil` when absent.
    public func unsigned(_ tag: DICOMTag) -> UInt64? {
        try? DCMTKCalls.unsigned(handle, group: tag.group, element: tag.element)
    }

    /// One node of DCMTK's element tree, in depth-first order.
    public struct Node: Hashable, Sendable {
        public enum Kind: Hashable, Sendable {
            case element, sequenceStart, itemStart, itemEnd, sequenceEnd
            case pixelSequenceStart, fragment, pixelSequenceEnd
        }
        public var kind: Kind
        public var tag: DICOMTag
        public var vr: String
        public var length: UInt32
        public var depth: Int
    }

    /// Visits the meta group and the data set; `body` returns `false` to stop.
    public func visit(_ body: (Node) -> Bool) throws(DCMTKError) {
        try DCMTKCalls.visit(handle, body)
    }

    /// Pixel data as DCMTK sees it.
    public struct PixelDataInfo: Hashable, Sendable {
        public var numberOfFrames: Int
        public var isEncapsulated: Bool
        /// Lengths of the pixel-sequence items, Basic Offset Table first.
        public var itemLengths: [Int]
        /// For each frame, the index of the item where it starts (as DCMTK's decoders determine it).
        public var frameStartItems: [Int]
    }

    public func pixelDataInfo() throws(DCMTKError) -> PixelDataInfo {
        let (frames, encapsulated, items) = try DCMTKCalls.pixelDataInfo(handle)
        var lengths: [Int] = []
        var starts: [Int] = []
        if encapsulated {
            for index in 0..<items {
                lengths.append(try DCMTKCalls.fragmentLength(handle, index: index))
            }
            for frame in 0..<frames {
                starts.append(try DCMTKCalls.frameStartItem(handle, frame: frame))
            }
        }
        return PixelDataInfo(
            numberOfFrames: frames, isEncapsulated: encapsulated, itemLengths: lengths, frameStartItems: starts)
    }

    /// Decodes one frame to DCMTK's uncompressed layout (little-endian samples).
    public func decodeFrame(_ frame: Int) throws(DCMTKError) -> [UInt8] {
        try DCMTKCalls.decodeFrame(handle, frame: frame)
    }
}
