import Foundation
import H2Transport
import Logging
import Synchronization
import TestSupport
import Testing

/// Something like the daemon's engine: a default actor whose work blocks its thread.
actor BlockingWorker {
    func work(milliseconds: Int) -> Int {
        usleep(useconds_t(milliseconds * 1000))
        return milliseconds
    }
}

/// One slow handler never holds up other streams or connections.
///
/// Serialized: the blocking actor occupies one Swift concurrency thread (as a kernel call in the
/// engine would); two cases at once would take the whole pool of a 2-core machine, test tasks included.
@Suite(.serialized) struct ConcurrencyTests {
    @Test func handlerBlockedInAnActorDoesNotStallOtherConnections() async throws {
        let worker = BlockingWorker()
        let extraMethods: (inout GRPCRouter) -> Void = { router in
            router.register(
                "/h2test.v1.Slow/Block",
                .unary { _, _ in
                    _ = await worker.work(milliseconds: 2500)
                    return []
                }
            )
        }
        try await withEchoServer(extraMethods: extraMethods) { server in
            let slow = try RawHTTP2Connection(unixPath: server.socketPath)
            slow.handshake()
            slow.send(
                .grpcRequest(path: "/h2test.v1.Slow/Block"),
                .data(stream: 1, H2Frame.grpcMessage([]), endStream: true)
            )
            #expect(await eventually { server.server.inFlightRPCs == 1 })
            // Timed on a plain thread, so the measurement does not depend on free Swift concurrency threads.
            let path = server.socketPath
            let (frames, elapsed) = await offPool { () -> ([H2Frame], Duration) in
                let started = ContinuousClock.now
                guard let fast = try? RawHTTP2Connection(unixPath: path) else { return ([], .zero) }
                fast.handshake()
                fast.send(
                    .grpcRequest(),
                    .data(stream: 1, H2Frame.grpcMessage(EchoRequest(text: "quick").encoded), endStream: true)
                )
                let frames = fast.readStreamBlocking(1)
                return (frames, ContinuousClock.now - started)
            }
            #expect(frames.count == 3, "\(frames)")
            #expect(elapsed < .milliseconds(1500), "a quick call waited \(elapsed) behind a blocked handler")
            let slowFrames = await slow.readStream(1)
            #expect(slowFrames.count == 3, "\(slowFrames)")
        }
    }
}

/// A handler that reads its request stream slowly holds the client back through HTTP/2 flow control.
@Suite struct FlowControlTests {
    @Test func slowStreamingReaderWithholdsTheStreamWindowUntilItReads() async throws {
        var configuration = GRPCServer.Configuration()
        configuration.streamInputHighWater = 256 * 1024
        let extraMethods: (inout GRPCRouter) -> Void = { router in
            router.register(
                "/h2test.v1.Slow/Count",
                .clientStreaming { _, requests in
                    try await Task.sleep(for: .milliseconds(1500))
                    var count = 0
                    for try await _ in requests { count += 1 }
                    return EchoReply(index: count).encoded
                }
            )
        }
        try await withEchoServer(configuration: configuration, extraMethods: extraMethods) { server in
            let connection = try RawHTTP2Connection(unixPath: server.socketPath)
            connection.handshake()
            // Wait for the server's preface (SETTINGS with the 1 MiB stream window, then the
            // connection WINDOW_UPDATE) before sending more than the default 64 KiB.
            _ = await connection.readFrames { $0.type == H2Frame.windowUpdate && $0.streamID == 0 }
            connection.send(.grpcRequest(path: "/h2test.v1.Slow/Count"))
            // 64 messages of one full DATA frame each: exactly the 1 MiB initial stream window.
            let message = H2Frame.grpcMessage([UInt8](repeating: 7, count: 16384 - 5))
            connection.send((0..<64).flatMap { _ in H2Frame.data(stream: 1, message, endStream: false).bytes })
            connection.setReadTimeout(milliseconds: 400)
            let early = await connection.readFrames()
            #expect(
                !early.contains { $0.type == H2Frame.windowUpdate && $0.streamID == 1 },
                "stream window granted before the handler read anything: \(early)"
            )
            connection.setReadTimeout(milliseconds: 5000)
            let later = await connection.readFrames { $0.type == H2Frame.windowUpdate && $0.streamID == 1 }
            #expect(later.contains { $0.type == H2Frame.windowUpdate && $0.streamID == 1 }, "\(later)")
            connection.send(.data(stream: 1, [], endStream: true))
            let reply = await connection.readStream(1)
            try #require(reply.count == 3, "\(reply)")
            #expect(reply[1].payload == H2Frame.grpcMessage(EchoReply(index: 64).encoded))
        }
    }
}

/// A client that stops reading holds a streaming handler back: `write` suspends at the high-water mark.
@Suite struct SlowReaderTests {
    @Test func writerSuspendsWhileTheClientDoesNotRead() async throws {
        let written = Atomic<Int>(0)
        let extraMethods: (inout GRPCRouter) -> Void = { router in
            router.register(
                "/h2test.v1.Slow/Flood",
                .serverStreaming { _, _, writer in
                    let chunk = [UInt8](repeating: 1, count: 64 * 1024)
                    for _ in 0..<1000 {
                        try await writer.write(chunk)
                        written.add(1, ordering: .relaxed)
                    }
                }
            )
        }
        try await withEchoServer(extraMethods: extraMethods) { server in
            // The raw client never sends WINDOW_UPDATE: the server may send 64 KiB and no more.
            let connection = try RawHTTP2Connection(unixPath: server.socketPath)
            connection.handshake()
            connection.send(
                .grpcRequest(path: "/h2test.v1.Slow/Flood"),
                .data(stream: 1, H2Frame.grpcMessage([]), endStream: true)
            )
            try await Task.sleep(for: .milliseconds(500))
            // 256 KiB high-water mark over 64 KiB messages: a handful of writes, not 1000 (64 MiB).
            let count = written.load(ordering: .relaxed)
            #expect(count > 0 && count <= 8, "\(count) writes went through without the client reading")
            #expect(server.server.inFlightRPCs == 1)
        }
    }
}

/// Unary calls that arrive together in one read are answered one by one: each answer is on the wire before the
/// next call's handler starts, so the client can decode it while the server works on the rest.
@Suite struct PipelinedUnaryTests {
    @Test func theFirstAnswerIsSentBeforeTheSecondHandlerRuns() async throws {
        // The raw client's socket, and how many unread bytes it held when each handler ran (FIONREAD).
        let clientFD = Atomic<Int32>(-1)
        let seen = Mutex<[Int32]>([])
        let extraMethods: (inout GRPCRouter) -> Void = { router in
            router.register(
                "/h2test.v1.Probe/Unread",
                .unary { _, _ in
                    var unread: Int32 = 0
                    _ = ioctl(clientFD.load(ordering: .relaxed), UInt(FIONREAD), &unread)
                    seen.withLock { $0.append(unread) }
                    return EchoReply(index: Int(unread)).encoded
                }
            )
        }
        try await withEchoServer(extraMethods: extraMethods) { server in
            let connection = try RawHTTP2Connection(unixPath: server.socketPath)
            connection.handshake()
            // One whole call first, so the server's preface and acknowledgements are read and the socket is empty.
            connection.send(
                .grpcRequest(),
                .data(stream: 1, H2Frame.grpcMessage(EchoRequest().encoded), endStream: true)
            )
            _ = await connection.readStream(1)
            clientFD.store(connection.fd, ordering: .relaxed)
            let body = H2Frame.grpcMessage([])
            connection.send(
                .grpcRequest(stream: 3, path: "/h2test.v1.Probe/Unread"),
                .data(stream: 3, body, endStream: true),
                .grpcRequest(stream: 5, path: "/h2test.v1.Probe/Unread"),
                .data(stream: 5, body, endStream: true)
            )
            // The client reads nothing until both handlers have looked, or it could take the first answer first.
            #expect(await eventually { seen.withLock { $0.count } == 2 })
            let frames = await connection.readFrames { $0.streamID == 5 && $0.flags & H2Frame.endStream != 0 }
            #expect(frames.filter { $0.flags & H2Frame.endStream != 0 }.map(\.streamID) == [3, 5])
            let counts = seen.withLock { $0 }
            try #require(counts.count == 2, "\(counts)")
            #expect(counts[1] > counts[0], "the second handler ran before the first answer was sent: \(counts)")
        }
    }
}
