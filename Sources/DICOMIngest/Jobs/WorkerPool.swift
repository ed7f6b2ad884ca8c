import Dispatch
import Foundation
import Synchronization

/// The process's workers: at most `threads` threads, shared by every job that runs at once. Each job feeds a lane
/// of its own (a bounded queue of its objects, filled by its lister); a free worker takes its next small batch
/// from the lane after the one it served last, so a job of a million files does not hold back a job of ten, and
/// a hundred jobs still run on `threads` threads.
///
/// Threads are started when a lane has work and no idle thread is waiting, up to `threads`, and end once no lane
/// is open: an idle process holds none.
///
/// Each lane keeps the per-worker state its objects are processed with (`makeWorker`: read buffers, open frame
/// packs) in a small pool of its own: a thread takes one for a batch and gives it back, so a lane never builds
/// more than `threads` of them, and when the lane is done `finishWorker` closes each on the job's thread.
public final class WorkerPool: @unchecked Sendable {
    // @unchecked: every mutable field below is only touched while holding `condition`.
    public let threads: Int
    /// Objects a worker takes from a lane at once: few enough that lanes interleave finely, enough that the lister
    /// and the workers do not trade a wake-up for every object.
    static let batchSize = 8

    private let condition = NSCondition()
    private var lanes: [Lane] = []
    /// Index in `lanes` of the lane served next.
    private var cursor = 0
    private var running = 0
    private var idle = 0
    private var waitingListers = 0

    public init(threads: Int) {
        self.threads = max(1, threads)
    }

    /// Threads started and not yet ended.
    var threadsRunning: Int {
        condition.lock()
        defer { condition.unlock() }
        return running
    }

    /// Why a lane stopped before its listing ended.
    public struct Cancelled: Error, Sendable {}

    /// A job's way to stop its own lane: queued objects are dropped, the listing ends at its next object, and
    /// objects already in a worker's hands see `isCancelled` (an instance checks it between frames).
    public final class Cancellation: Sendable {
        private let flag = Atomic<Bool>(false)
        public init() {}
        public var isCancelled: Bool { flag.load(ordering: .relaxed) }
        public func cancel() { flag.store(true, ordering: .relaxed) }
    }

    /// Lists `source` on the calling thread into a lane of this pool and processes every object on the pool's
    /// workers; blocks until the last one is done and each worker state is finished.
    ///
    /// - Parameters:
    ///   - queueCapacity: objects listed ahead of the workers (memory does not grow with the listing).
    ///   - cancellation: stops the lane early; `forEach` then throws `Cancelled` (unless the listing failed first).
    ///   - isReady: whether the lane may be given more work now (a job whose results wait to be consumed says no,
    ///     so it does not pin every worker while others have work).
    /// - Throws: the listing's error (what was listed before it is still processed), else the first error of
    ///   `finishWorker`, else `Cancelled`.
    public func forEach<Worker>(
        in source: any ObjectSource,
        queueCapacity: Int = 1024,
        cancellation: Cancellation = Cancellation(),
        isReady: @escaping @Sendable () -> Bool = { true },
        makeWorker: @escaping @Sendable () -> Worker,
        finishWorker: @escaping @Sendable (Worker) throws -> Void = { _ in },
        _ body: @escaping @Sendable (Worker, SourceObject) -> Void
    ) throws {
        let states = WorkerStates(make: makeWorker)
        let lane = Lane(capacity: max(1, queueCapacity), cancellation: cancellation, isReady: isReady) { batch in
            let state = states.take()
            for object in batch where !cancellation.isCancelled { body(state, object) }
            states.give(state)
        }
        add(lane)
        var listingError: (any Error)?
        do {
            try source.forEachObject { object in
                guard push(object, to: lane) else { throw Cancelled() }
            }
        } catch is Cancelled {
        } catch {
            listingError = error
        }
        waitUntilDone(lane)
        var finishError: (any Error)?
        for state in states.all() {
            do { try finishWorker(state) } catch { finishError = finishError ?? error }
        }
        if let listingError { throw listingError }
        if let finishError { throw finishError }
        if cancellation.isCancelled { throw Cancelled() }
    }

    // MARK: - Lanes

    private final class Lane {
        // Touched only while holding the pool's `condition`.
        var items: [SourceObject] = []
        var head = 0
        var closed = false
        var inFlight = 0
        let capacity: Int
        let cancellation: Cancellation
        let isReady: @Sendable () -> Bool
        let process: ([SourceObject]) -> Void

        init(capacity: Int, cancellation: Cancellation, isReady: @escaping @Sendable () -> Bool, process: @escaping ([SourceObject]) -> Void) {
            self.capacity = capacity
            self.cancellation = cancellation
            self.isReady = isReady
            self.process = process
        }

        var queued: Int { items.count - head }
        var isDone: Bool { closed && inFlight == 0 && (queued == 0 || cancellation.isCancelled) }

        func take(upTo limit: Int) -> [SourceObject] {
            let end = min(items.count, head + limit)
            let batch = Array(items[head..<end])
            head = end
            if head > 1024 && head * 2 > items.count {
                items.removeFirst(head)
                head = 0
            }
            return batch
        }
    }

    private func add(_ lane: Lane) {
        condition.lock()
        lanes.append(lane)
        condition.unlock()
    }

    /// Waits while the lane is full; false once the lane is cancelled.
    private func push(_ object: SourceObject, to lane: Lane) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while lane.queued >= lane.capacity && !lane.cancellation.isCancelled {
            waitingListers += 1
            _ = condition.wait(until: Date(timeIntervalSinceNow: 0.05))
            waitingListers -= 1
        }
        guard !lane.cancellation.isCancelled else { return false }
        lane.items.append(object)
        wakeOrStartWorker()
        return true
    }

    /// Closes the lane, waits for its last batch, and removes it.
    private func waitUntilDone(_ lane: Lane) {
        condition.lock()
        lane.closed = true
        condition.broadcast()
        // Timed: a cancellation is a flag, not a signal.
        while !lane.isDone { _ = condition.wait(until: Date(timeIntervalSinceNow: 0.05)) }
        if let index = lanes.firstIndex(where: { $0 === lane }) {
            lanes.remove(at: index)
            if cursor > index { cursor -= 1 }
        }
        condition.broadcast()
        condition.unlock()
    }

    /// Called holding the lock: an idle worker takes the new work, else a new thread does if there is room.
    private func wakeOrStartWorker() {
        if idle > 0 {
            // A broadcast, not a signal: listers and closers wait on the same condition.
            condition.broadcast()
        } else if running < threads {
            running += 1
            // A private queue per worker: private queues overcommit, so a worker that blocks on I/O never waits for
            // the global pool to notice (libdispatch adds threads to its width-limited pool only after ~1 s).
            DispatchQueue(label: "dicom-ingest.worker").async { self.work() }
        }
    }

    /// Called holding the lock: the next lane after the cursor that has work and may take it, round robin.
    private func nextBatch() -> (Lane, [SourceObject])? {
        guard !lanes.isEmpty else { return nil }
        for step in 0..<lanes.count {
            let index = (cursor + step) % lanes.count
            let lane = lanes[index]
            guard lane.queued > 0, !lane.cancellation.isCancelled, lane.isReady() else { continue }
            cursor = (index + 1) % lanes.count
            lane.inFlight += 1
            return (lane, lane.take(upTo: Self.batchSize))
        }
        return nil
    }

    private func work() {
        condition.lock()
        while true {
            if let (lane, batch) = nextBatch() {
                if waitingListers > 0 { condition.broadcast() }
                condition.unlock()
                lane.process(batch)
                condition.lock()
                lane.inFlight -= 1
                if lane.isDone { condition.broadcast() }
                continue
            }
            // Nothing to take. Stay while some lane may still get work; leave when none is open.
            guard lanes.contains(where: { !$0.isDone }) else { break }
            idle += 1
            // Timed: a lane that was not ready (its results not yet consumed) becomes ready without a signal.
            _ = condition.wait(until: Date(timeIntervalSinceNow: 0.05))
            idle -= 1
        }
        running -= 1
        condition.unlock()
    }
}

/// The worker states of one lane: taken by a thread for a batch and given back, never used by two threads at
/// once; at most one per thread that served the lane at the same time.
private final class WorkerStates<Worker>: @unchecked Sendable {
    // @unchecked: `free` and `made` are only touched while holding `lock`; a state is used by one thread at a time
    // (the lock's hand-over orders its uses).
    private let lock = NSLock()
    private var free: [Worker] = []
    private var made: [Worker] = []
    private let make: @Sendable () -> Worker

    init(make: @escaping @Sendable () -> Worker) {
        self.make = make
    }

    func take() -> Worker {
        lock.lock()
        if let state = free.popLast() {
            lock.unlock()
            return state
        }
        lock.unlock()
        let state = make()
        lock.lock()
        made.append(state)
        lock.unlock()
        return state
    }

    func give(_ state: Worker) {
        lock.lock()
        free.append(state)
        lock.unlock()
    }

    /// Every state made; call once no batch is in flight.
    func all() -> [Worker] {
        lock.lock()
        defer { lock.unlock() }
        return made
    }
}
