internal import Dispatch
internal import Synchronization

/// The idle timer of SPEC §1.6: armed while no RPC is in flight, disarmed when one starts, fires after
/// `timeout` of continuous idleness. It never fires during an RPC.
package final class IdleTimer: Sendable {
    private struct State {
        var generation: UInt64 = 0
        var inFlight = 0
        var fired = false
    }

    private let state = Mutex(State())
    private let timeout: Duration
    private let onIdle: @Sendable () -> Void

    /// - Parameters:
    ///   - timeout: idle time before `onIdle`; the timer starts armed.
    ///   - onIdle: called once, on a global queue.
    package init(timeout: Duration, onIdle: @escaping @Sendable () -> Void) {
        self.timeout = timeout
        self.onIdle = onIdle
        arm()
    }

    /// Feed from `GRPCServer.Configuration.onInFlightChange`: the number of RPCs in flight.
    package func inFlightChanged(_ count: Int) {
        let rearm: Bool = state.withLock { s in
            s.inFlight = count
            s.generation &+= 1
            return count == 0
        }
        if rearm { arm() }
    }

    private func arm() {
        let generation = state.withLock { $0.generation }
        let (seconds, attoseconds) = timeout.components
        let nanoseconds = Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000)
        DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(nanoseconds)) { [self] in
            let fire: Bool = state.withLock { s in
                guard s.generation == generation, s.inFlight == 0, !s.fired else { return false }
                s.fired = true
                return true
            }
            if fire { onIdle() }
        }
    }
}
