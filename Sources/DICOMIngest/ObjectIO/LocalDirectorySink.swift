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
        jobFolder = root + "/\(datastoreId)-DicomImport-\(jobId)"
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

    public func finish(manifest: [UInt8]) throws {
        try state.withLock { state in
            guard !state.finished else { return }
            state.finished = true
            for (file, descriptor) in state.descriptors {
                if let bytes = state.pending[file], !bytes.isEmpty { try Self.writeAll(descriptor, bytes) }
                fsync(descriptor)
                Glibc.close(descriptor)
            }
            state.descriptors = [:]
            let path = jobFolder + "/job-output-manifest.json"
            let temporary = path + ".partial"
            let descriptor = Glibc.open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard descriptor >= 0 else {
                throw ObjectIOError(.accessDenied, "cannot write \(path): \(String(cString: strerror(errno)))")
            }
            defer { Glibc.close(descriptor) }
            try Self.writeAll(descriptor, manifest)
            fsync(descriptor)
            guard rename(temporary, path) == 0 else {
                throw ObjectIOError(.io, "cannot write \(path): \(String(cString: strerror(errno)))")
            }
        }
    }

    private static func writeAll(_ descriptor: Int32, _ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try DescriptorIO.writeAll($0, to: descriptor, what: "result file") }
    }
}
