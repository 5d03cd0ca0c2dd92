package import H2Transport
internal import Proto
internal import Synchronization

/// `grpc.health.v1.Health` over the generated messages (SPEC §3.10).
///
/// Known service names start NOT_SERVING; the daemon sets them SERVING once it accepts RPCs and back to
/// NOT_SERVING at shutdown, which every Watch stream receives before it ends.
package final class HealthService: Sendable {
    package enum Status: Sendable {
        case serving, notServing
    }

    private struct State {
        var statuses: [String: Status]
        var watchers: [UInt64: AsyncStream<Status?>.Continuation] = [:]
        var nextWatcher: UInt64 = 0
        var finished = false
    }

    private let state: Mutex<State>

    /// - Parameter services: the names Check and Watch know (`""` included by the caller).
    package init(services: [String]) {
        state = Mutex(State(statuses: Dictionary(uniqueKeysWithValues: services.map { ($0, .notServing) })))
    }

    /// Sets every known name to `status` and tells the watchers.
    package func setAll(_ status: Status) {
        let watchers = state.withLock { s in
            for key in s.statuses.keys { s.statuses[key] = status }
            return Array(s.watchers.values)
        }
        for watcher in watchers { watcher.yield(nil) }
    }

    /// Ends every Watch stream (after the last status was sent), for shutdown.
    package func finishWatchers() {
        let watchers = state.withLock { s in
            s.finished = true
            return Array(s.watchers.values)
        }
        for watcher in watchers { watcher.finish() }
    }

    private func status(of service: String) -> Status? {
        state.withLock { $0.statuses[service] }
    }

    private static func proto(_ status: Status?) -> Grpc_Health_V1_HealthCheckResponse {
        var response = Grpc_Health_V1_HealthCheckResponse()
        switch status {
        case .serving?: response.status = .serving
        case .notServing?: response.status = .notServing
        case nil: response.status = .serviceUnknown
        }
        return response
    }

    /// Adds Check, List and Watch to `router`.
    package func register(on router: inout GRPCRouter) {
        router.register(
            Grpc_Health_V1_Health.Method.check.path,
            .unary { [self] _, bytes in
                let request = try decode(Grpc_Health_V1_HealthCheckRequest.self, bytes)
                guard let status = status(of: request.service) else {
                    throw ErrorMapping.unknownHealthService(request.service)
                }
                return Self.proto(status).serializedBytes()
            }
        )
        router.register(
            Grpc_Health_V1_Health.Method.list.path,
            .unary { [self] _, bytes in
                _ = try decode(Grpc_Health_V1_HealthListRequest.self, bytes)
                var response = Grpc_Health_V1_HealthListResponse()
                for (name, status) in state.withLock({ $0.statuses }) { response.statuses[name] = Self.proto(status) }
                return response.serializedBytes()
            }
        )
        router.register(
            Grpc_Health_V1_Health.Method.watch.path,
            .serverStreaming { [self] _, bytes, writer in
                let request = try decode(Grpc_Health_V1_HealthCheckRequest.self, bytes)
                let (stream, continuation) = AsyncStream<Status?>.makeStream(bufferingPolicy: .bufferingNewest(8))
                let id: UInt64? = state.withLock { s in
                    guard !s.finished else { return nil }
                    s.nextWatcher += 1
                    s.watchers[s.nextWatcher] = continuation
                    return s.nextWatcher
                }
                defer { if let id { _ = state.withLock { $0.watchers.removeValue(forKey: id) } } }
                var last = status(of: request.service)
                try await writer.write(Self.proto(last).serializedBytes())
                guard id != nil else { return }
                for await _ in stream {
                    let now = status(of: request.service)
                    if now != last {
                        last = now
                        try await writer.write(Self.proto(now).serializedBytes())
                    }
                }
            }
        )
    }
}
