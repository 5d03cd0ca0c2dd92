internal import Glibc
internal import SystemCalls

/// Process-level start-up steps of `bpfman serve` (SPEC §1.3 steps 2 and 3).
package enum ProcessSetup {
    /// What `raiseMemlockLimit` achieved.
    package enum MemlockOutcome: Equatable, Sendable {
        /// The limit is now infinite.
        case unlimited
        /// The process may not raise its hard limit (no CAP_SYS_RESOURCE), but the kernel charges BPF memory to
        /// the memory cgroup (Linux 5.11 and later), so the limit does not matter; the soft limit was raised to
        /// the hard one. The daemon logs this as a warning.
        case notNeeded(hardLimit: UInt64)
    }

    /// Raises RLIMIT_MEMLOCK to infinity, as kernels before 5.11 charge BPF maps and programs against it.
    /// - Throws: `StartupError` with SPEC's message when the limit cannot be raised on a kernel that needs it.
    package static func raiseMemlockLimit(
        kernelRelease: String = kernelRelease()
    ) throws(StartupError)
        -> MemlockOutcome
    {
        let resource = __rlimit_resource_t(__RLIMIT_MEMLOCK.rawValue)
        var limit = rlimit(rlim_cur: rlim_t.max, rlim_max: rlim_t.max)  // RLIM_INFINITY
        if setrlimit(resource, &limit) == 0 {
            return .unlimited
        }
        guard chargesBPFToMemoryCgroup(kernelRelease: kernelRelease) else {
            throw StartupError("must be privileged to run bpfman")
        }
        getrlimit(resource, &limit)
        limit.rlim_cur = limit.rlim_max
        setrlimit(resource, &limit)
        return .notNeeded(hardLimit: UInt64(limit.rlim_max))
    }

    /// Raises the soft RLIMIT_NOFILE to the hard limit. Every client connection holds a descriptor, and systemd
    /// starts services with a soft limit of 1024 (hard 524288): at 1024, a thousand idle local connections kept
    /// every other client out (the load test, README "Fuzzing"). Returns the soft limit now in force.
    @discardableResult
    package static func raiseDescriptorLimit() -> UInt64 {
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        var limit = rlimit()
        guard getrlimit(resource, &limit) == 0 else { return 0 }
        if limit.rlim_cur < limit.rlim_max {
            let wanted = limit.rlim_max
            limit.rlim_cur = wanted
            if setrlimit(resource, &limit) != 0 { getrlimit(resource, &limit) }
        }
        return UInt64(limit.rlim_cur)
    }

    /// True for kernels (5.11+) that account BPF memory to the memory cgroup instead of RLIMIT_MEMLOCK.
    package static func chargesBPFToMemoryCgroup(kernelRelease: String) -> Bool {
        let numbers = kernelRelease.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        guard numbers.count == 2 else { return false }
        return (numbers[0], numbers[1]) >= (5, 11)
    }

    /// The running kernel's release, e.g. "6.18.4".
    package static func kernelRelease() -> String {
        var names = utsname()
        uname(&names)
        return withUnsafeBytes(of: &names.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    /// Makes sure SIGPIPE never kills the daemon: a client closing its socket mid-reply is routine.
    package static func ignoreSIGPIPE() {
        signal(SIGPIPE, SIG_IGN)
    }
}

/// The exclusive lock on `<rd>/.lock` that keeps a second daemon off the same runtime directory.
///
/// The lock lives as long as this value; dropping it (or the process exiting, even by SIGKILL) releases it.
package struct RuntimeDirectoryLock: ~Copyable {
    private let fd: Int32

    /// Creates `directory` (0755) if needed and takes an exclusive `flock` on `directory/.lock`.
    /// - Parameters:
    ///   - directory: the runtime directory.
    ///   - retries: further attempts after the first fails (config `[database] max_retries`).
    ///   - delayMilliseconds: pause between attempts (config `[database] millisec_delay`).
    /// - Throws: `StartupError` `another bpfman daemon is using <rd>` when every attempt finds it held,
    ///   or naming the path and errno when the directory or file cannot be created.
    package init(directory: String, retries: Int, delayMilliseconds: Int) throws(StartupError) {
        try makeDirectories(directory, mode: 0o755)
        let path = directory + "/.lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StartupError("cannot open \(path): \(Errno.current)") }
        var attempt = 0
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = Errno.current
            guard code == .wouldBlock || code == .interrupted else {
                close(fd)
                throw StartupError("cannot lock \(path): \(code)")
            }
            attempt += 1
            guard attempt <= retries else {
                close(fd)
                throw StartupError("another bpfman daemon is using \(directory)")
            }
            usleep(UInt32(max(0, delayMilliseconds)) * 1000)
        }
        self.fd = fd
    }

    /// One attempt: the lock when it was free, nil when another process holds it (the CLI's in-process mode,
    /// SPEC §9, which waits in its own loop so that it can notice a daemon coming up meanwhile).
    /// - Throws: `StartupError` naming the path when the directory or file cannot be created or locked.
    package init?(tryingDirectory directory: String) throws(StartupError) {
        try makeDirectories(directory, mode: 0o755)
        let path = directory + "/.lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StartupError("cannot open \(path): \(Errno.current)") }
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = Errno.current
            if code == .interrupted { continue }
            close(fd)
            guard code == .wouldBlock else {
                throw StartupError("cannot lock \(path): \(code)")
            }
            return nil
        }
        self.fd = fd
    }

    deinit {
        close(fd)
    }
}

/// A start-up failure: the daemon prints the message and exits 1.
package struct StartupError: Error, Equatable, CustomStringConvertible {
    package var message: String
    package init(_ message: String) { self.message = message }
    package var description: String { message }
}

/// `mkdir -p` with `mode` for the directories it creates.
package func makeDirectories(_ path: String, mode: UInt32) throws(StartupError) {
    if case .failure(let error) = Syscalls.makeDirectories(path, mode) {
        throw StartupError("cannot create directory \(error.detail): \(error.errno)")
    }
}
