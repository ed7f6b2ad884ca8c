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
}
