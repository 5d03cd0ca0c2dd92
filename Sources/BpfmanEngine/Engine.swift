internal import CBPF
internal import Glibc
package import Logging
internal import SystemCalls

/// The loader engine: Load, Unload, Attach, Detach, List and Get over libbpf, bpffs pins and the SQLite store.
///
/// The actor serialises every mutation (SPEC §1.7's writer lock is the actor's queue; the server adds
/// deadline handling on top); reads go through `reader` without entering the actor. Between calls the engine
/// holds no BPF fds: pins keep the kernel objects alive and each call opens what it needs (SPEC §6.5).
/// Errors are `EngineError`, whose `code` maps one-to-one to a gRPC status (SPEC §0.3).
package actor Engine {
    package let paths: BpfmanPaths
    let store: ProgramStore
    /// Read-only connections for `reader` (opened on demand).
    nonisolated let readPool: ReadPool
    /// Records `reader` already read, valid until the store's next commit.
    nonisolated let memo: RecordMemo
    /// The bpffs root's pins as `reader`'s List last read them, valid while the directory is unchanged.
    nonisolated let pinScans = PinScanMemo()
    let logger: Logger
    let hooks: (any HookAttacher)?
    /// What the kernel supports, probed at start-up (SPEC §4.3); the only kernel state kept across calls.
    package nonisolated let kernelFeatures: ProbedKernelFeatures
    /// Load's verifier-log buffers, reused from one Load to the next.
    let verifierLogs = VerifierLogBuffers()
    /// `_testOnlyCrashAt`: the named step at which the process SIGKILLs itself (crash-safety tests).
    let crashStep: String?

    /// Environment variable naming a crash step (tests only; see `crashPoint`).
    package static let crashStepEnvironmentKey = "BPFMAN_ENGINE_TEST_CRASH_AT"

    /// Opens the runtime directory, mounting bpffs at `<rd>/fs` when it is not one, opens and migrates the
    /// store, and reconciles records with the kernel and the pins (SPEC §1.3, §6.3).
    ///
    /// - Parameters:
    ///   - paths: where everything lives; tests pass `BpfmanPaths(root: tempDir)`.
    ///   - hookAttacher: the XDP/TC dispatcher implementation, or nil (XDP/TC attach then fails).
    /// - Throws: `EngineError.internal` when the directories, the mount or the database cannot be set up.
    package init(
        paths: BpfmanPaths = BpfmanPaths(),
        logger: Logger = Logger(label: "bpfman.engine"),
        hookAttacher: sending (any HookAttacher)? = nil
    ) async throws(EngineError) {
        self.paths = paths
        self.logger = logger
        self.hooks = hookAttacher
        self.crashStep = getenv(Engine.crashStepEnvironmentKey).map { String(cString: $0) }
        self.kernelFeatures = ProbedKernelFeatures.probe()
        LibbpfLog.install(logger)
        try Engine.prepareDirectories(paths)
        do {
            store = try ProgramStore(path: paths.database)
        } catch {
            throw .internal("cannot open the database \(paths.database): \(error)")
        }
        readPool = ReadPool(path: paths.database)
        let commits = CommitCounter()
        store.database.countCommits(commits)
        memo = RecordMemo(commits: commits)
        try reconcile()
    }

    /// The read path: Get, List and link queries without entering the actor (SPEC §1.7).
    package nonisolated var reader: EngineReader {
        EngineReader(engine: self, pool: readPool, memo: memo, pinScans: pinScans, paths: paths)
    }

    /// Closes the database. The engine must not be used afterwards.
    package func close() {
        readPool.close()
        store.close()
    }

    private static func prepareDirectories(_ paths: BpfmanPaths) throws(EngineError) {
        func makeDirectory(_ path: String, _ mode: mode_t) throws(EngineError) {
            if Syscalls.exists(path) { return }
            if case .failure(let error) = Syscalls.mkdir(path, mode), error.errno != .fileExists {
                throw .internal("cannot create \(path): \(error.errno)", errno: error.errno)
            }
        }
        try makeDirectory(paths.root, 0o755)
        try makeDirectory(paths.databaseDirectory, 0o700)
        try makeDirectory(paths.bpffs, 0o755)
        if cbpf_is_bpffs(paths.bpffs) != 1 {
            if mount("bpf", paths.bpffs, "bpf", 0, nil) != 0 {
                let error = Errno.current
                throw .internal("cannot mount bpffs at \(paths.bpffs): \(error)", errno: error)
            }
        }
        // Tracepoint ids come from tracefs; mount it where the kernel offers it and nobody has yet.
        if !Syscalls.exists("/sys/kernel/tracing/events") && Syscalls.exists("/sys/kernel/tracing") {
            _ = mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, nil)
        }
        try makeDirectory(paths.mapsDirectory, 0o755)
        try makeDirectory(paths.linksDirectory, 0o755)
        try makeDirectory(paths.sharedMapsDirectory, 0o755)
    }

    var hookContext: HookContext { HookContext(paths: paths, store: store, logger: logger) }

    /// Test hook: when `BPFMAN_ENGINE_TEST_CRASH_AT` names `step`, the process kills itself with SIGKILL here,
    /// leaving whatever a real crash would (SPEC §6.2 crash-safety tests).
    func crashPoint(_ step: String) {
        if crashStep == step {
            kill(getpid(), SIGKILL)
        }
    }

    /// Runs a store operation, turning SQLite failures into INTERNAL errors.
    func db<R>(_ body: () throws(SQLiteError) -> R) throws(EngineError) -> R {
        do { return try body() } catch { throw error.engineError }
    }

    /// Removes a file or pin, ignoring its absence.
    func removePin(_ path: String) {
        _ = Syscalls.unlink(path)
    }

    /// Removes a map-set directory and the pins in it.
    func removeDirectory(_ path: String) {
        for name in Syscalls.listDirectory(path) { _ = Syscalls.unlink(path + "/" + name) }
        _ = Syscalls.rmdir(path)
    }
}
