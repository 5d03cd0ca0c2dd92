// The container_pid helper of SPEC §4.14, run as `bpfman` under the name `bpfman-ns`: the daemon starts its own
// executable (/proc/self/exe) with argv[0] "bpfman-ns", so one installed file is enough (README, "Kubernetes").
//
//   bpfman-ns open-target --container-pid <c> --target <t> [--pid <p>] --sock-fd <n>
//
// Enters the mount namespace of process <c> (/proc/<c>/ns/mnt, else /host/proc/<c>/ns/mnt), resolves the
// uprobe target there exactly as the daemon does on the host (a path, or a library name through
// /proc/<p>/maps or the container's /etc/ld.so.cache), opens it O_RDONLY|O_CLOEXEC and sends one
// SOCK_SEQPACKET message on fd <n>: the resolved path as data, the fd as SCM_RIGHTS. Exit 0; on failure one
// line on stderr and exit 1.
//
// setns(CLONE_NEWNS) refuses multi-threaded callers, so `main` must run before anything in the process starts a
// thread (no Swift concurrency, no Dispatch, no Foundation on the way here); it checks, and says so if not.
internal import CBPF
internal import Glibc
internal import SystemCalls

package enum NamespaceHelper {
    /// The name the daemon gives this mode in argv[0].
    package static let name = "bpfman-ns"

    /// Runs the helper with `arguments` (argv, the name first) and exits.
    package static func main(_ arguments: [String]) -> Never {
        guard arguments.count > 1, arguments[1] == "open-target" else {
            fail("usage: bpfman-ns open-target --container-pid <c> --target <t> [--pid <p>] --sock-fd <n>")
        }
        guard let container = option("--container-pid", in: arguments).flatMap({ Int32($0) }), container > 0 else {
            fail("--container-pid is required")
        }
        guard let target = option("--target", in: arguments), !target.isEmpty else { fail("--target is required") }
        let pid = option("--pid", in: arguments).flatMap { Int32($0) } ?? 0
        guard let socket = option("--sock-fd", in: arguments).flatMap({ Int32($0) }) else {
            fail("--sock-fd is required")
        }

        var namespace = open("/proc/\(container)/ns/mnt", O_RDONLY | O_CLOEXEC)
        if namespace < 0 { namespace = open("/host/proc/\(container)/ns/mnt", O_RDONLY | O_CLOEXEC) }
        guard namespace >= 0 else {
            fail(
                "container pid \(container) has no mount namespace (tried /proc/\(container)/ns/mnt and /host/proc/\(container)/ns/mnt)"
            )
        }
        guard cbpf_setns(namespace, CBPF_CLONE_NEWNS) == 0 else {
            let reason = Errno.current.description
            if let threads = threadCount(), threads > 1 {
                fail(
                    "cannot enter the mount namespace of pid \(container): \(reason) (this process runs \(threads) threads)"
                )
            }
            fail("cannot enter the mount namespace of pid \(container): \(reason)")
        }
        close(namespace)
        let path = resolve(target, pid: pid)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { fail("cannot open \(path) in the container: \(Errno.current.description)") }
        send(path: path, fd: fd, on: socket)
        exit(0)
    }

    static func fail(_ message: String) -> Never {
        let line = Array((message + "\n").utf8)
        _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        exit(1)
    }

    static func option(_ name: String, in arguments: [String]) -> String? {
        guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count else { return nil }
        return arguments[index + 1]
    }

    static func readFile(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 { return nil }
            if n == 0 { return result }
            result.append(contentsOf: chunk[0..<n])
        }
    }

    /// The first ld.so.cache entry of this ABI whose name starts with `prefix` ("glibc-ld.so.cache1.1" format).
    static func lookupCache(_ prefix: String, _ cache: [UInt8]) -> String? {
        let magic = Array("glibc-ld.so.cache1.1".utf8)
        guard cache.count > magic.count else { return nil }
        var start: Int?
        for i in 0...(cache.count - magic.count)
        where cache[i] == magic[0] && Array(cache[i..<(i + magic.count)]) == magic {
            start = i
            break
        }
        guard let start else { return nil }
        func u32(_ at: Int) -> Int {
            at + 4 <= cache.count
                ? Int(cache[at]) | Int(cache[at + 1]) << 8 | Int(cache[at + 2]) << 16 | Int(cache[at + 3]) << 24 : 0
        }
        func string(_ at: Int) -> String {
            var end = at
            while end < cache.count && cache[end] != 0 { end += 1 }
            return String(decoding: cache[min(at, cache.count)..<end], as: UTF8.self)
        }
        #if arch(x86_64)
        let abi = 0x0303
        #else
        let abi = 0x0a03
        #endif
        for i in 0..<u32(start + 20) {
            let entry = start + 48 + i * 24
            guard entry + 24 <= cache.count else { break }
            guard u32(entry) == abi else { continue }
            if string(start + u32(entry + 4)).hasPrefix(prefix) { return string(start + u32(entry + 8)) }
        }
        return nil
    }

    static func resolve(_ target: String, pid: Int32) -> String {
        if target.contains("/") {
            guard access(target, F_OK) == 0 else {
                fail("uprobe target \"\(target)\" could not be resolved: no such file")
            }
            return target
        }
        let name = target.contains(".so") ? target : target + ".so"
        if pid > 0 {
            guard let maps = readFile("/proc/\(pid)/maps") else { fail("cannot read /proc/\(pid)/maps") }
            for line in String(decoding: maps, as: UTF8.self).split(separator: "\n") {
                guard let slash = line.firstIndex(of: "/") else { continue }
                let path = String(line[slash...])
                if (path.split(separator: "/").last.map(String.init) ?? path).hasPrefix(name) { return path }
            }
            fail("no library matching \(name) is mapped by process \(pid)")
        }
        guard let cache = readFile("/etc/ld.so.cache") else { fail("cannot read /etc/ld.so.cache") }
        guard let path = lookupCache(name, cache) else { fail("no entry for \(name) in /etc/ld.so.cache") }
        return path
    }

    static func send(path: String, fd: Int32, on socket: Int32) {
        if case .failure(let error) = Syscalls.sendDescriptor(fd, with: Array(path.utf8), on: socket) {
            fail("sendmsg: \(error.errno.description)")
        }
    }

    /// The number of threads of this process (the `Threads:` line of /proc/self/status), or nil.
    static func threadCount() -> Int? {
        guard let status = readFile("/proc/self/status") else { return nil }
        for line in String(decoding: status, as: UTF8.self).split(separator: "\n") where line.hasPrefix("Threads:") {
            return Int(line.dropFirst("Threads:".count).trimmingPrefix(while: { $0 == " " || $0 == "\t" }))
        }
        return nil
    }
}
