internal import ArgumentParser
internal import BpfmanEngine
internal import Dispatch
internal import FoundationEssentials
internal import Glibc
internal import H2Transport
internal import Logging
internal import Proto
internal import Synchronization
internal import SystemCalls

/// Default locations, as upstream bpfman names them (SPEC §0.2): `bpfman serve`'s flag defaults, which the CLI
/// and the daemon's options share. The runtime directory is defined once in SystemCalls, for the engine and the
/// image modules too.
package enum ServeDefaults {
    package static let socketPath = "/run/bpfman-sock/bpfman.sock"
    package static let runtimeDirectory = defaultBpfmanRuntimeDirectory
    package static let imageCacheDirectory = "/var/cache/bpfman"
    package static let configPath = "/etc/bpfman/bpfman.toml"
}

extension BpfmanCommand {
    /// `bpfman serve`: the daemon.
    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the bpfman daemon on its gRPC socket."
        )

        @Option(help: "Main gRPC socket.")
        var socketPath: String = ServeDefaults.socketPath

        @Option(name: [.customLong("runtime-dir")], help: "Root of all daemon state.")
        var runtimeDirectory: String = ServeDefaults.runtimeDirectory

        @Option(name: [.customLong("image-cache-dir")], help: "Cache for OCI bytecode images.")
        var imageCacheDirectory: String = ServeDefaults.imageCacheDirectory

        @Flag(help: "Also serve the CSI Identity and Node services on <runtime-dir>/csi/csi.sock.")
        var csiSupport = false

        @Option(help: "Exit after this many idle seconds; 0 never exits.")
        var timeout: UInt64?

        @Option(help: "Configuration file (default \(ServeDefaults.configPath)).")
        var config: String?

        func validate() throws {
            guard socketPath.utf8.count <= 107 else {
                throw ValidationError("--socket-path is longer than a Unix socket path may be (107 bytes)")
            }
        }

        func run() async throws {
            do {
                try await serve()
            } catch let error as StartupError {
                writeToStandardError("bpfman: \(error.message)\n")
                throw ExitCode.failure
            }
        }

        /// SPEC §1.3, in order; any failure is a `StartupError` (exit 1).
        private func serve() async throws {
            // 1. Flags, config, logging.
            let config = try Self.loadConfig(explicit: config)
            let logger = Self.bootstrapLogging(config)
            for warning in config.warnings { logger.warning("config: unknown setting ignored: \(warning)") }
            // 2. RLIMIT_MEMLOCK.
            if case .notNeeded(let hard) = try ProcessSetup.raiseMemlockLimit() {
                logger.warning(
                    "cannot raise RLIMIT_MEMLOCK (hard limit \(hard)); this kernel charges BPF memory to the cgroup"
                )
            }
            ProcessSetup.ignoreSIGPIPE()
            ProcessSetup.raiseDescriptorLimit()
            // Before taking the socket over: a live daemon answering on it stays reachable (a stale file with
            // nobody behind it is replaced when binding, §1.4).
            try Self.refuseLiveDaemon(on: socketPath)
            // 3. The runtime-dir lock, held until this function returns.
            let lock = try RuntimeDirectoryLock(
                directory: runtimeDirectory,
                retries: config.lockMaxRetries,
                delayMilliseconds: config.lockRetryDelayMilliseconds
            )
            // 4-10. Engine, sockets, services.
            let options = DaemonOptions(
                socketPath: socketPath,
                runtimeDirectory: runtimeDirectory,
                imageCacheDirectory: imageCacheDirectory,
                csiSupport: csiSupport,
                timeout: timeout
            )
            // Signals are watched before the socket exists: a SIGTERM that comes during start-up is kept and
            // acted on once the daemon runs (ignoring it first would drop one already pending).
            let target = Mutex<(daemon: Daemon?, pending: String?)>((nil, nil))
            let signals = SignalWatcher { name in
                let daemon = target.withLock { t in
                    if t.daemon == nil { t.pending = name }
                    return t.daemon
                }
                daemon?.requestShutdown(name)
            }
            let daemon = try await Daemon.start(options: options, config: config, logger: logger)
            if let pending = target.withLock({ t in
                t.daemon = daemon
                return t.pending
            }) {
                daemon.requestShutdown(pending)
            }
            let reason = await daemon.waitForShutdownRequest()
            await daemon.shutdown(reason: reason)
            withExtendedLifetime(signals) {}
            _ = consume lock
        }

        /// Fails when something accepts connections on `socketPath` (another daemon): binding would unlink its
        /// socket and leave it running unreachable. Its runtime directory, asked with `Status`, names it. Skipped
        /// when systemd passed the socket (connecting to it would reach ourselves).
        static func refuseLiveDaemon(on socketPath: String) throws(StartupError) {
            if let pid = ProcessInfo.processInfo.environment["LISTEN_PID"], pid == "\(getpid())" { return }
            guard let client = try? GRPCUnaryClient(unixPath: socketPath) else { return }
            var whose = "its runtime directory is unknown"
            if case .success(let bytes)? = try? client.call(
                Bpfman_Ext_V1_Inspect.Method.status.path,
                Bpfman_Ext_V1_StatusRequest().serializedBytes(),
                timeout: .seconds(2)
            ), let status = try? Bpfman_Ext_V1_StatusResponse(serializedBytes: bytes) {
                whose = "runtime directory \(status.runtimeDir)"
            }
            throw StartupError(
                "another bpfman daemon is serving \(socketPath) (\(whose)); stop it or choose another --socket-path"
            )
        }

        /// The config file: a missing default file means defaults; a missing explicit one is an error.
        static func loadConfig(explicit: String?) throws(StartupError) -> DaemonConfig {
            let path = explicit ?? ServeDefaults.configPath
            guard FileManager.default.fileExists(atPath: path) else {
                if explicit != nil { throw StartupError("config file \(path) does not exist") }
                return DaemonConfig()
            }
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw StartupError("cannot read config file \(path)")
            }
            do {
                return try DaemonConfig.parse(text, file: path)
            } catch {
                throw StartupError(error.message)
            }
        }

        /// Logs to stderr at the configured level; `RUST_LOG` wins over `[logging] level` (SPEC §1.9).
        static func bootstrapLogging(_ config: DaemonConfig) -> Logger {
            var level = config.logLevel
            if let rust = ProcessInfo.processInfo.environment["RUST_LOG"], let parsed = logLevel(fromRustLog: rust) {
                level = parsed
            }
            let format: DaemonLogHandler.Format = config.logFormat == .json ? .json : .text
            let loggerLevel = level.loggerLevel
            LoggingSystem.bootstrap { label in DaemonLogHandler(label: label, level: loggerLevel, format: format) }
            return Logger(label: "bpfman")
        }
    }
}

/// SIGTERM and SIGINT: the first asks for a graceful shutdown, the second exits at once (SPEC §1.6).
final class SignalWatcher {
    private let sources: [any DispatchSourceSignal]

    init(_ onFirst: @escaping @Sendable (String) -> Void) {
        let seen = Mutex(false)
        sources = [(SIGTERM, "SIGTERM"), (SIGINT, "SIGINT")].map { number, name in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                let again = seen.withLock { s in
                    defer { s = true }
                    return s
                }
                if again { _exit(0) }
                onFirst(name)
            }
            source.resume()
            return source
        }
    }

    deinit {
        for source in sources { source.cancel() }
    }
}
