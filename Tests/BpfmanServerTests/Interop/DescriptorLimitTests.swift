import Foundation
import TestSupport
import Testing

extension DaemonKernelTests {
    /// What the load test found (README "Fuzzing and the load test"), as a client sees it: the daemon takes its hard
    /// descriptor limit when started under a lower soft one (systemd's 1024); out of descriptors it hangs up the
    /// connections it cannot serve instead of leaving them waiting while its loop spins on the listener; and after
    /// a storm of connections its RSS falls back. The daemon runs under `prlimit`, its limits set before it starts.
    @Suite(
        .enabled(if: DaemonTools.python != nil, "\(DaemonTools.pythonMissing)"),
        .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/prlimit"), "needs util-linux's prlimit")
    )
    struct DescriptorLimits {
        /// A soft limit of 128 under a hard one of 2048: 400 idle connections are all served (each gets the
        /// server's SETTINGS), and a health Check answers while they are open.
        @Test func aLowSoftLimitIsRaisedToTheHardOne() async throws {
            try await withDaemon(launcher: ["/usr/bin/prlimit", "--nofile=128:2048", "--"]) { daemon in
                #expect(openFilesLimit(daemon.pid) == "2048 2048", "\(daemon.log)")
                let held = connectMany(daemon.socketPath, count: 400)
                defer { for fd in held { close(fd) } }
                #expect(held.count == 400)
                let outcomes = held.map { firstRead($0) }
                #expect(outcomes.filter { $0 == .served }.count == 400, "\(tally(outcomes))")
                try await expectHealthy(daemon)
            }
        }

        /// Hard limit 128, 300 connections at once: those the daemon has no descriptor for are hung up, none is
        /// left waiting, the daemon uses almost no CPU meanwhile (it spun on the readable listener before), and a
        /// health Check answers once they are gone.
        @Test func connectionsOverTheHardLimitAreHungUpWithoutSpinning() async throws {
            try await withDaemon(launcher: ["/usr/bin/prlimit", "--nofile=128:128", "--"]) { daemon in
                let held = connectMany(daemon.socketPath, count: 300)
                usleep(1_000_000)
                let before = cpuSeconds(daemon.pid)
                usleep(2_000_000)
                let cpu = cpuSeconds(daemon.pid) - before
                let outcomes = held.map { firstRead($0) }
                for fd in held { close(fd) }
                let counts = tally(outcomes)
                #expect(held.count == 300)
                #expect(counts.waiting == 0, "\(counts)")
                #expect(counts.hungUp > 0 && counts.served > 0, "\(counts)")
                #expect(cpu < 0.5, "\(cpu) s of CPU in 2 s with connections it cannot accept")
                #expect(daemon.log.contains("out of file descriptors: hanging up new connections"))
                usleep(500_000)
                try await expectHealthy(daemon)
            }
        }

        /// 1000 connections that each send the preface and SETTINGS, then all close: the RSS the storm added is
        /// given back (it stayed at its peak before: glibc kept the freed memory).
        @Test func memoryIsReleasedAfterAConnectionStorm() async throws {
            try await withDaemon(launcher: ["/usr/bin/prlimit", "--nofile=4096:4096", "--"]) { daemon in
                try await expectHealthy(daemon)
                let startFDs = openDescriptors(daemon.pid)
                let start = residentKiB(daemon.pid)
                let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + [0, 0, 0, 4, 0, 0, 0, 0, 0]
                let held = connectMany(daemon.socketPath, count: 1000)
                for fd in held { _ = preface.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) } }
                let outcomes = held.map { firstRead($0) }
                let peak = residentKiB(daemon.pid)
                for fd in held { close(fd) }
                let end = Date().addingTimeInterval(5)
                while openDescriptors(daemon.pid) > startFDs + 2 && Date() < end { usleep(50_000) }
                usleep(300_000)
                let after = residentKiB(daemon.pid)
                #expect(tally(outcomes).served == 1000, "\(tally(outcomes))")
                // The storm must have cost something, or the test shows nothing.
                #expect(peak - start >= 4096, "RSS \(start) KiB at start, \(peak) KiB with 1000 connections")
                #expect(
                    after - start <= (peak - start) / 2,
                    "RSS \(start) KiB at start, \(peak) KiB with 1000 connections, \(after) KiB after they closed"
                )
                try await expectHealthy(daemon)
            }
        }
    }
}

private func expectHealthy(_ daemon: TestDaemon, sourceLocation: SourceLocation = #_sourceLocation) async throws {
    let result = try await daemon.python("health")
    #expect(result.status == 0 && result.output.contains("PASS"), "\(result.output)", sourceLocation: sourceLocation)
}

private enum FirstRead: Equatable {
    /// The server sent its SETTINGS.
    case served
    /// The server closed the connection without a byte.
    case hungUp
    /// Nothing within half a second: the connection is still pending.
    case waiting
}

private func tally(_ outcomes: [FirstRead]) -> (served: Int, hungUp: Int, waiting: Int) {
    (
        outcomes.filter { $0 == .served }.count, outcomes.filter { $0 == .hungUp }.count,
        outcomes.filter { $0 == .waiting }.count
    )
}

/// Up to `count` connected sockets; a connect waits at most 5 s while the listen backlog is full, and one that fails
/// is not counted.
private func connectMany(_ path: String, count: Int) -> [CInt] {
    (0..<count).compactMap { _ in TestDaemon.connectedSocket(path, sendTimeout: 5) }
}

private func firstRead(_ fd: CInt) -> FirstRead {
    var timeout = timeval(tv_sec: 0, tv_usec: 500_000)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var buffer = [UInt8](repeating: 0, count: 64)
    let count = recv(fd, &buffer, buffer.count, 0)
    if count > 0 { return .served }
    if count == 0 || (errno != EAGAIN && errno != EWOULDBLOCK) { return .hungUp }
    return .waiting
}

/// "soft hard" of the process's open-files limit, from /proc/PID/limits.
private func openFilesLimit(_ pid: Int32) -> String? {
    let text = (try? String(contentsOfFile: "/proc/\(pid)/limits", encoding: .utf8)) ?? ""
    guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Max open files") }) else { return nil }
    return line.dropFirst("Max open files".count).split(separator: " ").prefix(2).joined(separator: " ")
}

/// User plus system CPU seconds of the process.
private func cpuSeconds(_ pid: Int32) -> Double {
    let text = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
    guard let close = text.lastIndex(of: ")") else { return 0 }
    let fields = text[text.index(after: close)...].split(separator: " ")
    guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

private func residentKiB(_ pid: Int32) -> Int {
    let text = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
    let line = text.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
    return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
}

private func openDescriptors(_ pid: Int32) -> Int {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? 0
}
