internal import CBPF
internal import Glibc
package import SystemCalls

/// Kernel attach-type numbers the engine uses (SPEC §4.1). Debian's UAPI headers predate TCX, so these are
/// spelled out rather than imported.
package enum BPFAttachType {
    package static let traceFentry: UInt32 = 24
    package static let traceFexit: UInt32 = 25
    package static let lsmMac: UInt32 = 27
    package static let xdp: UInt32 = 37
    package static let perfEvent: UInt32 = 41
    package static let tcxIngress: UInt32 = 46
    package static let tcxEgress: UInt32 = 47
}

/// `BPF_LINK_CREATE`/`BPF_PROG_QUERY` flags for multi-program attach points (TCX).
package enum BPFMultiProgFlag {
    package static let replace: UInt32 = 4
    package static let before: UInt32 = 8
    package static let after: UInt32 = 16
    package static let id: UInt32 = 32
    package static let link: UInt32 = 64
}

/// Typed wrappers over the bpf(2) commands the engine needs. Each returns `Result` or throws `BPFError`;
/// every fd comes back owned.
package enum BPF {
    /// Opens a pinned object. The corresponding C function is `bpf_obj_get`.
    package static func objectGet(_ path: String) throws(BPFError) -> OwnedFD {
        try BPFError.fd("bpf_obj_get") { bpf_obj_get(path) }
    }

    /// Pins `fd` at `path` in bpffs. The corresponding C function is `bpf_obj_pin`.
    package static func pin(_ fd: borrowing OwnedFD, at path: String) -> Result<Void, BPFError> {
        pin(rawFD: fd.rawValue, at: path)
    }

    /// Pins a borrowed fd (one libbpf owns, such as `bpf_program__fd`'s) at `path` in bpffs.
    /// The corresponding C function is `bpf_obj_pin`.
    package static func pin(rawFD: CInt, at path: String) -> Result<Void, BPFError> {
        BPFError.call("bpf_obj_pin") { bpf_obj_pin(rawFD, path) }
    }

    /// The corresponding C function is `bpf_prog_get_fd_by_id`.
    package static func programFD(id: UInt32) throws(BPFError) -> OwnedFD {
        try BPFError.fd("bpf_prog_get_fd_by_id") { bpf_prog_get_fd_by_id(id) }
    }

    /// The corresponding C function is `bpf_link_get_fd_by_id`.
    package static func linkFD(id: UInt32) throws(BPFError) -> OwnedFD {
        try BPFError.fd("bpf_link_get_fd_by_id") { bpf_link_get_fd_by_id(id) }
    }

    /// The corresponding C function is `bpf_map_get_fd_by_id`.
    package static func mapFD(id: UInt32) throws(BPFError) -> OwnedFD {
        try BPFError.fd("bpf_map_get_fd_by_id") { bpf_map_get_fd_by_id(id) }
    }

    /// True when a program with kernel id `id` exists.
    ///
    /// One `BPF_PROG_GET_NEXT_ID` from `id - 1`, which answers `id` itself exactly when it exists: no fd is
    /// opened (an fd by id would cost a file and a close). Kernel ids lie in 1...INT_MAX (the kernel refuses a
    /// larger start id with EINVAL); any other failure than ENOENT reads as "exists".
    package static func programExists(id: UInt32) -> Bool {
        guard id > 0, id <= UInt32(Int32.max) else { return false }
        var next: UInt32 = 0
        if bpf_prog_get_next_id(id - 1, &next) != 0 { return Errno.current != .noSuchFileOrDirectory }
        return next == id
    }

    /// True when a link with kernel id `id` exists.
    package static func linkExists(id: UInt32) -> Bool {
        do { _ = try linkFD(id: id) } catch { return error.errno != .noSuchFileOrDirectory }
        return true
    }

    /// All kernel program ids, ascending. The corresponding C function is `bpf_prog_get_next_id`.
    package static func allProgramIDs() -> [UInt32] {
        var ids: [UInt32] = []
        var current: UInt32 = 0
        while true {
            var next: UInt32 = 0
            if bpf_prog_get_next_id(current, &next) != 0 { break }
            ids.append(next)
            current = next
        }
        return ids
    }

    /// `struct bpf_prog_info` of `fd`, with up to 64 map ids. The corresponding C function is
    /// `bpf_obj_get_info_by_fd`.
    static func programInfo(_ fd: borrowing OwnedFD) -> Result<(bpf_prog_info, [UInt32]), BPFError> {
        programInfo(rawFD: fd.rawValue)
    }

    /// `programInfo` for a descriptor kept open by another owner for the duration of the call. The first ask
    /// uses a stack buffer of 64 map ids (the id array is then the only allocation); more maps ask again.
    static func programInfo(rawFD raw: CInt) -> Result<(bpf_prog_info, [UInt32]), BPFError> {
        var info = bpf_prog_info()
        var length = UInt32(MemoryLayout<bpf_prog_info>.size)
        let stackIDs = 64
        let first = withUnsafeTemporaryAllocation(of: UInt32.self, capacity: stackIDs) {
            buffer -> Result<[UInt32]?, BPFError> in
            info.nr_map_ids = UInt32(stackIDs)
            info.map_ids = UInt64(UInt(bitPattern: buffer.baseAddress))
            let result = BPFError.call("bpf_obj_get_info_by_fd") { bpf_obj_get_info_by_fd(raw, &info, &length) }
            if case .failure(let error) = result { return .failure(error) }
            let count = Int(info.nr_map_ids)
            return .success(count <= stackIDs ? Array(UnsafeBufferPointer(rebasing: buffer[0..<count])) : nil)
        }
        var mapIDs: [UInt32]
        switch first {
        case .failure(let error): return .failure(error)
        case .success(let ids?): mapIDs = ids
        case .success(nil):
            // More maps than the stack buffer: ask again with the exact size.
            mapIDs = [UInt32](repeating: 0, count: Int(info.nr_map_ids))
            var again = bpf_prog_info()
            length = UInt32(MemoryLayout<bpf_prog_info>.size)
            let second = mapIDs.withUnsafeMutableBufferPointer { buffer in
                again.nr_map_ids = UInt32(buffer.count)
                again.map_ids = UInt64(UInt(bitPattern: buffer.baseAddress))
                return BPFError.call("bpf_obj_get_info_by_fd") { bpf_obj_get_info_by_fd(raw, &again, &length) }
            }
            if case .failure(let error) = second { return .failure(error) }
            mapIDs = Array(mapIDs.prefix(min(Int(again.nr_map_ids), mapIDs.count)))
            info = again
        }
        info.map_ids = 0
        return .success((info, mapIDs))
    }

    /// `struct bpf_map_info` of `fd`.
    static func mapInfo(_ fd: borrowing OwnedFD) -> Result<bpf_map_info, BPFError> {
        var info = bpf_map_info()
        var length = UInt32(MemoryLayout<bpf_map_info>.size)
        let raw = fd.rawValue
        return BPFError.call("bpf_obj_get_info_by_fd") { bpf_obj_get_info_by_fd(raw, &info, &length) }.map { info }
    }

    /// `(kernel link id, program id)` of a link fd.
    package static func linkInfo(_ fd: borrowing OwnedFD) -> Result<(id: UInt32, programID: UInt32), BPFError> {
        var info = bpf_link_info()
        var length = UInt32(MemoryLayout<bpf_link_info>.size)
        let raw = fd.rawValue
        return BPFError.call("bpf_obj_get_info_by_fd") { bpf_obj_get_info_by_fd(raw, &info, &length) }
            .map { (info.id, info.prog_id) }
    }

    /// Kernel id of a program fd.
    package static func programID(_ fd: borrowing OwnedFD) -> Result<UInt32, BPFError> {
        var info = bpf_prog_info()
        var length = UInt32(MemoryLayout<bpf_prog_info>.size)
        let raw = fd.rawValue
        return BPFError.call("bpf_obj_get_info_by_fd") { bpf_obj_get_info_by_fd(raw, &info, &length) }.map { info.id }
    }

    /// Detaches a link (`BPF_LINK_DETACH`). Link types without detach support fail with EOPNOTSUPP or EINVAL.
    package static func linkDetach(_ fd: borrowing OwnedFD) -> Result<Void, BPFError> {
        let raw = fd.rawValue
        return BPFError.call("bpf_link_detach") { bpf_link_detach(raw) }
    }

    /// `BPF_LINK_CREATE` through the raw syscall, with the multi-program fields libbpf 1.1 cannot set.
    ///
    /// Layout of `attr.link_create` (UAPI): prog_fd @0, target_fd/ifindex @4, attach_type @8, flags @12,
    /// then for TCX `relative_fd|relative_id` @16 and `expected_revision` @24.
    package static func linkCreate(
        programFD: borrowing OwnedFD,
        target: UInt32,
        attachType: UInt32,
        flags: UInt32 = 0,
        relativeID: UInt32 = 0
    ) throws(BPFError) -> OwnedFD {
        var attr = bpf_attr()
        let program = UInt32(bitPattern: programFD.rawValue)
        withUnsafeMutableBytes(of: &attr) { bytes in
            bytes.storeBytes(of: program, toByteOffset: 0, as: UInt32.self)
            bytes.storeBytes(of: target, toByteOffset: 4, as: UInt32.self)
            bytes.storeBytes(of: attachType, toByteOffset: 8, as: UInt32.self)
            bytes.storeBytes(of: flags, toByteOffset: 12, as: UInt32.self)
            bytes.storeBytes(of: relativeID, toByteOffset: 16, as: UInt32.self)
        }
        return try BPFError.fd("bpf(BPF_LINK_CREATE)") {
            cbpf_sys_bpf(Int32(BPF_LINK_CREATE.rawValue), &attr, UInt32(MemoryLayout<bpf_attr>.size))
        }
    }

    /// `BPF_PROG_QUERY` of a multi-program hook by ifindex: program ids and link ids in execution order.
    ///
    /// Layout of `attr.query` (UAPI 6.6): target_ifindex @0, attach_type @4, query_flags @8, attach_flags @12,
    /// prog_ids @16, count @24, prog_attach_flags @32, link_ids @40, link_attach_flags @48, revision @56.
    package static func query(
        ifindex: UInt32,
        attachType: UInt32
    ) -> Result<
        [(program: UInt32, link: UInt32)], BPFError
    > {
        var programs = [UInt32](repeating: 0, count: 64)
        var links = [UInt32](repeating: 0, count: 64)
        var attr = bpf_attr()
        var count: UInt32 = 0
        let result = programs.withUnsafeMutableBufferPointer { programBuffer in
            links.withUnsafeMutableBufferPointer { linkBuffer in
                withUnsafeMutableBytes(of: &attr) { bytes in
                    bytes.storeBytes(of: ifindex, toByteOffset: 0, as: UInt32.self)
                    bytes.storeBytes(of: attachType, toByteOffset: 4, as: UInt32.self)
                    bytes.storeBytes(
                        of: UInt64(UInt(bitPattern: programBuffer.baseAddress)),
                        toByteOffset: 16,
                        as: UInt64.self
                    )
                    bytes.storeBytes(of: UInt32(programBuffer.count), toByteOffset: 24, as: UInt32.self)
                    bytes.storeBytes(
                        of: UInt64(UInt(bitPattern: linkBuffer.baseAddress)),
                        toByteOffset: 40,
                        as: UInt64.self
                    )
                }
                let outcome = BPFError.call("bpf(BPF_PROG_QUERY)") {
                    cbpf_sys_bpf(Int32(BPF_PROG_QUERY.rawValue), &attr, UInt32(MemoryLayout<bpf_attr>.size))
                }
                count = withUnsafeBytes(of: &attr) { $0.load(fromByteOffset: 24, as: UInt32.self) }
                return outcome
            }
        }
        if case .failure(let error) = result { return .failure(error) }
        let n = min(Int(count), programs.count)
        return .success((0..<n).map { (programs[$0], links[$0]) })
    }

    /// Attaches a tracing or LSM program (fentry, fexit, lsm) to its load-time target.
    /// The corresponding C function is `bpf_raw_tracepoint_open` with a NULL name.
    package static func tracingAttach(programFD: borrowing OwnedFD) throws(BPFError) -> OwnedFD {
        let raw = programFD.rawValue
        return try BPFError.fd("bpf_raw_tracepoint_open") { bpf_raw_tracepoint_open(nil, raw) }
    }

    /// Creates a perf-event link (`BPF_LINK_CREATE`, attach type `BPF_PERF_EVENT`).
    package static func perfLink(programFD: borrowing OwnedFD, perfFD: borrowing OwnedFD) throws(BPFError) -> OwnedFD {
        let program = programFD.rawValue
        let perf = perfFD.rawValue
        return try BPFError.fd("bpf_link_create") { bpf_link_create(program, perf, BPF_PERF_EVENT, nil) }
    }

    /// `memlock:` of `/proc/self/fdinfo/<fd>`, or 0. One read into a stack buffer, parsed as bytes.
    package static func memlock(_ fd: borrowing OwnedFD) -> UInt32 {
        memlock(rawFD: fd.rawValue)
    }

    /// `memlock` for a descriptor kept open by another owner for the duration of the call: the path is built
    /// and the file read (one `read`) in one stack buffer, without allocating; the file opens relative to the
    /// process's open `/proc/self/fdinfo` (`fdinfoDirectory`), skipping the walk of that path.
    static func memlock(rawFD: CInt) -> UInt32 {
        let fdinfo: CInt? = fdinfoDirectory >= 0 ? fdinfoDirectory : nil
        guard rawFD >= 0 else { return 0 }
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 1024) { buffer -> UInt32 in
            guard let base = buffer.baseAddress else { return 0 }
            // "/proc/self/fdinfo/<fd>\0", or "<fd>\0" relative to `fdinfo`.
            var length = 0
            if fdinfo == nil {
                for byte in fdinfoPrefix {
                    base[length] = byte
                    length += 1
                }
            }
            var digits = 1
            var scale: CInt = 10
            while rawFD >= scale && digits < 10 {
                digits += 1
                scale = scale &* 10
            }
            var value = rawFD
            for position in stride(from: length + digits - 1, through: length, by: -1) {
                base[position] = UInt8(48 + value % 10)
                value /= 10
            }
            base[length + digits] = 0
            let file = UnsafeRawPointer(base).withMemoryRebound(to: CChar.self, capacity: length + digits + 1) {
                openat(fdinfo ?? AT_FDCWD, $0, O_RDONLY | O_CLOEXEC)
            }
            guard file >= 0 else { return 0 }
            let count = Glibc.read(file, base, buffer.count)
            Glibc.close(file)
            guard count > 0 else { return 0 }
            return parseMemlock(UnsafeBufferPointer(rebasing: buffer[0..<count]))
        }
    }

    /// The value of the `memlock:` line of fdinfo text, 0 without one.
    static func parseMemlock(_ text: UnsafeBufferPointer<UInt8>) -> UInt32 {
        let key = memlockKey
        var lineStart = 0
        while lineStart + key.count <= text.count {
            var matches = true
            for offset in 0..<key.count where text[lineStart + offset] != key[offset] {
                matches = false
                break
            }
            if matches {
                var j = lineStart + key.count
                var value: UInt64 = 0
                while j < text.count && (text[j] == 32 || text[j] == 9) { j += 1 }
                while j < text.count && text[j] >= 48 && text[j] <= 57 {
                    value = value &* 10 &+ UInt64(text[j] - 48)
                    j += 1
                }
                return UInt32(clamping: value)
            }
            // Next line.
            while lineStart < text.count && text[lineStart] != 10 { lineStart += 1 }
            lineStart += 1
        }
        return 0
    }

}

/// `/proc/self/fdinfo/` and `memlock:`, as bytes (built once).
private let fdinfoPrefix: [UInt8] = Array("/proc/self/fdinfo/".utf8)
private let memlockKey: [UInt8] = Array("memlock:".utf8)
