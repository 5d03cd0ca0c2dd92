package import BpfmanEngine
internal import BpfmanImages
internal import FoundationEssentials
internal import Glibc
package import H2Transport
package import Logging
internal import Synchronization

/// Where and how `bpfman serve` runs (SPEC §1.2), after flag parsing.
package struct DaemonOptions: Sendable {
    package var socketPath: String
    package var runtimeDirectory: String
    package var imageCacheDirectory: String
    package var csiSupport: Bool
    /// `--timeout` as given; nil when absent (the default then depends on activation and CSI, §0.2).
    package var timeout: UInt64?
    /// Adopt a socket-activated fd when systemd passed one (tests turn this off).
    package var allowSocketActivation: Bool

    package init(
        socketPath: String,
        runtimeDirectory: String,
        imageCacheDirectory: String = ServeDefaults.imageCacheDirectory,
        csiSupport: Bool = false,
        timeout: UInt64? = nil,
        allowSocketActivation: Bool = true
    ) {
        self.socketPath = socketPath
        self.runtimeDirectory = runtimeDirectory
        self.imageCacheDirectory = imageCacheDirectory
        self.csiSupport = csiSupport
        self.timeout = timeout
        self.allowSocketActivation = allowSocketActivation
    }

    /// The idle timeout in seconds (SPEC §0.2): `--timeout` if given, else 0 with CSI, 15 when activated, else 0.
    package func idleTimeout(socketActivated: Bool) -> UInt64 {
        if let timeout { return timeout }
        if csiSupport { return 0 }
        return socketActivated ? 15 : 0
    }
}

/// The engine and the `bpfman.v1.Bpfman` and `bpfman.ext.v1.Inspect` services on it: what a daemon serves on its
/// socket, and what the CLI runs in-process when no daemon answers (SPEC §9), so both give the same results.
package struct ServiceStack: Sendable {
    package let engine: Engine
    /// The two services' methods; the daemon adds health and reflection before serving it.
    package let router: GRPCRouter
    package let facts: DaemonFacts

    /// Opens the runtime directory (engine start-up with reconciliation, SPEC §1.3 steps 4-9) and registers the
    /// services. The caller holds the runtime-dir lock. With `lazyImages` the image cache is opened on its first
    /// use instead of now.
    package static func make(
        options: DaemonOptions,
        config: DaemonConfig,
        logger: Logger,
        socketActivated: Bool = false,
        idleSeconds: UInt64 = 0,
        lazyImages: Bool = false
    ) async throws(StartupError) -> ServiceStack {
        let paths = BpfmanPaths(root: options.runtimeDirectory)
        // libbpf's diagnostics go to the log from here on, the freplace probe's included (before this, libbpf
        // printed them to stderr itself).
        LibbpfLog.install(logger)
        // XDP/TC: Dispatch probes freplace and picks dispatcher or native mode (§4.3). The dispatcher objects
        // are built into the executable (`DispatcherObjects.embedded`, SPEC §1.10).
        let attachMode: AttachModeStatus
        let engine: Engine
        do {
            let attacher = try DispatchHookAttacher.forDaemon(
                paths: paths,
                attachMode: config.attachMode.rawValue,
                xdpModes: config.interfaceXDPModes.mapValues(\.rawValue)
            )
            attachMode = attacher.status
            engine = try await Engine(paths: paths, logger: logger, hookAttacher: attacher)
        } catch {
            throw StartupError(error.message)
        }
        let facts = DaemonFacts(
            version: BpfmanVersion.string,
            attachMode: attachMode.mode,
            attachModeReason: attachMode.reason,
            runtimeDirectory: options.runtimeDirectory,
            socketPath: options.socketPath,
            csiEnabled: options.csiSupport,
            csiSocketPath: options.csiSupport ? CSIPaths(runtimeDirectory: options.runtimeDirectory).socket : "",
            idleTimeoutSeconds: UInt32(clamping: idleSeconds),
            socketActivated: socketActivated,
            kernelFeatures: engine.kernelFeatures.reported(freplace: attachMode.freplace ?? false)
        )
        let images = imageStore(options: options, config: config, logger: logger, lazy: lazyImages)
        let context = ServiceContext(engine: engine, images: images, logger: logger, facts: facts)
        var router = GRPCRouter()
        BpfmanService(context: context).register(on: &router)
        InspectService(context: context).register(on: &router)
        return ServiceStack(engine: engine, router: router, facts: facts)
    }

    /// The image cache, opened now or, when `lazy`, on its first use; a failure to open it is logged once and
    /// answered to every image request.
    private static func imageStore(
        options: DaemonOptions,
        config: DaemonConfig,
        logger: Logger,
        lazy: Bool
    ) -> @Sendable () -> Result<ImageStore, ImageError> {
        let makeImages = { @Sendable () -> Result<ImageStore, ImageError> in
            let made = Result { () throws(ImageError) -> ImageStore in
                try ImageStore(
                    directory: options.imageCacheDirectory,
                    signing: config.signingPolicy,
                    environment: ProcessInfo.processInfo.environment,
                    runtimeDirectory: options.runtimeDirectory,
                    userAgent: "bpfman/\(BpfmanVersion.string)",
                    logger: logger,
                    objectCheck: { ELFFile.bpfObjectProblem(header: Array($0.prefix(64))) }
                )
            }
            if case .failure(let error) = made {
                logger.warning("bytecode images unavailable: \(error.message)")
            }
            return made
        }
        guard lazy else {
            let made = makeImages()
            return { made }
        }
        let slot = Mutex<Result<ImageStore, ImageError>?>(nil)
        return {
            slot.withLock { made in
                if let made { return made }
                let result = makeImages()
                made = result
                return result
            }
        }
    }
}

/// A running daemon: engine, gRPC server and health, from SPEC §1.3 step 4 on.
///
/// `start` runs the engine start-up (bpffs, database, reconciliation), binds the socket and reports
/// SERVING. `shutdown` is graceful (§1.6); `waitForShutdownRequest` returns when a signal, the idle timer
/// or a caller asked for one.
package final class Daemon: Sendable {
    package let engine: Engine
    package let server: GRPCServer
    package let health: HealthService
    package let facts: DaemonFacts
    /// The CSI socket, with `--csi-support` (see `CSIEndpoint`).
    package let csi: CSIEndpoint?
    private let logger: Logger
    private let requests: AsyncStream<String>
    private let requestContinuation: AsyncStream<String>.Continuation
    private let idleTimer = Mutex<IdleTimer?>(nil)
    private let stopped = Mutex(false)

    /// Names the health service reports on the main socket (SPEC §1.5).
    package static let healthNames = ["", "bpfman.v1.Bpfman", "bpfman.ext.v1.Inspect"]

    private init(
        engine: Engine,
        server: GRPCServer,
        health: HealthService,
        facts: DaemonFacts,
        csi: CSIEndpoint?,
        logger: Logger,
        requests: (AsyncStream<String>, AsyncStream<String>.Continuation)
    ) {
        self.csi = csi
        self.engine = engine
        self.server = server
        self.health = health
        self.facts = facts
        self.logger = logger
        (self.requests, self.requestContinuation) = requests
    }

    /// SPEC §1.3 steps 4-10: engine start-up, services, socket, SERVING.
    /// - Throws: `StartupError` with a one-line reason.
    package static func start(
        options: DaemonOptions,
        config: DaemonConfig = DaemonConfig(),
        logger: Logger
    ) async throws(StartupError) -> Daemon {
        let activatedFD = socketActivation(options, logger: logger)
        let idleSeconds = options.idleTimeout(socketActivated: activatedFD != nil)
        let stack = try await ServiceStack.make(
            options: options,
            config: config,
            logger: logger,
            socketActivated: activatedFD != nil,
            idleSeconds: idleSeconds
        )
        let engine = stack.engine
        let facts = stack.facts
        logger.info(
            "XDP/TC attach mode: \(facts.attachMode) (\(facts.attachModeReason))\(facts.attachMode == "native" ? "; one XDP program per interface" : "")"
        )
        var router = stack.router
        let health = HealthService(services: healthNames)
        health.register(on: &router)
        ReflectionService(services: router.serviceNames + ReflectionService.serviceNames).register(on: &router)

        let idle = IdleTimerSlot()
        let (configuration, csiConfiguration) = serverConfigurations(idle: idle)
        let server = try await listen(
            router: router,
            configuration: configuration,
            activatedFD: activatedFD,
            options: options,
            health: health,
            engine: engine,
            logger: logger
        )
        let csi = try await startCSI(
            options: options,
            config: config,
            configuration: csiConfiguration,
            server: server,
            engine: engine,
            logger: logger
        )
        let daemon = Daemon(
            engine: engine,
            server: server,
            health: health,
            facts: facts,
            csi: csi,
            logger: logger,
            requests: AsyncStream<String>.makeStream()
        )
        daemon.armIdleTimer(seconds: idleSeconds, shared: idle)
        csi?.health.setAll(.serving)
        logger.info(
            "serving",
            metadata: [
                "socket": "\(activatedFD != nil ? "fd 3 (socket activation)" : options.socketPath)",
                "runtime_dir": "\(options.runtimeDirectory)", "idle_timeout": "\(idleSeconds)",
            ]
        )
        return daemon
    }

    /// Socket activation (§1.4): the fd systemd passed (LISTEN_PID/LISTEN_FDS name fd 3), else nil to bind
    /// the socket path.
    private static func socketActivation(_ options: DaemonOptions, logger: Logger) -> CInt? {
        guard options.allowSocketActivation, let activation = GRPCServer.socketActivatedFD() else { return nil }
        switch activation {
        case .success(let fd): return fd
        case .failure(let error):
            logger.warning("ignoring socket activation: \(error); binding \(options.socketPath)")
            return nil
        }
    }

    /// The main and CSI sockets' server settings: each reports its in-flight RPCs, and the idle timer (once
    /// armed in `idle`) sees their sum (SPEC §1.6: both sockets).
    private static func serverConfigurations(
        idle: IdleTimerSlot
    ) -> (main: GRPCServer.Configuration, csi: GRPCServer.Configuration) {
        let inFlight = Mutex<(main: Int, csi: Int)>((0, 0))
        var main = GRPCServer.Configuration()
        main.onInFlightChange = { count in
            let total = inFlight.withLock {
                $0.main = count
                return $0.main + $0.csi
            }
            idle.timer.withLock { $0 }?.inFlightChanged(total)
        }
        var csi = main
        csi.onInFlightChange = { count in
            let total = inFlight.withLock {
                $0.csi = count
                return $0.main + $0.csi
            }
            idle.timer.withLock { $0 }?.inFlightChanged(total)
        }
        return (main, csi)
    }

    /// The gRPC server on the activated fd or the socket path, reporting SERVING; on failure the engine is
    /// closed again.
    private static func listen(
        router: GRPCRouter,
        configuration: GRPCServer.Configuration,
        activatedFD: CInt?,
        options: DaemonOptions,
        health: HealthService,
        engine: Engine,
        logger: Logger
    ) async throws(StartupError) -> GRPCServer {
        do {
            let server = try GRPCServer(router: router, configuration: configuration, logger: logger)
            // Ready before the first connection is accepted: an activated socket may already hold one.
            health.setAll(.serving)
            if let activatedFD {
                try server.bind(.adopted(fd: activatedFD))
            } else {
                try server.bind(.unix(path: options.socketPath, mode: 0o660))
            }
            return server
        } catch {
            await engine.close()
            throw StartupError("cannot listen on \(options.socketPath): \(error)")
        }
    }

    /// The CSI socket with `--csi-support`, else nil; on failure the server and the engine are closed again.
    private static func startCSI(
        options: DaemonOptions,
        config: DaemonConfig,
        configuration: GRPCServer.Configuration,
        server: GRPCServer,
        engine: Engine,
        logger: Logger
    ) async throws(StartupError) -> CSIEndpoint? {
        guard options.csiSupport else { return nil }
        do {
            return try CSIEndpoint.start(
                engine: engine,
                runtimeDirectory: options.runtimeDirectory,
                configuration: CSIConfiguration(podsRoot: config.csiPodsRoot),
                serverConfiguration: configuration,
                logger: logger
            )
        } catch {
            await server.shutdown(gracePeriod: .zero)
            await engine.close()
            throw error
        }
    }

    /// Starts the idle timer when `seconds` > 0 (SPEC §0.2); `shared` hands it to the in-flight counters.
    private func armIdleTimer(seconds: UInt64, shared: IdleTimerSlot) {
        guard seconds > 0 else { return }
        let timer = IdleTimer(timeout: .seconds(seconds)) { [weak self] in
            self?.requestShutdown("idle for \(seconds) s")
        }
        shared.timer.withLock { $0 = timer }
        idleTimer.withLock { $0 = timer }
    }

    /// Asks the daemon to shut down (signal, idle timer, test). Only the first request counts.
    package func requestShutdown(_ reason: String) {
        requestContinuation.yield(reason)
    }

    /// Waits until someone requests a shutdown; returns the first reason.
    package func waitForShutdownRequest() async -> String {
        for await reason in requests { return reason }
        return "stream ended"
    }

    /// Graceful shutdown (SPEC §1.6): NOT_SERVING to watchers, stop accepting, let in-flight RPCs finish,
    /// close sockets (unlinking the path we bound), close the database.
    package func shutdown(reason: String) async {
        let first = stopped.withLock { s in
            defer { s = true }
            return !s
        }
        guard first else { return }
        logger.info("shutting down", metadata: ["reason": "\(reason)"])
        health.setAll(.notServing)
        // Give Watch streams a moment to carry NOT_SERVING out before they end.
        try? await Task.sleep(for: .milliseconds(20))
        health.finishWatchers()
        await csi?.shutdown()
        await server.shutdown(gracePeriod: .seconds(10))
        await engine.close()
        requestContinuation.finish()
        idleTimer.withLock { $0 = nil }
    }
}

/// The daemon's idle timer once armed, shared with the in-flight counters of the main and CSI sockets, which
/// are set up before the timer exists.
private final class IdleTimerSlot: Sendable {
    let timer = Mutex<IdleTimer?>(nil)
}
