internal import H2Transport
internal import Logging

// A minimal gRPC server on H2Transport for benchmarks and manual poking.
// Serves /h2test.v1.Echo/Unary (Interop/h2/echo.proto) by echoing the request bytes: an
// EchoRequest carrying only `text` is byte-identical to the EchoReply with the same text.
//
// Usage: h2-echo-server --unix PATH | --tcp PORT
#if canImport(Glibc)
@preconcurrency internal import Glibc
#endif

let arguments = CommandLine.arguments
guard arguments.count == 3, arguments[1] == "--unix" || arguments[1] == "--tcp" else {
    fputs("usage: h2-echo-server --unix PATH | --tcp PORT\n", stderr)
    exit(2)
}

var router = GRPCRouter()
router.register("/h2test.v1.Echo/Unary", .unary { _, request in request })

var logger = Logger(label: "h2-echo-server")
logger.logLevel = .warning
let server = try GRPCServer(router: router, logger: logger)
if arguments[1] == "--unix" {
    try server.bind(.unix(path: arguments[2], mode: 0o666))
} else {
    try server.bind(.tcp(port: UInt16(arguments[2]) ?? 0))
}
print("listening", arguments[2])
fflush(stdout)
while true {
    try await Task.sleep(for: .seconds(3600))
}
