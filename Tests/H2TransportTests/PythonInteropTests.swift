import Foundation
import H2Transport
import TestSupport
import Testing

/// grpcio (gRPC C-core) against the echo service over a Unix socket; the scenarios live in
/// Interop/h2/echo_client.py and assert on every reply and status they get.
@Suite(.enabled(if: InteropTools.python != nil, "\(InteropTools.pythonMissing)"))
struct PythonInteropTests {
    static func runScenario(
        _ scenario: String,
        _ server: TestServer,
        extra: [String] = []
    ) async throws
        -> SpawnResult
    {
        let result = try await spawn(
            InteropTools.python!,
            [Repository.path("Interop/h2/echo_client.py"), server.socketPath, scenario] + extra
        )
        if ProcessInfo.processInfo.environment["H2_TEST_VERBOSE"] != nil { print(result.output) }
        #expect(result.status == 0, "python \(scenario) failed:\n\(result.output)")
        #expect(result.output.contains("PASS"), "\(result.output)")
        return result
    }

    @Test(arguments: ["unary", "status", "deadline", "concurrency", "large", "streaming"])
    func scenario(_ name: String) async throws {
        try await withEchoServer { server in
            _ = try await Self.runScenario(name, server)
        }
    }

    @Test func deadlineCancelsTheHandler() async throws {
        try await withEchoServer { server in
            _ = try await Self.runScenario("deadline", server)
            #expect(await server.observations.waitForOutcome(of: "slow") == "cancelled")
        }
    }

    @Test func clientCancellationReachesTheHandler() async throws {
        try await withEchoServer { server in
            _ = try await Self.runScenario("cancel", server, extra: ["py-cancel"])
            #expect(await server.observations.waitForOutcome(of: "py-cancel") == "cancelled")
            #expect(await server.observations.waitForOutcome(of: "py-cancel-stream") == "cancelled")
            #expect(await eventually { server.server.inFlightRPCs == 0 })
        }
    }
}
