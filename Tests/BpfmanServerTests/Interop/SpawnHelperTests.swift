import Foundation
import TestSupport
import Testing

/// TestSupport's `spawn`, as the interop tests use it from their tasks (threads of Swift's pool, which block
/// most signals): the child starts with an empty signal mask, so its timeout's SIGTERM ends a client that hangs.
@Suite struct SpawnHelperTests {
    @Test func theChildStartsWithNoBlockedSignal() async throws {
        let result = try await spawn("/bin/grep", ["^SigBlk:", "/proc/self/status"])
        #expect(result.output == "SigBlk:\t0000000000000000\n", "\(result.output)")
    }

    @Test func aChildPastItsTimeoutIsEnded() async throws {
        let start = ContinuousClock.now
        let result = try await spawn("/bin/sleep", ["30"], timeout: 1)
        let elapsed = ContinuousClock.now - start
        // Well under the child's own 30 s, with room for a loaded machine (10.3 s was seen with the bound at 10).
        #expect(elapsed < .seconds(20), "sleep 30 with a 1 s timeout ran for \(elapsed)")
        #expect(result.status != 0, "status \(result.status)")
    }
}
