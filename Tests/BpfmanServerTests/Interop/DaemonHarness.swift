import Foundation
import TestSupport
import Testing

/// Real clients and tools; each is nil when missing, and tests skip with the reason.
enum DaemonTools {
    /// The `bpfman` executable of this build (next to the test bundle), or `$BPFMAN_BIN`.
    static let bpfman: String? = {
        if let path = ProcessInfo.processInfo.environment["BPFMAN_BIN"] { return path }
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        for _ in 0..<4 {
            url.deleteLastPathComponent()
            let candidate = url.appendingPathComponent("bpfman").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }()

    /// A Python with grpcio, grpcio-tools and grpcio-health-checking (the daemon clients also ask for health).
    static let python: String? = InteropTools.python(importing: ["grpc", "grpc_tools", "grpc_health"])

    /// Root, BPF and the daemon binary: what every daemon test needs.
    static let canRunDaemon = TestKernel.canUseBPF && bpfman != nil
    static let cannotRunDaemon = "needs root, BPF, bpffs and the built bpfman executable"
    static let pythonMissing = "needs grpcio, grpcio-tools and grpcio-health-checking in .venv (scripts/setup.sh)"

    /// Environment variable naming a stress client built beforehand: scripts/run-kernel-b.sh builds it on the
    /// host, where Go compiles in seconds, not under the guest's emulated CPU.
    static let prebuiltStressKey = "BPFMAN_TEST_GO_STRESS"

    /// The Go stress client (Interop/daemon/go/stress.go), built once per test process.
    static let goStress: Result<String, FixtureError> = {
        if let prebuilt = ProcessInfo.processInfo.environment[prebuiltStressKey],
            FileManager.default.isExecutableFile(atPath: prebuilt)
        {
            return .success(prebuilt)
        }
        let out = NSTemporaryDirectory() + "srv-stress-\(getpid())"
        guard
            let result = try? TestSupport.run(
                Repository.path("Interop/daemon/go/build.sh"),
                [out, Repository.path("Interop/daemon/go/stress.go")]
            )
        else { return .failure(FixtureError("cannot run Interop/daemon/go/build.sh")) }
        return result.status == 0 ? .success(out) : .failure(FixtureError("go build failed:\n\(result.output)"))
    }()

    /// The Go agent client, built once per test process.
    static let goAgent: Result<String, FixtureError> = {
        let out = NSTemporaryDirectory() + "srv-agent-\(getpid())"
        guard let result = try? TestSupport.run(Repository.path("Interop/daemon/go/build.sh"), [out]) else {
            return .failure(FixtureError("cannot run Interop/daemon/go/build.sh"))
        }
        return result.status == 0 ? .success(out) : .failure(FixtureError("go build failed:\n\(result.output)"))
    }()
}

/// A `bpfman serve` child process on a private runtime dir (its own bpffs mount) and a short socket path.
final class TestDaemon: @unchecked Sendable {  // mutated only by the test that owns it
    let directory: String
    var runtimeDirectory: String { directory + "/rd" }
    var socketPath: String { directory + "/s.sock" }
    var logPath: String { directory + "/daemon.log" }
    var imageCacheDirectory: String { directory + "/cache" }
    private(set) var process: Process?
    var pid: Int32 { process?.processIdentifier ?? 0 }
    /// Whether the last daemon started was stopped by the test (`stop`), not by itself.
    private var stoppedByTest = false

    init() throws {
        var template = Array("/tmp/srv-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw FixtureError("mkdtemp failed") }
        directory = String(cString: made)
    }

    /// Starts the daemon and waits until its socket accepts connections. `launcher` runs it through a command
    /// that execs it (`prlimit --nofile=64:64`), so the pid stays the daemon's.
    func start(extraArguments: [String] = [], environment: [String: String] = [:], launcher: [String] = []) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: launcher.first ?? DaemonTools.bpfman!)
        process.arguments =
            (launcher.isEmpty ? [] : Array(launcher.dropFirst()) + [DaemonTools.bpfman!])
            + [
                "serve", "--runtime-dir", runtimeDirectory, "--socket-path", socketPath, "--config",
                directory + "/bpfman.toml",
            ]
            // The image cache lives with the test's files, never in the host's /var/cache/bpfman.
            + (extraArguments.contains("--image-cache-dir") ? [] : ["--image-cache-dir", imageCacheDirectory])
            + extraArguments
        if !FileManager.default.fileExists(atPath: directory + "/bpfman.toml") {
            try #require(
                FileManager.default.createFile(
                    atPath: directory + "/bpfman.toml",
                    contents: Data("[logging]\nlevel = \"debug\"\n".utf8)
                )
            )
        }
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }.filter {
            !$0.key.hasPrefix("LISTEN_")
        }
        if !FileManager.default.fileExists(atPath: logPath) {
            try #require(FileManager.default.createFile(atPath: logPath, contents: nil))
        }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        log.seekToEndOfFile()
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
        self.process = process
        stoppedByTest = false
        try waitForSocket()
    }

    /// Polls until a connect to the socket succeeds (10 s at most).
    func waitForSocket(timeout: Double = 10) throws {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            if Self.canConnect(socketPath) { return }
            if let process, !process.isRunning { throw FixtureError("daemon exited early:\n\(log)") }
            usleep(10_000)
        }
        throw FixtureError("daemon socket never came up:\n\(log)")
    }

    static func canConnect(_ path: String) -> Bool {
        guard let fd = connectedSocket(path) else { return false }
        close(fd)
        return true
    }

    /// A socket connected to `path`, or nil. With `sendTimeout`, a connect waits at most that many seconds while
    /// the listen backlog is full (SO_SNDTIMEO), as a blocking client would.
    static func connectedSocket(_ path: String, sendTimeout: Int? = nil) -> CInt? {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        if let sendTimeout {
            var timeout = timeval(tv_sec: sendTimeout, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path.utf8)
            raw[path.utf8.count] = 0
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0
            }
        }
        if connected { return fd }
        close(fd)
        return nil
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// The daemon's open BPF and perf fds (SPEC §6.5): link targets of /proc/<pid>/fd.
    var bpfDescriptors: [String] {
        let directory = "/proc/\(pid)/fd"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: directory + "/" + $0) }
            .filter { target in
                [
                    "anon_inode:bpf-prog", "anon_inode:bpf-map", "anon_inode:bpf_link", "anon_inode:bpf-link",
                    "anon_inode:[perf_event]",
                ].contains(target)
            }
    }

    /// Sends `signal` and waits for the exit status (5 s, then SIGKILL).
    @discardableResult
    func stop(signal: Int32 = SIGTERM, timeout: Double = 5) -> Int32? {
        guard let process, process.isRunning else { return process?.terminationStatus }
        stoppedByTest = true
        kill(process.processIdentifier, signal)
        let end = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < end { usleep(10_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            return nil
        }
        return process.terminationStatus
    }

    /// Prints the end of the daemon's log (the directory holding it is removed with the daemon): for a test that
    /// failed, or a daemon that exited without the test stopping it.
    func printLogTail(_ why: String, lines: Int = 60) {
        let tail = log.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
        print("--- bpfman daemon log (\(why)), last \(lines) lines of \(logPath):\n\(tail)\n--- end of daemon log")
    }

    /// The daemon's exit status when it exited without the test stopping it, else nil.
    var exitedByItself: Int32? {
        guard let process, !process.isRunning, !stoppedByTest else { return nil }
        return process.terminationStatus
    }

    /// Kills the daemon and removes everything: the bpffs mount (freeing its programs) and the directory.
    func destroy() {
        stop(signal: SIGKILL)
        _ = try? TestSupport.run("umount", ["-l", runtimeDirectory + "/fs"])
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Runs one scenario of Interop/daemon/daemon_client.py against this daemon.
    func python(_ scenario: String, _ arguments: [String] = []) async throws -> SpawnResult {
        try await spawn(
            DaemonTools.python!,
            [Repository.path("Interop/daemon/daemon_client.py"), socketPath, scenario] + arguments,
            timeout: 60
        )
    }
}

/// Starts a daemon, runs `body`, then tears everything down (also when `body` throws). The daemon's log goes with
/// its directory, so its end is printed first when `body` threw or the daemon exited on its own.
func withDaemon<R>(
    extraArguments: [String] = [],
    launcher: [String] = [],
    _ body: (TestDaemon) async throws -> R
) async throws -> R {
    let daemon = try TestDaemon()
    defer { daemon.destroy() }
    try daemon.start(extraArguments: extraArguments, launcher: launcher)
    do {
        let result = try await body(daemon)
        if let status = daemon.exitedByItself {
            daemon.printLogTail("the daemon exited by itself with status \(status)")
        }
        return result
    } catch {
        daemon.printLogTail("the test threw: \(error)")
        throw error
    }
}

/// The value after `prefix` on the first output line starting with it ("PROGRAM 42" -> "42").
func field(_ prefix: String, in output: String) -> String? {
    output.split(separator: "\n").first { $0.hasPrefix(prefix + " ") }.map { String($0.dropFirst(prefix.count + 1)) }
}
