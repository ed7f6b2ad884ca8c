import Dispatch
import Foundation
import Glibc

/// Walks a directory tree and processes every regular file on a fixed pool of Dispatch workers.
///
/// Directory listing and file processing share one queue, so the load balances itself: a worker takes a file if
/// one is pending, else lists a directory. Memory stays bounded whatever the tree holds: at most
/// `maxPendingFiles` file paths wait in the queue; a worker that finds more while listing processes them itself
/// instead of queueing (it helps rather than waits, so workers can never all block on a full queue).
/// Symbolic links to files are followed; links to directories are not (no cycles).
public final class ParallelFileWalk: @unchecked Sendable {
    // @unchecked: every mutable field below is read and written only while holding `condition`.
    public struct Configuration: Sendable {
        public var threads: Int
        public var maxPendingFiles: Int

        /// - Parameter threads: worker count; `nil` uses the active processor count.
        public init(threads: Int? = nil, maxPendingFiles: Int = 4096) {
            self.threads = max(1, threads ?? ProcessInfo.processInfo.activeProcessorCount)
            self.maxPendingFiles = max(1, maxPendingFiles)
        }
    }

    /// A file found by the walk.
    public struct FoundFile: Sendable {
        /// Path relative to the root, `/`-separated.
        public var relativePath: String
        public var absolutePath: String
    }

    private let configuration: Configuration
    private let condition = NSCondition()
    private var pendingFiles: [FoundFile] = []
    private var pendingDirectories: [String] = []
    /// Queued plus running tasks; the walk ends when it drops to zero.
    private var outstanding = 0
    private let root: String

    public init(root: String, configuration: Configuration) {
        var root = root
        while root.count > 1 && root.hasSuffix("/") { root.removeLast() }
        self.root = root
        self.configuration = configuration
    }

    /// Runs the walk; `process` is called once per regular file with the index of the worker (0..<threads),
    /// concurrently from several threads. Returns when every file has been processed.
    public func run(_ process: @escaping @Sendable (_ worker: Int, _ file: FoundFile) -> Void) {
        var status = stat()
        if stat(root, &status) == 0, status.st_mode & S_IFMT == S_IFREG {
            let name = root.split(separator: "/").last.map(String.init) ?? root
            process(0, FoundFile(relativePath: name, absolutePath: root))
            return
        }
        condition.lock()
        pendingDirectories = [""]
        outstanding = 1
        condition.unlock()
        DispatchQueue.concurrentPerform(iterations: configuration.threads) { worker in
            self.workerLoop(worker: worker, process: process)
        }
    }

    private enum Task {
        case file(FoundFile)
        case directory(String)
    }

    private func workerLoop(worker: Int, process: (Int, FoundFile) -> Void) {
        while let task = nextTask() {
            switch task {
            case .file(let file):
                process(worker, file)
            case .directory(let relative):
                list(relative, worker: worker, process: process)
            }
            condition.lock()
            outstanding -= 1
            if outstanding == 0 { condition.broadcast() }
            condition.unlock()
        }
    }

    private func nextTask() -> Task? {
        condition.lock()
        defer { condition.unlock() }
        while true {
            if let file = pendingFiles.popLast() { return .file(file) }
            if let directory = pendingDirectories.popLast() { return .directory(directory) }
            if outstanding == 0 { return nil }
            condition.wait()
        }
    }

    private func list(_ relative: String, worker: Int, process: (Int, FoundFile) -> Void) {
        let absolute = relative.isEmpty ? root : root + "/" + relative
        guard let directory = opendir(absolute) else { return }
        defer { closedir(directory) }
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name == "." || name == ".." { continue }
            let childRelative = relative.isEmpty ? name : relative + "/" + name
            let childAbsolute = absolute + "/" + name
            var type = Int32(entry.pointee.d_type)
            if type == Int32(DT_UNKNOWN) || type == Int32(DT_LNK) {
                var status = stat()
                let followed = type == Int32(DT_LNK) ? stat(childAbsolute, &status) : lstat(childAbsolute, &status)
                guard followed == 0 else { continue }
                let format = status.st_mode & S_IFMT
                if format == S_IFREG { type = Int32(DT_REG) } else if format == S_IFDIR && type != Int32(DT_LNK) {
                    type = Int32(DT_DIR)
                } else { continue }
            }
            if type == Int32(DT_DIR) {
                condition.lock()
                pendingDirectories.append(childRelative)
                outstanding += 1
                condition.signal()
                condition.unlock()
            } else if type == Int32(DT_REG) {
                let file = FoundFile(relativePath: childRelative, absolutePath: childAbsolute)
                condition.lock()
                if pendingFiles.count < configuration.maxPendingFiles {
                    pendingFiles.append(file)
                    outstanding += 1
                    condition.signal()
                    condition.unlock()
                } else {
                    condition.unlock()
                    process(worker, file)
                }
            }
        }
    }
}
