import Foundation

/// One budget of bytes for a job's in-flight work: the buffers of the frame each worker is transcoding and the
/// prepared instances waiting to be staged. A worker reserves before it holds and blocks while the budget is
/// spent, so memory stays within the budget whatever the archive holds. A single reservation larger than the whole
/// budget is let through once nothing else is reserved, so no object waits for ever.
public final class MemoryBudget: @unchecked Sendable {
    public let limit: Int
    /// Guards `reserved`; every access holds it.
    private let condition = NSCondition()
    private var reserved = 0

    public init(limit: Int) {
        self.limit = max(1, limit)
    }

    /// Bytes currently reserved.
    public var inUse: Int {
        condition.lock()
        defer { condition.unlock() }
        return reserved
    }

    /// Waits until `bytes` fit (or nothing else is reserved), then reserves them.
    public func reserve(_ bytes: Int) {
        guard bytes > 0 else { return }
        condition.lock()
        while reserved > 0 && bytes > limit - reserved { condition.wait() }
        reserved += bytes
        condition.unlock()
    }

    public func release(_ bytes: Int) {
        guard bytes > 0 else { return }
        condition.lock()
        reserved -= bytes
        condition.broadcast()
        condition.unlock()
    }
}
