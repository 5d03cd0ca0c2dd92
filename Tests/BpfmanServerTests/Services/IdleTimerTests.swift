import Synchronization
import Testing

@testable import BpfmanServer

@Suite struct IdleTimerTests {
    @Test func firesAfterIdleButNeverDuringAnRPC() async throws {
        let box = Box()
        let timer = IdleTimer(timeout: .milliseconds(150)) { box.inside.withLock { $0 += 1 } }
        timer.inFlightChanged(1)  // an RPC starts at once and runs long
        try await Task.sleep(for: .milliseconds(400))
        #expect(box.inside.withLock { $0 } == 0, "fired mid-RPC")
        timer.inFlightChanged(0)
        try await Task.sleep(for: .milliseconds(60))
        timer.inFlightChanged(1)  // another RPC before the timeout: re-arms from zero afterwards
        timer.inFlightChanged(0)
        try await Task.sleep(for: .milliseconds(100))
        #expect(box.inside.withLock { $0 } == 0)
        try await Task.sleep(for: .milliseconds(250))
        #expect(box.inside.withLock { $0 } == 1)
    }
}
