internal import CBPF
internal import Glibc
package import SystemCalls

/// A failed libbpf or bpf(2) call, decoded in this one file (STYLE convention 4).
///
/// Conventions of the C side:
/// - libbpf functions returning `int` return `-errno` (libbpf 1.x also sets `errno`); `>= 0` is success.
/// - libbpf functions returning pointers return `NULL` and set `errno` (libbpf 1.x "strict" mode).
/// - the raw `bpf(2)` syscall returns `-1` and sets `errno`.
/// `EBADF`/`EFAULT` from any of them is an engine bug and traps.
package struct BPFError: Error, Sendable, CustomStringConvertible {
    /// The C function that failed, e.g. `bpf_obj_pin`.
    package var function: String
    package var errno: Errno

    package var description: String { "\(function): \(errno)" }

    /// The errno of a failed libbpf or bpf(2) `int` result, nil on success: the engine's one decoder of a single
    /// result (`-errno`, or -1 with errno set; calls retried on EINTR go through SystemCalls'
    /// `valueOrNegatedErrno`). EBADF and EFAULT trap.
    @inline(never)
    package static func errno(of result: Int32, _ function: @autoclosure () -> String) -> Errno? {
        if result >= 0 { return nil }
        // libbpf returns -errno; the raw syscall and some wrappers return -1 with errno set.
        let error = result == -1 ? Errno.current : Errno(rawValue: -result)
        precondition(error != .badFileDescriptor && error != .badAddress, "\(function()): \(error) is an engine bug")
        return error
    }

    /// Decodes a libbpf `int` result.
    package static func check(_ function: StaticString, _ result: Int32) -> Result<Int32, BPFError> {
        guard let error = errno(of: result, "\(function)") else { return .success(result) }
        return .failure(BPFError(function: "\(function)", errno: error))
    }

    /// Runs a libbpf call that returns `-errno` (retrying EINTR, SystemCalls' `valueOrNegatedErrno`) and wraps a
    /// returned fd.
    @inline(never)
    package static func fd(_ function: StaticString, _ body: () -> Int32) throws(BPFError) -> OwnedFD {
        switch valueOrNegatedErrno(function, body) {
        case .success(let fd): return OwnedFD(taking: fd)
        case .failure(let error): throw BPFError(function: "\(function)", errno: error)
        }
    }

    /// Runs a libbpf call that returns `-errno` or `0`, retrying EINTR.
    package static func call(_ function: StaticString, _ body: () -> Int32) -> Result<Void, BPFError> {
        valueOrNegatedErrno(function, body).map { _ in () }.mapError { BPFError(function: "\(function)", errno: $0) }
    }

    /// Decodes a libbpf pointer result (`NULL` + errno).
    @inline(never)
    package static func pointer<T>(_ function: StaticString, _ value: T?) -> Result<T, BPFError> {
        if let value { return .success(value) }
        return .failure(BPFError(function: "\(function)", errno: Errno.current))
    }
}

extension SystemCallError {
    package var asBPFError: BPFError { BPFError(function: function, errno: errno) }
}
