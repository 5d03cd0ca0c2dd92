import Synchronization
import Testing

@testable import BpfmanServer

/// Shared state the test's tasks write to.
final class Box: Sendable {
    let order = Mutex<[Int]>([])
    let inside = Mutex(0)
}

@Suite struct WriterLockTests {
    @Test func waitersRunOneAtATimeInArrivalOrder() async throws {
        let lock = WriterLock()
        let box = Box()
        try await lock.acquire(deadline: nil)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<8 {
                group.addTask {
                    try await lock.withLock(deadline: nil) {
                        let n = box.inside.withLock {
                            $0 += 1
                            return $0
                        }
                        #expect(n == 1, "two holders at once")
                        box.order.withLock { $0.append(i) }
                        try await Task.sleep(for: .milliseconds(2))
                        box.inside.withLock { $0 -= 1 }
                    }
                }
                // Let each waiter queue before the next one starts.
                while lock.waiting < i + 1 { await Task.yield() }
            }
            lock.release()
            try await group.waitForAll()
        }
        #expect(box.order.withLock { $0 } == Array(0..<8))
    }

    @Test func deadlineWhileWaitingFailsWithoutTheLock() async throws {
        let lock = WriterLock()
        try await lock.acquire(deadline: nil)
        let start = ContinuousClock.now
        await #expect(throws: WriterLock.WaitError.deadlineExceeded) {
            try await lock.acquire(deadline: .now + .milliseconds(50))
        }
        #expect(ContinuousClock.now - start >= .milliseconds(45))
        #expect(lock.waiting == 0)
        lock.release()
        // Free again: the next caller gets it at once.
        try await lock.acquire(deadline: .now + .milliseconds(50))
        lock.release()
    }

    @Test func cancellationWhileWaitingFailsWithCancelled() async throws {
        let lock = WriterLock()
        try await lock.acquire(deadline: nil)
        let waiter = Task { try await lock.acquire(deadline: nil) }
        while lock.waiting == 0 { await Task.yield() }
        waiter.cancel()
        await #expect(throws: WriterLock.WaitError.cancelled) { try await waiter.value }
        lock.release()
        #expect(lock.waiting == 0)
    }

    /// A caller cancelled before it asks (a Load whose client went away during the image pull) does not get
    /// even a free lock.
    @Test func aCancelledCallerDoesNotTakeAFreeLock() async throws {
        let lock = WriterLock()
        let caller = Task {
            while !Task.isCancelled { await Task.yield() }
            try await lock.acquire(deadline: nil)
        }
        caller.cancel()
        await #expect(throws: WriterLock.WaitError.cancelled) { try await caller.value }
        // The lock is still free.
        try await lock.acquire(deadline: .now + .milliseconds(50))
        lock.release()
    }
}
