internal import CBPF
internal import Dispatch
internal import Glibc

extension KernelProgramInfo {
    /// Reads a program's information live (SPEC §3.8): `BPF_PROG_GET_FD_BY_ID`, `BPF_OBJ_GET_INFO_BY_FD`,
    /// `/proc/self/fdinfo/<fd>` for memlock unless `memlock` gives it (a managed program's value recorded at
    /// load, `ProgramRecord.bytesMemlock`); the fd is closed on return.
    /// - Returns: nil when the program no longer exists.
    package static func read(id: UInt32, reportedType: UInt32? = nil, memlock: UInt32? = nil) -> KernelProgramInfo? {
        guard let fd = try? BPF.programFD(id: id) else { return nil }
        return read(rawFD: fd.rawValue, reportedType: reportedType, memlock: memlock)
    }

    /// One program for `read(_:)`: its id, the kernel type to report and a recorded memlock (see `read(id:)`).
    struct Request {
        var id: UInt32
        var reportedType: UInt32? = nil
        var memlock: UInt32? = nil
    }

    /// Programs from this many on are read by two threads at once (`read(_:)`). Waking the second thread costs
    /// about as much as reading a few dozen programs: in the daemon (List answered by the event loop's thread,
    /// 3 alternating runs each) splitting lost at 20 and 40 programs, broke even at 64 and won at 100 (p50 -10%,
    /// 8 callers' throughput +20%).
    static let parallelReadThreshold = 64

    /// Reads many programs' information live, in order; nil for a program that no longer exists.
    ///
    /// Each program costs three system calls (fd by id, info, close), most of a long List's time. From
    /// `parallelReadThreshold` programs on, the two halves are read at the same time, one on the calling thread
    /// and one on a Dispatch worker: a List answered to one caller otherwise leaves the second core idle, and
    /// when both cores are busy the second half simply runs after the first.
    static func read(_ requests: [Request]) -> [KernelProgramInfo?] {
        guard requests.count >= parallelReadThreshold else { return requests.map(readOne) }
        var results = [KernelProgramInfo?](repeating: nil, count: requests.count)
        let half = requests.count / 2
        results.withUnsafeMutableBufferPointer { buffer in
            // Each half writes only its own slots, and concurrentPerform returns once both halves are done:
            // sharing the buffer between the two threads is sound, which the compiler cannot see.
            nonisolated(unsafe) let slots = buffer
            DispatchQueue.concurrentPerform(iterations: 2) { part in
                for index in part == 0 ? 0..<half : half..<requests.count { slots[index] = readOne(requests[index]) }
            }
        }
        return results
    }

    @Sendable private static func readOne(_ request: Request) -> KernelProgramInfo? {
        read(id: request.id, reportedType: request.reportedType, memlock: request.memlock)
    }

    /// Same from an fd the caller owns.
    package static func read(fd: borrowing OwnedFD, reportedType: UInt32? = nil) -> KernelProgramInfo? {
        read(rawFD: fd.rawValue, reportedType: reportedType)
    }

    /// Same from a descriptor another owner (e.g. a `bpf_object`) keeps open for the duration of the call.
    static func read(rawFD: CInt, reportedType: UInt32? = nil, memlock: UInt32? = nil) -> KernelProgramInfo? {
        guard case .success(let (info, mapIDs)) = BPF.programInfo(rawFD: rawFD) else { return nil }
        let name = withUnsafeBytes(of: info.name) { bytes in
            String(decoding: bytes.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        let tag = withUnsafeBytes(of: info.tag) { bytes in
            String(unsafeUninitializedCapacity: bytes.count * 2) { hex in
                for (index, byte) in bytes.enumerated() {
                    hex[2 * index] = hexDigits[Int(byte >> 4)]
                    hex[2 * index + 1] = hexDigits[Int(byte & 0xf)]
                }
                return bytes.count * 2
            }
        }
        return KernelProgramInfo(
            id: info.id,
            name: name,
            programType: reportedType ?? info.type,
            kernelProgramType: info.type,
            loadedAt: formatLoadTime(info.load_time),
            tag: tag,
            gplCompatible: info.gpl_compatible != 0,
            mapIDs: mapIDs,
            btfID: info.btf_id,
            bytesXlated: info.xlated_prog_len,
            jited: info.jited_prog_len > 0,
            bytesJited: info.jited_prog_len,
            bytesMemlock: memlock ?? BPF.memlock(rawFD: rawFD),
            verifiedInsns: info.verified_insns
        )
    }

    /// Boot time + `load_time` (ns since boot), local time, `%Y-%m-%dT%H:%M:%S%z`.
    static func formatLoadTime(_ loadTime: UInt64) -> String {
        var now = timespec()
        var boot = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        clock_gettime(CLOCK_BOOTTIME, &boot)
        let nowNanos = Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
        let bootNanos = Int64(boot.tv_sec) * 1_000_000_000 + Int64(boot.tv_nsec)
        var seconds = time_t((nowNanos - bootNanos + Int64(loadTime)) / 1_000_000_000)
        var parts = tm()
        localtime_r(&seconds, &parts)
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: 64) { buffer in
            let count = strftime(buffer.baseAddress, buffer.count, "%Y-%m-%dT%H:%M:%S%z", &parts)
            return String(decoding: UnsafeRawBufferPointer(start: buffer.baseAddress, count: count), as: UTF8.self)
        }
    }
}

/// `/proc/self/fdinfo`, opened on first use and kept for the life of the process, so reading a program's
/// memlock opens `<fd>` relative to it instead of walking `/proc/self/fdinfo/` for every program of every Get
/// and List. A directory, not a BPF object: SPEC §6.5 (no BPF fds at rest) is unaffected. -1 when it cannot be
/// opened; reads then use the full path.
let fdinfoDirectory: CInt = Glibc.open("/proc/self/fdinfo", O_RDONLY | O_DIRECTORY | O_CLOEXEC)

private let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)
