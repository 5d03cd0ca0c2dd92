import Synchronization
import Testing

@testable import BpfmanServer

/// The idle timer's rules, checked by when it fires rather than by how long the test sleeps: a loaded machine
/// can make any sleep overshoot, but a timer never fires early, so "fired at least `timeout` after the last
/// RPC ended" and "never while an RPC is in flight" hold however slow the machine is.
@Suite struct IdleTimerTests {
    final class Recorder: Sendable {
        let fires = Mutex<[ContinuousClock.Instant]>([])

        func waitForFire(within limit: Duration) async -> ContinuousClock.Instant? {
            let deadline = ContinuousClock.now + limit
            while ContinuousClock.now < deadline {
                if let first = fires.withLock({ $0.first }) { return first }
                try? await Task.sleep(for: .milliseconds(10))
            }
            return nil
        }
    }

    @Test func neverFiresWhileAnRPCIsInFlight() async throws {
        let recorder = Recorder()
        let timer = IdleTimer(timeout: .milliseconds(100)) { recorder.fires.withLock { $0.append(.now) } }
        timer.inFlightChanged(1)  // an RPC starts at once and outlives several timeouts
        try await Task.sleep(for: .milliseconds(500))
        #expect(recorder.fires.withLock { $0.isEmpty }, "fired mid-RPC")
        let idleSince = ContinuousClock.now
        timer.inFlightChanged(0)
        let fired = try #require(await recorder.waitForFire(within: .seconds(10)))
        #expect(fired - idleSince >= .milliseconds(100))
    }

    @Test func anRPCRestartsTheIdleCountdownAndTheTimerFiresOnce() async throws {
        let recorder = Recorder()
        let timer = IdleTimer(timeout: .milliseconds(300)) { recorder.fires.withLock { $0.append(.now) } }
        timer.inFlightChanged(1)
        // Each instant is read before the RPC ends: the timer arms inside inFlightChanged(0), after it.
        var idleStarts = [ContinuousClock.now]
        timer.inFlightChanged(0)
        try await Task.sleep(for: .milliseconds(150))
        // A short RPC in the middle of the countdown: the timer must count 300 ms from its end. (On a loaded
        // machine the sleep can overshoot the whole timeout; then the first countdown has rightly fired already and
        // the rule below still holds: a fire comes at least 300 ms after the idle period it ends began.)
        timer.inFlightChanged(1)
        idleStarts.append(.now)
        timer.inFlightChanged(0)
        let fired = try #require(await recorder.waitForFire(within: .seconds(10)))
        let idleSince = try #require(idleStarts.last { $0 <= fired })
        #expect(fired - idleSince >= .milliseconds(300))
        try await Task.sleep(for: .milliseconds(400))
        #expect(recorder.fires.withLock { $0.count } == 1)
    }
}
