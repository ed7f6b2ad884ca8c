import DICOMIngestModel
import Foundation
import Glibc
import Synchronization

/// Which objects a job's workers held when its process died, so that an object that kills the process is retried
/// at most once more and then reported, never handed to a worker again (a crash loop would take every tenant of
/// the server down with it).
///
/// A journal is an append-only file per job: a worker writes `S<attempt> <key>` before it reads an object (or an
/// archive member) and `F<attempt> <key>` once it has its result. A key started but not finished in an earlier
/// attempt was in a worker's hands when that attempt's process died. Lines are written with one `write(2)` each
/// and not synced: the journal has to survive the death of the process, not of the machine (a power loss says
/// nothing about the objects being read).
public final class JobJournal: Sendable {
    /// Attempts during which an object was in flight before it is no longer read: the first stop may be
    /// another object's fault; a second one with the same object in hand is not a coincidence.
    public static let maxStopsInFlight = 2

    public let path: String
    public let attempt: Int
    private let descriptor: Mutex<Int32>

    /// Opens (creating) the journal of a job for `attempt`.
    public init(folder: String, jobId: String, attempt: Int) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        path = folder + "/" + jobId + ".journal"
        self.attempt = attempt
        let opened = Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard opened >= 0 else {
            throw ObjectIOError(.io, "cannot open the job journal \(path): \(String(cString: strerror(errno)))")
        }
        descriptor = Mutex(opened)
    }

    deinit {
        descriptor.withLock { if $0 >= 0 { _ = Glibc.close($0) } }
    }

    public func started(_ key: String) { append("S", key) }
    public func finished(_ key: String) { append("F", key) }

    /// Removes the journal of a job that has ended.
    public func remove() {
        descriptor.withLock {
            if $0 >= 0 { _ = Glibc.close($0) }
            $0 = -1
        }
        unlink(path)
    }

    /// A write error loses one line, which at worst lets an object be tried once more than the limit: it does
    /// not fail the object or the job.
    private func append(_ mark: String, _ key: String) {
        var line = Array("\(mark)\(attempt) ".utf8)
        JSONValue.writeString(key, to: &line)
        line.append(0x0A)
        descriptor.withLock { descriptor in
            guard descriptor >= 0 else { return }
            try? line.withUnsafeBytes { try DescriptorIO.writeAll($0, to: descriptor, what: "job journal") }
        }
    }

    /// For each key that earlier attempts (before `attempt`) left in flight, in how many of them it was.
    ///
    /// An archive's key is in flight while its members are read: when one of its members was in flight too, the
    /// member is the one to blame, not the archive. Reads the journal in pieces; memory grows with the keys in
    /// flight at once (a few per worker), not with the journal.
    public static func stopsInFlight(folder: String, jobId: String, before attempt: Int) -> [String: Int] {
        let path = folder + "/" + jobId + ".journal"
        let descriptor = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return [:] }
        defer { Glibc.close(descriptor) }
        var open: [Int: Set<String>] = [:]
        func take(_ line: ArraySlice<UInt8>) {
            guard let space = line.firstIndex(of: 0x20), let mark = line.first, mark == UInt8(ascii: "S") || mark == UInt8(ascii: "F"),
                let lineAttempt = Int(String(decoding: line[(line.startIndex + 1)..<space], as: UTF8.self)),
                lineAttempt < attempt,
                let key = (try? JSONSerialization.jsonObject(with: Data(line[(space + 1)...]), options: .fragmentsAllowed)) as? String
            else { return }
            if mark == UInt8(ascii: "S") {
                open[lineAttempt, default: []].insert(key)
            } else {
                open[lineAttempt]?.remove(key)
            }
        }
        var pending: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let got = chunk.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress!, $0.count) }
            if got < 0 && errno == EINTR { continue }
            guard got > 0 else { break }
            pending.append(contentsOf: chunk[0..<got])
            var start = pending.startIndex
            while let newline = pending[start...].firstIndex(of: 0x0A) {
                take(pending[start..<newline])
                start = newline + 1
            }
            pending.removeSubrange(pending.startIndex..<start)
        }
        return blame(open.values)
    }

    /// For each key in flight at some stop (`inFlight`: a set of keys per stop), at how many stops it was; an
    /// archive whose member was in flight at a stop is not counted for that stop, its member is.
    public static func blame(_ inFlight: some Sequence<Set<String>>) -> [String: Int] {
        var stops: [String: Int] = [:]
        for keys in inFlight {
            for key in keys where !keys.contains(where: { $0.count > key.count && $0.hasPrefix(key + "/") }) {
                stops[key, default: 0] += 1
            }
        }
        return stops
    }
}

/// One process at a time runs a job: an exclusive `flock` on `<folder>/<jobId>.lock`, held for the run. The
/// kernel drops it when the process ends however it ends, so a crash never leaves a job locked; a second
/// `import --resume`, or a CLI resume of a job the server is running, is refused instead of doubling its work.
/// (Machines that share a catalog need a lease in the catalog instead.)
public final class JobLock: Sendable {
    private let descriptor: Int32
    private let path: String

    /// - Throws: `IngestServiceError.conflict` when another process holds the job; `ObjectIOError` when the
    ///   lock file cannot be opened.
    public init(folder: String, jobId: String) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        path = folder + "/" + jobId + ".lock"
        let opened = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard opened >= 0 else {
            throw ObjectIOError(.io, "cannot open the job lock \(path): \(String(cString: strerror(errno)))")
        }
        var result: Int32
        repeat { result = flock(opened, LOCK_EX | LOCK_NB) } while result != 0 && errno == EINTR
        guard result == 0 else {
            let reason = errno
            Glibc.close(opened)
            if reason == EWOULDBLOCK { throw IngestServiceError.conflict("Job \(jobId) is being run by another process") }
            throw ObjectIOError(.io, "cannot lock the job lock \(path): \(String(cString: strerror(reason)))")
        }
        descriptor = opened
    }

    /// Removes the lock file of a job that has ended. A process that opened it just before may then lock the
    /// removed file, and another a new one; both find the job ended when they read it after locking, as every
    /// holder must.
    public func remove() {
        unlink(path)
    }

    /// Closing releases the lock.
    deinit {
        Glibc.close(descriptor)
    }
}
