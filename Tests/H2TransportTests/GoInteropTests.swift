import Foundation
import H2Transport
import TestSupport
import Testing

/// Builds Go programs against echo.proto once per test process (GOPATH mode, no network).
actor GoPrograms {
    static let shared = GoPrograms()
    private var built: [String: Task<String, any Error>] = [:]

    /// The path of the binary built from `Interop/<source>`.
    func binary(_ source: String) async throws -> String {
        if let task = built[source] { return try await task.value }
        let task = Task<String, any Error> {
            let output = "/tmp/h2go-bin-\(getpid())-\(source.replacingOccurrences(of: "/", with: "_"))"
            let result = try await spawn(
                "/bin/bash",
                [Repository.path("Interop/h2/go/build.sh"), output, Repository.path("Interop/\(source)")]
            )
            guard result.status == 0 else { throw FixtureError("go build of \(source) failed:\n\(result.output)") }
            return output
        }
        built[source] = task
        return try await task.value
    }
}

/// grpc-go (what the Kubernetes agent uses) against the echo service over a Unix socket.
@Suite(.enabled(if: InteropTools.goToolchain, "\(InteropTools.goMissing)"))
struct GoInteropTests {
    static func runScenario(_ scenario: String, _ server: TestServer, extra: [String] = []) async throws {
        let client = try await GoPrograms.shared.binary("h2/go/client.go")
        let result = try await spawn(client, ["-socket", server.socketPath, "-scenario", scenario] + extra)
        if ProcessInfo.processInfo.environment["H2_TEST_VERBOSE"] != nil { print(result.output) }
        #expect(result.status == 0, "go \(scenario) failed:\n\(result.output)")
        #expect(result.output.contains("PASS"), "\(result.output)")
    }

    @Test(arguments: ["unary", "status", "concurrency", "large", "streaming"])
    func scenario(_ name: String) async throws {
        try await withEchoServer { server in
            try await Self.runScenario(name, server)
        }
    }

    @Test func deadlineCancelsTheHandler() async throws {
        try await withEchoServer { server in
            try await Self.runScenario("deadline", server)
            #expect(await server.observations.waitForOutcome(of: "go-slow") == "cancelled")
        }
    }

    @Test func clientCancellationReachesTheHandler() async throws {
        try await withEchoServer { server in
            try await Self.runScenario("cancel", server, extra: ["-tag", "go-cancel"])
            #expect(await server.observations.waitForOutcome(of: "go-cancel") == "cancelled")
        }
    }
}
