internal import CBPF
internal import Glibc

/// The bpf(2)/libbpf calls dispatch code needs, each decoding libbpf's `-errno` convention in one place
/// (STYLE convention 4): a negative result becomes `DispatchError` `.internal` naming the C function and
/// the subject; EBADF/EFAULT are our bugs and trap. Fds come back as the engine's `OwnedFD`; Dispatch hands
/// none out, since pins keep kernel objects alive between requests (SPEC §6.5).
enum DispatchBPF {
    /// Turns a libbpf `int` result (`-errno`, or -1 with errno) into a value or an error.
    @inline(never)
    static func check(_ result: Int32, _ what: @autoclosure () -> String) throws(DispatchError) -> Int32 {
        if result >= 0 { return result }
        let code = result == -1 ? errno : -result
        precondition(code != EBADF && code != EFAULT, "\(what()): \(code) is a dispatch bug")
        throw DispatchError(.internal, "\(what()): \(String(cString: strerror(code)))", errno: code)
    }

    /// Opens a pinned object. The corresponding C function is `bpf_obj_get`.
    static func open(pin path: String) throws(DispatchError) -> OwnedFD {
        OwnedFD(taking: try check(bpf_obj_get(path), "open pin \(path)"))
    }

    /// Pins `fd` (borrowed, not closed) at `path`. The corresponding C function is `bpf_obj_pin`.
    static func pin(_ fd: Int32, at path: String) throws(DispatchError) {
        _ = try check(bpf_obj_pin(fd, path), "pin \(path)")
    }

    /// Kernel id of a program fd.
    static func programID(_ fd: Int32) throws(DispatchError) -> UInt32 {
        var info = bpf_prog_info()
        var length = UInt32(MemoryLayout<bpf_prog_info>.size)
        _ = try check(bpf_obj_get_info_by_fd(fd, &info, &length), "read program info")
        return info.id
    }

    /// Kernel id and program id of a link fd.
    static func linkInfo(_ fd: Int32) throws(DispatchError) -> (id: UInt32, programID: UInt32) {
        var info = bpf_link_info()
        var length = UInt32(MemoryLayout<bpf_link_info>.size)
        _ = try check(bpf_obj_get_info_by_fd(fd, &info, &length), "read link info")
        return (info.id, info.prog_id)
    }

    /// Removes a pin or empty directory; a missing one is fine.
    static func remove(_ path: String) {
        if unlink(path) != 0, errno == EISDIR || errno == EPERM {
            _ = rmdir(path)
        }
    }
}
