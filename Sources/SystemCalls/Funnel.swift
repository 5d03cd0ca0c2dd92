package import Glibc

// The one syscall funnel of every module (STYLE.md convention 3): the call is run again while it fails with
// EINTR, errno is read straight after it and kept with the C function's name, and EBADF/EFAULT trap because they
// mean a bug of the caller (a closed descriptor, a bad pointer), not something the kernel or a peer did.
// One non-generic entry per result type (`int` and `ssize_t`): a call from another module is one direct call, as
// when every module had its own funnel.

/// Runs `body` (a call returning a negative value with `errno` set on failure) until it does not fail with EINTR.
/// - Parameters:
///   - function: the C function, named in the error.
///   - detail: what the call was about (a path, an address), evaluated only on failure.
///   - nonBlocking: when set, `EAGAIN`/`EWOULDBLOCK` return nil instead of throwing.
/// - Returns: the call's non-negative result, or nil for `EAGAIN` when `nonBlocking` is set.
@inline(never)
@discardableResult
package func syscall(
    _ function: StaticString,
    detail: @autoclosure () -> String = "",
    nonBlocking: Bool = false,
    _ body: () -> CInt
) throws(SystemCallError) -> CInt? {
    try retrying(function, detail, nonBlocking, body)
}

/// `syscall` for calls that return `ssize_t` (read, write, send, recv).
@inline(never)
@discardableResult
package func syscall(
    _ function: StaticString,
    detail: @autoclosure () -> String = "",
    nonBlocking: Bool = false,
    _ body: () -> Int
) throws(SystemCallError) -> Int? {
    try retrying(function, detail, nonBlocking, body)
}

/// `syscall` for callers that keep the failure as a value: the non-negative result, or the function and errno.
package func valueOrErrno(
    _ function: StaticString,
    detail: @autoclosure () -> String = "",
    _ body: () -> CInt
) -> Result<CInt, SystemCallError> {
    Result { () throws(SystemCallError) in try retrying(function, detail, false, body)! }
}

/// `valueOrErrno` for calls that return `ssize_t`.
package func valueOrErrno(
    _ function: StaticString,
    detail: @autoclosure () -> String = "",
    _ body: () -> Int
) -> Result<Int, SystemCallError> {
    Result { () throws(SystemCallError) in try retrying(function, detail, false, body)! }
}

@inline(__always)
private func retrying<T: FixedWidthInteger>(
    _ function: StaticString,
    _ detail: () -> String,
    _ nonBlocking: Bool,
    _ body: () -> T
) throws(SystemCallError) -> T? {
    while true {
        let result = body()
        if result >= 0 { return result }
        let error = Errno.current
        if error == .interrupted { continue }
        if nonBlocking && (error.rawValue == EAGAIN || error.rawValue == EWOULDBLOCK) { return nil }
        precondition(
            error != .badFileDescriptor && error != .badAddress,
            "\(function) failed with \(error): a bad descriptor or pointer is a bug of the caller"
        )
        throw SystemCallError(function: "\(function)", errno: error, detail: detail())
    }
}

/// Like `valueOrErrno`, for calls that report failure with a nil pointer and `errno` (no EBADF/EFAULT trap: such
/// calls take paths, not descriptors).
@inline(never)
package func pointerOrErrno<T>(_ function: StaticString, _ body: () -> T?) -> Result<T, SystemCallError> {
    while true {
        if let value = body() { return .success(value) }
        let error = Errno.current
        if error == .interrupted { continue }
        return .failure(SystemCallError(function: "\(function)", errno: error))
    }
}

/// For C library calls that return `-errno` on failure, or -1 with `errno` set (libbpf, and the raw-syscall
/// wrappers beside it): runs `body` until it does not fail with EINTR.
/// - Returns: the non-negative result, or the errno; EBADF/EFAULT trap.
@inline(never)
package func valueOrNegatedErrno(_ function: StaticString, _ body: () -> CInt) -> Result<CInt, Errno> {
    while true {
        let result = body()
        if result >= 0 { return .success(result) }
        let error = result == -1 ? Errno.current : Errno(rawValue: -result)
        if error == .interrupted { continue }
        precondition(
            error != .badFileDescriptor && error != .badAddress,
            "\(function) failed with \(error): a bad descriptor or pointer is a bug of the caller"
        )
        return .failure(error)
    }
}
