@testable import DICOMIngestServer
import Dispatch
import Foundation
import Synchronization
import Testing

/// The server's blocking calls run on a fixed number of threads, however many requests wait.
@Suite struct BlockingExecutorTests {
    @Test func aBurstOfCallsRunsOnTheExecutorsThreadsAndEachRunsOnce() throws {
        let executor = BlockingExecutor(threads: 3)
        let concurrent = Atomic<Int>(0)
        let mostConcurrent = Atomic<Int>(0)
        let ran = Atomic<Int>(0)
        let done = DispatchGroup()
        for _ in 0..<200 {
            done.enter()
            executor.submit {
                let now = concurrent.add(1, ordering: .relaxed).newValue
                mostConcurrent.max(now, ordering: .relaxed)
                Thread.sleep(forTimeInterval: 0.001)
                concurrent.subtract(1, ordering: .relaxed)
                ran.add(1, ordering: .relaxed)
                done.leave()
            }
        }
        #expect(done.wait(timeout: .now() + 30) == .success)
        #expect(ran.load(ordering: .relaxed) == 200)
        #expect(mostConcurrent.load(ordering: .relaxed) <= 3)
        #expect(mostConcurrent.load(ordering: .relaxed) >= 2)
    }
}
