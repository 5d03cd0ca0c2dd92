// The daemon's image fetcher (README, "Bytecode images"), run as `bpfman` under the name `bpfman-image`: the
// daemon starts its own executable (/proc/self/exe) with argv[0] "bpfman-image" for each pull, with a request on
// standard input (and, for oci: and oci-archive:, the layout or archive it opened as fd 3, its SSL_CERT_FILE as
// fd 4, and the Sigstore trust root as fd 5 when signatures are verified). This process gives up root, downloads and parses the untrusted bytes, and writes a reply line and the
// object's bytes to standard output. libcurl is loaded here only (dlopen, CCurl), never in the daemon.
internal import BpfmanImages
internal import CLinux
internal import FoundationEssentials
internal import Glibc
internal import SystemCalls

package enum FetcherProcess {
    /// The name the daemon gives this mode in argv[0].
    package static let name = "bpfman-image"

    /// Serves one request and exits. `bpfman-image verify-bundle ...` (what `bpfman image verify-bundle` runs) is a
    /// command for a user instead: it keeps the caller's identity, so it reads what the caller may read.
    package static func main(_ arguments: [String] = CommandLine.arguments) -> Never {
        if arguments.count > 1 && arguments[1] == "verify-bundle" {
            var environment: [String: String] = [:]
            for name in ["SIGSTORE_ROOT_FILE", "BPFMAN_TUF_URL", "BPFMAN_TUF_ROOT"] {
                if let value = getenv(name) { environment[name] = String(cString: value) }
            }
            exit(verifyBundleCommand(Array(arguments.dropFirst(2)), environment: environment))
        }
        // `bpfman image build` (ImageWriter.swift), also under the caller's identity: it writes where the caller may.
        if arguments.count > 1 && arguments[1] == "build-image" {
            exit(ImageWriter.command(Array(arguments.dropFirst(2))))
        }
        if let problem = dropPrivileges() {
            reply(
                FetchReply(
                    failure: FetchFailure(kind: .transfer, reason: "the image fetcher cannot drop root: \(problem)")
                )
            )
        }
        // The request carries at most a CA bundle of a few MiB besides small fields.
        guard let input = readInput(limit: 16 << 20),
            let request = try? JSONDecoder().decode(FetchRequest.self, from: Data(input))
        else {
            reply(FetchReply(failure: FetchFailure(kind: .transfer, reason: "the image fetcher got no valid request")))
        }
        var info = stat()
        let localFD: CInt? = fstat(3, &info) == 0 ? 3 : nil
        let (answer, object) = Fetcher.run(request, localFD: localFD, caBundle: readDaemonFile(4)) { readDaemonFile(5) }
        reply(answer, object)
    }

    /// The user and group `nobody`, which owns nothing this process could harm.
    static let unprivileged: uid_t = 65534

    /// Leaves root for good: no supplementary groups, group and user `nobody`, no way back through exec.
    static func dropPrivileges() -> String? {
        if geteuid() == 0 {
            guard setgroups(0, nil) == 0 else { return "setgroups: \(Errno.current)" }
            guard setgid(unprivileged) == 0 else { return "setgid: \(Errno.current)" }
            guard setuid(unprivileged) == 0 else { return "setuid: \(Errno.current)" }
            guard setuid(0) != 0 else { return "root could be taken back" }
        }
        guard clinux_set_no_new_privs() == 0 else { return "no_new_privs: \(Errno.current)" }
        return nil
    }

    /// All of standard input, at most `limit` bytes (nil when more).
    /// Standard input and output are inherited, so a closed one (EBADF) is the caller's doing, not a bug of ours:
    /// these two loops retry EINTR themselves instead of going through the funnel, which traps on EBADF.
    static func readInput(limit: Int) -> [UInt8]? {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(0, $0.baseAddress!, $0.count) }
            if n < 0 && Errno.current == .interrupted { continue }
            if n <= 0 { return bytes }
            bytes += chunk[..<n]
            if bytes.count > limit { return nil }
        }
    }

    static func writeOutput(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(1, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 && Errno.current == .interrupted { continue }
            if n <= 0 { exit(3) }
            offset += n
        }
    }

    static func reply(_ reply: FetchReply, _ object: [UInt8] = []) -> Never {
        guard let line = try? JSONEncoder().encode(reply) else { exit(3) }
        writeOutput(Array(line) + [0x0a] + object)
        exit(0)
    }

    /// A regular file the daemon opened for this process as `fd` (4, its SSL_CERT_FILE; 5, the Sigstore trust root
    /// when signatures are verified), at most 4 MiB; nil when there is none.
    static func readDaemonFile(_ fd: CInt) -> [UInt8]? {
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, info.st_size <= 4 << 20 else { return nil }
        var bytes = [UInt8](repeating: 0, count: Int(info.st_size))
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { buffer in
                try? syscall("pread") { pread(fd, buffer.baseAddress! + offset, buffer.count - offset, off_t(offset)) }
            }
            guard let n, n > 0 else { return nil }
            offset += n
        }
        return bytes
    }
}
