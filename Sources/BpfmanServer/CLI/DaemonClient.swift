internal import ArgumentParser
internal import FoundationEssentials
internal import Glibc
internal import H2Transport
internal import Proto

/// Options every client command shares (SPEC §9): the socket and the output format.
struct ClientOptions: ParsableArguments {
    @Option(
        name: [.short, .customLong("socket-path")],
        help: "The daemon's socket (default $BPFMAN_SOCKET_PATH, else /run/bpfman-sock/bpfman.sock)."
    )
    var socketPath: String?

    @Option(name: [.short, .long], help: "Output format: table or json.")
    var output: OutputFormat = .table
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

    var common: ClientOptions {
        var options = ClientOptions()
        options.socketPath = socketPath
        options.output = output
        return options
    }
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable, Sendable {
    case table, json
}

/// A failed client command: printed as `Error: <STATUS_NAME>: <message>`, exit status 1 (SPEC §9).
struct ClientError: Error, CustomStringConvertible {
    var status: GRPCStatus
    var description: String { "\(status.code): \(status.message)" }
}

extension ClientOptions {
    /// The socket path: the flag, then `$BPFMAN_SOCKET_PATH`, then the default.
    var resolvedSocketPath: String {
        if let socketPath { return socketPath }
        if let env = ProcessInfo.processInfo.environment["BPFMAN_SOCKET_PATH"], !env.isEmpty { return env }
        return ServeDefaults.socketPath
    }

    /// A connected client.
    func connect() throws(ClientError) -> DaemonClient {
        let path = resolvedSocketPath
        do {
            return DaemonClient(client: try GRPCUnaryClient(unixPath: path), socketPath: path)
        } catch {
            throw ClientError(
                status: GRPCStatus(.unavailable, "cannot connect to the bpfman daemon at \(path): \(error)")
            )
        }
    }
}

/// The CLI's view of the daemon: typed unary calls over one connection.
struct DaemonClient {
    let client: GRPCUnaryClient
    let socketPath: String

    func call<Response: ProtoMessage>(
        _ path: String,
        _ request: some ProtoMessage,
        _: Response.Type
    ) throws(ClientError)
        -> Response
    {
        let result: Result<[UInt8], GRPCStatus>
        do {
            result = try client.call(path, request.serializedBytes(), timeout: .seconds(60))
        } catch {
            throw ClientError(
                status: GRPCStatus(.unavailable, "talking to the bpfman daemon at \(socketPath): \(error)")
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

    func get(_ id: UInt32) throws(ClientError) -> Bpfman_V1_GetResponse {
        var request = Bpfman_V1_GetRequest()
        request.id = id
        return try call(Bpfman_V1_Bpfman.Method.get.path, request, Bpfman_V1_GetResponse.self)
    }

    func details(_ ids: [UInt32]) throws(ClientError) -> [UInt32: Bpfman_Ext_V1_ProgramDetails] {
        var request = Bpfman_Ext_V1_GetProgramDetailsRequest()
        request.programIds = ids
        let response = try call(
            Bpfman_Ext_V1_Inspect.Method.getProgramDetails.path,
            request,
            Bpfman_Ext_V1_GetProgramDetailsResponse.self
        )
        var byID: [UInt32: Bpfman_Ext_V1_ProgramDetails] = [:]
        for details in response.programs { byID[details.programID] = details }
        return byID
    }

    func link(_ id: UInt32) throws(ClientError) -> Bpfman_Ext_V1_LinkInfo {
        var request = Bpfman_Ext_V1_GetLinkRequest()
        request.linkID = id
        return try call(Bpfman_Ext_V1_Inspect.Method.getLink.path, request, Bpfman_Ext_V1_LinkInfo.self)
    }
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
        print(value.text(indent: 2))
    } else {
        print(text)
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
