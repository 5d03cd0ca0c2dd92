import Foundation
import H2Transport
import TestSupport
import Testing

/// Raw HTTP/2 bytes against the server, checking the exact frames and headers that come back.
@Suite struct ProtocolTests {
    /// Connects, handshakes, sends `frames` and returns the frames of stream 1 with decoded headers.
    static func exchange(_ server: TestServer, _ frames: H2Frame...) async throws -> (RawHTTP2Connection, [H2Frame]) {
        let connection = try RawHTTP2Connection(unixPath: server.socketPath)
        connection.handshake()
        connection.send(frames.flatMap(\.bytes))
        return (connection, await connection.readStream(1))
    }

    @Test func unaryCallHasHeadersDataAndTrailers() async throws {
        try await withEchoServer { server in
            let request = EchoRequest(text: "raw").encoded
            let (connection, frames) = try await Self.exchange(
                server,
                .grpcRequest(),
                .data(stream: 1, H2Frame.grpcMessage(request), endStream: true)
            )
            try #require(frames.count == 3, "\(frames)")
            #expect(frames[0].type == H2Frame.headers && frames[0].flags & H2Frame.endStream == 0)
            #expect(connection.decodeHeaders(frames[0]) == [":status: 200", "content-type: application/grpc"])
            #expect(frames[1].type == H2Frame.data)
            #expect(frames[1].payload == H2Frame.grpcMessage(EchoReply(text: "raw").encoded))
            #expect(frames[2].type == H2Frame.headers && frames[2].flags & H2Frame.endStream != 0)
            #expect(connection.decodeHeaders(frames[2]) == ["grpc-status: 0"])
        }
    }

    @Test func wrongContentTypeIsHTTP415() async throws {
        try await withEchoServer { server in
            let (connection, frames) = try await Self.exchange(
                server,
                .grpcRequest(overrides: ["content-type": "application/json"], endStream: true)
            )
            try #require(frames.count == 1, "\(frames)")
            #expect(frames[0].type == H2Frame.headers && frames[0].flags & H2Frame.endStream != 0)
            #expect(
                connection.decodeHeaders(frames[0]) == [
                    ":status: 415", "content-type: application/grpc", "grpc-status: 13",
                    #"grpc-message: invalid gRPC request content-type "application/json""#,
                ]
            )
        }
    }

    @Test func grpcPlusProtoContentTypeIsAccepted() async throws {
        try await withEchoServer { server in
            let (connection, frames) = try await Self.exchange(
                server,
                .grpcRequest(overrides: ["content-type": "application/grpc+proto"]),
                .data(stream: 1, H2Frame.grpcMessage([]), endStream: true)
            )
            try #require(frames.count == 3, "\(frames)")
            #expect(connection.decodeHeaders(frames[2]) == ["grpc-status: 0"])
        }
    }

    @Test func missingTEIsRejected() async throws {
        try await withEchoServer { server in
            let (connection, frames) = try await Self.exchange(
                server,
                .grpcRequest(overrides: ["te": nil], endStream: true)
            )
            try #require(frames.count == 1, "\(frames)")
            #expect(
                connection.decodeHeaders(frames[0]) == [
                    ":status: 400", "content-type: application/grpc", "grpc-status: 13",
                    #"grpc-message: missing "te: trailers" header"#,
                ]
            )
        }
    }

    @Test func methodOtherThanPOSTIsHTTP405() async throws {
        try await withEchoServer { server in
            let (connection, frames) = try await Self.exchange(
                server,
                .grpcRequest(overrides: [":method": "GET"], endStream: true)
            )
            try #require(frames.count == 1, "\(frames)")
            #expect(
                connection.decodeHeaders(frames[0]).prefix(3) == [
                    ":status: 405", "content-type: application/grpc", "grpc-status: 13",
                ]
            )
        }
    }

    @Test func unknownServiceAndMethodAreUnimplemented() async throws {
        try await withEchoServer { server in
            let (connection, frames) = try await Self.exchange(
                server,
                .grpcRequest(path: "/h2test.v1.Echo/Missing"),
                .data(stream: 1, H2Frame.grpcMessage([]), endStream: true)
            )
            try #require(frames.count == 1, "\(frames)")
            #expect(
                connection.decodeHeaders(frames[0]) == [
                    ":status: 200", "content-type: application/grpc", "grpc-status: 12",
                    "grpc-message: unknown method Missing for service h2test.v1.Echo",
                ]
            )
            connection.send(.grpcRequest(stream: 3, path: "/other.Svc/Call", endStream: true))
            let second = await connection.readStream(3)
            try #require(second.count == 1, "\(second)")
            #expect(connection.decodeHeaders(second[0]).last == "grpc-message: unknown service other.Svc")
        }
    }

    @Test func oversizedMessageIsResourceExhaustedThenReset() async throws {
        try await withEchoServer { server in
            // Only the 5-byte prefix announcing 5 MiB: the server must answer without waiting for the body.
            let prefix: [UInt8] = [0, 0, 0x50, 0, 0]
            let (connection, ended) = try await Self.exchange(
                server,
                .grpcRequest(),
                .data(stream: 1, prefix, endStream: false)
            )
            let frames =
                ended + (await connection.readFrames { $0.type == H2Frame.rstStream }).filter { $0.streamID == 1 }
            try #require(frames.count == 2, "\(frames)")
            #expect(
                connection.decodeHeaders(frames[0]) == [
                    ":status: 200", "content-type: application/grpc", "grpc-status: 8",
                    "grpc-message: received message larger than max (5242880 vs. 4194304)",
                ]
            )
            #expect(frames[1].type == H2Frame.rstStream && frames[1].errorCode == 0)
        }
    }

    @Test func compressedMessageIsUnimplementedWithAcceptEncoding() async throws {
        try await withEchoServer { server in
            let (connection, frames) = try await Self.exchange(
                server,
                .grpcRequest(),
                .data(stream: 1, H2Frame.grpcMessage([1, 2, 3], compressed: true), endStream: true)
            )
            try #require(frames.count == 1, "\(frames)")
            let fields = connection.decodeHeaders(frames[0])
            #expect(fields.contains("grpc-status: 12"))
            #expect(fields.contains("grpc-accept-encoding: identity"))
        }
    }

    @Test func unsupportedGrpcEncodingIsUnimplemented() async throws {
        try await withEchoServer { server in
            let (connection, frames) = try await Self.exchange(
                server,
                .grpcRequest(overrides: ["grpc-encoding": "gzip"], endStream: true)
            )
            try #require(frames.count == 1, "\(frames)")
            #expect(
                connection.decodeHeaders(frames[0]) == [
                    ":status: 200", "content-type: application/grpc", "grpc-status: 12",
                    #"grpc-message: message encoding "gzip" is not supported (identity only)"#,
                    "grpc-accept-encoding: identity",
                ]
            )
        }
    }

    @Test func timeoutIsDeadlineExceeded() async throws {
        try await withEchoServer { server in
            let request = EchoRequest(text: "raw-slow", sleepMilliseconds: 5000).encoded
            let (connection, frames) = try await Self.exchange(
                server,
                .grpcRequest(overrides: ["grpc-timeout": "100m"]),
                .data(stream: 1, H2Frame.grpcMessage(request), endStream: true)
            )
            try #require(frames.count == 1, "\(frames)")
            #expect(
                connection.decodeHeaders(frames[0]) == [
                    ":status: 200", "content-type: application/grpc", "grpc-status: 4",
                    "grpc-message: deadline exceeded",
                ]
            )
            #expect(await server.observations.waitForOutcome(of: "raw-slow") == "cancelled")
        }
    }

    @Test func rstStreamCancelsTheHandler() async throws {
        try await withEchoServer { server in
            let connection = try RawHTTP2Connection(unixPath: server.socketPath)
            connection.handshake()
            let request = EchoRequest(text: "raw-reset", sleepMilliseconds: 10000).encoded
            connection.send(.grpcRequest(), .data(stream: 1, H2Frame.grpcMessage(request), endStream: true))
            #expect(await eventually { server.server.inFlightRPCs == 1 })
            connection.send(H2Frame(type: H2Frame.rstStream, flags: 0, streamID: 1, payload: [0, 0, 0, 8]))
            #expect(await server.observations.waitForOutcome(of: "raw-reset") == "cancelled")
            #expect(await eventually { server.server.inFlightRPCs == 0 })
        }
    }

    @Test func badPrefaceClosesTheConnection() async throws {
        try await withEchoServer { server in
            let connection = try RawHTTP2Connection(unixPath: server.socketPath)
            connection.send(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
            let frames = await connection.readFrames()
            #expect(connection.sawEOF, "server must hang up on a bad preface")
            // Only our own connection preface (SETTINGS, WINDOW_UPDATE) may precede the close.
            #expect(frames.allSatisfy { $0.type == H2Frame.settings || $0.type == H2Frame.windowUpdate }, "\(frames)")
        }
    }

    @Test func dataOnStreamZeroIsGoAwayProtocolError() async throws {
        try await withEchoServer { server in
            let connection = try RawHTTP2Connection(unixPath: server.socketPath)
            connection.handshake()
            connection.send(.data(stream: 0, [1, 2, 3], endStream: false))
            let frames = await connection.readFrames()
            let goAway = try #require(frames.last { $0.type == H2Frame.goAway }, "\(frames)")
            #expect(goAway.errorCode == 1)  // PROTOCOL_ERROR
            #expect(connection.sawEOF)
        }
    }

    @Test func oversizedFrameIsGoAwayFrameSizeError() async throws {
        try await withEchoServer { server in
            let connection = try RawHTTP2Connection(unixPath: server.socketPath)
            connection.handshake()
            connection.send(.grpcRequest())
            connection.send(.data(stream: 1, [UInt8](repeating: 0, count: 20000), endStream: false))
            let frames = await connection.readFrames()
            let goAway = try #require(frames.last { $0.type == H2Frame.goAway }, "\(frames)")
            #expect(goAway.errorCode == 6)  // FRAME_SIZE_ERROR
            #expect(connection.sawEOF)
        }
    }

    @Test func oversizedHeaderListResetsOnlyThatStream() async throws {
        try await withEchoServer { server in
            let connection = try RawHTTP2Connection(unixPath: server.socketPath)
            connection.handshake()
            // 20 headers of 1000 bytes: over the 16 KiB header list limit, split over CONTINUATION.
            let big = H2Frame.grpcRequest(
                extra: (0..<20).map { ("x-filler-\($0)", String(repeating: "a", count: 1000)) }
            )
            let half = big.payload.count / 2
            connection.send(
                H2Frame(type: H2Frame.headers, flags: 0, streamID: 1, payload: Array(big.payload[..<half])),
                H2Frame(
                    type: H2Frame.continuation,
                    flags: H2Frame.endHeaders,
                    streamID: 1,
                    payload: Array(big.payload[half...])
                )
            )
            let frames = await connection.readStream(1)
            #expect(frames.last?.type == H2Frame.rstStream, "\(frames)")
            // The connection survives: a normal call on stream 3 works.
            connection.send(.grpcRequest(stream: 3), .data(stream: 3, H2Frame.grpcMessage([]), endStream: true))
            let next = await connection.readStream(3)
            #expect(next.count == 3 && connection.decodeHeaders(next[2]) == ["grpc-status: 0"], "\(next)")
        }
    }

    @Test func continuationFloodClosesTheConnection() async throws {
        try await withEchoServer { server in
            let connection = try RawHTTP2Connection(unixPath: server.socketPath)
            connection.handshake()
            let request = H2Frame.grpcRequest()
            var frames = [
                H2Frame(type: H2Frame.headers, flags: 0, streamID: 1, payload: Array(request.payload.prefix(4)))
            ]
            // One header field split over many CONTINUATION frames, never ending the block.
            for index in 0..<40 {
                let byte = request.payload[min(4 + index, request.payload.count - 1)]
                frames.append(H2Frame(type: H2Frame.continuation, flags: 0, streamID: 1, payload: [byte]))
            }
            connection.send(frames.flatMap(\.bytes))
            _ = await connection.readFrames()
            #expect(connection.sawEOF, "a header block of endless CONTINUATION frames must end the connection")
        }
    }

    @Test func settingsAdvertiseTheLimits() async throws {
        try await withEchoServer { server in
            let connection = try RawHTTP2Connection(unixPath: server.socketPath)
            connection.handshake()
            let settings = try #require(await connection.readFrame())
            #expect(settings.type == H2Frame.settings)
            var values: [UInt16: UInt32] = [:]
            for i in stride(from: 0, to: settings.payload.count, by: 6) {
                let p = settings.payload
                values[UInt16(p[i]) << 8 | UInt16(p[i + 1])] = p[(i + 2)..<(i + 6)].reduce(0) { $0 << 8 | UInt32($1) }
            }
            #expect(values[3] == 256)  // MAX_CONCURRENT_STREAMS
            #expect(values[4] == 1 << 20)  // INITIAL_WINDOW_SIZE
            #expect(values[6] == 16384)  // MAX_HEADER_LIST_SIZE
        }
    }
}
