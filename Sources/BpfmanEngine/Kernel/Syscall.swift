internal import Glibc

/// The engine's one syscall funnel (STYLE convention 3).
///
/// Runs `body` until it does not fail with EINTR, reads `errno` immediately after a failing call and
/// returns it with the C function's name. `EBADF` and `EFAULT` are our bugs, not the caller's: they trap.
///
/// - Parameters:
///   - function: the C function, named in errors.
///   - body: the call; a negative result means failure with `errno` set.
/// - Returns: the non-negative result, or the failing function and errno.
@inline(never)
package func valueOrErrno<T: SignedInteger>(
    _ function: StaticString,
    _ body: () -> T
) -> Result<T, SyscallError> {
    while true {
        let result = body()
        if result >= 0 { return .success(result) }
        let error = Errno.current
        if error == .interrupted { continue }
        precondition(
            error != .badFileDescriptor && error != .badAddress,
            "\(function) failed with \(error): a bad fd or pointer is an engine bug"
        )
        return .failure(SyscallError(function: "\(function)", errno: error))
    }
}

/// Like `valueOrErrno` but for calls that report failure through `errno` with a `nil` pointer.
@inline(never)
package func pointerOrErrno<T>(_ function: StaticString, _ body: () -> T?) -> Result<T, SyscallError> {
    while true {
        if let value = body() { return .success(value) }
        let error = Errno.current
        if error == .interrupted { continue }
        return .failure(SyscallError(function: "\(function)", errno: error))
    }
}

/// A failed system or library call: the C function and the errno it left.
package struct SyscallError: Error, Sendable, CustomStringConvertible {
    package var function: String
    package var errno: Errno
    package var description: String { "\(function): \(errno)" }
}

/// Thin wrappers over libc calls the engine uses; each goes through the funnel.
package enum Syscalls {
    static func open(_ path: String, _ flags: Int32, _ mode: mode_t = 0) throws(SyscallError) -> OwnedFD {
        OwnedFD(taking: try valueOrErrno("open") { Glibc.open(path, flags | O_CLOEXEC, mode) }.get())
    }

    static func mkdir(_ path: String, _ mode: mode_t) -> Result<Void, SyscallError> {
        valueOrErrno("mkdir") { Glibc.mkdir(path, mode) }.map { _ in () }
    }

    package static func unlink(_ path: String) -> Result<Void, SyscallError> {
        valueOrErrno("unlink") { Glibc.unlink(path) }.map { _ in () }
    }

    package static func rmdir(_ path: String) -> Result<Void, SyscallError> {
        valueOrErrno("rmdir") { Glibc.rmdir(path) }.map { _ in () }
    }

    static func chmod(_ path: String, _ mode: mode_t) -> Result<Void, SyscallError> {
        valueOrErrno("chmod") { Glibc.chmod(path, mode) }.map { _ in () }
    }

    static func stat(_ path: String) -> Result<Glibc.stat, SyscallError> {
        var st = Glibc.stat()
        let rc = fstatat(AT_FDCWD, path, &st, 0)
        return rc == 0 ? .success(st) : .failure(SyscallError(function: "stat", errno: Errno.current))
    }

    package static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    /// Names in directory `path` except `.` and `..`; empty when it cannot be read.
    package static func listDirectory(_ path: String) -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// The whole content of a (small) file, or nil.
    package static func readFile(_ path: String) -> [UInt8]? {
        guard let fd = try? open(path, O_RDONLY) else { return nil }
        return fd.withRawDescriptor { raw in readAll(raw) }
    }

    /// Reads `raw` to end of file.
    static func readAll(_ raw: CInt) -> [UInt8]? {
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { buffer in
                valueOrErrno("read") { Glibc.read(raw, buffer.baseAddress, buffer.count) }
            }
            guard case .success(let count) = n else { return nil }
            if count == 0 { return result }
            result.append(contentsOf: chunk[0..<count])
        }
    }

    /// Text content of a file with surrounding whitespace removed, or nil.
    package static func readText(_ path: String) -> String? {
        guard let bytes = readFile(path) else { return nil }
        var text = String(decoding: bytes, as: UTF8.self)
        while let last = text.last, last.isWhitespace { text.removeLast() }
        return text
    }
}
