public import DICOMParser
import Foundation
import Glibc

/// The objects under a local folder, listed depth-first with `readdir` (memory grows with the number of pending
/// directories, never with the number of files).
///
/// Nothing under the folder goes unreported: names are read as bytes (a name that is not UTF-8 keeps its bytes
/// and gets a percent-encoded key, `ObjectName`); symbolic links are followed only to regular files inside the
/// folder; a link that leads out of it or to a folder, a FIFO, a socket, a device and a folder that cannot be
/// listed each become an object whose opening fails with that reason.
public struct LocalDirectorySource: ObjectSource {
    public let root: String

    /// - Parameter root: an absolute path to a folder (or a single file).
    public init(root: String) {
        var root = root
        while root.count > 1 && root.hasSuffix("/") { root.removeLast() }
        self.root = root
    }

    /// An object's key relative to the root (its own name when the root is a file), as `scan` reports it: names
    /// that are not UTF-8 stay apart, as in the key.
    public func relativeKey(of object: SourceObject) -> String {
        let rootKey = Self.key(forPath: root) + "/"
        if object.key.hasPrefix(rootKey) { return String(object.key.dropFirst(rootKey.count)) }
        return object.key.split(separator: "/").last.map(String.init) ?? object.key
    }

    public static func key(forPath path: String) -> String {
        path.hasPrefix("/") ? String(path.dropFirst()) : path
    }

    public func forEachObject(_ body: (SourceObject) throws -> Void) throws {
        var status = stat()
        guard stat(root, &status) == 0 else {
            throw ObjectIOError(errno == EACCES ? .accessDenied : .notFound, "input prefix \(root) cannot be read: \(String(cString: strerror(errno)))")
        }
        if status.st_mode & S_IFMT == S_IFREG {
            try body(SourceObject(key: Self.key(forPath: root), size: Int(status.st_size), location: root))
            return
        }
        let resolvedRoot = Self.realPath(Array(root.utf8)) ?? Array(root.utf8)
        // Each pending folder: its raw path and its key.
        var pending: [(path: [UInt8], key: String)] = [(Array(root.utf8), Self.key(forPath: root))]
        var isRoot = true
        while let directory = pending.popLast() {
            guard let handle = Self.withCPath(directory.path, { opendir($0) }) else {
                let reason = String(cString: strerror(errno))
                if isRoot {
                    throw ObjectIOError(errno == EACCES ? .accessDenied : .notFound, "input prefix \(root) cannot be listed: \(reason)")
                }
                try body(Self.unreadable(directory.key + "/", directory.path, "The folder cannot be listed: \(reason)"))
                continue
            }
            isRoot = false
            var entries: [(name: [UInt8], type: UInt8)] = []
            while let entry = readdir(handle) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { Array($0.prefix(while: { $0 != 0 })) }
                if name != [0x2E] && name != [0x2E, 0x2E] { entries.append((name, entry.pointee.d_type)) }
            }
            closedir(handle)
            // Sorted by bytes so listings (and so job outputs) are the same on every run.
            entries.sort { $0.name.lexicographicallyPrecedes($1.name) }
            var keys: [String: Int] = [:]
            var subdirectories: [(path: [UInt8], key: String)] = []
            for entry in entries {
                let path = directory.path + [0x2F] + entry.name
                let key = ObjectName.unique(directory.key + "/" + ObjectName.key(entry.name), seen: &keys)
                switch Self.kind(of: path, type: entry.type, inside: resolvedRoot) {
                case .folder:
                    subdirectories.append((path, key))
                case .file(let target):
                    let location = String(decoding: target, as: UTF8.self)
                    let raw = String(validating: target, as: UTF8.self) == nil ? target : nil
                    try body(SourceObject(key: key, size: nil, location: location, rawLocation: raw))
                case .unreadable(let reason):
                    try body(Self.unreadable(key, path, reason))
                }
            }
            pending.append(contentsOf: subdirectories.reversed())
        }
    }

    public func open(_ object: SourceObject) throws -> any P10ByteInput {
        if let reason = object.unreadableReason { throw ObjectIOError(.io, reason) }
        do {
            return try FileByteInput(pathBytes: object.rawLocation ?? Array(object.location.utf8))
        } catch {
            throw ObjectIOError(.io, error.message)
        }
    }

    private enum Kind {
        case folder
        /// A regular file, opened at this path (a link's target inside the folder).
        case file([UInt8])
        case unreadable(String)
    }

    private static func kind(of path: [UInt8], type: UInt8, inside root: [UInt8]) -> Kind {
        if type == UInt8(DT_DIR) { return .folder }
        if type == UInt8(DT_REG) { return .file(path) }
        var status = stat()
        guard withCPath(path, { lstat($0, &status) }) == 0 else {
            return .unreadable("The file cannot be read: \(String(cString: strerror(errno)))")
        }
        switch status.st_mode & S_IFMT {
        case S_IFDIR: return .folder
        case S_IFREG: return .file(path)
        case S_IFLNK:
            guard let target = realPath(path) else { return .unreadable("The symbolic link is broken: \(String(cString: strerror(errno)))") }
            guard target.starts(with: root + [0x2F]) else {
                return .unreadable("The symbolic link leads out of the input prefix, to \(ObjectName.key(target)); not followed")
            }
            var targetStatus = stat()
            guard withCPath(target, { stat($0, &targetStatus) }) == 0 else {
                return .unreadable("The symbolic link's target cannot be read: \(String(cString: strerror(errno)))")
            }
            switch targetStatus.st_mode & S_IFMT {
            case S_IFREG: return .file(target)
            case S_IFDIR: return .unreadable("The symbolic link leads to a folder; links to folders are not followed")
            default: return .unreadable("The symbolic link leads to something that is not a regular file")
            }
        case S_IFIFO: return .unreadable("The object is a FIFO, not a regular file")
        case S_IFSOCK: return .unreadable("The object is a socket, not a regular file")
        default: return .unreadable("The object is a device, not a regular file")
        }
    }

    private static func unreadable(_ key: String, _ path: [UInt8], _ reason: String) -> SourceObject {
        SourceObject(key: key, size: nil, location: String(decoding: path, as: UTF8.self), rawLocation: path, unreadableReason: reason)
    }

    static func realPath(_ path: [UInt8]) -> [UInt8]? {
        withCPath(path) { pointer in
            guard let resolved = realpath(pointer, nil) else { return nil }
            defer { free(resolved) }
            return Array(UnsafeRawBufferPointer(start: resolved, count: strlen(resolved)))
        }
    }

    static func withCPath<R>(_ path: [UInt8], _ body: (UnsafePointer<CChar>) -> R) -> R {
        (path + [0]).withUnsafeBufferPointer { bytes in
            bytes.withMemoryRebound(to: CChar.self) { body($0.baseAddress!) }
        }
    }
}
