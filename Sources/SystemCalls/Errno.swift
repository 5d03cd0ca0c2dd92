package import Glibc

/// A Linux `errno` value, with Swift names for the ones callers switch on. Every module reads and keeps errno as
/// this type; its description is the C library's text ("No such file or directory").
package struct Errno: RawRepresentable, Error, Hashable, Sendable, CustomStringConvertible {
    package var rawValue: CInt

    package init(rawValue: CInt) { self.rawValue = rawValue }

    /// The value of `errno` right now. Read it straight after the failing call, before anything that may allocate
    /// or log.
    package static var current: Errno { Errno(rawValue: Glibc.errno) }

    package static let notPermitted = Errno(rawValue: EPERM)
    package static let noSuchFileOrDirectory = Errno(rawValue: ENOENT)
    package static let noSuchProcess = Errno(rawValue: ESRCH)
    package static let interrupted = Errno(rawValue: EINTR)
    package static let ioError = Errno(rawValue: EIO)
    package static let badFileDescriptor = Errno(rawValue: EBADF)
    package static let wouldBlock = Errno(rawValue: EAGAIN)
    package static let outOfMemory = Errno(rawValue: ENOMEM)
    package static let permissionDenied = Errno(rawValue: EACCES)
    package static let badAddress = Errno(rawValue: EFAULT)
    package static let resourceBusy = Errno(rawValue: EBUSY)
    package static let fileExists = Errno(rawValue: EEXIST)
    package static let notDirectory = Errno(rawValue: ENOTDIR)
    package static let isDirectory = Errno(rawValue: EISDIR)
    package static let invalidArgument = Errno(rawValue: EINVAL)
    package static let tooManyOpenFiles = Errno(rawValue: EMFILE)
    package static let tooManyOpenFilesInSystem = Errno(rawValue: ENFILE)
    package static let noSpace = Errno(rawValue: ENOSPC)
    package static let nameTooLong = Errno(rawValue: ENAMETOOLONG)
    package static let directoryNotEmpty = Errno(rawValue: ENOTEMPTY)
    package static let noLink = Errno(rawValue: ENOLINK)
    package static let noDevice = Errno(rawValue: ENODEV)
    package static let protocolError = Errno(rawValue: EPROTO)
    package static let notSocket = Errno(rawValue: ENOTSOCK)
    package static let notSupported = Errno(rawValue: EOPNOTSUPP)
    package static let brokenPipe = Errno(rawValue: EPIPE)
    package static let connectionAborted = Errno(rawValue: ECONNABORTED)
    package static let connectionReset = Errno(rawValue: ECONNRESET)
    package static let timedOut = Errno(rawValue: ETIMEDOUT)
    package static let connectionRefused = Errno(rawValue: ECONNREFUSED)
    /// The kernel-internal ENOTSUPP (524) that BPF sometimes leaks to user space.
    package static let kernelNotSupported = Errno(rawValue: 524)

    /// The C library's text, e.g. "No such file or directory"; the kernel-internal 524 reads as
    /// "Operation not supported".
    package var description: String {
        if rawValue == 524 { return "Operation not supported" }
        return String(cString: strerror(rawValue))
    }
}
