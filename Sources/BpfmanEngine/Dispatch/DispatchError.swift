package import SystemCalls

/// An error from the dispatcher and native XDP/TC attach code.
///
/// `code` says how the Engine should report it (SPEC §0.3): `invalidArgument`, `failedPrecondition` or
/// `internal`. `message` is the one-sentence text of SPEC §3.3; `errno` is the kernel's answer when there
/// was one.
package struct DispatchError: Error, Equatable, Sendable, CustomStringConvertible {
    package enum Code: Sendable, Equatable {
        /// Bad input: negative priority, unknown proceed_on code, priority out of range.
        case invalidArgument
        /// The hook cannot take the attachment: full, foreign qdisc or XDP program, second native XDP program.
        case failedPrecondition
        /// The kernel or netlink refused.
        case `internal`
    }

    package var code: Code
    package var message: String
    /// The errno behind an `internal` error, if any.
    package var errno: Errno?

    package init(_ code: Code, _ message: String, errno: Errno? = nil) {
        self.code = code
        self.message = message
        self.errno = errno
    }

    package var description: String { message }
}
