internal import Glibc
internal import SystemCalls

/// Resolution of a uprobe `target` to a file (SPEC §4.13), in the calling process's mount namespace.
package enum UprobeTarget {
    /// The path `target` names, or why it cannot be resolved.
    ///
    /// A target containing `/` is a path that must exist. Otherwise it is a library name (`.so` appended
    /// unless present): with `pid` > 0 the first mapped file of that process whose basename starts with it,
    /// else the first matching `/etc/ld.so.cache` entry of the host's ABI.
    package static func resolve(_ target: String, pid: Int32?) -> Result<String, ResolutionError> {
        if target.contains("/") {
            return Syscalls.exists(target) ? .success(target) : .failure(ResolutionError("no such file"))
        }
        let name = target.contains(".so") ? target : target + ".so"
        if let pid, pid > 0 {
            guard let maps = Syscalls.readFile("/proc/\(pid)/maps") else {
                return .failure(ResolutionError("cannot read /proc/\(pid)/maps"))
            }
            for line in String(decoding: maps, as: UTF8.self).split(separator: "\n") {
                guard let slash = line.firstIndex(of: "/") else { continue }
                let path = String(line[slash...])
                let base = path.split(separator: "/").last.map(String.init) ?? path
                if base.hasPrefix(name) { return .success(path) }
            }
            return .failure(ResolutionError("no library matching \(name) is mapped by process \(pid)"))
        }
        guard let cache = Syscalls.readFile("/etc/ld.so.cache") else {
            return .failure(ResolutionError("cannot read /etc/ld.so.cache"))
        }
        guard let path = LDSOCache.lookup(name, in: cache) else {
            return .failure(ResolutionError("no entry for \(name) in /etc/ld.so.cache"))
        }
        return .success(path)
    }

    package struct ResolutionError: Error, Sendable {
        package var reason: String
        init(_ reason: String) { self.reason = reason }
    }
}

/// glibc's `/etc/ld.so.cache` in its "glibc-ld.so.cache1.1" format: a 48-byte header (magic and version,
/// entry count, string-table length, flags, extension offset), then 24-byte entries (flags, key, value,
/// osversion, hwcap); string offsets count from the start of that header.
package enum LDSOCache {
    #if arch(x86_64)
    static let abiFlags: Int32 = 0x0303  // FLAG_ELF_LIBC6 | FLAG_X8664_LIB64
    #elseif arch(arm64)
    static let abiFlags: Int32 = 0x0a03  // FLAG_ELF_LIBC6 | FLAG_AARCH64_LIB64
    #else
    static let abiFlags: Int32 = 0x0003
    #endif

    /// The path of the first entry of the host ABI whose name starts with `prefix`.
    package static func lookup(_ prefix: String, in cache: [UInt8]) -> String? {
        let magic = Array("glibc-ld.so.cache1.1".utf8)
        guard let start = firstIndex(of: magic, in: cache) else { return nil }
        func u32(_ at: Int) -> Int {
            guard at + 4 <= cache.count else { return 0 }
            return Int(cache[at]) | Int(cache[at + 1]) << 8 | Int(cache[at + 2]) << 16 | Int(cache[at + 3]) << 24
        }
        func string(_ at: Int) -> String {
            var end = at
            while end < cache.count && cache[end] != 0 { end += 1 }
            return String(decoding: cache[min(at, cache.count)..<end], as: UTF8.self)
        }
        let count = u32(start + 20)
        for i in 0..<count {
            let entry = start + 48 + i * 24
            guard entry + 24 <= cache.count else { break }
            let flags = Int32(truncatingIfNeeded: u32(entry))
            guard flags == abiFlags else { continue }
            let key = string(start + u32(entry + 4))
            if key.hasPrefix(prefix) { return string(start + u32(entry + 8)) }
        }
        return nil
    }

    private static func firstIndex(of needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for i in 0...(haystack.count - needle.count) where haystack[i] == needle[0] {
            if Array(haystack[i..<(i + needle.count)]) == needle { return i }
        }
        return nil
    }
}
