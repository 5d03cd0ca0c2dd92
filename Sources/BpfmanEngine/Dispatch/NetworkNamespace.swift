internal import CBPF
internal import Glibc
internal import SystemCalls

/// The network namespace an XDP/TC attachment lives in (SPEC §4.16), and a way to run code inside it.
///
/// `setns(CLONE_NEWNET)` changes only the calling thread, so `run` does the work on a fresh thread that
/// enters the namespace and then ends: the caller's thread (and the Swift concurrency pool) never changes
/// namespace. Interface lookup, netlink sockets and XDP link creation must all happen inside `run`.
package struct NetworkNamespace: Sendable, Equatable {
    /// The netns file as given, or `nil` for the daemon's own namespace.
    package let path: String?
    /// `st_ino` of the netns file: part of the hook key and of pin names.
    package let nsid: UInt64

    /// The daemon's own namespace (`/proc/self/ns/net`).
    package static func current() throws(DispatchError) -> NetworkNamespace {
        var st = stat()
        guard stat("/proc/self/ns/net", &st) == 0 else {
            let error = Errno.current
            throw DispatchError(
                .internal,
                "cannot stat /proc/self/ns/net: \(error)",
                errno: error
            )
        }
        return NetworkNamespace(path: nil, nsid: UInt64(st.st_ino))
    }

    /// Resolves the `netns` field of an attach request: `nil` or empty means the daemon's own namespace.
    ///
    /// - Throws: `.invalidArgument` `netns "<p>" is not a network namespace: <reason>` when the path is not
    ///   absolute, does not exist, or is not a network namespace file.
    package static func resolve(_ path: String?) throws(DispatchError) -> NetworkNamespace {
        guard let path, !path.isEmpty else { return try current() }
        func invalid(_ reason: String) -> DispatchError {
            DispatchError(.invalidArgument, "netns \"\(path)\" is not a network namespace: \(reason)")
        }
        guard path.hasPrefix("/") else { throw invalid("the path must be absolute") }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw invalid(Errno.current.description) }
        defer { close(fd) }
        // NS_GET_NSTYPE (_IO(0xb7, 0x3)) answers CLONE_NEWNET for a network namespace file.
        let type = cbpf_ns_type(fd)
        guard cbpf_ns_is_net(type) != 0 else {
            throw invalid(type < 0 ? Errno.current.description : "it is another kind of namespace")
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw invalid(Errno.current.description) }
        return NetworkNamespace(path: path, nsid: UInt64(st.st_ino))
    }

    /// How messages name this namespace: its path, or `host`.
    package var label: String { path ?? "host" }

    /// Runs `body` with the calling thread inside this namespace and returns its result.
    ///
    /// For the daemon's own namespace `body` runs on the caller's thread. Otherwise a new thread opens the
    /// netns file, `setns`es into it, runs `body` and exits; this call blocks until then.
    /// - Throws: what `body` throws, or `.internal` when the namespace cannot be entered.
    package func run<T>(_ body: () throws(DispatchError) -> T) throws(DispatchError) -> T {
        guard let path else { return try body() }
        var result: Result<T, DispatchError>?
        let failure = NamespaceThread.runOnThread(inNetns: path) {
            result = Result { () throws(DispatchError) -> T in try body() }
        }
        func failed(_ what: String, _ error: Errno) -> DispatchError {
            DispatchError(.internal, "\(what) \"\(path)\": \(error)", errno: error)
        }
        switch failure {
        case .threadNotStarted(let error)?: throw failed("cannot start a thread for netns", error)
        case .cannotOpen(let error)?: throw failed("cannot open netns", error)
        case .cannotEnter(let error)?: throw failed("cannot enter netns", error)
        case nil: return try result!.get()
        }
    }
}

/// Interface names and indexes, looked up in the calling thread's namespace (call inside `run`).
package enum NetworkInterface {
    /// Checks an interface name as SPEC §3.3 does: non-empty, at most 15 bytes, no `/` or whitespace.
    package static func validate(name: String) throws(DispatchError) {
        guard !name.isEmpty else { throw DispatchError(.invalidArgument, "iface is required") }
        guard name.utf8.count <= 15, !name.contains(where: { $0 == "/" || $0.isWhitespace }) else {
            throw DispatchError(.invalidArgument, "invalid interface name \"\(name)\"")
        }
    }

    /// The ifindex of `name` in the current namespace.
    /// - Throws: `.invalidArgument` `interface "<x>" not found in netns "<label>"`.
    package static func index(of name: String, netnsLabel: String) throws(DispatchError) -> UInt32 {
        let index = if_nametoindex(name)
        guard index != 0 else {
            throw DispatchError(.invalidArgument, "interface \"\(name)\" not found in netns \"\(netnsLabel)\"")
        }
        return index
    }
}
