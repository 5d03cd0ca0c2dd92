internal import CNghttp2
package import Logging
internal import Synchronization
internal import SystemCalls

/// One server connection without a socket: the server's real nghttp2 session, gRPC layer and router, driven on
/// the caller's thread. The bytes a client would write go in through `receive(_:)`; what the server would send
/// comes out of `takeOutput()`. For the fuzz targets (`Fuzz/`), which feed it bytes from the connection preface to
/// handler dispatch.
///
/// Handlers start inline (as on the loop thread); one that suspends goes on on the global executor and posts its
/// answer, which the next `receive(_:)` or `pump()` sends. Not thread-safe: one caller at a time.
package final class GRPCMemoryConnection {
    private let loop: EventLoop
    private let connection: Connection

    /// - Throws: `SystemCallError` when the loop's epoll or eventfd descriptor cannot be made.
    package init(router: GRPCRouter, configuration: GRPCServer.Configuration = .init(), logger: Logger) throws {
        loop = try EventLoop(configuration: configuration, router: router, logger: logger)
        connection = Connection(inMemoryID: 1, loop: loop, logger: logger)
        if connection.start() {
            loop.adopt(inMemory: connection)
            connection.markDirty()  // the server's SETTINGS, as after accept
        } else {
            connection.close()
        }
        loop.turn()
    }

    deinit {
        close()
    }

    /// Feeds `bytes` as one read from the socket, then runs a loop turn. `false` once the session is over: the
    /// bytes broke it (the server's GOAWAY is in the output) or it had ended before.
    @discardableResult
    package func receive(_ bytes: [UInt8]) -> Bool {
        let alive = bytes.withUnsafeBytes { connection.receive($0) }
        if alive { connection.markDirty() }
        loop.turn()
        return alive && !connection.isClosed
    }

    /// Runs a loop turn: answers that handlers posted since, then what nghttp2 has to send.
    package func pump() {
        loop.turn()
    }

    /// What the server sent since the last call.
    package func takeOutput() -> [UInt8] {
        defer { connection.memoryOutput.removeAll(keepingCapacity: true) }
        return connection.memoryOutput
    }

    /// The client hung up: every handler is cancelled and the session freed. A handler still running is told
    /// its writes fail, as when a server's loop stops; without this a write posted after the last turn would
    /// wait forever (LeakSanitizer found the task and the loop it holds).
    package func close() {
        connection.close()
        loop.closeInbox()
    }

    package var isClosed: Bool { connection.isClosed }
    /// Streams the connection still tracks.
    package var openStreams: Int { connection.streams.count }
    /// RPCs started and not yet ended, as the server's idle timer counts them.
    package var callsInFlight: Int { loop.inFlight.load(ordering: .relaxed) }
    /// Connections the loop still knows (0 or 1).
    package var loopConnections: Int { loop.connectionCount }
    /// The bytes nghttp2 would still send, as reported by the session (0 once it is closed).
    package var sessionWantsWrite: Bool {
        guard let session = connection.session else { return false }
        return nghttp2_session_want_write(session) != 0
    }
}
