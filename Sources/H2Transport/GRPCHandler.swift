internal import Synchronization

/// What a handler knows about its call.
package struct GRPCServerContext: Sendable {
    /// The method path, e.g. `"/bpfman.v1.Bpfman/List"`.
    package let path: String
    /// The request's non-pseudo headers (names lower-case).
    package let metadata: GRPCMetadata
    /// When the client's `grpc-timeout` runs out, if it sent one. The transport cancels the handler's
    /// task at this instant and answers DEADLINE_EXCEEDED itself; handlers that wait on something
    /// (a lock) can use it to give up early with their own message.
    package let deadline: ContinuousClock.Instant?
}

/// The request messages of a client-streaming or bidirectional call, in order.
///
/// Ends when the client half-closes; throws `CancellationError` when the call is cancelled
/// (RST_STREAM, deadline, connection loss).
///
/// Reading is flow-controlled: while the messages delivered but not yet read exceed
/// `Configuration.streamInputHighWater`, the server stops granting the client HTTP/2 window for
/// this stream, so a handler that reads slowly holds back the client instead of growing memory.
package struct GRPCRequestStream: AsyncSequence, Sendable {
    package typealias Element = [UInt8]
    let base: AsyncThrowingStream<[UInt8], any Error>
    let flow: RequestFlow
    let loop: EventLoop
    let key: StreamKey

    package struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncThrowingStream<[UInt8], any Error>.AsyncIterator
        let flow: RequestFlow
        let loop: EventLoop
        let key: StreamKey

        package mutating func next() async throws -> [UInt8]? {
            guard let message = try await base.next() else { return nil }
            if flow.delivered(message.count) { loop.post(.resumeReading(key)) }
            return message
        }
    }

    package func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: base.makeAsyncIterator(), flow: flow, loop: loop, key: key)
    }
}

/// Bytes of request messages queued for a streaming handler, shared by the loop and the handler.
final class RequestFlow: Sendable {
    let highWater: Int
    private let queued = Atomic<Int>(0)
    private let stalled = Atomic<Bool>(false)

    init(highWater: Int) { self.highWater = highWater }

    /// Loop side: a message of `count` bytes was queued.
    func queuedMessage(_ count: Int) {
        queued.add(count, ordering: .relaxed)
    }

    /// Loop side: whether the stream window may be granted now. When not, the stream is marked
    /// stalled and the handler side will ask for a resume once it has read enough.
    func mayConsume() -> Bool {
        if queued.load(ordering: .acquiring) < highWater { return true }
        stalled.store(true, ordering: .sequentiallyConsistent)
        // Re-check: the handler may have drained the queue before it could see the flag.
        if queued.load(ordering: .sequentiallyConsistent) < highWater,
            stalled.compareExchange(expected: true, desired: false, ordering: .sequentiallyConsistent).exchanged
        {
            return true
        }
        return false
    }

    /// Handler side: `count` bytes were read; true when the loop must resume the stream's window.
    func delivered(_ count: Int) -> Bool {
        let now = queued.subtract(count, ordering: .sequentiallyConsistent).newValue
        return now < highWater
            && stalled.compareExchange(expected: true, desired: false, ordering: .sequentiallyConsistent).exchanged
    }
}

/// Sends response messages of a server-streaming or bidirectional call.
package struct GRPCResponseWriter: Sendable {
    let loop: EventLoop
    let key: StreamKey

    /// Queues one serialized message for the client.
    ///
    /// Suspends while the call's unsent output is above the transport's high-water mark, so a slow
    /// reader slows the handler down instead of growing memory.
    /// - Throws: `CancellationError` when the call is already over (cancelled, reset, timed out).
    package func write(_ message: [UInt8]) async throws {
        let accepted = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            loop.post(.message(key, message, continuation))
        }
        if !accepted { throw CancellationError() }
    }
}

/// One RPC method: its shape and the async function that serves it.
///
/// Handlers take and produce serialized messages. They end the call with OK by returning, or with
/// another status by throwing a `GRPCStatus` or a `GRPCStatusConvertible` error; anything else
/// becomes UNKNOWN.
package struct GRPCMethod: Sendable {
    enum Body: Sendable {
        case unary(@Sendable (GRPCServerContext, [UInt8]) async throws -> [UInt8])
        case serverStreaming(@Sendable (GRPCServerContext, [UInt8], GRPCResponseWriter) async throws -> Void)
        case clientStreaming(@Sendable (GRPCServerContext, GRPCRequestStream) async throws -> [UInt8])
        case bidiStreaming(
            @Sendable (GRPCServerContext, GRPCRequestStream, GRPCResponseWriter) async throws -> Void
        )
    }
    let body: Body

    /// Whether the transport collects exactly one request message before calling the handler.
    var takesSingleRequest: Bool {
        switch body {
        case .unary, .serverStreaming: return true
        case .clientStreaming, .bidiStreaming: return false
        }
    }

    /// One request, one response.
    package static func unary(
        _ handler: @escaping @Sendable (GRPCServerContext, [UInt8]) async throws -> [UInt8]
    ) -> GRPCMethod {
        GRPCMethod(body: .unary(handler))
    }

    /// One request, any number of responses written through the writer.
    package static func serverStreaming(
        _ handler: @escaping @Sendable (GRPCServerContext, [UInt8], GRPCResponseWriter) async throws -> Void
    ) -> GRPCMethod {
        GRPCMethod(body: .serverStreaming(handler))
    }

    /// A stream of requests, one response.
    package static func clientStreaming(
        _ handler: @escaping @Sendable (GRPCServerContext, GRPCRequestStream) async throws -> [UInt8]
    ) -> GRPCMethod {
        GRPCMethod(body: .clientStreaming(handler))
    }

    /// Requests and responses both streamed, independently.
    package static func bidiStreaming(
        _ handler: @escaping @Sendable (GRPCServerContext, GRPCRequestStream, GRPCResponseWriter) async throws -> Void
    ) -> GRPCMethod {
        GRPCMethod(body: .bidiStreaming(handler))
    }
}

/// Maps method paths (`"/package.Service/Method"`) to methods.
package struct GRPCRouter: Sendable {
    private var methods: [String: GRPCMethod] = [:]
    private var services: Set<String> = []

    package init() {}

    /// Registers `method` under `path`, replacing any earlier registration.
    package mutating func register(_ path: String, _ method: GRPCMethod) {
        precondition(path.hasPrefix("/") && path.dropFirst().contains("/"), "method path must be /service/method")
        methods[path] = method
        services.insert(Self.split(path).service)
    }

    /// The fully-qualified names of every service with at least one method, sorted.
    package var serviceNames: [String] { services.sorted() }

    enum Lookup {
        case found(GRPCMethod)
        case unimplemented(String)
    }

    /// Finds the method for `path`, or the UNIMPLEMENTED message of SPEC.md §1.4.
    func lookup(_ path: String) -> Lookup {
        if let method = methods[path] { return .found(method) }
        let (service, method) = Self.split(path)
        if services.contains(service) {
            return .unimplemented("unknown method \(method) for service \(service)")
        }
        return .unimplemented("unknown service \(service)")
    }

    private static func split(_ path: String) -> (service: String, method: String) {
        let trimmed = path.hasPrefix("/") ? path.dropFirst() : Substring(path)
        guard let slash = trimmed.lastIndex(of: "/") else { return (String(trimmed), "") }
        return (String(trimmed[..<slash]), String(trimmed[trimmed.index(after: slash)...]))
    }
}

extension GRPCStatus {
    /// The status a client is sent when a handler throws `error` (what `grpcStatus(for:)` answers), for a log
    /// line that should say what the client got.
    package static func sent(for error: any Error) -> GRPCStatus { H2Transport.grpcStatus(for: error).status }
}

/// Turns whatever a handler threw into the status the client sees.
func grpcStatus(for error: any Error) -> (status: GRPCStatus, isUnexpected: Bool) {
    if let status = error as? GRPCStatus { return (status, false) }
    if let convertible = error as? any GRPCStatusConvertible { return (convertible.grpcStatus, false) }
    if error is CancellationError { return (GRPCStatus(.cancelled, "call cancelled"), false) }
    return (GRPCStatus(.unknown, "\(error)"), true)
}

extension GRPCRouter {
    /// Runs the unary method at `path` in this process, without a socket: what a server would answer, for a
    /// program that hosts the services itself (the `bpfman` CLI with no daemon running).
    ///
    /// Unknown paths and non-unary methods answer UNIMPLEMENTED, as over the wire. The deadline is handed to the
    /// handler as the client's `grpc-timeout` would be; the handler is not cancelled when it passes.
    package func callInProcess(
        _ path: String,
        _ request: [UInt8],
        deadline: ContinuousClock.Instant?
    ) async -> Result<[UInt8], GRPCStatus> {
        guard case .found(let method) = lookup(path) else {
            if case .unimplemented(let message) = lookup(path) { return .failure(GRPCStatus(.unimplemented, message)) }
            return .failure(GRPCStatus(.unimplemented, "unknown method \(path)"))
        }
        guard case .unary(let handler) = method.body else {
            return .failure(GRPCStatus(.unimplemented, "\(path) is not a unary method"))
        }
        let context = GRPCServerContext(path: path, metadata: GRPCMetadata(), deadline: deadline)
        do {
            return .success(try await handler(context, request))
        } catch {
            return .failure(grpcStatus(for: error).status)
        }
    }
}
