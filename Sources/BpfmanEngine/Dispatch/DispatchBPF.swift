internal import CBPF
internal import Glibc
internal import SystemCalls

/// The bpf(2)/libbpf calls dispatch code needs. A single result is decoded by the engine's decoder
/// (`BPFError.errno(of:)`, STYLE convention 4), the calls on fds and pins by the SystemCalls funnel, which
/// retries EINTR: a negative result becomes `DispatchError` `.internal` naming the C function and the subject;
/// EBADF/EFAULT are our bugs and trap. Fds come back as `OwnedFD`; Dispatch hands none out, since pins keep
/// kernel objects alive between requests (SPEC §6.5).
enum DispatchBPF {
    /// Turns a libbpf `int` result (`-errno`, or -1 with errno) into a value or an error.
    @inline(never)
    static func check(_ result: Int32, _ what: @autoclosure () -> String) throws(DispatchError) -> Int32 {
        guard let error = BPFError.errno(of: result, what()) else { return result }
        throw DispatchError(.internal, "\(what()): \(error)", errno: error)
    }

    /// Runs a libbpf call on an fd or a pin until it does not fail with EINTR, decoding its result like `check`.
    @inline(never)
    static func call(
        _ function: StaticString,
        _ what: @autoclosure () -> String,
        _ body: () -> Int32
    ) throws(DispatchError) -> Int32 {
        switch valueOrNegatedErrno(function, body) {
        case .success(let value): return value
        case .failure(let error): throw DispatchError(.internal, "\(what()): \(error)", errno: error)
        }
    }

    /// Opens a pinned object. The corresponding C function is `bpf_obj_get`.
    static func open(pin path: String) throws(DispatchError) -> OwnedFD {
        OwnedFD(taking: try call("bpf_obj_get", "open pin \(path)") { bpf_obj_get(path) })
    }

    /// Pins `fd` (borrowed, not closed) at `path`. The corresponding C function is `bpf_obj_pin`.
    static func pin(_ fd: Int32, at path: String) throws(DispatchError) {
        _ = try call("bpf_obj_pin", "pin \(path)") { bpf_obj_pin(fd, path) }
    }

    /// Kernel id of a program fd.
    static func programID(_ fd: Int32) throws(DispatchError) -> UInt32 {
        var info = bpf_prog_info()
        var length = UInt32(MemoryLayout<bpf_prog_info>.size)
        _ = try call("bpf_obj_get_info_by_fd", "read program info") { bpf_obj_get_info_by_fd(fd, &info, &length) }
        return info.id
    }

    /// Kernel id and program id of a link fd.
    static func linkInfo(_ fd: Int32) throws(DispatchError) -> (id: UInt32, programID: UInt32) {
        var info = bpf_link_info()
        var length = UInt32(MemoryLayout<bpf_link_info>.size)
        _ = try call("bpf_obj_get_info_by_fd", "read link info") { bpf_obj_get_info_by_fd(fd, &info, &length) }
        return (info.id, info.prog_id)
    }

    /// Removes a pin or empty directory; a missing one is fine.
    static func remove(_ path: String) {
        if case .failure(let error) = Syscalls.unlink(path), error.errno == .isDirectory || error.errno == .notPermitted
        {
            _ = Syscalls.rmdir(path)
        }
    }
}
