import Glibc

/// The one write loop for file descriptors: write(2) may write fewer bytes than asked or be interrupted
/// (EINTR), so it is repeated until every byte is written.
public enum DescriptorIO {
    /// - Throws: `ObjectIOError(.io)` naming `what` and the system's reason.
    public static func writeAll(_ bytes: UnsafeRawBufferPointer, to descriptor: Int32, what: String) throws {
        var offset = 0
        while offset < bytes.count {
            let written = Glibc.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else {
                let reason = written < 0 ? String(cString: strerror(errno)) : "nothing was written"
                throw ObjectIOError(.io, "\(what) write failed: \(reason)")
            }
            offset += written
        }
    }

    /// `fsync`s then closes `descriptor`; either failing means the bytes may not be on disk.
    /// - Throws: `ObjectIOError(.io)` naming `what` and the system's reason.
    public static func syncAndClose(_ descriptor: Int32, what: String) throws {
        let synced = fsync(descriptor) == 0 ? 0 : errno
        let closed = Glibc.close(descriptor) == 0 ? 0 : errno
        if let failure = [synced, closed].first(where: { $0 != 0 && $0 != EINTR }) {
            throw ObjectIOError(.io, "\(what) could not be made durable: \(String(cString: strerror(failure)))")
        }
    }

    /// `fsync`s a folder, so the names created, renamed or removed in it survive a crash of the machine.
    /// - Throws: `ObjectIOError(.io)` naming the folder and the system's reason.
    public static func syncFolder(_ path: String) throws {
        let descriptor = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw ObjectIOError(.io, "folder \(path) could not be opened to sync: \(String(cString: strerror(errno)))")
        }
        try syncAndClose(descriptor, what: "folder \(path)")
    }
}
