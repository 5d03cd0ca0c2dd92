internal import CBPF
internal import Dispatch
internal import Glibc
package import SystemCalls

extension KernelProgramInfo {
    /// Reads a program's information live (SPEC §3.8): `BPF_PROG_GET_FD_BY_ID`, `BPF_OBJ_GET_INFO_BY_FD` and
    /// `/proc/self/fdinfo/<fd>` for memlock; the fd is closed on return. Unmanaged programs are answered this way;
    /// managed ones from their recorded facts (`EngineReader`).
    /// - Returns: nil when the program no longer exists.
    package static func read(
        id: UInt32,
        reportedType: UInt32? = nil,
        clock: LoadTimeClock = LoadTimeClock()
    )
        -> KernelProgramInfo?
    {
        guard let fd = try? BPF.programFD(id: id) else { return nil }
        guard let facts = KernelProgramFacts.read(rawFD: fd.rawValue, clock: clock) else { return nil }
        return KernelProgramInfo(id: id, facts: facts, reportedType: reportedType, clock: clock)
    }

    /// One program for `read(_:)`: its id and the kernel type to report.
    struct Request {
        var id: UInt32
        var reportedType: UInt32? = nil
    }

    /// Programs from this many on are read by two threads at once (`read(_:)`). Waking the second thread costs
    /// about as much as reading a few dozen programs: in the daemon (List answered by the event loop's thread,
    /// 3 alternating runs each) splitting lost at 20 and 40 programs, broke even at 64 and won at 100 (p50 -10%,
    /// 8 callers' throughput +20%).
    static let parallelReadThreshold = 64

    /// Reads many programs' information live, in order; nil for a program that no longer exists.
    ///
    /// Each program costs four system calls (fd by id, info, fdinfo, close), most of a long List of unmanaged
    /// programs. From `parallelReadThreshold` programs on, the two halves are read at the same time, one on the
    /// calling thread and one on a Dispatch worker: a List answered to one caller otherwise leaves the second core
    /// idle, and when both cores are busy the second half simply runs after the first.
    static func read(_ requests: [Request], clock: LoadTimeClock) -> [KernelProgramInfo?] {
        let readOne = { @Sendable (request: Request) in
            read(id: request.id, reportedType: request.reportedType, clock: clock)
        }
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
}

extension KernelProgramFacts {
    /// Reads a program's facts from a descriptor its caller keeps open for the duration of the call (a
    /// `bpf_object`'s program fd at Load, an fd by id or from a pin otherwise): `BPF_OBJ_GET_INFO_BY_FD` and the
    /// fd's `memlock:` line.
    /// - Returns: nil when the kernel refuses the info.
    static func read(rawFD: CInt, clock: LoadTimeClock = LoadTimeClock()) -> KernelProgramFacts? {
        readWithID(rawFD: rawFD, clock: clock)?.facts
    }

    /// `read(rawFD:clock:)` with the program's id, from the same info.
    static func readWithID(rawFD: CInt, clock: LoadTimeClock) -> (id: UInt32, facts: KernelProgramFacts)? {
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
        let facts = KernelProgramFacts(
            name: name,
            kernelType: info.type,
            loadTime: info.load_time,
            tag: tag,
            gplCompatible: info.gpl_compatible != 0,
            mapIDs: mapIDs,
            btfID: info.btf_id,
            bytesXlated: info.xlated_prog_len,
            bytesJited: info.jited_prog_len,
            bytesMemlock: BPF.memlock(rawFD: rawFD),
            verifiedInsns: info.verified_insns,
            clock: clock
        )
        return (info.id, facts)
    }

    /// Same from an fd the caller owns.
    package static func read(fd: borrowing OwnedFD) -> KernelProgramFacts? {
        read(rawFD: fd.rawValue)
    }
}

/// Boot time on the wall clock, read once per answer, for `loaded_at` (SPEC §3.8: boot time + `load_time`, local
/// time, `%Y-%m-%dT%H:%M:%S%z`).
///
/// A program's `load_time` never changes, but boot time on the wall clock does when the clock is set, so the text
/// is computed from the current boot time for every answer, as a live read would. Formatting (`localtime_r`,
/// `strftime`) is what costs; the Unix second is cheap, so a kept text (`LoadedAtText`) is reused while the
/// second it stands for is still the answer's.
package struct LoadTimeClock: Sendable {
    /// Wall-clock time of boot: `CLOCK_REALTIME` minus `CLOCK_BOOTTIME`, in nanoseconds.
    let bootNanos: Int64

    package init() {
        var now = timespec()
        var boot = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        clock_gettime(CLOCK_BOOTTIME, &boot)
        bootNanos =
            (Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec))
            - (Int64(boot.tv_sec) * 1_000_000_000 + Int64(boot.tv_nsec))
    }

    /// The Unix second at which a program with `loadTime` (ns since boot) was loaded.
    func second(_ loadTime: UInt64) -> Int64 {
        (bootNanos + Int64(truncatingIfNeeded: loadTime)) / 1_000_000_000
    }

    /// `loadTime` formatted, with its second.
    func text(_ loadTime: UInt64) -> LoadedAtText {
        let second = second(loadTime)
        return LoadedAtText(second: second, text: Self.format(second))
    }

    /// `loadTime` formatted, `kept` reused when it stands for the same second.
    func text(_ loadTime: UInt64, reusing kept: LoadedAtText) -> String {
        let second = second(loadTime)
        return second == kept.second ? kept.text : Self.format(second)
    }

    /// A Unix second as local time, `%Y-%m-%dT%H:%M:%S%z`.
    static func format(_ second: Int64) -> String {
        var seconds = time_t(second)
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
