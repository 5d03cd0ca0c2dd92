import Foundation
import TestSupport
import Testing

/// The real `bpfman serve` binary driven by clients written by others, over its Unix socket, on a temp
/// runtime dir with a private bpffs. Serialized: the suites share the kernel's program and link tables.
@Suite(.serialized, .enabled(if: DaemonTools.canRunDaemon, "\(DaemonTools.cannotRunDaemon)"))
struct DaemonKernelTests {
    static var tracepointObject: String { get throws { try BPFFixtures.object("tracepoint_counter") } }
    static let tracepointFunction = "count_kill"
    static let tracepoint = "syscalls/sys_enter_kill"
}

extension DaemonKernelTests {
    /// grpcio with stubs generated at test time from proto/bpfman.proto.
    @Suite(.enabled(if: DaemonTools.python != nil, "\(DaemonTools.pythonMissing)"))
    struct PythonClient {
        /// Runs `scenario` of Interop/daemon/daemon_client.py against `daemon` and expects it to pass.
        func expectPass(
            _ daemon: TestDaemon,
            _ scenario: String,
            _ arguments: [String] = [],
            sourceLocation: SourceLocation = #_sourceLocation
        ) async throws {
            let result = try await daemon.python(scenario, arguments)
            #expect(
                result.status == 0 && result.output.contains("PASS"),
                "\(result.output)\n\(daemon.log)",
                sourceLocation: sourceLocation
            )
        }

        /// The tracepoint fixture's object, function and tracepoint, as the scenarios take them.
        var tracepointArguments: [String] {
            get throws {
                [
                    try DaemonKernelTests.tracepointObject, DaemonKernelTests.tracepointFunction,
                    DaemonKernelTests.tracepoint,
                ]
            }
        }

        @Test func agentFlowLoadAttachGetDetachUnload() async throws {
            let arguments = try tracepointArguments
            try await withDaemon { daemon in
                try await expectPass(daemon, "agent-flow", arguments)
                // One debug line per RPC, and no pins left behind by the round trip.
                #expect(daemon.log.contains("rpc=Load status=OK"))
                #expect(daemon.log.contains("rpc=Get status=NOT_FOUND"))
                let pins = try FileManager.default.contentsOfDirectory(atPath: daemon.runtimeDirectory + "/fs")
                #expect(pins.filter { $0.hasPrefix("prog_") }.isEmpty)
                #expect(
                    try FileManager.default.contentsOfDirectory(atPath: daemon.runtimeDirectory + "/fs/links").isEmpty
                )
                #expect(
                    try FileManager.default.contentsOfDirectory(atPath: daemon.runtimeDirectory + "/fs/maps").isEmpty
                )
            }
        }

        @Test func inspectGetLinkAndListLinksFilters() async throws {
            let arguments = try tracepointArguments
            try await withDaemon { daemon in try await expectPass(daemon, "inspect", arguments) }
        }

        @Test func validationStatusesAndMessages() async throws {
            let arguments = Array(try tracepointArguments.prefix(2))
            try await withDaemon { daemon in
                try await expectPass(daemon, "validation", arguments)
                let managed = try await daemon.python("list-managed")
                #expect(field("MANAGED", in: managed.output) == "", "validation left programs: \(managed.output)")
            }
        }

        @Test func writerLockDeadlineIsDeadlineExceededWithSpecsMessage() async throws {
            let arguments = Array(try tracepointArguments.prefix(2))
            try await withDaemon { daemon in try await expectPass(daemon, "writer-deadline", arguments) }
        }

        @Test func healthServesEveryMainSocketName() async throws {
            try await withDaemon { daemon in try await expectPass(daemon, "health") }
        }
    }

    /// grpc-go with bindings generated under the Kubernetes agent's import path, replaying its flow.
    @Suite(.enabled(if: InteropTools.goToolchain, "\(InteropTools.goMissing)"))
    struct GoAgent {
        @Test func tracepointFlow() async throws {
            let agent = try DaemonTools.goAgent.get()
            let object = try DaemonKernelTests.tracepointObject
            try await withDaemon { daemon in
                let result = try await spawn(
                    agent,
                    [
                        daemon.socketPath, object, "tracepoint", DaemonKernelTests.tracepointFunction,
                        DaemonKernelTests.tracepoint,
                    ]
                )
                #expect(result.status == 0 && result.output.contains("PASS"), "\(result.output)\n\(daemon.log)")
            }
        }

        @Test(arguments: ["tcx", "tc", "xdp"])
        func networkFlowOnAVethInATestNetns(kind: String) async throws {
            let agent = try DaemonTools.goAgent.get()
            let (fixture, function) = [
                "tcx": ("tcx_counter", "tcx_count"), "tc": ("tc_counter", "tc_count_ok"),
                "xdp": ("xdp_counter", "xdp_count_pass"),
            ][kind]!
            let object = try BPFFixtures.object(fixture)
            let netns = "srv-ns-\(getpid())"
            _ = try TestSupport.run("ip", ["netns", "add", netns])
            defer { _ = try? TestSupport.run("ip", ["netns", "del", netns]) }
            let veth = try TestSupport.run(
                "ip",
                ["-n", netns, "link", "add", "srv0", "type", "veth", "peer", "name", "srv1"]
            )
            try #require(veth.status == 0, "\(veth.output)")
            _ = try TestSupport.run("ip", ["-n", netns, "link", "set", "srv0", "up"])
            try await withDaemon { daemon in
                let arguments =
                    kind == "xdp"
                    ? [daemon.socketPath, object, kind, function, "srv0", "/var/run/netns/\(netns)"]
                    : [daemon.socketPath, object, kind, function, "srv0", "ingress", "/var/run/netns/\(netns)"]
                let result = try await spawn(agent, arguments)
                #expect(result.status == 0 && result.output.contains("PASS"), "\(result.output)\n\(daemon.log)")
            }
        }
    }

    /// SPEC §6: kill -9 with programs and links in place, restart, same ids, link ids keep increasing.
    @Suite(.enabled(if: DaemonTools.python != nil, "\(DaemonTools.pythonMissing)"))
    struct Restart {
        @Test func killNineThenRestartKeepsIdsAndLinks() async throws {
            let object = try DaemonKernelTests.tracepointObject
            let fn = DaemonKernelTests.tracepointFunction
            let daemon = try TestDaemon()
            defer { daemon.destroy() }
            try daemon.start()
            var programs: [String] = []
            var links: [Int] = []
            for _ in 0..<2 {
                let loaded = try await daemon.python("load", [object, fn])
                let id = try #require(field("PROGRAM", in: loaded.output), "\(loaded.output)")
                programs.append(id)
                let attached = try await daemon.python("attach-tp", [id, DaemonKernelTests.tracepoint])
                links.append(try #require(field("LINK", in: attached.output).flatMap { Int($0) }, "\(attached.output)"))
            }
            #expect(links[1] > links[0])
            daemon.stop(signal: SIGKILL)
            try daemon.start()
            #expect(daemon.log.contains("reconciled: 2 programs, 2 links"), "\(daemon.log)")
            for (program, link) in zip(programs, links) {
                let got = try await daemon.python("get", [program])
                #expect(field("LINKS", in: got.output) == "\(link)", "\(got.output)")
                // The kernel link is still there through its pin.
                #expect(FileManager.default.fileExists(atPath: daemon.runtimeDirectory + "/fs/links/\(link)"))
            }
            let managed = try await daemon.python("list-managed")
            #expect(field("MANAGED", in: managed.output) == programs.joined(separator: ","))
            // (The kernel refuses one program twice on one tracepoint, so the new link goes elsewhere.)
            let again = try await daemon.python("attach-tp", [programs[0], "syscalls/sys_enter_getpid"])
            let next = try #require(field("LINK", in: again.output).flatMap { Int($0) }, "\(again.output)")
            #expect(next > links.max()!)
        }
    }

    /// SPEC §1.4, §1.6: socket activation, the idle timer, signals, the runtime-dir lock.
    @Suite struct ProcessLifecycle {
        @Test(.enabled(if: InteropTools.grpcurl != nil, "needs grpcurl"))
        func socketActivationServesFd3AndExitsWhenIdle() async throws {
            let daemon = try TestDaemon()
            defer { daemon.destroy() }
            let socket = daemon.directory + "/act.sock"
            try #require(
                FileManager.default.createFile(
                    atPath: daemon.directory + "/none.toml",
                    contents: Data("[logging]\nlevel = \"trace\"\n".utf8)
                )
            )
            // In its own session: started straight from the test runner's process group, the activated
            // daemon's listener was seen refusing connections (not understood yet; never seen from a shell).
            async let activated = spawn(
                "/usr/bin/setsid",
                [
                    "-w", "/usr/bin/systemd-socket-activate", "-l", socket, DaemonTools.bpfman!, "serve",
                    "--runtime-dir", daemon.runtimeDirectory, "--socket-path",
                    daemon.directory + "/unused.sock", "--timeout", "5", "--config", daemon.directory + "/none.toml",
                ],
                timeout: 30
            )
            // The listener exists before the daemon does; the first connection starts it.
            let end = Date().addingTimeInterval(5)
            while !FileManager.default.fileExists(atPath: socket) && Date() < end { usleep(10_000) }
            // A bare connection starts the daemon (as systemd would on the first client).
            #expect(TestDaemon.canConnect(socket))
            let start = Date()
            var rpcs = 0
            // RPCs back to back for 7 s keep it up: each gap is one grpcurl start-up, well inside the 5 s timeout
            // even on a loaded machine.
            while Date().timeIntervalSince(start) < 7 {
                let health = try await spawn(
                    InteropTools.grpcurl!,
                    ["-plaintext", "-unix", socket, "grpc.health.v1.Health/Check"],
                    timeout: 30
                )
                #expect(health.status == 0 && health.output.contains("SERVING"), "\(health.output)")
                rpcs += 1
            }
            let lastRPC = Date()
            let result = try await activated
            let idle = Date().timeIntervalSince(lastRPC)
            #expect(result.status == 0, "\(result.output)")
            #expect(rpcs >= 3, "\(result.output)")
            #expect(idle >= 4.5 && idle < 12, "exited \(idle) s after the last RPC:\n\(result.output)")
            #expect(result.output.contains("idle for 5 s"), "\(result.output)")
            #expect(!FileManager.default.fileExists(atPath: daemon.directory + "/unused.sock"), "bound its own path")
            #expect(FileManager.default.fileExists(atPath: socket), "the activated socket is not ours to unlink")
        }

        /// SPEC §10 scenario 44: a socket file left by a daemon that died (nobody listening) is replaced.
        @Test func aStaleSocketFileIsReplaced() async throws {
            let daemon = try TestDaemon()
            defer { daemon.destroy() }
            // Bind the path and close without unlinking, as a SIGKILLed daemon leaves it.
            let stale = try TestSupport.run(
                "/usr/bin/python3",
                ["-c", "import socket; socket.socket(socket.AF_UNIX).bind('\(daemon.socketPath)')"]
            )
            try #require(stale.status == 0, "\(stale.output)")
            #expect(!TestDaemon.canConnect(daemon.socketPath), "nobody listens on the stale file")
            try daemon.start()
            #expect(TestDaemon.canConnect(daemon.socketPath))
            let list = try await spawn(DaemonTools.bpfman!, ["list", "programs", "-s", daemon.socketPath])
            #expect(list.status == 0, "\(list.output)\n\(daemon.log)")
        }

        @Test func sigtermExitsZeroAndUnlinksTheSocket() async throws {
            let daemon = try TestDaemon()
            defer { daemon.destroy() }
            try daemon.start()
            var info = stat()
            #expect(stat(daemon.socketPath, &info) == 0 && info.st_mode & 0o777 == 0o660)
            let started = Date()
            #expect(daemon.stop(signal: SIGTERM) == 0)
            #expect(Date().timeIntervalSince(started) < 5)
            #expect(!FileManager.default.fileExists(atPath: daemon.socketPath))
            #expect(daemon.log.contains("shutting down reason=SIGTERM"))
        }

        /// libbpf writes to stderr itself until its print callback is installed. The daemon installs it before
        /// the freplace probe, whose failure on a kernel that refuses freplace (this one) is expected: at info
        /// level the start-up log says so once, in the mode line, and has no libbpf line; at debug level
        /// libbpf's account of the failed load is there, as the logger's debug lines.
        @Test func startUpLogHasTheProbesOutcomeAndLibbpfOnlyThroughTheLogger() async throws {
            for level in ["info", "debug"] {
                let daemon = try TestDaemon()
                defer { daemon.destroy() }
                try #require(
                    FileManager.default.createFile(
                        atPath: daemon.directory + "/bpfman.toml",
                        contents: Data("[logging]\nlevel = \"\(level)\"\n".utf8)
                    )
                )
                try daemon.start()
                #expect(daemon.stop(signal: SIGTERM) == 0)
                let lines = daemon.log.split(separator: "\n").map(String.init)
                #expect(lines.filter { $0.contains("XDP/TC attach mode: ") }.count == 1, "\(daemon.log)")
                // Every libbpf line went through the logger: a timestamped line, not libbpf's bare "libbpf: ".
                #expect(lines.allSatisfy { !$0.hasPrefix("libbpf:") }, "\(daemon.log)")
                let fromLibbpf = lines.filter { $0.hasSuffix("source=libbpf") }
                #expect(fromLibbpf.allSatisfy { $0.contains(" DEBUG ") || $0.contains(" TRACE ") }, "\(daemon.log)")
                // Kernel A refuses freplace (KERNEL.md); kernel B allows it.
                let probeFailed = daemon.log.contains("XDP/TC attach mode: native (freplace probe failed: ")
                #expect(probeFailed == !TestKernel.isKernelBLane, "\(daemon.log)")
                if probeFailed {
                    if level == "info" {
                        #expect(fromLibbpf.isEmpty, "\(daemon.log)")
                    } else {
                        #expect(
                            fromLibbpf.contains { $0.contains("prog 'probe_pass': BPF program load failed") },
                            "\(daemon.log)"
                        )
                    }
                }
            }
        }

        @Test(.enabled(if: DaemonTools.python != nil, "\(DaemonTools.pythonMissing)"))
        func healthWatchSeesNotServingAtSIGTERM() async throws {
            let daemon = try TestDaemon()
            defer { daemon.destroy() }
            try daemon.start()
            let marker = daemon.directory + "/watching"
            async let watch = daemon.python("watch", [marker])
            // Once the watcher holds its first status, stop the daemon.
            let end = Date().addingTimeInterval(20)
            while !FileManager.default.fileExists(atPath: marker), Date() < end {
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(daemon.stop(signal: SIGTERM) == 0)
            let result = try await watch
            #expect(result.status == 0, "\(result.output)")
            let statuses = result.output.split(separator: "\n").filter { $0.hasPrefix("STATUS ") }
            #expect(statuses == ["STATUS SERVING", "STATUS NOT_SERVING"], "\(result.output)")
        }

        @Test func secondDaemonOnTheSameRuntimeDirExitsOne() async throws {
            try await withDaemon { daemon in
                try #require(
                    FileManager.default.createFile(
                        atPath: daemon.directory + "/fast.toml",
                        contents: Data("[database]\nmax_retries = 1\nmillisec_delay = 10\n".utf8)
                    )
                )
                let second = try await spawn(
                    DaemonTools.bpfman!,
                    [
                        "serve", "--runtime-dir", daemon.runtimeDirectory, "--socket-path",
                        daemon.directory + "/b.sock",
                        "--config", daemon.directory + "/fast.toml",
                    ],
                    timeout: 20
                )
                #expect(second.status == 1)
                #expect(
                    second.output.contains("another bpfman daemon is using \(daemon.runtimeDirectory)"),
                    "\(second.output)"
                )
            }
        }

        @Test(.enabled(if: InteropTools.grpcurl != nil, "needs grpcurl"))
        func grpcurlListsEveryServiceThroughReflection() async throws {
            try await withDaemon { daemon in
                let list = try await spawn(InteropTools.grpcurl!, ["-plaintext", "-unix", daemon.socketPath, "list"])
                #expect(
                    list.output.split(separator: "\n").map(String.init) == [
                        "bpfman.ext.v1.Inspect", "bpfman.v1.Bpfman", "grpc.health.v1.Health",
                        "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection",
                    ],
                    "\(list.output)"
                )
                let call = try await spawn(
                    InteropTools.grpcurl!,
                    [
                        "-plaintext", "-unix", "-d", "{\"bpfman_programs_only\": true}", daemon.socketPath,
                        "bpfman.v1.Bpfman/List",
                    ]
                )
                #expect(call.status == 0, "\(call.output)")
                // describe: the service's seven RPCs from the reflected descriptors alone.
                let describe = try await spawn(
                    InteropTools.grpcurl!,
                    ["-plaintext", "-unix", daemon.socketPath, "describe", "bpfman.v1.Bpfman"]
                )
                #expect(describe.status == 0, "\(describe.output)")
                let rpcs = describe.output.split(separator: "\n").compactMap { line -> String? in
                    let words = line.split(separator: " ")
                    return words.first == "rpc" && words.count > 1 ? String(words[1]) : nil
                }
                #expect(
                    rpcs == ["Attach", "Detach", "Get", "List", "Load", "PullBytecode", "Unload"],
                    "\(describe.output)"
                )
                #expect(
                    describe.output.contains("rpc Load ( .bpfman.v1.LoadRequest ) returns ( .bpfman.v1.LoadResponse );")
                )
            }
        }
    }
}
