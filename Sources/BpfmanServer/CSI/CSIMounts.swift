#if canImport(Glibc)
@preconcurrency internal import Glibc
#endif

/// A failed system call of the CSI node plugin: the C function, the path it was about, the errno.
struct CSISystemError: Error, Sendable, CustomStringConvertible {
    var function: String
    var path: String
    var errno: Int32

    var description: String { "\(function) \(path): \(String(cString: strerror(errno)))" }
}

/// The CSI plugin's one funnel for libc calls (STYLE convention 3): EINTR is retried, errno is read straight
/// after the call, EBADF and EFAULT are our bugs.
enum CSISyscalls {
    /// Runs `body` until it does not fail with EINTR; a negative result becomes a `CSISystemError`.
    @inline(never)
    static func call(_ function: StaticString, _ path: String, _ body: () -> Int32) -> Result<Void, CSISystemError> {
        while true {
            if body() >= 0 { return .success(()) }
            let code = Glibc.errno
            if code == EINTR { continue }
            precondition(code != EBADF && code != EFAULT, "\(function): errno \(code) is a bug")
            return .failure(CSISystemError(function: "\(function)", path: path, errno: code))
        }
    }

    /// The corresponding C function is `mkdir`. An existing entry is EEXIST, left to the caller.
    static func mkdir(_ path: String, mode: mode_t) -> Result<Void, CSISystemError> {
        call("mkdir", path) { Glibc.mkdir(path, mode) }
    }

    /// The corresponding C function is `rmdir`.
    static func rmdir(_ path: String) -> Result<Void, CSISystemError> {
        call("rmdir", path) { Glibc.rmdir(path) }
    }

    /// The corresponding C function is `unlink`.
    static func unlink(_ path: String) -> Result<Void, CSISystemError> {
        call("unlink", path) { Glibc.unlink(path) }
    }

    /// The corresponding C function is `chmod`.
    static func chmod(_ path: String, mode: mode_t) -> Result<Void, CSISystemError> {
        call("chmod", path) { Glibc.chmod(path, mode) }
    }

    /// Changes the group only. The corresponding C function is `chown` with owner -1.
    static func changeGroup(_ path: String, to group: gid_t) -> Result<Void, CSISystemError> {
        call("chown", path) { Glibc.chown(path, uid_t.max, group) }
    }

    /// Mounts a fresh bpffs at `path` with `MS_NOSUID|MS_NODEV|MS_NOEXEC|MS_RELATIME` (SPEC §7.3 step 5).
    static func mountBPFFS(at path: String) -> Result<Void, CSISystemError> {
        let flags = UInt(MS_NOSUID) | UInt(MS_NODEV) | UInt(MS_NOEXEC) | UInt(MS_RELATIME)
        return call("mount", path) { Glibc.mount("bpf", path, "bpf", flags, nil) }
    }

    /// Bind-mounts `source` onto `target`. The corresponding C function is `mount` with `MS_BIND`.
    static func bindMount(_ source: String, onto target: String) -> Result<Void, CSISystemError> {
        call("mount", target) { Glibc.mount(source, target, nil, UInt(MS_BIND), nil) }
    }

    /// Makes the bind mount at `target` read-only, keeping nosuid/nodev/noexec (a bind remount sets the
    /// per-mount flags to exactly those given).
    static func remountReadOnly(_ target: String) -> Result<Void, CSISystemError> {
        let flags =
            UInt(MS_BIND) | UInt(MS_REMOUNT) | UInt(MS_RDONLY) | UInt(MS_NOSUID) | UInt(MS_NODEV)
            | UInt(MS_NOEXEC)
        return call("mount", target) { Glibc.mount("none", target, nil, flags, nil) }
    }

    /// The corresponding C function is `umount2`; `detach` adds `MNT_DETACH`.
    static func unmount(_ path: String, detach: Bool = false) -> Result<Void, CSISystemError> {
        call("umount2", path) { Glibc.umount2(path, detach ? Int32(MNT_DETACH) : 0) }
    }

    /// `lstat` of `path`, or nil when there is nothing there.
    static func status(_ path: String) -> stat? {
        var info = stat()
        return lstat(path, &info) == 0 ? info : nil
    }

    /// True when `path` is a directory (not following a final symlink).
    static func isDirectory(_ path: String) -> Bool {
        guard let info = status(path) else { return false }
        return info.st_mode & S_IFMT == S_IFDIR
    }

    /// Names in directory `path` except `.` and `..`; empty when it cannot be read.
    static func listDirectory(_ path: String) -> [String] {
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

    /// The whole content of a (proc) file, read until EOF; nil when it cannot be opened.
    static func readFile(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && Glibc.errno == EINTR { continue }
            if count <= 0 { break }
            bytes += buffer[0..<count]
        }
        return bytes
    }

    /// Writes `bytes` to `path` through a temporary file and `rename`, so readers see the old or the new content.
    static func writeFileAtomically(
        _ path: String,
        _ bytes: [UInt8],
        mode: mode_t = 0o600
    ) -> Result<
        Void, CSISystemError
    > {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { return .failure(CSISystemError(function: "open", path: temporary, errno: Glibc.errno)) }
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 {
                let code = Glibc.errno
                if code == EINTR { continue }
                close(fd)
                _ = Glibc.unlink(temporary)
                return .failure(CSISystemError(function: "write", path: temporary, errno: code))
            }
            offset += written
        }
        if fsync(fd) != 0 {
            let code = Glibc.errno
            close(fd)
            _ = Glibc.unlink(temporary)
            return .failure(CSISystemError(function: "fsync", path: temporary, errno: code))
        }
        close(fd)
        return call("rename", path) { Glibc.rename(temporary, path) }
    }

    /// The canonical form of `path` when it exists (symlinks resolved), else `path` itself.
    static func canonicalPath(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// The node's host name. The corresponding C function is `gethostname`.
    static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// An environment variable, or nil when unset or empty.
    static func environment(_ key: String) -> String? {
        guard let value = getenv(key) else { return nil }
        let text = String(cString: value)
        return text.isEmpty ? nil : text
    }
}

/// One line of `/proc/self/mountinfo`.
struct MountEntry: Sendable, Equatable {
    /// Where it is mounted (unescaped).
    var mountPoint: String
    /// Filesystem type, e.g. `bpf`, `tmpfs`.
    var filesystemType: String
    /// Per-mount options, e.g. `["ro", "nosuid", "nodev", "noexec", "relatime"]`.
    var mountOptions: [String]

    /// Whether this mount is read-only.
    var isReadOnly: Bool { mountOptions.contains("ro") }

    /// Parses a `mountinfo` table (proc(5)): `id parent major:minor root mount-point options [optional…] - type
    /// source super-options`. Malformed lines are skipped.
    static func parse(_ text: String) -> [MountEntry] {
        var entries: [MountEntry] = []
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 7, let separator = fields.firstIndex(of: "-"), separator >= 6,
                separator + 1 < fields.count
            else { continue }
            entries.append(
                MountEntry(
                    mountPoint: unescape(fields[4]),
                    filesystemType: String(fields[separator + 1]),
                    mountOptions: fields[5].split(separator: ",").map(String.init)
                )
            )
        }
        return entries
    }

    /// The kernel writes space, tab, newline and backslash in paths as `\ooo` octal escapes.
    static func unescape(_ field: Substring) -> String {
        var bytes: [UInt8] = []
        let utf8 = Array(field.utf8)
        var index = 0
        while index < utf8.count {
            if utf8[index] == UInt8(ascii: "\\"), index + 3 < utf8.count {
                let digits = utf8[(index + 1)...(index + 3)]
                if digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "7") }) {
                    let value = digits.reduce(0) { $0 * 8 + Int($1 - UInt8(ascii: "0")) }
                    if value < 256 {
                        bytes.append(UInt8(value))
                        index += 4
                        continue
                    }
                }
            }
            bytes.append(utf8[index])
            index += 1
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The mounts of this process's mount namespace, in mount order.
    static func current() -> [MountEntry] {
        guard let bytes = CSISyscalls.readFile("/proc/self/mountinfo") else { return [] }
        return parse(String(decoding: bytes, as: UTF8.self))
    }

    /// Every mount stacked at exactly `path`, bottom first; the last one is what the path shows.
    static func mounts(at path: String, in table: [MountEntry] = current()) -> [MountEntry] {
        table.filter { $0.mountPoint == path }
    }
}
