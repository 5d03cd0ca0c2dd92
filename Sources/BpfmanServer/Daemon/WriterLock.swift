internal import Synchronization

/// The process-wide FIFO writer lock of SPEC §1.7: mutating RPCs run one at a time, in arrival order.
///
/// Waiting honours the caller's deadline and cancellation; once the lock is held the body runs to the
/// end (the engine's kernel work completes or rolls back on its own, whatever the client does).
package final class WriterLock: Sendable {
    /// Why waiting for the lock ended without it.
    package enum WaitError: Error, Equatable {
        case deadlineExceeded
        case cancelled
    }

    private struct Waiter {
        var id: UInt64
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var held = false
        var nextID: UInt64 = 0
        var queue: [Waiter] = []
    }

    private let state = Mutex(State())

    package init() {}

    /// Runs `body` holding the lock.
    /// - Parameter deadline: give up waiting at this instant (the body is never cut short).
    /// - Throws: `WaitError` when the deadline passes or the task is cancelled before the lock is had,
    ///   else whatever `body` throws.
    package func withLock<R: Sendable>(
        deadline: ContinuousClock.Instant?,
        _ body: () async throws -> R
    ) async throws -> R {
        try await acquire(deadline: deadline)
        defer { release() }
        return try await body()
    }

    /// Waits for the lock in FIFO order.
    package func acquire(deadline: ContinuousClock.Instant?) async throws {
        if let deadline, deadline <= .now { throw WaitError.deadlineExceeded }
        // Not even a free lock for a caller already cancelled (a client that gave up while its Load's image was
        // being pulled): its mutation would run for nobody, and leave a program no client knows of.
        if Task.isCancelled { throw WaitError.cancelled }
        let id: UInt64? = state.withLock { s in
            if !s.held && s.queue.isEmpty {
                s.held = true
                return nil
            }
            s.nextID += 1
            return s.nextID
        }
        guard let id else { return }
        let timer: Task<Void, Never>? = deadline.map { deadline in
            Task { [weak self] in
                try? await Task.sleep(until: deadline, clock: .continuous)
                if !Task.isCancelled { self?.abandon(id, with: WaitError.deadlineExceeded) }
            }
        }
        defer { timer?.cancel() }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                // Cancellation or the deadline may have come before the waiter is queued.
                if Task.isCancelled { return continuation.resume(throwing: WaitError.cancelled) }
                if let deadline, deadline <= .now { return continuation.resume(throwing: WaitError.deadlineExceeded) }
                let resumeNow: Bool = state.withLock { s in
                    // The lock may have been released between the first look and now.
                    if !s.held && s.queue.isEmpty {
                        s.held = true
                        return true
                    }
                    s.queue.append(Waiter(id: id, continuation: continuation))
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            abandon(id, with: WaitError.cancelled)
        }
    }

    /// Hands the lock to the next waiter, or frees it.
    package func release() {
        let next: Waiter? = state.withLock { s in
            if s.queue.isEmpty {
                s.held = false
                return nil
            }
            return s.queue.removeFirst()
        }
        next?.continuation.resume()
    }

    /// Removes waiter `id` (if still waiting) and fails its wait.
    private func abandon(_ id: UInt64, with error: WaitError) {
        let waiter: Waiter? = state.withLock { s in
            guard let index = s.queue.firstIndex(where: { $0.id == id }) else { return nil }
            return s.queue.remove(at: index)
        }
        waiter?.continuation.resume(throwing: error)
    }

    /// Callers waiting now (for tests and the status view).
    package var waiting: Int { state.withLock { $0.queue.count } }
}
