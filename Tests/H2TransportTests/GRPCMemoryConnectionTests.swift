import Foundation
import Logging
import Testing

@testable import H2Transport

/// `GRPCMemoryConnection`, the socket-less server connection the `h2` fuzz target drives (Fuzz/README.md): the
/// same session and gRPC layer as a socket's, so what a client sends gets the same frames back.
@Suite struct GRPCMemoryConnectionTests {
    static let logger = Logger(label: "memory-connection-test")

    static let router: GRPCRouter = {
        var router = GRPCRouter()
        router.register("/h2test.v1.Echo/Unary", .unary { _, request in request })
        router.register("/bpfman.v1.Bpfman/List", .unary { _, _ in [0x0a, 0x00] })
        return router
    }()

    /// The frames in `bytes`, which must be whole.
    static func frames(_ bytes: [UInt8]) -> [H2Frame] {
        var frames: [H2Frame] = []
        var offset = 0
        while offset + 9 <= bytes.count {
            let length = Int(bytes[offset]) << 16 | Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2])
            let stream = bytes[(offset + 5)..<(offset + 9)].reduce(UInt32(0)) { $0 << 8 | UInt32($1) } & 0x7fff_ffff
            guard offset + 9 + length <= bytes.count else { break }
            frames.append(
                H2Frame(
                    type: bytes[offset + 3],
                    flags: bytes[offset + 4],
                    streamID: stream,
                    payload: Array(bytes[(offset + 9)..<(offset + 9 + length)])
                )
            )
            offset += 9 + length
        }
        #expect(offset == bytes.count, "output ends inside a frame")
        return frames
    }

    @Test func answersAUnaryCallAndLeavesNothingAfterClose() throws {
        let connection = try GRPCMemoryConnection(router: Self.router, logger: Self.logger)
        let greeting = Self.frames(connection.takeOutput())
        #expect(greeting.first?.type == H2Frame.settings)
        let request =
            H2Frame.clientPreface + H2Frame(type: H2Frame.settings, flags: 0, streamID: 0, payload: []).bytes
            + H2Frame.grpcRequest(stream: 1).bytes
            + H2Frame.data(stream: 1, H2Frame.grpcMessage([1, 2, 3]), endStream: true).bytes
        #expect(connection.receive(request))
        let reply = Self.frames(connection.takeOutput()).filter { $0.streamID == 1 }
        #expect(reply.map(\.type) == [H2Frame.headers, H2Frame.data, H2Frame.headers])
        #expect(reply.dropFirst().first?.payload == H2Frame.grpcMessage([1, 2, 3]))
        #expect(reply.last.map { $0.flags & H2Frame.endStream != 0 } == true)
        #expect(connection.callsInFlight == 0)
        connection.close()
        #expect(connection.isClosed && connection.openStreams == 0 && connection.loopConnections == 0)
    }

    /// As over a socket (ProtocolTests.badPrefaceClosesTheConnection): the session ends, nothing is left.
    @Test func badPrefaceEndsTheSession() throws {
        let connection = try GRPCMemoryConnection(router: Self.router, logger: Self.logger)
        _ = connection.takeOutput()
        #expect(!connection.receive(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8)))
        #expect(connection.isClosed && connection.openStreams == 0 && connection.loopConnections == 0)
        #expect(!connection.receive(H2Frame.clientPreface), "a closed connection takes no more bytes")
    }

    /// A frame larger than the advertised maximum is a connection error: GOAWAY(FRAME_SIZE_ERROR), then the end.
    @Test func oversizedFrameGetsGoAway() throws {
        let connection = try GRPCMemoryConnection(router: Self.router, logger: Self.logger)
        _ = connection.takeOutput()
        let bytes =
            H2Frame.clientPreface + H2Frame(type: H2Frame.settings, flags: 0, streamID: 0, payload: []).bytes
            + H2Frame.grpcRequest(stream: 1).bytes
            + H2Frame.data(stream: 1, [UInt8](repeating: 0, count: 20000), endStream: true).bytes
        #expect(!connection.receive(bytes))
        let last = Self.frames(connection.takeOutput()).last
        #expect(last?.type == H2Frame.goAway && last?.errorCode == 6)  // FRAME_SIZE_ERROR
        #expect(connection.isClosed && connection.callsInFlight == 0 && connection.loopConnections == 0)
    }

    /// The bytes grpcurl sent for a List call (captured by Fuzz/seeds/capture.py; the first byte is the fuzz
    /// target's flags byte) get an answer on their stream.
    @Test func answersCapturedGrpcurlTraffic() throws {
        let seed = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Fuzz/corpus/h2/grpcurl-1").standardized
        let bytes = try [UInt8](Data(contentsOf: seed)).dropFirst()
        let connection = try GRPCMemoryConnection(router: Self.router, logger: Self.logger)
        _ = connection.takeOutput()
        connection.receive(Array(bytes))
        let data = Self.frames(connection.takeOutput()).filter { $0.type == H2Frame.data && $0.streamID == 1 }
        #expect(data.first?.payload == H2Frame.grpcMessage([0x0a, 0x00]))
    }
}
