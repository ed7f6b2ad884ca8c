import Foundation
import Glibc
import Synchronization

/// Writes a job's result files under a local output folder:
/// `<output>/<datastoreId>-DicomImport-<jobId>/{job-output-manifest.json, SUCCESS/, FAILURE/, WARNING/}`.
/// Lines are appended as they come (buffered, flushed every 64 KiB and at the end); all three NDJSON files exist
/// even when empty.
public final class LocalDirectorySink: ResultSink {
    private struct State {
        var descriptors: [ResultFile: Int32] = [:]
        var pending: [ResultFile: [UInt8]] = [:]
        var finished = false
    }

    public let jobFolder: String
    public let jobFolderURI: String
    private let state = Mutex(State())

    /// Creates the job folder and the three empty result files.
    public init(outputRoot: String, datastoreId: String, jobId: String) throws {
        var root = outputRoot
        while root.count > 1 && root.hasSuffix("/") { root.removeLast() }
        jobFolder = root + "/" + JobOutputFolder.name(datastoreId: datastoreId, jobId: jobId)
        jobFolderURI = "file://" + jobFolder + "/"
        var descriptors: [ResultFile: Int32] = [:]
        do {
            for file in ResultFile.allCases {
                let path = jobFolder + "/" + file.rawValue
                try FileManager.default.createDirectory(
                    atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                let descriptor = Glibc.open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
                guard descriptor >= 0 else {
                    throw ObjectIOError(.accessDenied, "cannot write \(path): \(String(cString: strerror(errno)))")
                }
                descriptors[file] = descriptor
            }
        } catch let error as ObjectIOError {
            descriptors.values.forEach { _ = Glibc.close($0) }
            throw error
        } catch {
            descriptors.values.forEach { _ = Glibc.close($0) }
            throw ObjectIOError(.accessDenied, "cannot create the output folder \(jobFolder): \(error.localizedDescription)")
        }
        state.withLock { $0.descriptors = descriptors }
    }

    deinit {
        state.withLock { state in
            state.descriptors.values.forEach { _ = Glibc.close($0) }
        }
    }

    public func append(_ line: [UInt8], to file: ResultFile) throws {
        try state.withLock { state in
            guard !state.finished, let descriptor = state.descriptors[file] else { return }
            state.pending[file, default: []].append(contentsOf: line)
            state.pending[file]!.append(0x0A)
            if state.pending[file]!.count >= 64 * 1024 {
                try Self.writeAll(descriptor, state.pending[file]!)
                state.pending[file]!.removeAll(keepingCapacity: true)
            }
        }
    }

    /// Writes what is pending, makes every result file durable, then writes the manifest beside them and
    /// renames it into place: a manifest that exists names result files that are complete on disk. Any failure
    /// to write or sync is thrown (the job then fails with the reason).
    public func finish(manifest: [UInt8]) throws {
        try state.withLock { state in
            guard !state.finished else { return }
            state.finished = true
            let descriptors = state.descriptors
            state.descriptors = [:]
            var failure: (any Error)?
            for file in ResultFile.allCases {
                guard let descriptor = descriptors[file] else { continue }
                do {
                    if let bytes = state.pending[file], !bytes.isEmpty { try Self.writeAll(descriptor, bytes) }
                    try DescriptorIO.syncAndClose(descriptor, what: "result file \(file.rawValue)")
                } catch {
                    _ = Glibc.close(descriptor)
                    failure = failure ?? error
                }
            }
            if let failure { throw failure }
            for file in ResultFile.allCases {
                try DescriptorIO.syncFolder(jobFolder + "/" + (file.rawValue as NSString).deletingLastPathComponent)
            }
            let path = jobFolder + "/job-output-manifest.json"
            let temporary = path + ".partial"
            let descriptor = Glibc.open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard descriptor >= 0 else {
                throw ObjectIOError(.accessDenied, "cannot write \(path): \(String(cString: strerror(errno)))")
            }
            do {
                try Self.writeAll(descriptor, manifest)
            } catch {
                _ = Glibc.close(descriptor)
                throw error
            }
            try DescriptorIO.syncAndClose(descriptor, what: "job-output-manifest.json")
            guard rename(temporary, path) == 0 else {
                throw ObjectIOError(.io, "cannot write \(path): \(String(cString: strerror(errno)))")
            }
            try DescriptorIO.syncFolder(jobFolder)
            try DescriptorIO.syncFolder((jobFolder as NSString).deletingLastPathComponent)
        }
    }

    private static func writeAll(_ descriptor: Int32, _ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try DescriptorIO.writeAll($0, to: descriptor, what: "result file") }
    }
}
