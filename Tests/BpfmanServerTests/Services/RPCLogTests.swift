import Foundation
import H2Transport
import Logging
import TestSupport
import Testing

@testable import BpfmanServer

/// The one line an RPC logs says the status the client was sent (SPEC §1.10, §0.3).
@Suite struct RPCLogTests {
    /// A handler that stops because its call was cancelled: the client is sent CANCELLED over a real socket, and
    /// the failed-mutation line says CANCELLED with the same message (it used to say UNKNOWN).
    @Test func aCancelledCallLogsTheStatusItWasSent() async throws {
        let sink = LogRecorder()
        let logger = sink.makeLogger(label: "bpfman")
        var router = GRPCRouter()
        router.register(
            "/test.Log/Cancelled",
            RPCLog.unary("Cancelled", mutating: true, logger: logger) { _, _ in throw CancellationError() }
        )
        var template = Array("/tmp/rpclog-XXXXXX".utf8CString)
        let directory = String(
            cString: try #require(template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) })
        )
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = try GRPCServer(router: router, logger: logger)
        try server.bind(.unix(path: directory + "/s.sock"))
        let result = try await unaryCallOnThread(directory + "/s.sock", "/test.Log/Cancelled", [])
        await server.shutdown(gracePeriod: .seconds(2))

        guard case .failure(let sent) = result else {
            Issue.record("the call succeeded")
            return
        }
        #expect(sent.code == .cancelled)
        let lines = loggedRPCLines(sink, rpc: "Cancelled")
        #expect(lines.count == 1, "\(sink.records)")
        #expect(lines.first?.metadata["status"] == "\(sent.code)", "\(lines)")
        #expect(lines.first?.metadata["status_message"] == "\(sent.message)", "\(lines)")
        #expect(lines.first?.level == .info, "a failed mutation logs at info: \(lines)")
    }

    /// Anything else a handler throws is UNKNOWN both on the wire and in the log.
    @Test func anUnexpectedErrorLogsUnknownAsSent() async throws {
        struct Surprise: Error {}
        let sink = LogRecorder()
        let logger = sink.makeLogger(label: "bpfman")
        var router = GRPCRouter()
        router.register("/test.Log/Surprise", RPCLog.unary("Surprise", logger: logger) { _, _ in throw Surprise() })
        let result = await router.callInProcess("/test.Log/Surprise", [], deadline: nil)
        guard case .failure(let sent) = result else {
            Issue.record("the call succeeded")
            return
        }
        #expect(sent.code == .unknown)
        let lines = loggedRPCLines(sink, rpc: "Surprise")
        #expect(lines.first?.metadata["status"] == "UNKNOWN", "\(lines)")
        #expect(lines.first?.metadata["status_message"] == "\(sent.message)", "\(lines)")
    }
}

/// The `rpc` lines `log` recorded for method `rpc`.
func loggedRPCLines(_ log: LogRecorder, rpc: String) -> [LogRecorder.Record] {
    log.records.filter { $0.metadata["rpc"] == "\(rpc)" }
}

/// One unary call with the blocking client, on a thread of its own (not one of the cooperative pool's, which the
/// server's handlers need).
func unaryCallOnThread(
    _ socket: String,
    _ path: String,
    _ request: [UInt8]
) async throws -> Result<[UInt8], GRPCStatus> {
    try await withCheckedThrowingContinuation { continuation in
        Thread {
            do {
                let client = try GRPCUnaryClient(unixPath: socket)
                continuation.resume(returning: try client.call(path, request, timeout: .seconds(10)))
            } catch {
                continuation.resume(throwing: error)
            }
        }.start()
    }
}
