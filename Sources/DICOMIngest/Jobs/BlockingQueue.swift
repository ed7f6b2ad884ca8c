import Foundation

/// A bounded FIFO between pipeline stages: `push` waits while it is full (back-pressure that bounds memory),
/// `pop` waits while it is empty and returns `nil` once the queue is closed and drained.
///
/// Waiters are counted so that a push or pop only signals when someone is actually waiting: on a busy pipeline
/// most operations then cost a lock and no wake-up.
final class BlockingQueue<Element>: @unchecked Sendable {
    // @unchecked: every field below is only touched while holding `condition`.
    private let condition = NSCondition()
    private var items: [Element] = []
    private var head = 0
    private var closed = false
    private var waitingPoppers = 0
    private var waitingPushers = 0
    private let capacity: Int

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    func push(_ item: Element) {
        condition.lock()
        defer { condition.unlock() }
        while items.count - head >= capacity && !closed {
            waitingPushers += 1
            condition.wait()
            waitingPushers -= 1
        }
        guard !closed else { return }
        items.append(item)
        if waitingPoppers > 0 { condition.broadcast() }
    }

    func pop() -> Element? {
        condition.lock()
        defer { condition.unlock() }
        waitWhileEmpty()
        guard items.count > head else { return nil }
        let item = items[head]
        advanceHead(to: head + 1)
        return item
    }

    /// Takes up to `limit` items at once (at least one, waiting like `pop`); empty once closed and drained.
    /// Workers that take small batches trade far fewer wake-ups with the producer.
    func pop(upTo limit: Int) -> [Element] {
        condition.lock()
        defer { condition.unlock() }
        waitWhileEmpty()
        let end = min(items.count, head + max(1, limit))
        // A copy, not a slice: a slice would keep `items` shared and make the next push copy the whole queue.
        let batch = Array(items[head..<end])
        advanceHead(to: end)
        return batch
    }

    /// Called holding the lock.
    private func waitWhileEmpty() {
        while items.count == head && !closed {
            waitingPoppers += 1
            condition.wait()
            waitingPoppers -= 1
        }
    }

    /// Called holding the lock: drops taken items once they are most of the storage, and wakes waiting pushers.
    private func advanceHead(to end: Int) {
        head = end
        if head > 1024 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
        if waitingPushers > 0 { condition.broadcast() }
    }

    /// Items waiting to be popped.
    var count: Int {
        condition.lock()
        defer { condition.unlock() }
        return items.count - head
    }

    /// No more pushes; poppers drain what is left, then get `nil`.
    func close() {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
    }
}
