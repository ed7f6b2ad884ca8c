import Dispatch
import Synchronization

/// Lists a source on one thread into a bounded queue and processes the objects on a fixed pool of Dispatch
/// workers, each taking the next object as soon as it is free (the load balances itself, whatever the sizes).
///
/// Memory does not grow with the number of objects: at most `queueCapacity` (default 1,024, a few hundred KB of
/// keys) wait in the queue. A long queue lets the lister run ahead and sleep instead of trading wake-ups with the
/// workers on every object. Each worker builds its own state (read buffers, frame packs) with `makeWorker` on its
/// own thread; it is never shared.
enum ParallelObjects {
    /// Blocks until every object has been processed.
    /// - Throws: the listing's error (the objects listed before it are still processed), else the first error of
    ///   `finishWorker`.
    static func forEach<Worker>(
        in source: any ObjectSource,
        threads: Int,
        queueCapacity: Int = 1024,
        makeWorker: @escaping @Sendable () -> Worker,
        finishWorker: @escaping @Sendable (Worker) throws -> Void = { _ in },
        _ body: @escaping @Sendable (Worker, SourceObject) -> Void
    ) throws {
        let queue = BlockingQueue<SourceObject>(capacity: queueCapacity)
        let failure = Mutex<(any Error)?>(nil)
        let workers = DispatchGroup()
        for index in 0..<max(1, threads) {
            // A private queue per worker: private queues overcommit, so a worker that blocks on I/O never waits
            // for the global pool to notice (libdispatch adds threads to its width-limited pool only after ~1 s).
            DispatchQueue(label: "dicom-ingest.worker.\(index)").async(group: workers) {
                let worker = makeWorker()
                while true {
                    let batch = queue.pop(upTo: 16)
                    if batch.isEmpty { break }
                    for object in batch { body(worker, object) }
                }
                do {
                    try finishWorker(worker)
                } catch {
                    failure.withLock { $0 = $0 ?? error }
                }
            }
        }
        var listingError: (any Error)?
        do {
            try source.forEachObject { queue.push($0) }
        } catch {
            listingError = error
        }
        queue.close()
        workers.wait()
        if let listingError { throw listingError }
        if let error = failure.withLock({ $0 }) { throw error }
    }
}
