package import Logging
internal import Synchronization
package import SystemCalls

#if canImport(Glibc)
@preconcurrency internal import Glibc
#endif

/// A gRPC server on HTTP/2 (h2c, prior knowledge) driven by libnghttp2 and one epoll thread.
///
/// Create it with a router, `bind` one or more listeners, and `shutdown` it when done. Handlers run
/// as Swift tasks; the loop thread owns every socket and nghttp2 session.
package final class GRPCServer: Sendable {
    /// Limits and hooks. Defaults suit the daemon.
    package struct Configuration: Sendable {
        /// Larger request messages end the call with RESOURCE_EXHAUSTED.
        package var maxReceiveMessageSize = 4 * 1024 * 1024
        /// SETTINGS_MAX_CONCURRENT_STREAMS.
        package var maxConcurrentStreams: UInt32 = 256
        /// SETTINGS_MAX_HEADER_LIST_SIZE; a larger request header block resets the stream.
        package var maxHeaderListSize = 16 * 1024
        /// SETTINGS_INITIAL_WINDOW_SIZE (per stream receive window).
        package var initialWindowSize: UInt32 = 1024 * 1024
        /// The connection-level receive window.
        package var connectionWindowSize = 16 * 1024 * 1024
        /// Unsent bytes per connection above which the server stops reading from that peer.
        package var outputBufferLimit = 1024 * 1024
        /// Request bytes queued for a streaming handler above which the stream's receive window is
        /// withheld until the handler reads (see `GRPCRequestStream`).
        package var streamInputHighWater = 1024 * 1024
        /// Unsent response bytes per stream above which `GRPCResponseWriter.write` suspends.
        package var streamOutputHighWater = 256 * 1024
        /// Where handlers start. `.inline` (the default) runs a handler on the loop thread until its first
        /// suspension (`Task.immediate`), so a handler that answers at once costs no thread switch;
        /// after any `await` that suspends, it continues on the global executor. Handlers must therefore
        /// not do long synchronous work before their first `await` of an actor or other suspension. Calls with
        /// one request message that arrive in one read start one after another, each answer sent before the
        /// next starts (`Connection.startReadyCalls`).
        /// `.globalExecutor` starts every handler as an ordinary task instead.
        package var handlerStart: HandlerStart = .inline
        /// Called on the loop thread when the number of in-flight RPCs becomes 1 (from 0) or 0.
        /// The daemon's idle timer (SPEC.md §1.6) hangs off this.
        package var onInFlightChange: (@Sendable (Int) -> Void)?

        package init() {}
    }

    /// See `Configuration.handlerStart`.
    package enum HandlerStart: Sendable {
        case inline
        case globalExecutor
    }

    private let loop: EventLoop

    /// Creates the server and starts its loop thread (no listener yet).
    /// - Throws: `SystemCallError` when epoll or eventfd cannot be created.
    package init(router: GRPCRouter, configuration: Configuration = Configuration(), logger: Logger) throws {
        ignoreSIGPIPEOnce()
        loop = try EventLoop(configuration: configuration, router: router, logger: logger)
        loop.start()
    }

    /// Starts listening on `target`.
    /// - Throws: `SystemCallError` naming the failing call (bind, chmod, listen, …).
    @discardableResult
    package func bind(_ target: GRPCBindTarget) throws -> GRPCBoundListener {
        let made = try ListenerFactory.make(target)
        let unlinkPath = made.unlinkPath
        let bound = made.bound
        let raw = made.fd.take()
        loop.post(.run { loop in loop.addListener(ListenerRecord(fd: OwnedFD(taking: raw), unlinkPath: unlinkPath)) })
        return bound
    }

    /// RPCs currently in flight (routed to a handler and not yet closed), across all connections.
    package var inFlightRPCs: Int { loop.inFlight.load(ordering: .relaxed) }

    /// Graceful shutdown: stop accepting (unlinking Unix socket paths we bound), send GOAWAY, let
    /// in-flight calls finish for up to `gracePeriod`, then cancel what is left and close everything.
    /// Returns when the loop thread has stopped; calling it again returns at once.
    package func shutdown(gracePeriod: Duration = .seconds(10)) async {
        let (seconds, attoseconds) = gracePeriod.components
        let nanoseconds = UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000)
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            loop.post(.shutdown(nanoseconds, continuation))
        }
    }

    /// The listening fd passed by systemd socket activation (SPEC.md §1.4), if any: `nil` when not
    /// activated, an error when `LISTEN_*` are set but unusable (the daemon warns and binds its path).
    package static func socketActivatedFD() -> Result<CInt, SystemCallError>? {
        ListenerFactory.socketActivatedFD()
    }
}
