internal import CBPF
internal import Glibc
internal import Synchronization
internal import SystemCalls

/// Whether a managed program is still there, told from its pin without reading the program (SPEC §3.8, §6.4).
///
/// SPEC §6.4 defines a vanished program as one whose pin `fs/prog_<id>` was removed out of band. The pin is a
/// reference to the program, so while it is there the program it holds is alive, with the id it was loaded with
/// (a program's id never changes while it lives). What the pin alone does not prove is that it still holds *our*
/// program: someone may have removed our pin and pinned another program at the same path (a restore script,
/// `bpftool prog pin`). So the engine keeps the pin's inode number with the record (`ProgramRecord.pinInode`,
/// taken when it made the pin) and compares: bpffs gives every new pin a new inode, so the same number means the
/// same pin, which means the same program. One `fstatat` answers a Get; one read of the `fs` directory, whose
/// entries carry their inode numbers, answers a List of any length.
///
/// Alternatives not taken:
/// - The program id alone (`BPF_PROG_GET_NEXT_ID`, the check before SPEC §3.8's revision): it keeps saying "alive"
///   after the pin is removed while a link still holds the program, and kernel ids come from a cyclic allocator,
///   so after an out-of-band removal the id may, in time, name an unrelated program.
/// - Keeping each program's fd open and comparing through it: SPEC §6.5 forbids BPF fds at rest.
///
/// Inode numbers of bpffs come from the kernel's shared 32-bit counter (`get_next_ino`), which can wrap on a busy
/// machine; a replacement pin that landed on exactly the recorded number would pass the check. Whenever the
/// number differs the engine does not conclude anything from it: it opens the pin and compares the program's id
/// and load time (nanoseconds since boot) with the record (`holds`), so a re-pin of our own program (start-up
/// reconciliation, or by hand) still counts as alive, and only a different program or no pin reads as vanished.
enum ProgramPins {
    /// The inode number of the file at `path`, nil when there is none.
    static func inode(at path: String) -> UInt64? {
        var status = stat()
        guard fstatat(AT_FDCWD, path, &status, AT_SYMLINK_NOFOLLOW) == 0 else { return nil }
        return UInt64(status.st_ino)
    }

    /// Every `prog_<id>` entry of `directory` (the daemon's bpffs) with its inode number, from one directory read
    /// (`getdents64` returns the numbers with the names). Empty when the directory cannot be read.
    static func inodes(in directory: String) -> [UInt32: UInt64] {
        guard let dir = opendir(directory) else { return [:] }
        defer { closedir(dir) }
        var found: [UInt32: UInt64] = [:]
        while let entry = readdir(dir) {
            let id = withUnsafeBytes(of: &entry.pointee.d_name) { programID(pinName: $0) }
            if let id { found[id] = UInt64(entry.pointee.d_ino) }
        }
        return found
    }

    /// The id in a NUL-terminated `prog_<decimal id>` name, nil for any other name.
    static func programID(pinName name: UnsafeRawBufferPointer) -> UInt32? {
        let prefix: (UInt8, UInt8, UInt8, UInt8, UInt8) = (0x70, 0x72, 0x6f, 0x67, 0x5f)  // "prog_"
        guard name.count > 6, name[0] == prefix.0, name[1] == prefix.1, name[2] == prefix.2, name[3] == prefix.3,
            name[4] == prefix.4
        else { return nil }
        var value: UInt64 = 0
        var index = 5
        while index < name.count, name[index] != 0 {
            let digit = name[index] &- 0x30
            guard digit < 10, value <= UInt64(UInt32.max) else { return nil }
            value = value * 10 + UInt64(digit)
            index += 1
        }
        guard index > 5, value <= UInt64(UInt32.max) else { return nil }
        return UInt32(value)
    }

    /// The slow check, for a pin whose inode is not the recorded one: the program pinned at `path` is program `id`
    /// loaded at `loadTime` (when known). Opens the pin, reads the program's info and closes the fd.
    static func holds(_ path: String, id: UInt32, loadTime: UInt64?) -> Bool {
        guard let fd = try? BPF.objectGet(path),
            case .success(let (info, _)) = BPF.programInfo(rawFD: fd.rawValue)
        else { return false }
        return info.id == id && (loadTime == nil || info.load_time == loadTime)
    }

    /// Whether program `id`, recorded with pin inode `recorded` and load time `loadTime`, is alive given the inode
    /// `found` at its pin `path` now (nil: no pin).
    static func isAlive(id: UInt32, recorded: UInt64?, loadTime: UInt64?, found: UInt64?, path: String) -> Bool {
        guard let found else { return false }
        if let recorded, recorded == found { return true }
        return holds(path, id: id, loadTime: loadTime)
    }
}

extension ProgramRecord {
    /// Whether this record's program is alive given the inode now found at its pin (`ProgramPins`).
    func isAlive(pinInode found: UInt64?, paths: BpfmanPaths) -> Bool {
        ProgramPins.isAlive(
            id: id,
            recorded: pinInode,
            loadTime: kernelFacts?.loadTime,
            found: found,
            path: paths.programPin(id)
        )
    }
}

/// The last read of the bpffs root's `prog_<id>` entries (`ProgramPins.inodes(in:)`), reused by List while the
/// directory provably has not changed since, at the cost of one `fstatat` of the directory instead of an open,
/// `getdents64` and close (measured at about a fifth of the daemon's CPU for a List of 20 programs).
///
/// Adding, removing or renaming an entry sets the directory's mtime and ctime to the current time (bpffs:
/// `simple_unlink`, `simple_rename`, and the pin's creation). The kernel's clock for them is coarse (one tick),
/// so two changes within a tick may leave the same time: a read is therefore kept only when it began at least
/// `settled` after the directory's last change, so that any later change is stamped with a later time. A read
/// is reused while the directory's inode, mtime and ctime are all exactly those seen before it.
final class PinScanMemo: Sendable {
    /// What identifies the directory's state.
    private struct Stamp: Equatable {
        var inode: UInt64
        var mtime: timespec
        var ctime: timespec

        static func == (a: Stamp, b: Stamp) -> Bool {
            a.inode == b.inode && a.mtime.tv_sec == b.mtime.tv_sec && a.mtime.tv_nsec == b.mtime.tv_nsec
                && a.ctime.tv_sec == b.ctime.tv_sec && a.ctime.tv_nsec == b.ctime.tv_nsec
        }
    }

    private struct Kept: @unchecked Sendable {
        // @unchecked: timespec is a plain C struct of two integers.
        var stamp: Stamp
        var inodes: [UInt32: UInt64]
        /// Which kept read this is (1, 2, ...).
        var read: UInt64
    }

    /// How long after its last change a directory read may be kept: many kernel ticks.
    static let settledNanos: Int64 = 50_000_000

    private let kept = Mutex<Kept?>(nil)

    /// The `prog_<id>` entries of `directory` with their inode numbers, as `ProgramPins.inodes(in:)` reads them,
    /// and which kept read they are: two calls that answer the same `read` saw the same, unchanged directory. nil
    /// when the read was not kept (the directory changed too recently, or during the read).
    func inodes(in directory: String) -> (inodes: [UInt32: UInt64], read: UInt64?) {
        guard let before = Self.stamp(directory) else { return (ProgramPins.inodes(in: directory), nil) }
        if let reused = kept.withLock({ $0?.stamp == before ? $0 : nil }) { return (reused.inodes, reused.read) }
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let inodes = ProgramPins.inodes(in: directory)
        let changed = Int64(before.ctime.tv_sec) * 1_000_000_000 + Int64(before.ctime.tv_nsec)
        let started = Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
        // Kept only when the directory had settled before the read and did not change during it.
        guard started - changed >= Self.settledNanos, Self.stamp(directory) == before else { return (inodes, nil) }
        let read = kept.withLock { kept in
            let read = (kept?.read ?? 0) + 1
            kept = Kept(stamp: before, inodes: inodes, read: read)
            return read
        }
        return (inodes, read)
    }

    private static func stamp(_ directory: String) -> Stamp? {
        var status = stat()
        guard fstatat(AT_FDCWD, directory, &status, 0) == 0 else { return nil }
        return Stamp(inode: UInt64(status.st_ino), mtime: status.st_mtim, ctime: status.st_ctim)
    }
}
