internal import CNghttp2
internal import SystemCalls

#if canImport(Glibc)
@preconcurrency internal import Glibc
#endif

/// Where a server listens.
package enum GRPCBindTarget: Sendable {
    /// A Unix stream socket at `path` (at most 103 bytes). A stale socket there is removed (only if
    /// it is a socket), missing parent directories are created 0755, the socket gets `mode` and,
    /// if given, `group`. The server unlinks it at shutdown.
    case unix(path: String, mode: UInt32 = 0o660, group: UInt32? = nil)
    /// TCP on an IPv4 address; port 0 picks a free port. For tests and benchmarks only.
    case tcp(host: String = "127.0.0.1", port: UInt16)
    /// An already-listening stream socket handed to us (socket activation). The server owns it
    /// from now on, closes it at shutdown and never unlinks its path.
    case adopted(fd: CInt)
}

/// What binding produced.
package struct GRPCBoundListener: Sendable {
    /// The TCP port, for `.tcp`.
    package var port: UInt16?
}

enum ListenerFactory {
    static let maxUnixPathLength = 103

    /// A listening socket just made, with what the server must remember about it.
    struct Made: ~Copyable {
        var fd: OwnedFD
        var unlinkPath: String?
        var bound: GRPCBoundListener
    }

    static func make(_ target: GRPCBindTarget) throws(SystemCallError) -> Made {
        switch target {
        case .unix(let path, let mode, let group):
            return Made(
                fd: try unix(path: path, mode: mode_t(mode), group: group.map { gid_t($0) }),
                unlinkPath: path,
                bound: GRPCBoundListener()
            )
        case .tcp(let host, let port):
            var bound: UInt16 = 0
            let fd = try tcp(host: host, port: port, bound: &bound)
            return Made(fd: fd, unlinkPath: nil, bound: GRPCBoundListener(port: bound))
        case .adopted(let raw):
            return Made(fd: try adopt(raw), unlinkPath: nil, bound: GRPCBoundListener())
        }
    }

    private static func unix(path: String, mode: mode_t, group: gid_t?) throws(SystemCallError) -> OwnedFD {
        guard !path.isEmpty, path.utf8.count <= maxUnixPathLength else {
            throw SystemCallError(function: "bind", errno: .nameTooLong, detail: path)
        }
        try makeParentDirectories(of: path)
        var info = stat()
        if lstat(path, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFSOCK else {
                throw SystemCallError(
                    function: "bind",
                    errno: .fileExists,
                    detail: "\(path) exists and is not a socket"
                )
            }
            try syscall("unlink", detail: path) { Glibc.unlink(path) }
        }
        let fd = OwnedFD(
            taking: try syscall("socket") {
                socket(
                    AF_UNIX,
                    Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue),
                    0
                )
            }!
        )
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path.utf8)
            raw[path.utf8.count] = 0
        }
        try fd.withRawDescriptor { raw throws(SystemCallError) in
            _ = try withUnsafePointer(to: &address) { pointer throws(SystemCallError) in
                try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa throws(SystemCallError) in
                    try syscall("bind", detail: path) { bind(raw, sa, socklen_t(MemoryLayout<sockaddr_un>.size)) }
                }
            }
            try syscall("chmod", detail: path) { chmod(path, mode) }
            if let group {
                try syscall("chown", detail: path) { chown(path, uid_t.max, group) }
            }
            try syscall("listen", detail: path) { listen(raw, 511) }
        }
        return fd
    }

    private static func makeParentDirectories(of path: String) throws(SystemCallError) {
        let parent = path.split(separator: "/", omittingEmptySubsequences: true).dropLast().joined(separator: "/")
        guard !parent.isEmpty else { return }
        try Syscalls.makeDirectories((path.hasPrefix("/") ? "/" : "") + parent, 0o755).get()
    }

    private static func tcp(host: String, port: UInt16, bound: inout UInt16) throws(SystemCallError) -> OwnedFD {
        let fd = OwnedFD(
            taking: try syscall("socket") {
                socket(
                    AF_INET,
                    Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue),
                    0
                )
            }!
        )
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
            throw SystemCallError(function: "inet_pton", errno: .invalidArgument, detail: host)
        }
        bound = try fd.withRawDescriptor { raw throws(SystemCallError) -> UInt16 in
            var one: CInt = 1
            try syscall("setsockopt") {
                setsockopt(raw, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<CInt>.size))
            }
            try withUnsafeMutablePointer(to: &address) { pointer throws(SystemCallError) in
                try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa throws(SystemCallError) in
                    try syscall("bind", detail: "\(host):\(port)") {
                        bind(raw, sa, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
                    try syscall("getsockname") { getsockname(raw, sa, &length) }
                }
            }
            try syscall("listen") { listen(raw, 511) }
            return UInt16(bigEndian: address.sin_port)
        }
        return fd
    }

    private static func adopt(_ raw: CInt) throws(SystemCallError) -> OwnedFD {
        var type: CInt = 0
        var accepting: CInt = 0
        var length = socklen_t(MemoryLayout<CInt>.size)
        try syscall("getsockopt", detail: "fd \(raw)") { getsockopt(raw, SOL_SOCKET, SO_TYPE, &type, &length) }
        length = socklen_t(MemoryLayout<CInt>.size)
        try syscall("getsockopt", detail: "fd \(raw)") {
            getsockopt(raw, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &length)
        }
        guard type == Int32(SOCK_STREAM.rawValue), accepting == 1 else {
            throw SystemCallError(
                function: "adopt",
                errno: .invalidArgument,
                detail: "fd \(raw) is not a listening stream socket"
            )
        }
        let flags = try syscall("fcntl") { fcntl(raw, F_GETFL) }!
        try syscall("fcntl") { fcntl(raw, F_SETFL, flags | O_NONBLOCK) }
        try syscall("fcntl") { fcntl(raw, F_SETFD, FD_CLOEXEC) }
        return OwnedFD(taking: raw)
    }

    /// The socket-activation fd (3) if `LISTEN_PID` is this process and `LISTEN_FDS` is 1 and fd 3 is
    /// an `AF_UNIX` stream socket; the three `LISTEN_*` variables are then removed from the
    /// environment. `nil` when not activated. (SPEC.md §1.4.)
    static func socketActivatedFD() -> Result<CInt, SystemCallError>? {
        guard let pidText = getenv("LISTEN_PID").map({ String(cString: $0) }),
            let fdsText = getenv("LISTEN_FDS").map({ String(cString: $0) })
        else { return nil }
        guard Int32(pidText) == getpid(), fdsText == "1" else {
            return .failure(
                SystemCallError(
                    function: "socket activation",
                    errno: .invalidArgument,
                    detail: "LISTEN_PID=\(pidText) LISTEN_FDS=\(fdsText) do not name one fd for this process"
                )
            )
        }
        unsetenv("LISTEN_PID")
        unsetenv("LISTEN_FDS")
        unsetenv("LISTEN_FDNAMES")
        var domain: CInt = 0
        var length = socklen_t(MemoryLayout<CInt>.size)
        guard getsockopt(3, SOL_SOCKET, SO_DOMAIN, &domain, &length) == 0, domain == AF_UNIX else {
            return .failure(
                SystemCallError(function: "socket activation", errno: .notSocket, detail: "fd 3 is not AF_UNIX")
            )
        }
        return .success(3)
    }
}
