@testable import DICOMIngest
import DICOMParser
import Dispatch
import Foundation
import Synchronization
import Testing

/// The process-wide worker pool: bounded threads shared by every lane, lanes served in turn, cancellation.
@Suite struct WorkerPoolTests {
    /// A listing of `count` objects named `prefix-N`, counting how many it handed out (nothing is ever opened).
    final class Listing: ObjectSource {
        let prefix: String
        let count: Int
        let listed = Atomic<Int>(0)

        init(prefix: String, count: Int) {
            self.prefix = prefix
            self.count = count
        }

        func forEachObject(_ body: (SourceObject) throws -> Void) throws {
            for index in 0..<count {
                listed.add(1, ordering: .relaxed)
                try body(SourceObject(key: "\(prefix)-\(index)", size: 0, location: ""))
            }
        }

        func open(_ object: SourceObject) throws -> any P10ByteInput {
            throw ObjectIOError(.notFound, "a listing only")
        }
    }

    /// A lane's per-worker state (empty: the tests count how many are made).
    final class State: Sendable {}

    @Test func manyLanesShareThePoolsThreadsAndEachObjectIsProcessedOnce() throws {
        let pool = WorkerPool(threads: 2)
        let concurrent = Atomic<Int>(0)
        let mostConcurrent = Atomic<Int>(0)
        let seen = Mutex<[String: Int]>([:])
        let statesMade = Mutex<[Int]>([])
        let lanes = DispatchGroup()
        for lane in 0..<6 {
            DispatchQueue(label: "lane-\(lane)").async(group: lanes) {
                let made = Atomic<Int>(0)
                try? pool.forEach(
                    in: Listing(prefix: "lane\(lane)", count: 50),
                    makeWorker: { made.add(1, ordering: .relaxed); return State() }
                ) { _, object in
                    let now = concurrent.add(1, ordering: .relaxed).newValue
                    mostConcurrent.max(now, ordering: .relaxed)
                    Thread.sleep(forTimeInterval: 0.001)
                    concurrent.subtract(1, ordering: .relaxed)
                    seen.withLock { $0[object.key, default: 0] += 1 }
                }
                statesMade.withLock { $0.append(made.load(ordering: .relaxed)) }
            }
        }
        lanes.wait()
        #expect(mostConcurrent.load(ordering: .relaxed) <= 2)
        #expect(mostConcurrent.load(ordering: .relaxed) >= 1)
        let counts = seen.withLock { $0 }
        #expect(counts.count == 300)
        #expect(counts.values.allSatisfy { $0 == 1 })
        // A lane builds one state per thread that served it at the same time, never more than the pool's threads.
        #expect(statesMade.withLock { $0 }.allSatisfy { (1...2).contains($0) })
    }

    @Test func aLaneAddedLaterIsServedInTurnNotAfterTheOthers() throws {
        let pool = WorkerPool(threads: 1)
        let order = Mutex<[String]>([])
        let started = DispatchSemaphore(value: 0)
        let long = DispatchGroup()
        DispatchQueue(label: "long").async(group: long) {
            try? pool.forEach(in: Listing(prefix: "long", count: 400), makeWorker: { State() }) { _, object in
                if object.key == "long-0" { started.signal() }
                Thread.sleep(forTimeInterval: 0.001)
                order.withLock { $0.append(object.key) }
            }
        }
        started.wait()
        try pool.forEach(in: Listing(prefix: "short", count: 16), makeWorker: { State() }) { _, object in
            order.withLock { $0.append(object.key) }
        }
        let doneAt = order.withLock { $0.count }
        long.wait()
        let all = order.withLock { $0 }
        #expect(all.count == 416)
        // Served in turn, batch by batch: the short lane's 16 objects are done long before the long lane's 400.
        #expect(doneAt < 100, "the short lane ended after \(doneAt) objects")
        #expect(all.prefix(doneAt).filter { $0.hasPrefix("short") }.count == 16)
    }

    @Test func cancellingALaneDropsItsQueueAndEndsItsListing() throws {
        let pool = WorkerPool(threads: 2)
        let source = Listing(prefix: "object", count: 100_000)
        let cancellation = WorkerPool.Cancellation()
        let processed = Atomic<Int>(0)
        #expect(throws: WorkerPool.Cancelled.self) {
            try pool.forEach(in: source, queueCapacity: 32, cancellation: cancellation, makeWorker: { State() }) { _, _ in
                if processed.add(1, ordering: .relaxed).newValue == 10 { cancellation.cancel() }
            }
        }
        // At most what was in the workers' hands when it was cancelled: two batches.
        #expect(processed.load(ordering: .relaxed) <= 10 + 2 * WorkerPool.batchSize)
        // The listing stopped at the next object it tried to queue.
        #expect(source.listed.load(ordering: .relaxed) < 100)
    }

    @Test func finishingAWorkerStateFailsTheLaneAfterItsObjectsAreDone() throws {
        struct Failed: Error {}
        let pool = WorkerPool(threads: 2)
        let processed = Atomic<Int>(0)
        #expect(throws: Failed.self) {
            try pool.forEach(
                in: Listing(prefix: "object", count: 100), makeWorker: { State() }, finishWorker: { _ in throw Failed() }
            ) { _, _ in processed.add(1, ordering: .relaxed) }
        }
        #expect(processed.load(ordering: .relaxed) == 100)
    }

    @Test func threadsEndOnceNoLaneIsOpen() throws {
        let pool = WorkerPool(threads: 2)
        try pool.forEach(in: Listing(prefix: "object", count: 100), makeWorker: { State() }) { _, _ in }
        let deadline = Date().addingTimeInterval(5)
        while pool.threadsRunning > 0 && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        #expect(pool.threadsRunning == 0)
    }
}
