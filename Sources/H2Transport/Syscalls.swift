#if canImport(Glibc)
@preconcurrency internal import Glibc
#endif

// The syscall funnel, `SystemCallError` and `OwnedFD` are the SystemCalls module's; these are H2Transport's own.

/// Ignores SIGPIPE for the whole process (writes also use MSG_NOSIGNAL; this covers the rest).
func ignoreSIGPIPEOnce() {
    _ = ignoreSIGPIPE
}

private let ignoreSIGPIPE: Void = {
    _ = signal(SIGPIPE, SIG_IGN)
}()

/// Monotonic clock in nanoseconds.
func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
