#if canImport(Glibc)
@preconcurrency internal import Glibc
#endif

/// A failed system call: the C function's name and the errno it left.
package struct SystemCallError: Error, CustomStringConvertible, Sendable {
    /// The C function that failed, e.g. `"bind"`.
    package var function: String
    /// The errno value read straight after the call.
    package var errno: CInt
    /// Extra context (a path, an address).
    package var detail: String

    package var description: String {
        let text = String(cString: strerror(errno))
        return detail.isEmpty ? "\(function): \(text)" : "\(function)(\(detail)): \(text)"
    }
}

/// The one syscall funnel of H2Transport (STYLE.md convention 3).
///
/// Retries `EINTR`, reads errno straight after the call, names the C function in the error and
/// traps on `EBADF`/`EFAULT`, which mean a bug of ours rather than a peer's doing.
/// - Returns: the call's non-negative result, or `nil` for `EAGAIN` when `nonBlocking` is set.
@inline(never)
@discardableResult
func syscall<T: FixedWidthInteger>(
    _ function: StaticString,
    detail: @autoclosure () -> String = "",
    nonBlocking: Bool = false,
    _ body: () -> T
) throws(SystemCallError) -> T? {
    while true {
        let result = body()
        if result >= 0 { return result }
        let err = Glibc.errno
        if err == EINTR { continue }
        if nonBlocking && (err == EAGAIN || err == EWOULDBLOCK) { return nil }
        precondition(err != EBADF && err != EFAULT, "\(function) failed with errno \(err): a bug in H2Transport")
        throw SystemCallError(function: "\(function)", errno: err, detail: detail())
    }
}

/// A file descriptor with one owner: closed in `deinit` unless given up with `take()`.
package struct OwnedFD: ~Copyable {
    private let raw: CInt

    /// Takes ownership of `raw`; this value closes it.
    package init(taking raw: CInt) {
        precondition(raw >= 0, "OwnedFD needs a valid descriptor")
        self.raw = raw
    }

    /// Lends the raw descriptor for the duration of `body`.
    package borrowing func withRawDescriptor<R, E: Error>(_ body: (CInt) throws(E) -> R) throws(E) -> R {
        try body(raw)
    }

    /// Gives up ownership; the caller now closes the descriptor.
    package consuming func take() -> CInt {
        let value = raw
        discard self
        return value
    }

    deinit {
        _ = Glibc.close(raw)
    }
}

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
