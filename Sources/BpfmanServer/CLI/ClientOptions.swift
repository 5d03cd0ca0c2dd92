internal import ArgumentParser
internal import FoundationEssentials
internal import Glibc
internal import H2Transport
internal import Proto

/// Where the CLI finds the daemon, or the runtime state when none answers (SPEC §9). Shared by both trees.
struct ConnectionOptions: ParsableArguments {
    @Option(
        name: [.customLong("runtime-dir")],
        help: ArgumentHelp(
            "Runtime directory used when no daemon answers (default $BPFMAN_RUNTIME_DIR, else /run/bpfman).",
            valueName: "dir"
        )
    )
    var runtimeDirectory: String?

    @Option(
        name: [.customLong("image-cache-dir")],
        help: ArgumentHelp("Image cache used when no daemon answers (default /var/cache/bpfman).", valueName: "dir")
    )
    var imageCacheDirectory: String?

    @Option(
        name: [.customLong("config")],
        help: ArgumentHelp(
            "Configuration file used when no daemon answers (default $BPFMAN_CONFIG, else /etc/bpfman/bpfman.toml).",
            valueName: "file"
        )
    )
    var config: String?

    @Option(
        name: [.customLong("lock-timeout")],
        help: ArgumentHelp(
            "How long to wait for the runtime directory's lock when no daemon answers (default 30s).",
            valueName: "duration"
        )
    )
    var lockTimeout: String?

    @Option(
        name: [.customLong("timeout")],
        help: ArgumentHelp("Deadline of each call to the daemon (default 60s).", valueName: "duration")
    )
    var timeout: String?

    @Option(name: [.customLong("log")], help: ArgumentHelp("Log level when no daemon answers.", valueName: "spec"))
    var log: String?
}

/// Options every Rust-era client command shares (SPEC §9): the socket and the output format.
struct ClientOptions: ParsableArguments {
    @Option(
        name: [.short, .customLong("socket-path")],
        help: "The daemon's socket (default $BPFMAN_SOCKET_PATH, else /run/bpfman-sock/bpfman.sock)."
    )
    var socketPath: String?

    @Option(name: [.short, .long], help: "Output format: table or json.")
    var output: OutputFormat = .table

    @OptionGroup var connection: ConnectionOptions
}

/// The same options where `-o` means something else (the probe offsets): `--output` only.
struct ClientOptionsLongOutput: ParsableArguments {
    @Option(
        name: [.short, .customLong("socket-path")],
        help: "The daemon's socket (default $BPFMAN_SOCKET_PATH, else /run/bpfman-sock/bpfman.sock)."
    )
    var socketPath: String?

    @Option(name: .long, help: "Output format: table or json.")
    var output: OutputFormat = .table

    @OptionGroup var connection: ConnectionOptions

    var common: ClientOptions {
        var options = ClientOptions()
        options.socketPath = socketPath
        options.output = output
        options.connection = connection
        return options
    }
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable, Sendable {
    case table, json
}

/// A failed client command: printed as `Error: <STATUS_NAME>: <message>` (or `Error: <message>` when it is not
/// a status of a call), exit status 1 (SPEC §9).
struct ClientError: Error, CustomStringConvertible {
    var status: GRPCStatus
    /// Whether the message stands alone (no call failed: no daemon, no permission, bad config).
    var plain = false

    init(status: GRPCStatus) { self.status = status }

    init(plain message: String, code: GRPCStatus.Code = .unavailable) {
        status = GRPCStatus(code, message)
        plain = true
    }

    var description: String { plain ? status.message : "\(status.code): \(status.message)" }
}

extension ClientOptions {
    /// The socket path: the flag, then `$BPFMAN_SOCKET_PATH`, then the default.
    var resolvedSocketPath: String { resolveSocketPath(socketPath) }

    /// The daemon, or the engine in-process when none answers (SPEC §9).
    func connect() async throws(ClientError) -> Backend {
        try await Backend.open(socketPath: resolvedSocketPath, connection)
    }
}

/// `--socket-path`, then `$BPFMAN_SOCKET_PATH`, then the default.
func resolveSocketPath(_ flag: String?) -> String {
    if let flag { return flag }
    if let env = ProcessInfo.processInfo.environment["BPFMAN_SOCKET_PATH"], !env.isEmpty { return env }
    return ServeDefaults.socketPath
}

/// JSON as SPEC §9.3 wants it: proto field names, 64-bit integers as numbers, defaults printed.
let cliJSONOptions = ProtoJSONEncodingOptions(
    preserveProtoFieldNames: true,
    int64AsNumbers: true,
    alwaysPrintFieldsWithoutPresence: true
)

/// Prints compact JSON text indented, one member per line.
func printJSON(_ text: String) {
    if let value = try? ProtoJSONValue.parse(Array(text.utf8)) {
        emit(value.text(indent: 2))
    } else {
        emit(text)
    }
}

/// A message as compact JSON text.
func json(_ message: some ProtoMessage) -> String {
    message.jsonString(options: cliJSONOptions)
}

/// A JSON object from members whose values are JSON texts; nil values are left out.
func jsonObject(_ members: [(String, String?)]) -> String {
    "{" + members.compactMap { key, value in value.map { "\"\(key)\":\($0)" } }.joined(separator: ",") + "}"
}

/// A JSON array of JSON texts.
func jsonArray(_ elements: [String]) -> String {
    "[" + elements.joined(separator: ",") + "]"
}
