internal import Glibc

/// Kernel facts the daemon reports (`Inspect/Status` `kernel_features`, SPEC §3.9), read once at start-up.
package enum KernelFacts {
    private static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    private static func read(_ path: String) -> String {
        guard let file = fopen(path, "r") else { return "" }
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 4096)
        guard fgets(&buffer, Int32(buffer.count), file) != nil else { return "" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Whether the running kernel release is at least `major.minor`.
    package static func kernelAtLeast(
        _ major: Int,
        _ minor: Int,
        release: String = ProcessSetup.kernelRelease()
    )
        -> Bool
    {
        let numbers = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        guard numbers.count == 2 else { return false }
        return (numbers[0], numbers[1]) >= (major, minor)
    }

    /// `btf`, `freplace`, `tcx`, `kprobe`, `lsm`.
    package static func features(freplace: Bool) -> [String: Bool] {
        let lsm = read("/sys/kernel/security/lsm")
        return [
            "btf": exists("/sys/kernel/btf/vmlinux"),
            "freplace": freplace,
            "tcx": kernelAtLeast(6, 6),
            "kprobe": exists("/sys/bus/event_source/devices/kprobe/type"),
            "lsm": lsm.split(whereSeparator: { $0 == "," || $0.isWhitespace }).contains("bpf"),
        ]
    }
}
