package import Glibc

/// The file, directory and process calls the modules share, each through the funnel (`syscall`, `valueOrErrno`):
/// EINTR retried, errno kept as `Errno` with the function and the path.
package enum Syscalls {
    /// Opens `path` with `flags | O_CLOEXEC`. The corresponding C function is `open`.
    package static func open(_ path: String, _ flags: CInt, _ mode: mode_t = 0) throws(SystemCallError) -> OwnedFD {
        OwnedFD(taking: try valueOrErrno("open", detail: path) { Glibc.open(path, flags | O_CLOEXEC, mode) }.get())
    }

    /// The corresponding C function is `mkdir`. An existing entry is EEXIST, left to the caller.
    package static func mkdir(_ path: String, _ mode: mode_t) -> Result<Void, SystemCallError> {
        valueOrErrno("mkdir", detail: path) { Glibc.mkdir(path, mode) }.map { _ in () }
    }

    /// `mkdir -p`: makes `path` and its missing parents with `mode`; existing ones are fine. A failure names the
    /// directory that could not be made.
    package static func makeDirectories(_ path: String, _ mode: mode_t) -> Result<Void, SystemCallError> {
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            prefix += "/" + component
            if case .failure(let error) = mkdir(prefix, mode), error.errno != .fileExists { return .failure(error) }
        }
        return .success(())
    }

    /// The corresponding C function is `unlink`.
    package static func unlink(_ path: String) -> Result<Void, SystemCallError> {
        valueOrErrno("unlink", detail: path) { Glibc.unlink(path) }.map { _ in () }
    }

    /// The corresponding C function is `rmdir`.
    package static func rmdir(_ path: String) -> Result<Void, SystemCallError> {
        valueOrErrno("rmdir", detail: path) { Glibc.rmdir(path) }.map { _ in () }
    }

    /// The corresponding C function is `chmod`.
    package static func chmod(_ path: String, _ mode: mode_t) -> Result<Void, SystemCallError> {
        valueOrErrno("chmod", detail: path) { Glibc.chmod(path, mode) }.map { _ in () }
    }

    /// Changes the group only. The corresponding C function is `chown` with owner -1.
    package static func changeGroup(_ path: String, to group: gid_t) -> Result<Void, SystemCallError> {
        valueOrErrno("chown", detail: path) { Glibc.chown(path, uid_t.max, group) }.map { _ in () }
    }

    /// `stat` of `path`, following a final symlink.
    package static func stat(_ path: String) -> Result<Glibc.stat, SystemCallError> {
        var status = Glibc.stat()
        return valueOrErrno("stat", detail: path) { fstatat(AT_FDCWD, path, &status, 0) }.map { _ in status }
    }

    /// `lstat` of `path` (a final symlink is not followed), or nil when there is nothing there.
    package static func status(_ path: String) -> Glibc.stat? {
        var status = Glibc.stat()
        return lstat(path, &status) == 0 ? status : nil
    }

    /// Whether anything is at `path`. The corresponding C function is `access` with `F_OK`.
    package static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    /// True when `path` is a directory (not following a final symlink).
    package static func isDirectory(_ path: String) -> Bool {
        guard let status = status(path) else { return false }
        return status.st_mode & S_IFMT == S_IFDIR
    }

    /// Names in directory `path` except `.` and `..`; empty when it cannot be read.
    package static func listDirectory(_ path: String) -> [String] {
        guard let directory = opendir(path) else { return [] }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// The whole content of a (small) file, or nil when it cannot be opened or read.
    package static func readFile(_ path: String) -> [UInt8]? {
        guard let fd = try? open(path, O_RDONLY) else { return nil }
        return readAll(fd.rawValue)
    }

    /// Text content of a file with surrounding whitespace removed, or nil.
    package static func readText(_ path: String) -> String? {
        guard let bytes = readFile(path) else { return nil }
        var text = String(decoding: bytes, as: UTF8.self)
        while let last = text.last, last.isWhitespace { text.removeLast() }
        return text
    }

    /// Reads `fd` to end of file, keeping at most `limit` bytes (the rest is read and dropped); nil when a read
    /// fails.
    package static func readAll(_ fd: CInt, limit: Int = .max) -> [UInt8]? {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16 << 10)
        while true {
            let read = chunk.withUnsafeMutableBytes { buffer in
                valueOrErrno("read") { Glibc.read(fd, buffer.baseAddress, buffer.count) }
            }
            guard case .success(let count) = read else { return nil }
            if count == 0 { return bytes }
            if bytes.count < limit { bytes += chunk[..<min(count, limit - bytes.count)] }
        }
    }

    /// Writes all of `bytes` to `fd`, across short writes; a write that makes no progress is EIO.
    package static func writeAll(_ fd: CInt, _ bytes: UnsafeRawBufferPointer) -> Result<Void, SystemCallError> {
        var offset = 0
        while offset < bytes.count {
            switch valueOrErrno("write", { Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset) }) {
            case .success(0): return .failure(SystemCallError(function: "write", errno: .ioError))
            case .success(let count): offset += count
            case .failure(let error): return .failure(error)
            }
        }
        return .success(())
    }

    /// Writes `bytes` to `path` through `path.tmp`, `fsync` and `rename`, so readers see the old or the new
    /// content, never a part.
    package static func writeFileAtomically(
        _ path: String,
        _ bytes: [UInt8],
        mode: mode_t = 0o600
    ) -> Result<Void, SystemCallError> {
        let temporary = path + ".tmp"
        do throws(SystemCallError) {
            try writeAndSync(temporary, bytes, mode: mode)
        } catch {
            _ = Glibc.unlink(temporary)
            return .failure(error)
        }
        return valueOrErrno("rename", detail: path) { Glibc.rename(temporary, path) }.map { _ in () }
    }

    /// Writes `bytes` to a new or truncated `path` and `fsync`s it; a failure names `path`.
    private static func writeAndSync(_ path: String, _ bytes: [UInt8], mode: mode_t) throws(SystemCallError) {
        let fd = try open(path, O_WRONLY | O_CREAT | O_TRUNC, mode)
        if case .failure(var error) = bytes.withUnsafeBytes({ writeAll(fd.rawValue, $0) }) {
            error.detail = path
            throw error
        }
        _ = try syscall("fsync", detail: path) { fsync(fd.rawValue) }
    }

    /// The canonical form of `path` when it exists (symlinks resolved), else `path` itself.
    package static func canonicalPath(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// The node's host name, or `localhost` when it cannot be read. The corresponding C function is
    /// `gethostname`.
    package static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// An environment variable of this process, or nil when unset or empty.
    package static func environment(_ key: String) -> String? {
        guard let value = getenv(key) else { return nil }
        let text = String(cString: value)
        return text.isEmpty ? nil : text
    }
}
