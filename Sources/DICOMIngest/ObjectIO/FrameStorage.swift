import Foundation
import Glibc

/// Where pixel frames are kept: append-only blobs holding frames back to back (one pack per import worker),
/// each frame addressed by (blob, offset, length) in the catalog.
public protocol FrameStorage: Sendable {
    /// Starts a new blob.
    func makeBlobWriter(datastoreId: String) throws -> any FrameBlobWriter
    /// Reads `length` bytes at `offset` of a blob.
    func read(blob: String, offset: Int, length: Int) throws -> [UInt8]
    /// Makes what a blob holds now durable, while its writer may still append (and its name too, when `withName`),
    /// and returns how many bytes that is.
    func makeDurable(blob: String, withName: Bool) throws -> Int
    /// Whether a blob can be read only once it is finished (an object store's object appears whole or not at
    /// all): the preparer then finishes its blob at the end of each instance, before the instance is staged, and
    /// drops the blob of an instance that fails.
    var blobsEndWithEachInstance: Bool { get }
}

extension FrameStorage {
    public var blobsEndWithEachInstance: Bool { false }
}

/// Writes one blob; `finish` makes it durable and closes it. The catalog may reference a frame of a blob still
/// being written once `FrameStorage.makeDurable` has covered it. A blob that is never committed to the catalog is
/// garbage, never visible (the catalog is the only way to reach it).
public protocol FrameBlobWriter: AnyObject {
    /// The blob's name, relative to the storage root.
    var blobName: String { get }
    /// Bytes written so far (the next frame's offset).
    var size: Int { get }
    func append(_ bytes: UnsafeRawBufferPointer) throws
    func finish() throws
}

/// Frames in files under a folder: `<root>/<datastoreId>/<2 hex>/<32 hex>.frames`.
public struct DirectoryFrameStorage: FrameStorage {
    public let root: String

    public init(root: String) {
        self.root = root
    }

    public func makeBlobWriter(datastoreId: String) throws -> any FrameBlobWriter {
        let id = ResourceID.make()
        let name = "\(datastoreId)/\(id.prefix(2))/\(id).frames"
        return try FileBlobWriter(path: root + "/" + name, name: name)
    }

    public func read(blob: String, offset: Int, length: Int) throws -> [UInt8] {
        let input = try FileByteInput(path: root + "/" + blob)
        var bytes = [UInt8](repeating: 0, count: length)
        let got = try bytes.withUnsafeMutableBytes { try input.read(at: offset, into: $0) }
        guard got == length else { throw ObjectIOError(.io, "frame blob \(blob) is shorter than the catalog says") }
        return bytes
    }

    /// `fdatasync` on a descriptor of its own: Linux writes back the file's pages whichever descriptor wrote them.
    public func makeDurable(blob: String, withName: Bool) throws -> Int {
        let path = root + "/" + blob
        let descriptor = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw ObjectIOError(.io, "frame blob \(blob) could not be opened to sync: \(String(cString: strerror(errno)))")
        }
        var status = stat()
        let size = fstat(descriptor, &status) == 0 ? Int(status.st_size) : 0
        try DescriptorIO.syncAndClose(descriptor, what: "frame blob \(blob)")
        if withName { try DescriptorIO.syncFolder((path as NSString).deletingLastPathComponent) }
        return size
    }
}

final class FileBlobWriter: FrameBlobWriter {
    let blobName: String
    private let path: String
    private(set) var size = 0
    private var descriptor: Int32

    init(path: String, name: String) throws {
        self.path = path
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        descriptor = Glibc.open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw ObjectIOError(.io, "cannot create frame blob \(path): \(String(cString: strerror(errno)))")
        }
        blobName = name
    }

    deinit {
        if descriptor >= 0 { Glibc.close(descriptor) }
    }

    func append(_ bytes: UnsafeRawBufferPointer) throws {
        try DescriptorIO.writeAll(bytes, to: descriptor, what: "frame blob \(path)")
        size += bytes.count
    }

    /// `fsync`s the blob and its folder (so its directory entry survives a crash too), then closes it. With one
    /// pack per worker this is a handful of syncs per job, not one per instance.
    func finish() throws {
        guard descriptor >= 0 else { return }
        let descriptor = self.descriptor
        self.descriptor = -1
        try DescriptorIO.syncAndClose(descriptor, what: "frame blob \(path)")
        try DescriptorIO.syncFolder((path as NSString).deletingLastPathComponent)
    }
}

/// 32 lower-case hex characters, the shape of DatastoreId, ImageSetId, ImageFrameId and JobId (spec §1.4).
public enum ResourceID {
    public static func make() -> String {
        var generator = SystemRandomNumberGenerator()
        let digits = Array("0123456789abcdef".utf8)
        var bytes = [UInt8](repeating: 0, count: 32)
        for index in 0..<32 { bytes[index] = digits[Int(generator.next() & 0xF)] }
        return String(decoding: bytes, as: UTF8.self)
    }
}
