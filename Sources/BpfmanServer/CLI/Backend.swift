internal import BpfmanEngine
internal import FoundationEssentials
internal import Glibc
internal import H2Transport
internal import Logging
internal import Proto
internal import Synchronization
internal import SystemCalls

/// Where a client command's calls go (SPEC §9): the daemon answering on the socket, or, when none answers, the
/// daemon's own services run in this process on the runtime directory, under the lock a daemon takes.
///
/// Both paths run the same service code (`ServiceStack`), so results, ids, records and pins are the same; what
/// one leaves in the runtime directory the other picks up (a daemon started later reconciles it at start-up).
final class Backend: @unchecked Sendable {  // used by one command at a time
    private enum Target {
        case daemon(GRPCUnaryClient)
        case inProcess(LocalRuntime)
    }

    let socketPath: String
    /// The client-side deadline of every call.
    let timeout: Duration
    private let target: Target

    /// Backends this process opened, closed by `closeAll` before it exits.
    private static let opened = Mutex<[Backend]>([])

    private init(socketPath: String, timeout: Duration, target: Target) {
        self.socketPath = socketPath
        self.timeout = timeout
        self.target = target
        Self.opened.withLock { $0.append(self) }
    }

    /// Closes every backend opened so far (the in-process engine's database, the runtime-dir lock); the command
    /// runner calls it once the command is done, whether it succeeded or not.
    static func closeAll() async {
        for backend in opened.withLock({ list in
            defer { list = [] }
            return list
        }) {
            await backend.close()
        }
    }

    /// Whether the engine runs in this process (no daemon answered).
    var isInProcess: Bool {
        if case .inProcess = target { return true }
        return false
    }

    /// The daemon on `socketPath` when one answers; otherwise the engine in-process on the runtime directory.
    static func open(socketPath: String, _ options: ConnectionOptions) async throws(ClientError) -> Backend {
        let timeout = try duration(options.timeout, option: "--timeout", default: .seconds(60))
        if let client = try connectIfAnswering(socketPath, timeout: timeout) {
            return Backend(socketPath: socketPath, timeout: timeout, target: .daemon(client))
        }
        guard geteuid() == 0 else {
            throw ClientError(
                plain:
                    "cannot reach the bpfman daemon at \(socketPath) and running in-process needs root: start it with 'systemctl start bpfman.socket' or 'bpfman serve', or run as root"
            )
        }
        let lockTimeout = try duration(
            options.lockTimeout ?? environment("BPFMAN_LOCK_TIMEOUT"),
            option: "--lock-timeout",
            default: .seconds(30)
        )
        let runtimeDirectory =
            options.runtimeDirectory ?? environment("BPFMAN_RUNTIME_DIR") ?? ServeDefaults.runtimeDirectory
        // Wait for the lock; a daemon that comes up meanwhile (it holds the lock before it binds the socket)
        // is used as soon as it answers.
        let end = ContinuousClock.now + lockTimeout
        var lock: RuntimeDirectoryLock?
        while true {
            do {
                lock = try RuntimeDirectoryLock(tryingDirectory: runtimeDirectory)
            } catch {
                throw ClientError(plain: error.message, code: .internal)
            }
            if lock != nil { break }
            if let client = try connectIfAnswering(socketPath, timeout: timeout) {
                return Backend(socketPath: socketPath, timeout: timeout, target: .daemon(client))
            }
            guard ContinuousClock.now < end else {
                throw ClientError(
                    plain:
                        "another bpfman process holds \(runtimeDirectory)/.lock and no daemon answers at \(socketPath) (waited \(lockTimeout))"
                )
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        let config: DaemonConfig
        do {
            config = try BpfmanCommand.Serve.loadConfig(explicit: options.config ?? environment("BPFMAN_CONFIG"))
        } catch {
            throw ClientError(plain: error.message, code: .invalidArgument)
        }
        let logger = inProcessLogger(config, spec: options.log ?? environment("BPFMAN_LOG"))
        do {
            _ = try ProcessSetup.raiseMemlockLimit()
            let stack = try await ServiceStack.make(
                options: DaemonOptions(
                    socketPath: socketPath,
                    runtimeDirectory: runtimeDirectory,
                    imageCacheDirectory: options.imageCacheDirectory ?? ServeDefaults.imageCacheDirectory,
                    allowSocketActivation: false
                ),
                config: config,
                logger: logger,
                lazyImages: true
            )
            return Backend(
                socketPath: socketPath,
                timeout: timeout,
                target: .inProcess(LocalRuntime(lock: lock.take()!, stack: stack))
            )
        } catch {
            throw ClientError(plain: error.message, code: .internal)
        }
    }

    /// A connected client when something accepts connections on `path`; nil when nobody does (no socket file,
    /// or a stale one: connection refused).
    static func connectIfAnswering(_ path: String, timeout: Duration) throws(ClientError) -> GRPCUnaryClient? {
        do {
            return try GRPCUnaryClient(unixPath: path, sendTimeout: timeout)
        } catch {
            if error.errno == .noSuchFileOrDirectory || error.errno == .connectionRefused { return nil }
            if error.errno == .permissionDenied && geteuid() != 0 {
                throw ClientError(
                    plain:
                        "cannot reach the bpfman daemon at \(path) (permission denied) and running in-process needs root: start it with 'systemctl start bpfman.socket' or 'bpfman serve', or run as root"
                )
            }
            throw ClientError(
                plain: "cannot connect to the bpfman daemon at \(path): \(error.errno)"
            )
        }
    }

    /// One unary call, with the client-side deadline.
    func call<Response: ProtoMessage>(
        _ path: String,
        _ request: some ProtoMessage,
        _: Response.Type
    ) async throws(ClientError) -> Response {
        let result: Result<[UInt8], GRPCStatus>
        switch target {
        case .daemon(let client):
            do {
                result = try client.call(path, request.serializedBytes(), timeout: timeout)
            } catch {
                if error.errno == .timedOut {
                    throw ClientError(
                        status: GRPCStatus(
                            .deadlineExceeded,
                            "the bpfman daemon at \(socketPath) did not answer within \(timeout)"
                        )
                    )
                }
                throw ClientError(
                    status: GRPCStatus(.unavailable, "talking to the bpfman daemon at \(socketPath): \(error)")
                )
            }
        case .inProcess(let local):
            result = await local.stack.router.callInProcess(
                path,
                request.serializedBytes(),
                deadline: .now + timeout
            )
        }
        switch result {
        case .failure(let status): throw ClientError(status: status)
        case .success(let bytes):
            do {
                return try Response(serializedBytes: bytes)
            } catch {
                throw ClientError(status: GRPCStatus(.internal, "cannot decode \(Response.protoMessageName): \(error)"))
            }
        }
    }

    /// Closes the in-process engine (its database) and releases the runtime-dir lock; nothing for a daemon.
    func close() async {
        if case .inProcess(let local) = target { await local.close() }
    }

    func get(_ id: UInt32) async throws(ClientError) -> Bpfman_V1_GetResponse {
        var request = Bpfman_V1_GetRequest()
        request.id = id
        return try await call(Bpfman_V1_Bpfman.Method.get.path, request, Bpfman_V1_GetResponse.self)
    }

    func details(_ ids: [UInt32]) async throws(ClientError) -> [UInt32: Bpfman_Ext_V1_ProgramDetails] {
        var request = Bpfman_Ext_V1_GetProgramDetailsRequest()
        request.programIds = ids
        let response = try await call(
            Bpfman_Ext_V1_Inspect.Method.getProgramDetails.path,
            request,
            Bpfman_Ext_V1_GetProgramDetailsResponse.self
        )
        var byID: [UInt32: Bpfman_Ext_V1_ProgramDetails] = [:]
        for details in response.programs { byID[details.programID] = details }
        return byID
    }

    /// Attaches and returns the new link as `GetLink` reports it (what both trees print).
    func attach(
        _ programID: UInt32,
        _ info: Bpfman_V1_AttachInfo.OneOf_Info
    ) async throws(ClientError)
        -> Bpfman_Ext_V1_LinkInfo
    {
        var request = Bpfman_V1_AttachRequest()
        request.id = programID
        var attach = Bpfman_V1_AttachInfo()
        attach.info = info
        request.attach = attach
        let response = try await call(Bpfman_V1_Bpfman.Method.attach.path, request, Bpfman_V1_AttachResponse.self)
        return try await link(response.linkID)
    }

    /// A program with its details (managed programs only), as `get program` and `program get` show it.
    func program(_ id: UInt32) async throws(ClientError) -> ProgramView {
        let got = try await get(id)
        let details = got.hasInfo ? (try? await self.details([id]))?[id] : nil
        return ProgramView(info: got.hasInfo ? got.info : nil, kernel: got.kernelInfo, details: details)
    }

    func link(_ id: UInt32) async throws(ClientError) -> Bpfman_Ext_V1_LinkInfo {
        var request = Bpfman_Ext_V1_GetLinkRequest()
        request.linkID = id
        return try await call(Bpfman_Ext_V1_Inspect.Method.getLink.path, request, Bpfman_Ext_V1_LinkInfo.self)
    }
}

/// One program as the CLI shows it: its record (managed programs), the kernel's view, its details.
struct ProgramView {
    var info: Bpfman_V1_ProgramInfo?
    var kernel: Bpfman_V1_KernelProgramInfo
    var details: Bpfman_Ext_V1_ProgramDetails?

    /// A List result (`hasInfo` for managed programs) with its details from `details`.
    init(_ result: Bpfman_V1_ListResponse.ListResult, _ details: [UInt32: Bpfman_Ext_V1_ProgramDetails]) {
        self.init(
            info: result.hasInfo ? result.info : nil,
            kernel: result.kernelInfo,
            details: details[result.kernelInfo.id]
        )
    }

    /// A Load result with its details from `details`.
    init(_ loaded: Bpfman_V1_LoadResponseInfo, _ details: [UInt32: Bpfman_Ext_V1_ProgramDetails]) {
        self.init(
            info: loaded.hasInfo ? loaded.info : nil,
            kernel: loaded.kernelInfo,
            details: details[loaded.kernelInfo.id]
        )
    }

    init(
        info: Bpfman_V1_ProgramInfo?,
        kernel: Bpfman_V1_KernelProgramInfo,
        details: Bpfman_Ext_V1_ProgramDetails?
    ) {
        self.info = info
        self.kernel = kernel
        self.details = details
    }

    /// `{info?, kernel_info, details?}` (SPEC §9.3).
    var json: String {
        jsonObject([
            ("info", info.map { BpfmanServer.json($0) }), ("kernel_info", BpfmanServer.json(kernel)),
            ("details", details.map { BpfmanServer.json($0) }),
        ])
    }
}

/// The engine and services in this process, and the runtime-dir lock they run under.
private final class LocalRuntime {
    let stack: ServiceStack
    private let lock: Mutex<RuntimeDirectoryLock?>

    init(lock: consuming RuntimeDirectoryLock, stack: ServiceStack) {
        self.lock = Mutex(lock)
        self.stack = stack
    }

    func close() async {
        await stack.engine.close()
        lock.withLock { held in
            let released = held.take()
            _ = consume released
        }
    }
}

private func environment(_ name: String) -> String? {
    guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else { return nil }
    return value
}

/// A duration as users write it: `30s`, `500ms`, `2m`, `1h`, `1m30s`, or a bare number of seconds.
func duration(_ text: String?, option: String, default fallback: Duration) throws(ClientError) -> Duration {
    guard let text else { return fallback }
    if let seconds = Double(text), seconds >= 0 { return .milliseconds(Int64(seconds * 1000)) }
    var total = Duration.zero
    var number = ""
    var rest = Substring(text)
    var matched = false
    while let c = rest.first {
        if c.isNumber || c == "." {
            number.append(c)
            rest.removeFirst()
            continue
        }
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        guard let (unit, scale) = units.first(where: { rest.hasPrefix($0.0) }), let value = Double(number) else {
            throw ClientError(
                plain: "\(option): invalid duration \"\(text)\" (examples: 30s, 500ms, 2m)",
                code: .invalidArgument
            )
        }
        total += .milliseconds(Int64(value * scale * 1000))
        rest.removeFirst(unit.count)
        number = ""
        matched = true
    }
    guard matched, number.isEmpty else {
        throw ClientError(
            plain: "\(option): invalid duration \"\(text)\" (examples: 30s, 500ms, 2m)",
            code: .invalidArgument
        )
    }
    return total
}

/// The in-process engine's logger: stderr, warnings and errors only unless `--log`/`$BPFMAN_LOG` or `RUST_LOG`
/// ask for more, so a command's own output is not mixed with the engine's info lines.
private func inProcessLogger(_ config: DaemonConfig, spec: String?) -> Logger {
    var level: Logger.Level = .warning
    if let text = spec ?? ProcessInfo.processInfo.environment["RUST_LOG"], let parsed = logLevel(fromRustLog: text) {
        level = parsed.loggerLevel
    }
    let format: DaemonLogHandler.Format = config.logFormat == .json ? .json : .text
    let chosen = level
    LoggingSystem.bootstrap { label in DaemonLogHandler(label: label, level: chosen, format: format) }
    return Logger(label: "bpfman")
}
