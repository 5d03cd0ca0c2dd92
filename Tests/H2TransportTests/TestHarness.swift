import Foundation
import H2Transport
import Logging
import TestSupport
import Testing

/// A running echo server on a short Unix socket path (STYLE.md convention 21).
struct TestServer {
    let server: GRPCServer
    let socketPath: String
    let directory: String
    let observations: EchoObservations
}

/// A fresh directory with a short path, so socket paths stay under 103 bytes.
func makeShortTempDirectory(_ prefix: String = "h2") throws -> String {
    var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
    guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
        throw FixtureError("mkdtemp failed")
    }
    return String(cString: made)
}

/// Starts an echo server on `<tmp>/s.sock`, runs `body`, shuts down and removes the directory.
func withEchoServer<R>(
    configuration: GRPCServer.Configuration = GRPCServer.Configuration(),
    extraMethods: (inout GRPCRouter) -> Void = { _ in },
    _ body: (TestServer) async throws -> R
) async throws -> R {
    let directory = try makeShortTempDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let observations = EchoObservations()
    var router = GRPCRouter()
    EchoService.register(in: &router, observations: observations)
    extraMethods(&router)
    var logger = Logger(label: "h2-test")
    logger.logLevel = ProcessInfo.processInfo.environment["H2_TEST_DEBUG"] != nil ? .debug : .warning
    let server = try GRPCServer(router: router, configuration: configuration, logger: logger)
    let path = directory + "/s.sock"
    try server.bind(.unix(path: path))
    let test = TestServer(server: server, socketPath: path, directory: directory, observations: observations)
    do {
        let result = try await body(test)
        await server.shutdown(gracePeriod: .seconds(2))
        return result
    } catch {
        await server.shutdown(gracePeriod: .seconds(2))
        throw error
    }
}

/// Polls `condition` every 10 ms for up to `seconds`; true as soon as it holds.
func eventually(seconds: Double = 5, _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}
