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
            var names: [String] = []
            while let entry = readdir(handle) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
                }
                if name != "." && name != ".." { names.append(name) }
            }
            closedir(handle)
            // Sorted so listings (and so job outputs) are the same on every run.
            var subdirectories: [String] = []
            for name in names.sorted() {
                let path = directory + "/" + name
                var entryStatus = stat()
                guard lstat(path, &entryStatus) == 0 else { continue }
                var format = entryStatus.st_mode & S_IFMT
                if format == S_IFLNK {
                    guard stat(path, &entryStatus) == 0, entryStatus.st_mode & S_IFMT == S_IFREG else { continue }
                    format = S_IFREG
                }
                if format == S_IFDIR {
                    subdirectories.append(path)
                } else if format == S_IFREG {
                    try body(SourceObject(key: Self.key(forPath: path), size: Int(entryStatus.st_size), location: path))
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
