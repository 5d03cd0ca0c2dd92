internal import Glibc

/// A Linux `errno` value with Swift names for the ones the engine switches on.
package struct Errno: RawRepresentable, Error, Hashable, Sendable, CustomStringConvertible {
    package var rawValue: Int32
    package init(rawValue: Int32) { self.rawValue = rawValue }

    /// The value of `errno` right now. Read it before anything that may allocate or log.
    @inline(__always)
    package static var current: Errno { Errno(rawValue: Glibc.errno) }

    package static let notPermitted = Errno(rawValue: EPERM)
    package static let noSuchFileOrDirectory = Errno(rawValue: ENOENT)
    package static let noSuchProcess = Errno(rawValue: ESRCH)
    package static let interrupted = Errno(rawValue: EINTR)
    package static let badFileDescriptor = Errno(rawValue: EBADF)
    package static let badAddress = Errno(rawValue: EFAULT)
    package static let fileExists = Errno(rawValue: EEXIST)
    package static let invalidArgument = Errno(rawValue: EINVAL)
    package static let resourceBusy = Errno(rawValue: EBUSY)
    package static let noSpace = Errno(rawValue: ENOSPC)
    package static let notSupported = Errno(rawValue: EOPNOTSUPP)
    /// The kernel-internal ENOTSUPP (524) that BPF sometimes leaks to user space.
    package static let kernelNotSupported = Errno(rawValue: 524)

    /// `strerror` text, e.g. "No such file or directory".
    package var description: String {
        if rawValue == 524 { return "Operation not supported" }
        return String(cString: strerror(rawValue))
    }
}
