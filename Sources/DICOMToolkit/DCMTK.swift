public import DICOMCore
import Dispatch
import Foundation
import Glibc

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
    ///
    /// DCMTK reads, walks and frees sequences by recursion, with no depth limit (about 2 KB of stack per level,
    /// measured with `dcmdump`): a crafted file nesting 25,000 levels overflows any worker's stack. Nesting depth is
    /// at most the number of Item tags in the file, so a file with more than `maxItemTags` of them is refused
    /// before DCMTK sees it, and everything DCMTK does runs on a thread whose stack holds that many levels.
    ///
    /// - Throws: `DCMTKError` from DCMTK, or with code `tooManyItemsCode` when the file is refused.
    public static func withFile<R>(
        at path: String,
        options: OpenOptions = OpenOptions(),
        _ body: (borrowing DCMTKFile) throws -> R
    ) throws -> R {
        try bootstrap()
        let items = try itemTagCount(path: path, stoppingAfter: maxItemTags)
        guard items <= maxItemTags else {
            throw DCMTKError(
                module: DCMTKError.shimModule, code: tooManyItemsCode,
                text: "more than \(maxItemTags) Item tags: too deeply nested, perhaps, for DCMTK's recursive reader")
        }
        return try onParseThread {
            let handle = try DCMTKCalls.open(path: path, maxReadLength: options.maxReadLength)
            let file = DCMTKFile(handle: handle)
            defer { DCMTKCalls.close(handle) }
            return try body(file)
        }
    }

    /// The most Item tags a file handed to DCMTK may hold.
    public static let maxItemTags = 16_384
    /// `DCMTKError.code` of a file refused for holding more than `maxItemTags` Item tags.
    public static let tooManyItemsCode: UInt16 = 0x7001
    /// The stack of the thread DCMTK parses on: `maxItemTags` levels at 4 KB each (reserved, touched as used).
    static let parseStackBytes = 64 << 20

    /// Counts Item tags (FFFE,E000) in either byte order, stopping once past `limit`.
    static func itemTagCount(path: String, stoppingAfter limit: Int) throws(DCMTKError) -> Int {
        let descriptor = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw DCMTKError(module: DCMTKError.shimModule, code: 0, text: "cannot open \(path): \(String(cString: strerror(errno)))")
        }
        defer { Glibc.close(descriptor) }
        let chunk = 1 << 20
        // Three bytes carried over from the previous chunk, so a tag split across two reads is counted.
        var buffer = [UInt8](repeating: 0, count: chunk + 3)
        var carried = 0
        var count = 0
        while count <= limit {
            let read = buffer.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress! + carried, chunk) }
            if read < 0 {
                if errno == EINTR { continue }
                throw DCMTKError(module: DCMTKError.shimModule, code: 0, text: "cannot read \(path): \(String(cString: strerror(errno)))")
            }
            if read == 0 { break }
            let end = carried + read
            count += buffer.withUnsafeBytes { Self.itemTags(in: UnsafeRawBufferPointer(rebasing: $0[..<end])) }
            carried = min(3, end)
            for offset in 0..<carried { buffer[offset] = buffer[end - carried + offset] }
        }
        return count
    }

    /// Item tags that start in `bytes` at or before its fourth-last byte (the last three are carried over). Both
    /// byte orders hold a 0xFE next to a 0xFF (`FE FF 00 E0`, `FF FE E0 00`), so `memchr` jumps from one 0xFE to
    /// the next and only those are looked at.
    static func itemTags(in bytes: UnsafeRawBufferPointer) -> Int {
        guard bytes.count >= 4, let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return 0 }
        let lastStart = bytes.count - 4
        var count = 0
        var position = 0
        while position < bytes.count,
            let found = memchr(base + position, 0xFE, bytes.count - position)?.assumingMemoryBound(to: UInt8.self)
        {
            let index = UnsafePointer(found) - base
            if index <= lastStart, base[index + 1] == 0xFF, base[index + 2] == 0x00, base[index + 3] == 0xE0 {
                count += 1
            } else if index >= 1, index - 1 <= lastStart, base[index - 1] == 0xFF, base[index + 1] == 0xE0,
                base[index + 2] == 0x00
            {
                count += 1
            }
            position = index + 1
        }
        return count
    }

    /// Runs `work` on a thread with a `parseStackBytes` stack and waits for it.
    private static func onParseThread<R>(_ work: () throws -> R) throws -> R {
        try withoutActuallyEscaping(work) { escapable in
            let box = ParseThreadWork(escapable)
            let done = DispatchSemaphore(value: 0)
            let thread = Thread {
                box.run()
                done.signal()
            }
            thread.stackSize = parseStackBytes
            thread.start()
            done.wait()
            return try box.result!.get()
        }
    }
}

/// The work and result of one `onParseThread` call. Unchecked: the calling thread blocks until the parse thread
/// has finished with it, so the two never touch it at the same time.
private final class ParseThreadWork<R>: @unchecked Sendable {
    /// Dropped once run: `withoutActuallyEscaping` checks that nothing holds the closure afterwards, and the
    /// thread object may outlive the call.
    private var work: (() throws -> R)?
    var result: Result<R, any Error>?

    init(_ work: @escaping () throws -> R) {
        self.work = work
    }

    func run() {
        if let work { result = Result { try work() } }
        work = nil
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
