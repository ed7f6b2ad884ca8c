import Foundation

/// A bounded FIFO between pipeline stages: `push` waits while it is full (back-pressure that bounds memory),
/// `pop` waits while it is empty and returns `nil` once the queue is closed and drained.
final class BlockingQueue<Element>: @unchecked Sendable {
    // @unchecked: `items` and `closed` are only touched while holding `condition`.
    private let condition = NSCondition()
    private var items: [Element] = []
    private var head = 0
    private var closed = false
    private let capacity: Int

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    func push(_ item: Element) {
        condition.lock()
        while items.count - head >= capacity && !closed { condition.wait() }
        if !closed {
            items.append(item)
            condition.broadcast()
        }
        condition.unlock()
    }

    func pop() -> Element? {
        condition.lock()
        defer { condition.unlock() }
        while items.count == head && !closed { condition.wait() }
        guard items.count > head else { return nil }
        let item = items[head]
        head += 1
        if head > 1024 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
        condition.broadcast()
        return item
    }

    /// No more pushes; poppers drain what is left, then get `nil`.
    func close() {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
    }
}
