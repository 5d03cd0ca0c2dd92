internal import Glibc

/// Waiting for the kernel to let go of an object, the one place that does.
///
/// The kernel frees a program or link a moment after its last reference goes (RCU), so an id can outlive the
/// Unload or Detach that dropped it. Callers that must not return before the id is gone (a Get right after
/// Unload answers NOT_FOUND, SPEC §3.2, §3.6; a detached link has left its hook, §3.4) poll its existence every
/// 5 ms for at most 2 s.
enum KernelRelease {
    static let intervalMicroseconds: UInt32 = 5000
    static let interval: Duration = .microseconds(intervalMicroseconds)
    static let limit: Duration = .seconds(2)

    /// Suspends between polls (the engine actor stays free). Returns false when `gone` is still false at the end.
    static func wait(until gone: () -> Bool) async -> Bool {
        let end = ContinuousClock.now + limit
        while ContinuousClock.now < end {
            if gone() { return true }
            try? await Task.sleep(for: interval)
        }
        return gone()
    }

    /// Blocks the calling thread between polls: for synchronous kernel work on the engine actor that must
    /// finish before its caller goes on. Returns false when `gone` is still false at the end.
    static func waitBlocking(until gone: () -> Bool) -> Bool {
        let end = ContinuousClock.now + limit
        while ContinuousClock.now < end {
            if gone() { return true }
            usleep(intervalMicroseconds)
        }
        return gone()
    }
}
