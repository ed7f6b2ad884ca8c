public import DICOMParser
import Foundation
import Glibc

/// The objects under a local folder, listed depth-first with `readdir` (memory grows with the number of pending
/// directories, never with the number of files). Symbolic links to files are followed, links to folders are not.
public struct LocalDirectorySource: ObjectSource {
    public let root: String

    /// - Parameter root: an absolute path to a folder (or a single file).
    public init(root: String) {
        var root = root
        while root.count > 1 && root.hasSuffix("/") { root.removeLast() }
        self.root = root
    }

    /// `path` relative to the root (the file's own name when the root is a file), as `scan` reports it.
    public func relativePath(of path: String) -> String {
        if path.hasPrefix(root + "/") { return String(path.dropFirst(root.count + 1)) }
        return path.split(separator: "/").last.map(String.init) ?? path
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
        var pending = [root]
        var isRoot = true
        while let directory = pending.popLast() {
            guard let handle = opendir(directory) else {
                if isRoot {
                    throw ObjectIOError(errno == EACCES ? .accessDenied : .notFound, "input prefix \(root) cannot be listed: \(String(cString: strerror(errno)))")
                }
                continue
            }
            isRoot = false
            var entries: [(name: String, type: UInt8)] = []
            while let entry = readdir(handle) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
                }
                if name != "." && name != ".." { entries.append((name, entry.pointee.d_type)) }
            }
            closedir(handle)
            // Sorted so listings (and so job outputs) are the same on every run.
            entries.sort { $0.name < $1.name }
            var subdirectories: [String] = []
            for entry in entries {
                let path = directory + "/" + entry.name
                var type = entry.type
                if type == UInt8(DT_UNKNOWN) || type == UInt8(DT_LNK) {
                    // d_type is not filled on every file system; links are followed to files only.
                    var entryStatus = stat()
                    guard (type == UInt8(DT_LNK) ? stat(path, &entryStatus) : lstat(path, &entryStatus)) == 0 else {
                        continue
                    }
                    let format = entryStatus.st_mode & S_IFMT
                    if format == S_IFREG {
                        type = UInt8(DT_REG)
                    } else if format == S_IFDIR && type != UInt8(DT_LNK) {
                        type = UInt8(DT_DIR)
                    } else {
                        continue
                    }
                }
                if type == UInt8(DT_DIR) {
                    subdirectories.append(path)
                } else if type == UInt8(DT_REG) {
                    try body(SourceObject(key: Self.key(forPath: path), size: nil, location: path))
                }
            }
            pending.append(contentsOf: subdirectories.reversed())
        }
    }

    public func open(_ object: SourceObject) throws -> any P10ByteInput {
        do {
            return try FileByteInput(path: object.location)
        } catch {
            throw ObjectIOError(.io, error.message)
        }
    }
}
