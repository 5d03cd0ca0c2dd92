import Testing

@testable import H2Transport

/// The server's per-stream gRPC state machine as a value: every event in every state it can meet, with no socket,
/// nghttp2 session or handler task. The real-session suites (`ProtocolTests`, the interop suites) check that
/// `Connection` does what these actions say.
@Suite struct ServerStreamStateMachineTests {
    typealias Machine = ServerStreamStateMachine

    static let router: GRPCRouter = {
        var router = GRPCRouter()
        router.register("/t.S/Unary", .unary { _, request in request })
        router.register("/t.S/Server", .serverStreaming { _, _, _ in })
        router.register("/t.S/Client", .clientStreaming { _, _ in [] })
        router.register("/t.S/Bidi", .bidiStreaming { _, _, _ in })
        return router
    }()

    static let now = ContinuousClock.now

    static func machine(maxMessageSize: Int = 64, maxHeaderListSize: Int = 1024, highWater: Int = 40) -> Machine {
        Machine(maxMessageSize: maxMessageSize, maxHeaderListSize: maxHeaderListSize, outputHighWater: highWater)
    }

    @discardableResult
    static func field(_ machine: inout Machine, _ name: String, _ value: String) -> Machine.OnHeaderField {
        let name = Array(name.utf8)
        let value = Array(value.utf8)
        return name.withUnsafeBufferPointer { n in
            value.withUnsafeBufferPointer { v in machine.receivedHeaderField(name: n, value: v) }
        }
    }

    /// A request head for `path` with the required headers, then `extra` fields, then the end of the block.
    static func headers(
        _ machine: inout Machine,
        path: String,
        contentType: String = "application/grpc",
        extra: [(String, String)] = []
    ) -> Machine.OnRequestHeaders {
        field(&machine, ":method", "POST")
        field(&machine, ":scheme", "http")
        field(&machine, ":path", path)
        field(&machine, "content-type", contentType)
        field(&machine, "te", "trailers")
        for (name, value) in extra { field(&machine, name, value) }
        return machine.receivedRequestHeaders(router: router, now: now)
    }

    static func framed(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        GRPCFraming.appendFramed(bytes, to: &out)
        return out
    }

    static func data(_ machine: inout Machine, _ bytes: [UInt8]) -> Machine.OnData {
        bytes.withUnsafeBytes { machine.receivedData($0) }
    }

    /// Reads up to `capacity` body bytes as nghttp2's data provider would.
    static func read(_ machine: inout Machine, capacity: Int = 1 << 14) -> (bytes: [UInt8], read: Machine.OnBodyRead) {
        var buffer = [UInt8](repeating: 0, count: capacity)
        let read = buffer.withUnsafeMutableBytes { machine.readBody(into: $0) }
        return (Array(buffer.prefix(read.count)), read)
    }

    /// The state without its payloads, for comparisons.
    static func phase(_ machine: Machine) -> String {
        switch machine.state {
        case .receivingHeaders: "receivingHeaders"
        case .awaitingRequest(let request): "awaitingRequest(\(request.map { "\($0.count) bytes" } ?? "none"))"
        case .handling(let clientEnded, let response): "handling(clientEnded: \(clientEnded), \(response))"
        case .draining(let draining): "draining(\(draining.status.code), clientEnded: \(draining.clientEnded))"
        case .responded(let clientEnded, let counted): "responded(clientEnded: \(clientEnded), counted: \(counted))"
        case .closed: "closed"
        }
    }

    static let ok = GRPCStatus(.ok, "")
    static let deadline = GRPCStatus(.deadlineExceeded, "deadline exceeded")

    /// A unary call whose request arrived and whose handler was started.
    static func startedUnary(request: [UInt8] = [7]) -> Machine {
        var machine = machine()
        _ = headers(&machine, path: "/t.S/Unary")
        _ = data(&machine, framed(request))
        _ = machine.receivedEndOfStream()
        return machine
    }

    /// A bidirectional call with its handler running and the client still sending.
    static func startedBidi(highWater: Int = 40) -> Machine {
        var machine = machine(highWater: highWater)
        _ = headers(&machine, path: "/t.S/Bidi")
        return machine
    }

    // MARK: Unary

    @Test func unaryCallRunsItsHandlerAtEndOfStreamThenSendsBodyAndTrailers() throws {
        var machine = Self.machine()
        guard case .awaitRequest(timeout: nil) = Self.headers(&machine, path: "/t.S/Unary") else {
            Issue.record("not routed to a waiting unary call")
            return
        }
        #expect(Self.phase(machine) == "awaitingRequest(none)")
        #expect(Self.data(&machine, Array(Self.framed([1, 2, 3]).prefix(4))) == .consume)
        #expect(Self.data(&machine, Array(Self.framed([1, 2, 3]).dropFirst(4))) == .consume)
        #expect(Self.phase(machine) == "awaitingRequest(3 bytes)")
        guard case .startHandler(let request) = machine.receivedEndOfStream(), let call = machine.call else {
            Issue.record("handler not started")
            return
        }
        #expect(call.context.path == "/t.S/Unary")
        #expect(call.context.deadline == nil)
        #expect(request == [1, 2, 3])
        #expect(Self.phase(machine) == "handling(clientEnded: true, notStarted)")
        #expect(!machine.isFinished)

        #expect(machine.handlerFinished(message: [9, 9], status: Self.ok) == .send(.responseHeaders))
        #expect(Self.phase(machine) == "draining(OK, clientEnded: true)")
        #expect(machine.isFinished)
        let (bytes, read) = Self.read(&machine)
        #expect(bytes == Self.framed([9, 9]))
        #expect(read.then == .trailers(Self.ok, acceptEncoding: false))
        #expect(Self.phase(machine) == "responded(clientEnded: true, counted: true)")
        #expect(!machine.sentEndOfStream())
        #expect(machine.closed() == Machine.OnClose(endsCall: true, wasLive: false))
        #expect(Self.phase(machine) == "closed")
        #expect(machine.call == nil)
    }

    @Test func aBodyLargerThanTheBufferIsReadInPieces() {
        var machine = Self.startedUnary()
        let message = [UInt8](repeating: 5, count: 30)
        #expect(machine.handlerFinished(message: message, status: Self.ok) == .send(.responseHeaders))
        let first = Self.read(&machine, capacity: 20)
        #expect(first.read.count == 20 && first.read.then == .more)
        let second = Self.read(&machine, capacity: 20)
        #expect(second.read.count == 15 && second.read.then == .trailers(Self.ok, acceptEncoding: false))
        #expect(first.bytes + second.bytes == Self.framed(message))
    }

    @Test func aHandlerErrorWithoutMessageIsTrailersOnly() {
        var machine = Self.startedUnary()
        let status = GRPCStatus(.notFound, "no such program")
        #expect(
            machine.handlerFinished(message: nil, status: status)
                == .send(.trailersOnly(httpStatus: 200, status, acceptEncoding: false))
        )
        #expect(Self.phase(machine) == "responded(clientEnded: true, counted: true)")
        #expect(Self.read(&machine).read.then == .noBody)
    }

    @Test func metadataKeepsOrderAndLeavesOutTheHeadersTheTransportReads() {
        var machine = Self.machine()
        _ = Self.headers(
            &machine,
            path: "/t.S/Unary",
            extra: [("x-b", "2"), ("grpc-encoding", "identity"), ("x-a", "1"), ("grpc-timeout", "5S")]
        )
        _ = Self.data(&machine, Self.framed([]))
        guard case .startHandler = machine.receivedEndOfStream(), let call = machine.call else {
            Issue.record("handler not started")
            return
        }
        #expect(call.context.metadata.entries.map(\.name) == ["x-b", "x-a"])
        #expect(call.context.metadata["x-a"] == "1")
    }

    @Test func aTimeoutArmsTheDeadlineFromTheGivenInstant() {
        var machine = Self.machine()
        guard
            case .awaitRequest(let timeout) = Self.headers(
                &machine,
                path: "/t.S/Unary",
                extra: [("grpc-timeout", "100m")]
            )
        else {
            Issue.record("not routed")
            return
        }
        #expect(timeout == 100_000_000)
        _ = Self.data(&machine, Self.framed([]))
        guard case .startHandler(let request) = machine.receivedEndOfStream(), let call = machine.call else {
            Issue.record("handler not started")
            return
        }
        #expect(request == [])
        #expect(call.context.deadline == Self.now.advanced(by: .milliseconds(100)))
    }

    @Test(
        arguments: [
            ("/t.S/Unary", "application/json", 415, GRPCStatus.Code.internal),
            ("/t.S/Nope", "application/grpc", 200, .unimplemented),
            ("/x.Y/Z", "application/grpc", 200, .unimplemented),
        ]
    )
    func rejectedHeadersAnswerAtOnceAndAreNotCounted(
        path: String,
        contentType: String,
        http: Int,
        code: GRPCStatus.Code
    ) {
        var machine = Self.machine()
        guard
            case .reject(.trailersOnly(http, let status, _)) = Self.headers(
                &machine,
                path: path,
                contentType: contentType
            )
        else {
            Issue.record("not rejected with HTTP \(http)")
            return
        }
        #expect(status.code == code)
        #expect(Self.phase(machine) == "responded(clientEnded: false, counted: false)")
        #expect(machine.isFinished)
        // The client may still be sending: its DATA is dropped, its window granted, our END_STREAM resets it.
        #expect(Self.data(&machine, Self.framed([1])) == .consume)
        #expect(machine.sentEndOfStream())
        guard case .nothing = machine.receivedEndOfStream() else {
            Issue.record("END_STREAM after a rejection is not ignored")
            return
        }
        #expect(!machine.sentEndOfStream())
        #expect(machine.closed() == Machine.OnClose(endsCall: false, wasLive: false))
    }

    @Test func theHeaderListLimitCountsHeadAndTrailers() {
        var machine = Self.machine(maxHeaderListSize: 300)
        _ = Self.headers(&machine, path: "/t.S/Unary")
        // Request trailers are only counted, never read as the head.
        #expect(Self.field(&machine, ":path", "/t.S/Bidi") == .accept)
        guard case .ignore = machine.receivedRequestHeaders(router: Self.router, now: Self.now) else {
            Issue.record("a second header block was routed")
            return
        }
        #expect(Self.field(&machine, "x-big", String(repeating: "a", count: 100)) == .tooLarge)
    }

    @Test func twoMessagesForAUnaryCallFailIt() {
        var machine = Self.machine()
        _ = Self.headers(&machine, path: "/t.S/Unary")
        let action = Self.data(&machine, Self.framed([1]) + Self.framed([2]))
        #expect(
            action
                == .fail(
                    .trailersOnly(
                        httpStatus: 200,
                        GRPCStatus(.internal, "more than one request message for a unary request"),
                        acceptEncoding: false
                    )
                )
        )
        #expect(Self.phase(machine) == "responded(clientEnded: false, counted: true)")
        // The call answered before the client ended: our END_STREAM must be followed by RST_STREAM NO_ERROR.
        #expect(machine.sentEndOfStream())
        #expect(Self.data(&machine, Self.framed([3])) == .consume)
        #expect(machine.closed() == Machine.OnClose(endsCall: true, wasLive: false))
    }

    @Test func compressedAndOversizedMessagesFailTheCall() {
        var compressed = Self.machine()
        _ = Self.headers(&compressed, path: "/t.S/Unary")
        #expect(
            Self.data(&compressed, [1, 0, 0, 0, 1, 0])
                == .fail(
                    .trailersOnly(
                        httpStatus: 200,
                        GRPCStatus(.unimplemented, "compressed messages are not supported (identity only)"),
                        acceptEncoding: true
                    )
                )
        )
        var large = Self.machine(maxMessageSize: 4)
        _ = Self.headers(&large, path: "/t.S/Bidi")
        #expect(
            Self.data(&large, [0, 0, 0, 0, 5])
                == .fail(
                    .trailersOnly(
                        httpStatus: 200,
                        GRPCStatus(.resourceExhausted, "received message larger than max (5 vs. 4)"),
                        acceptEncoding: false
                    )
                )
        )
        #expect(Self.phase(large) == "responded(clientEnded: false, counted: true)")
        // A good message ahead of the bad one in the same chunk does not reach the handler, which is cancelled.
        var mixed = Self.startedBidi()
        guard
            case .fail(.trailersOnly(200, let status, acceptEncoding: true)) = Self.data(
                &mixed,
                Self.framed([1]) + [1, 0, 0, 0, 1, 0]
            )
        else {
            Issue.record("a compressed message after a good one did not fail the streaming call")
            return
        }
        #expect(status.code == .unimplemented)
    }

    @Test(
        arguments: [
            ([UInt8](), "no request message for a unary request"),
            ([0, 0, 0, 0, 9, 1], "request stream ended inside a message"),
        ]
    )
    func aUnaryRequestEndingWithoutAWholeMessageFails(body: [UInt8], message: String) {
        var machine = Self.machine()
        _ = Self.headers(&machine, path: "/t.S/Server")
        #expect(Self.data(&machine, body) == .consume)
        guard case .fail(let send) = machine.receivedEndOfStream() else {
            Issue.record("not failed")
            return
        }
        #expect(send == .trailersOnly(httpStatus: 200, GRPCStatus(.internal, message), acceptEncoding: false))
        #expect(Self.phase(machine) == "responded(clientEnded: true, counted: true)")
        #expect(!machine.sentEndOfStream())
    }

    // MARK: Streaming

    @Test func aStreamingCallStartsAtItsHeadersAndDeliversMessagesAsTheyComplete() {
        var machine = Self.machine()
        guard case .startStreaming(timeout: nil) = Self.headers(&machine, path: "/t.S/Client"), let call = machine.call
        else {
            Issue.record("streaming handler not started")
            return
        }
        #expect(call.context.path == "/t.S/Client")
        #expect(Self.phase(machine) == "handling(clientEnded: false, notStarted)")
        let bytes = Self.framed([1]) + Self.framed([2, 2]) + Array(Self.framed([3]).prefix(2))
        #expect(Self.data(&machine, bytes) == .deliver([.message([1]), .message([2, 2])]))
        #expect(Self.data(&machine, Array(Self.framed([3]).dropFirst(2))) == .deliver([.message([3])]))
        guard case .finishRequests = machine.receivedEndOfStream() else {
            Issue.record("request stream not finished")
            return
        }
        #expect(Self.phase(machine) == "handling(clientEnded: true, notStarted)")
        #expect(machine.handlerFinished(message: [4], status: Self.ok) == .send(.responseHeaders))
    }

    @Test func streamedResponsesStartDeferAndResumeTheBody() {
        var machine = Self.startedBidi()
        #expect(machine.handlerWrote([1]) == .queued(.responseHeaders, acceptNow: true))
        #expect(machine.handlerWrote([2]) == .queued(.nothing, acceptNow: true))
        #expect(Self.phase(machine) == "handling(clientEnded: false, flowing)")
        let drained = Self.read(&machine)
        #expect(drained.bytes == Self.framed([1]) + Self.framed([2]))
        #expect(drained.read.then == .more)
        // Nothing queued: nghttp2 is told to wait, and the next write resumes it.
        #expect(Self.read(&machine).read == Machine.OnBodyRead(count: 0, then: .deferred, wakeWriters: true))
        #expect(Self.phase(machine) == "handling(clientEnded: false, deferred)")
        #expect(machine.handlerWrote([3]) == .queued(.resumeBody, acceptNow: true))
        _ = Self.read(&machine)
        _ = Self.read(&machine)
        #expect(machine.handlerFinished(message: nil, status: Self.ok) == .send(.resumeBody))
        #expect(Self.read(&machine).read.then == .trailers(Self.ok, acceptEncoding: false))
        // The client has not ended its side: after our END_STREAM it is told to stop.
        #expect(machine.sentEndOfStream())
    }

    @Test func writersWaitAboveTheHighWaterMarkAndWakeBelowHalfOfIt() {
        var machine = Self.startedBidi(highWater: 40)
        #expect(machine.handlerWrote([UInt8](repeating: 1, count: 30)) == .queued(.responseHeaders, acceptNow: true))
        #expect(machine.handlerWrote([UInt8](repeating: 2, count: 10)) == .queued(.nothing, acceptNow: false))
        #expect(machine.pendingOutput == 50)
        #expect(!Self.read(&machine, capacity: 20).read.wakeWriters)  // 30 left
        #expect(Self.read(&machine, capacity: 11).read.wakeWriters)  // 19 left
    }

    @Test func withheldWindowIsGrantedOnceTheHandlerCatchesUp() {
        var machine = Self.startedBidi()
        machine.withholdWindow(10)
        machine.withholdWindow(5)
        #expect(machine.handlerCaughtUp() == 15)
        #expect(machine.handlerCaughtUp() == 0)
        machine.withholdWindow(7)
        _ = machine.closed()
        #expect(machine.handlerCaughtUp() == 0)
    }

    // MARK: Deadlines and cancellation

    @Test func aDeadlineBeforeAnyResponseIsTrailersOnly() {
        var waiting = Self.machine()
        _ = Self.headers(&waiting, path: "/t.S/Unary")
        #expect(
            waiting.cancel(with: Self.deadline)
                == .cancel(.trailersOnly(httpStatus: 200, Self.deadline, acceptEncoding: false))
        )
        #expect(Self.phase(waiting) == "responded(clientEnded: false, counted: true)")

        var running = Self.startedUnary()
        #expect(
            running.cancel(with: Self.deadline)
                == .cancel(.trailersOnly(httpStatus: 200, Self.deadline, acceptEncoding: false))
        )
        #expect(Self.phase(running) == "responded(clientEnded: true, counted: true)")
    }

    @Test func aDeadlineAfterTheResponseStartedDropsTheQueuedBodyAndSendsTrailers() {
        var flowing = Self.startedBidi()
        _ = flowing.handlerWrote([1, 2, 3])
        #expect(flowing.cancel(with: Self.deadline) == .cancel(.nothing))
        #expect(Self.phase(flowing) == "draining(DEADLINE_EXCEEDED, clientEnded: false)")
        #expect(
            Self.read(&flowing).read
                == Machine.OnBodyRead(
                    count: 0,
                    then: .trailers(Self.deadline, acceptEncoding: false),
                    wakeWriters: true
                )
        )

        var deferred = Self.startedBidi()
        _ = deferred.handlerWrote([1])
        _ = Self.read(&deferred)
        _ = Self.read(&deferred)
        #expect(deferred.cancel(with: Self.deadline) == .cancel(.resumeBody))
    }

    @Test func handlerOutputAfterTheCallEndedIsRefused() {
        var machine = Self.startedUnary()
        _ = machine.cancel(with: Self.deadline)
        // The cancelled handler's own CANCELLED result and late writes change nothing.
        #expect(machine.handlerFinished(message: nil, status: GRPCStatus(.cancelled, "call cancelled")) == .ignore)
        #expect(machine.handlerWrote([1]) == .reject)
        #expect(machine.cancel(with: Self.deadline) == .ignore)
        #expect(Self.phase(machine) == "responded(clientEnded: true, counted: true)")
    }

    // MARK: Resets and odd orders

    @Test func aResetBeforeTheHeadersAreCompleteEndsNothingCounted() {
        var machine = Self.machine()
        Self.field(&machine, ":method", "POST")
        #expect(machine.closed() == Machine.OnClose(endsCall: false, wasLive: true))
        guard case .ignore = machine.receivedRequestHeaders(router: Self.router, now: Self.now) else {
            Issue.record("a closed stream was routed")
            return
        }
        #expect(Self.data(&machine, [1]) == .consume)
    }

    @Test func aResponseAfterTheClientResetIsDropped() {
        var machine = Self.startedBidi()
        _ = machine.handlerWrote([1])
        #expect(machine.closed() == Machine.OnClose(endsCall: true, wasLive: true))
        #expect(machine.pendingOutput == 0)
        #expect(machine.handlerWrote([2]) == .reject)
        #expect(machine.handlerFinished(message: [3], status: Self.ok) == .ignore)
        #expect(machine.cancel(with: Self.deadline) == .ignore)
        #expect(Self.read(&machine).read.then == .noBody)
        #expect(!machine.sentEndOfStream())
        // A second close (the connection going away after nghttp2 closed the stream) counts nothing again.
        #expect(machine.closed() == Machine.OnClose(endsCall: false, wasLive: false))
    }

    @Test func aResetAfterTheFinalStatusWasDecidedIsNotLive() {
        var machine = Self.startedUnary()
        _ = machine.handlerFinished(message: [1], status: Self.ok)
        #expect(machine.closed() == Machine.OnClose(endsCall: true, wasLive: false))
    }

    @Test func dataAfterEndOfStreamResetsTheStreamWithStreamClosed() {
        var machine = Self.startedUnary()
        #expect(Self.data(&machine, Self.framed([1])) == .reset(.streamClosed))
        #expect(Self.phase(machine) == "responded(clientEnded: true, counted: true)")
        #expect(machine.handlerFinished(message: [1], status: Self.ok) == .ignore)
        #expect(machine.closed() == Machine.OnClose(endsCall: true, wasLive: false))

        var answered = Self.startedUnary()
        _ = answered.handlerFinished(message: nil, status: Self.ok)
        #expect(Self.data(&answered, [0]) == .reset(.streamClosed))
    }

    @Test func aSecondEndOfStreamResetsTheStream() {
        var streaming = Self.startedBidi()
        _ = streaming.receivedEndOfStream()
        guard case .reset(.streamClosed) = streaming.receivedEndOfStream() else {
            Issue.record("a second END_STREAM was accepted")
            return
        }
        var draining = Self.startedUnary()
        _ = draining.handlerFinished(message: [1], status: Self.ok)
        guard case .reset(.streamClosed) = draining.receivedEndOfStream() else {
            Issue.record("a second END_STREAM was accepted while draining")
            return
        }
    }

    @Test func requestFramesBeforeTheHeadersAreCompleteAreAProtocolError() {
        var data = Self.machine()
        Self.field(&data, ":method", "POST")
        #expect(Self.data(&data, [0]) == .reset(.protocolError))
        #expect(data.isFinished)
        var end = Self.machine()
        guard case .reset(.protocolError) = end.receivedEndOfStream() else {
            Issue.record("END_STREAM before the headers was accepted")
            return
        }
        #expect(end.closed() == Machine.OnClose(endsCall: false, wasLive: false))
    }

    @Test func handlerEventsBeforeAHandlerRunsAreRefused() {
        var machine = Self.machine()
        _ = Self.headers(&machine, path: "/t.S/Unary")
        #expect(machine.handlerWrote([1]) == .reject)
        #expect(machine.handlerFinished(message: nil, status: Self.ok) == .ignore)
        #expect(Self.read(&machine).read.then == .noBody)
        #expect(Self.phase(machine) == "awaitingRequest(none)")
    }
}
