internal import SystemCalls

#if canImport(Glibc)
@preconcurrency internal import Glibc
#endif

/// The mount calls of the CSI node plugin, through the SystemCalls funnel (STYLE convention 3): EINTR is retried,
/// errno is read straight after the call and kept with the path, EBADF and EFAULT are our bugs. The file and
/// directory calls it shares with the engine are SystemCalls' `Syscalls`.
enum CSIMounts {
    /// Mounts a fresh bpffs at `path` with `MS_NOSUID|MS_NODEV|MS_NOEXEC|MS_RELATIME` (SPEC §7.3 step 5).
    static func mountBPFFS(at path: String) -> Result<Void, SystemCallError> {
        let flags = UInt(MS_NOSUID) | UInt(MS_NODEV) | UInt(MS_NOEXEC) | UInt(MS_RELATIME)
        return mount("bpf", path, "bpf", flags)
    }

    /// Bind-mounts `source` onto `target`. The corresponding C function is `mount` with `MS_BIND`.
    static func bindMount(_ source: String, onto target: String) -> Result<Void, SystemCallError> {
        mount(source, target, nil, UInt(MS_BIND))
    }

    /// Makes the bind mount at `target` read-only, keeping nosuid/nodev/noexec (a bind remount sets the
    /// per-mount flags to exactly those given).
    static func remountReadOnly(_ target: String) -> Result<Void, SystemCallError> {
        let flags =
            UInt(MS_BIND) | UInt(MS_REMOUNT) | UInt(MS_RDONLY) | UInt(MS_NOSUID) | UInt(MS_NODEV)
            | UInt(MS_NOEXEC)
        return mount("none", target, nil, flags)
    }

    /// The corresponding C function is `umount2`; `detach` adds `MNT_DETACH`.
    static func unmount(_ path: String, detach: Bool = false) -> Result<Void, SystemCallError> {
        valueOrErrno("umount2", detail: path) { Glibc.umount2(path, detach ? Int32(MNT_DETACH) : 0) }.map { _ in () }
    }

    private static func mount(
        _ source: String,
        _ target: String,
        _ type: String?,
        _ flags: UInt
    ) -> Result<Void, SystemCallError> {
        valueOrErrno("mount", detail: target) { Glibc.mount(source, target, type, flags, nil) }.map { _ in () }
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
        guard let bytes = Syscalls.readFile("/proc/self/mountinfo") else { return [] }
        return parse(String(decoding: bytes, as: UTF8.self))
    }

    /// Every mount stacked at exactly `path`, bottom first; the last one is what the path shows.
    static func mounts(at path: String, in table: [MountEntry] = current()) -> [MountEntry] {
        table.filter { $0.mountPoint == path }
    }
}
