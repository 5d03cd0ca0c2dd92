import Foundation
import TestSupport
import Testing

@testable import BpfmanServer

@Suite struct ProcessSetupTests {
    @Test func raisesMemlockOrExplainsWhyItNeedNot() throws {
        try #require(geteuid() == 0, "raising RLIMIT_MEMLOCK needs root")
        let outcome = try ProcessSetup.raiseMemlockLimit()
        var limit = rlimit()
        getrlimit(__rlimit_resource_t(__RLIMIT_MEMLOCK.rawValue), &limit)
        switch outcome {
        case .unlimited:
            #expect(limit.rlim_cur == rlim_t.max)  // RLIM_INFINITY
        case .notNeeded(let hard):
            // Some machines (this project's among them) withhold CAP_SYS_RESOURCE even from root.
            #expect(limit.rlim_cur == hard && limit.rlim_max == hard)
            #expect(ProcessSetup.chargesBPFToMemoryCgroup(kernelRelease: ProcessSetup.kernelRelease()))
        }
    }

    /// systemd starts the daemon with 1024 descriptors (soft) of 524288 (hard); the daemon takes the hard limit.
    @Test func raisesTheDescriptorLimitToTheHardLimit() {
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        var saved = rlimit()
        getrlimit(resource, &saved)
        defer { setrlimit(resource, &saved) }
        var lowered = rlimit(rlim_cur: min(1024, saved.rlim_max), rlim_max: saved.rlim_max)
        #expect(setrlimit(resource, &lowered) == 0)
        #expect(ProcessSetup.raiseDescriptorLimit() == UInt64(saved.rlim_max))
        var now = rlimit()
        getrlimit(resource, &now)
        #expect(now.rlim_cur == saved.rlim_max && now.rlim_max == saved.rlim_max)
    }

    /// SPEC §0.2's idle-timeout defaults: never by hand, 15 s when socket-activated, never with CSI unless
    /// `--timeout` says otherwise; an explicit `--timeout` (0 included) always wins.
    static let idleTimeoutCases: [(Bool, UInt64?, Bool, UInt64)] = [
        (false, nil, false, 0),
        (false, nil, true, 15),
        (true, nil, false, 0),
        (true, nil, true, 0),
        (false, 0, true, 0),
        (false, 7, false, 7),
        (true, 7, true, 7),
    ]

    @Test(arguments: idleTimeoutCases)
    func idleTimeoutDefaults(csi: Bool, timeout: UInt64?, activated: Bool, expected: UInt64) {
        let options = DaemonOptions(socketPath: "/s", runtimeDirectory: "/r", csiSupport: csi, timeout: timeout)
        #expect(options.idleTimeout(socketActivated: activated) == expected)
    }

    @Test func onlyKernelsBefore511NeedTheMemlockLimit() throws {
        #expect(ProcessSetup.chargesBPFToMemoryCgroup(kernelRelease: "6.18.44-fc-v595"))
        #expect(ProcessSetup.chargesBPFToMemoryCgroup(kernelRelease: "5.11.0"))
        #expect(!ProcessSetup.chargesBPFToMemoryCgroup(kernelRelease: "5.10.209-1"))
        #expect(!ProcessSetup.chargesBPFToMemoryCgroup(kernelRelease: "4.19.0"))
    }

    /// Whether this process may raise its hard memlock limit (it holds CAP_SYS_RESOURCE).
    static let mayRaiseHardMemlock: Bool = {
        var current = rlimit()
        getrlimit(__rlimit_resource_t(__RLIMIT_MEMLOCK.rawValue), &current)
        var probe = rlimit(rlim_cur: current.rlim_cur, rlim_max: rlim_t.max)
        return current.rlim_max == rlim_t.max || setrlimit(__rlimit_resource_t(__RLIMIT_MEMLOCK.rawValue), &probe) == 0
    }()

    @Test(.enabled(if: !mayRaiseHardMemlock, "this process holds CAP_SYS_RESOURCE, so the raise cannot fail"))
    func unraisableLimitOnAnOldKernelIsTheSPECStartupError() {
        #expect(throws: StartupError("must be privileged to run bpfman")) {
            _ = try ProcessSetup.raiseMemlockLimit(kernelRelease: "5.10.0")
        }
    }

    @Test func secondLockOnTheSameRuntimeDirectoryFailsWithSPECMessage() throws {
        let dir = NSTemporaryDirectory() + "rd-lock-\(getpid())-\(UInt32.random(in: 0...UInt32.max))/nested"
        defer { try? FileManager.default.removeItem(atPath: (dir as NSString).deletingLastPathComponent) }
        let first = try RuntimeDirectoryLock(directory: dir, retries: 0, delayMilliseconds: 0)
        var attributes = stat()
        #expect(stat(dir, &attributes) == 0 && attributes.st_mode & 0o777 == 0o755)

        // flock locks belong to the open file description, so a second open in this process conflicts too;
        // a separate process (flock(1)) proves it the way a second daemon would meet it.
        let contender = try run("flock", ["--nonblock", dir + "/.lock", "true"])
        #expect(contender.status != 0)
        #expect(throws: StartupError("another bpfman daemon is using \(dir)")) {
            _ = try RuntimeDirectoryLock(directory: dir, retries: 2, delayMilliseconds: 1)
        }
        _ = consume first
        // Retries: a child that another test forks in this process at this moment holds a copy of the descriptor
        // until it execs (O_CLOEXEC closes it only then), which keeps the lock taken for that instant.
        let again = try RuntimeDirectoryLock(directory: dir, retries: 50, delayMilliseconds: 10)
        _ = consume again
        #expect(try run("flock", ["--nonblock", dir + "/.lock", "true"]).status == 0)
    }
}
