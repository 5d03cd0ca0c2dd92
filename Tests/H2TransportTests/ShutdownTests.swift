import Foundation
import H2Transport
import Logging
import Synchronization
import TestSupport
import Testing

/// Graceful shutdown (GOAWAY, drain, bounded wait) and the in-flight hook the idle timer uses.
@Suite struct ShutdownTests {
    @Test func inFlightCallFinishesAfterGoAwayAndNewConnectionsAreRefused() async throws {
        let directory = try makeShortTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/s.sock"
        var router = GRPCRouter()
        let observations = EchoObservations()
        EchoService.register(in: &router, observations: observations)
        let server = try GRPCServer(router: router, logger: Logger(label: "h2-shutdown-test"))
        try server.bind(.unix(path: path))
        try await Task.sleep(for: .milliseconds(50))
        let connection = try RawHTTP2Connection(unixPath: path)
        connection.handshake()
        let request = EchoRequest(text: "drain", sleepMilliseconds: 1500).encoded
        connection.send(.grpcRequest(), .data(stream: 1, H2Frame.grpcMessage(request), endStream: true))
        try await Task.sleep(for: .milliseconds(100))

        #expect(server.inFlightRPCs == 1)
        let shutdown = Task { await server.shutdown(gracePeriod: .seconds(5)) }
        let frames = await connection.readFrames()  // until the server closes the connection
        let goAway = try #require(frames.first { $0.type == H2Frame.goAway }, "\(frames)")
        #expect(goAway.errorCode == 0)
        let stream = frames.filter { $0.streamID == 1 }
        try #require(stream.count == 3, "\(frames)")
        #expect(connection.decodeHeaders(stream[2]) == ["grpc-status: 0"])
        #expect(connection.sawEOF)
        await shutdown.value
        #expect(observations.outcome(of: "drain") == "completed")
        #expect(throws: (any Error).self) { try RawHTTP2Connection(unixPath: path) }
    }

    @Test func gracePeriodBoundsTheWaitAndCancelsLeftovers() async throws {
        try await withEchoServer { server in
            let connection = try RawHTTP2Connection(unixPath: server.socketPath)
            connection.handshake()
            let request = EchoRequest(text: "stuck", sleepMilliseconds: 30000).encoded
            connection.send(.grpcRequest(), .data(stream: 1, H2Frame.grpcMessage(request), endStream: true))
            #expect(await eventually { server.server.inFlightRPCs == 1 })
            let start = ContinuousClock.now
            await server.server.shutdown(gracePeriod: .milliseconds(300))
            #expect(ContinuousClock.now - start < .seconds(3))
            #expect(await server.observations.waitForOutcome(of: "stuck") == "cancelled")
            #expect(await eventually { server.server.inFlightRPCs == 0 })
        }
    }

    @Test func inFlightHookSeesBusyAndIdle() async throws {
        let transitions = Mutex<[Int]>([])
        var configuration = GRPCServer.Configuration()
        configuration.onInFlightChange = { count in transitions.withLock { $0.append(count) } }
        try await withEchoServer(configuration: configuration) { server in
            let connection = try RawHTTP2Connection(unixPath: server.socketPath)
            connection.handshake()
            let request = EchoRequest(text: "busy", sleepMilliseconds: 1000).encoded
            connection.send(
                .grpcRequest(stream: 1),
                .data(stream: 1, H2Frame.grpcMessage(request), endStream: true),
                .grpcRequest(stream: 3),
                .data(stream: 3, H2Frame.grpcMessage(request), endStream: true)
            )
            #expect(await eventually { server.server.inFlightRPCs == 2 })
            #expect(transitions.withLock { $0 } == [1])
            _ = await connection.readStream(3)
            #expect(await eventually { server.server.inFlightRPCs == 0 })
            #expect(transitions.withLock { $0 } == [1, 0])
        }
    }
}
