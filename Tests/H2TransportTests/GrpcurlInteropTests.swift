import Foundation
import H2Transport
import TestSupport
import Testing

/// grpcurl (grpc-go underneath, JSON in and out) with the test .proto given on the command line.
@Suite(.enabled(if: InteropTools.grpcurl != nil, "\(InteropTools.grpcurlMissing)"))
struct GrpcurlInteropTests {
    static func grpcurl(_ server: TestServer, _ arguments: [String]) async throws -> SpawnResult {
        try await spawn(
            InteropTools.grpcurl!,
            ["-plaintext", "-unix", "-import-path", Repository.path("Interop/h2"), "-proto", "echo.proto"]
                + arguments.dropLast() + [server.socketPath, arguments.last!]
        )
    }

    @Test func unaryCallWithJSON() async throws {
        try await withEchoServer { server in
            let result = try await Self.grpcurl(
                server,
                ["-d", #"{"text":"hi","payload":"AAEC"}"#, "h2test.v1.Echo/Unary"]
            )
            #expect(result.status == 0, "\(result.output)")
            #expect(result.output.contains(#""text": "hi""#), "\(result.output)")
            #expect(result.output.contains(#""payload": "AAEC""#), "\(result.output)")
        }
    }

    @Test func serverStreamingPrintsEveryMessage() async throws {
        try await withEchoServer { server in
            let result = try await Self.grpcurl(
                server,
                ["-d", #"{"text":"s","count":3}"#, "h2test.v1.Echo/ServerStream"]
            )
            #expect(result.status == 0, "\(result.output)")
            #expect(result.output.contains(#""index": 2"#), "\(result.output)")
        }
    }

    @Test func errorStatusAndMessageReachTheUser() async throws {
        try await withEchoServer { server in
            let result = try await Self.grpcurl(
                server,
                ["-d", #"{"text":"no such program 42","status":5}"#, "h2test.v1.Echo/Unary"]
            )
            #expect(result.status != 0)
            #expect(result.output.contains("Code: NotFound"), "\(result.output)")
            #expect(result.output.contains("Message: no such program 42"), "\(result.output)")
        }
    }
}
