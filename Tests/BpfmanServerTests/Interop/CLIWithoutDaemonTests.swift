import Foundation
import TestSupport
import Testing

/// The `bpfman` CLI with no daemon answering on its socket: the engine runs in the CLI's process on the runtime
/// directory, under the lock a daemon takes, with the same results (SPEC §9); the hand-over to and from a daemon;
/// two CLIs racing on one runtime directory; the client's deadline, stdout errors and the messages for a missing
/// daemon; `serve` refusing a socket a live daemon answers on.
extension DaemonKernelTests {
    @Suite struct CLIWithoutDaemon {
        /// A CLI run: exit status, standard output and standard error apart.
        struct Run {
            var status: Int32
            var stdout: String
            var stderr: String
        }

        /// Runs `bpfman ARGS` on `place`'s socket and runtime directory; `stdout` names where standard output goes.
        static func bpfman(
            _ place: TestDaemon,
            _ arguments: [String],
            stdout: String? = nil,
            prefix: [String] = [],
            timeout: Double = 60,
            environment: [String: String] = [:]
        ) async throws -> Run {
            let out = stdout ?? place.directory + "/out-\(UUID().uuidString)"
            let err = place.directory + "/err-\(UUID().uuidString)"
            defer {
                if stdout == nil { try? FileManager.default.removeItem(atPath: out) }
                try? FileManager.default.removeItem(atPath: err)
            }
            let executable = prefix.first ?? DaemonTools.bpfman!
            let child = try ChildProcess(
                executable,
                Array(prefix.dropFirst()) + (prefix.isEmpty ? [] : [DaemonTools.bpfman!]) + arguments
                    + ["--image-cache-dir", place.imageCacheDirectory],
                output: out,
                errorOutput: err,
                environment: [
                    "BPFMAN_SOCKET_PATH": place.socketPath, "BPFMAN_RUNTIME_DIR": place.runtimeDirectory,
                    "BPFMAN_CONFIG": place.directory + "/bpfman.toml",
                ].merging(environment) { $1 }
            )
            let status = await child.wait(timeout: .milliseconds(Int(timeout * 1000)))
            return Run(
                status: status,
                stdout: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
                stderr: (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
            )
        }

        /// A runtime directory and socket path with no daemon (yet); removed with everything in it afterwards.
        static func withPlace<R>(_ body: (TestDaemon) async throws -> R) async throws -> R {
            let place = try TestDaemon()
            defer { place.destroy() }
            try #require(
                FileManager.default.createFile(
                    atPath: place.directory + "/bpfman.toml",
                    contents: Data("[logging]\nlevel = \"debug\"\n".utf8)
                )
            )
            do {
                return try await body(place)
            } catch {
                place.printLogTail("the test threw: \(error)")
                throw error
            }
        }

        static func json(_ text: String) throws -> [String: Any] {
            try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "\(text)")
        }

        /// The value at `path` (object keys) inside parsed JSON, nil when any step is missing.
        static func dig(_ value: Any?, _ path: String...) -> Any? {
            path.reduce(value) { current, key in (current as? [String: Any])?[key] }
        }

        static func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

        /// Load and attach without a daemon, a daemon started afterwards serves what they made (same ids, records,
        /// pins) and adds to it, and once it is gone the CLI in-process sees the daemon's work and undoes it all.
        @Test func inProcessAndDaemonHandOverTheSameState() async throws {
            let object = try DaemonKernelTests.tracepointObject
            try await Self.withPlace { place in
                #expect(!TestDaemon.canConnect(place.socketPath))
                let load = try await Self.bpfman(
                    place,
                    ["load", "file", "-p", object, "--programs", "tracepoint:count_kill", "-m", "owner=cli"]
                )
                #expect(load.status == 0, "\(load.stdout)\(load.stderr)")
                let id = try #require(CLI.row("Program ID", in: load.stdout).flatMap { UInt32($0) }, "\(load.stdout)")
                let attach = try await Self.bpfman(
                    place,
                    ["attach", "\(id)", "tracepoint", "-t", DaemonKernelTests.tracepoint]
                )
                #expect(attach.status == 0, "\(attach.stdout)\(attach.stderr)")
                let link = try #require(CLI.row("Link ID", in: attach.stdout).flatMap { UInt32($0) })
                // The records and pins a daemon would have made, where it would have made them (SPEC §2).
                #expect(Self.exists(place.runtimeDirectory + "/fs/prog_\(id)"))
                #expect(Self.exists(place.runtimeDirectory + "/fs/links/\(link)"))
                #expect(Self.exists(place.runtimeDirectory + "/db/store.db"))
                let inProcessGet = try await Self.bpfman(place, ["get", "program", "\(id)", "-o", "json"])
                #expect(inProcessGet.status == 0, "\(inProcessGet.stderr)")
                // The CLI holds nothing once it exited: the lock is free, so a daemon can start on the directory.
                try place.start()
                let viaDaemon = try await Self.bpfman(place, ["get", "program", "\(id)", "-o", "json"])
                #expect(viaDaemon.status == 0, "\(viaDaemon.stderr)")
                #expect(place.log.contains("rpc=Get"), "the call went through the daemon:\n\(place.log)")
                // The same answer either way: same record, same kernel program, same details.
                let before = try Self.json(inProcessGet.stdout)
                let after = try Self.json(viaDaemon.stdout)
                #expect(
                    NSDictionary(dictionary: before["info"] as! [String: Any]).isEqual(
                        to: after["info"] as! [String: Any]
                    )
                )
                #expect(
                    NSDictionary(dictionary: before["details"] as! [String: Any]).isEqual(
                        to: after["details"] as! [String: Any]
                    )
                )
                #expect((after["kernel_info"] as? [String: Any])?["id"] as? Int == Int(id))
                // The daemon adds a program and a link; the link's id follows the CLI's.
                let other = try await Self.bpfman(
                    place,
                    ["load", "file", "-p", object, "--programs", "tracepoint:count_kill"]
                )
                let otherID = try #require(CLI.row("Program ID", in: other.stdout).flatMap { UInt32($0) })
                let second = try await Self.bpfman(
                    place,
                    ["attach", "\(otherID)", "tracepoint", "-t", DaemonKernelTests.tracepoint, "-m", "by=daemon"]
                )
                let secondLink = try #require(
                    CLI.row("Link ID", in: second.stdout).flatMap { UInt32($0) },
                    "\(second.stdout)\(second.stderr)"
                )
                #expect(secondLink == link + 1)
                #expect(place.stop() == 0)

                // The daemon is gone: the CLI in-process sees both links and undoes them.
                let links = try await Self.bpfman(place, ["list", "links"])
                #expect(links.status == 0, "\(links.stderr)")
                let rows = links.stdout.split(separator: "\n").dropFirst().map {
                    $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
                }
                #expect(rows.map { $0[1] } == ["\(link)", "\(secondLink)"], "\(links.stdout)")
                #expect(rows.allSatisfy { $0.last == DaemonKernelTests.tracepoint }, "\(links.stdout)")
                let detach = try await Self.bpfman(place, ["detach", "\(secondLink)"])
                #expect(detach.status == 0 && detach.stdout.isEmpty, "\(detach.stderr)")
                #expect(!Self.exists(place.runtimeDirectory + "/fs/links/\(secondLink)"))
                let unload = try await Self.bpfman(place, ["unload", "\(id)"])
                #expect(unload.status == 0, "\(unload.stderr)")
                let unloadOther = try await Self.bpfman(place, ["unload", "\(otherID)"])
                #expect(unloadOther.status == 0, "\(unloadOther.stderr)")
                #expect(!Self.exists(place.runtimeDirectory + "/fs/prog_\(otherID)"))
                #expect(!Self.exists(place.runtimeDirectory + "/fs/prog_\(id)"))
                #expect(!Self.exists(place.runtimeDirectory + "/fs/links/\(link)"))
                let gone = try await Self.bpfman(place, ["get", "program", "\(id)"])
                #expect(gone.status == 1)
                #expect(gone.stderr == "Error: NOT_FOUND: program \(id) does not exist\n", "\(gone.stderr)")

                // And a daemon started again finds nothing left.
                try place.start()
                let empty = try await Self.bpfman(place, ["list", "programs", "-o", "json"])
                #expect(empty.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "[]", "\(empty.stdout)")
            }
        }

        /// Two CLI processes at once on one runtime directory: the lock makes them take turns; every load gets
        /// its own program, and nothing is lost.
        @Test func cliProcessesRacingOnOneRuntimeDirectoryTakeTurns() async throws {
            let object = try DaemonKernelTests.tracepointObject
            try await Self.withPlace { place in
                let arguments = ["load", "file", "-p", object, "--programs", "tracepoint:count_kill"]
                async let a = Self.bpfman(place, arguments)
                async let b = Self.bpfman(place, arguments)
                async let c = Self.bpfman(place, arguments)
                async let d = Self.bpfman(place, ["list", "programs"])
                let loads = try await [a, b, c]
                let list = try await d
                #expect(list.status == 0, "\(list.stderr)")
                for load in loads { #expect(load.status == 0, "\(load.stdout)\(load.stderr)") }
                let ids = Set(loads.compactMap { CLI.row("Program ID", in: $0.stdout).flatMap { UInt32($0) } })
                #expect(ids.count == 3)
                let listed = try await Self.bpfman(place, ["list", "programs", "-o", "json"])
                let array = try #require(
                    try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]]
                )
                #expect(
                    Set(array.compactMap { ($0["kernel_info"] as? [String: Any])?["id"] as? Int })
                        == Set(ids.map { Int($0) })
                )
            }
        }

        /// Another holder of the lock (a daemon starting up, another CLI): the CLI waits for it, `--lock-timeout`
        /// at most, and goes on as soon as it is free.
        @Test func theCLIWaitsForTheRuntimeDirectoryLock() async throws {
            try await Self.withPlace { place in
                try FileManager.default.createDirectory(
                    atPath: place.runtimeDirectory,
                    withIntermediateDirectories: true
                )
                let fd = open(place.runtimeDirectory + "/.lock", O_RDWR | O_CREAT, 0o600)
                try #require(fd >= 0)
                defer { close(fd) }
                #expect(flock(fd, LOCK_EX) == 0)
                let started = Date()
                let refused = try await Self.bpfman(place, ["list", "programs", "--lock-timeout", "300ms"])
                #expect(refused.status == 1)
                #expect(
                    refused.stderr
                        == "Error: another bpfman process holds \(place.runtimeDirectory)/.lock and no daemon answers at \(place.socketPath) (waited 0.3 seconds)\n",
                    "\(refused.stderr)"
                )
                #expect(Date().timeIntervalSince(started) >= 0.3)
                // Released while a CLI waits: it goes on.
                async let waiting = Self.bpfman(place, ["list", "programs", "--lock-timeout", "20s"])
                try await Task.sleep(for: .milliseconds(500))
                flock(fd, LOCK_UN)
                let after = try await waiting
                #expect(after.status == 0, "\(after.stderr)")
                #expect(after.stdout.hasPrefix("Program ID  Application"), "\(after.stdout)")
            }
        }

        /// A daemon that stopped answering (SIGSTOP) does not hang the CLI: its deadline ends the call.
        @Test func aFrozenDaemonEndsInTheClientsDeadline() async throws {
            try await withDaemon { daemon in
                kill(daemon.pid, SIGSTOP)
                defer { kill(daemon.pid, SIGCONT) }
                let started = Date()
                let run = try await Self.bpfman(daemon, ["list", "programs", "--timeout", "1s"], timeout: 30)
                let elapsed = Date().timeIntervalSince(started)
                #expect(run.status == 1)
                #expect(
                    run.stderr
                        == "Error: DEADLINE_EXCEEDED: the bpfman daemon at \(daemon.socketPath) did not answer within 1.0 seconds\n",
                    "\(run.stderr)"
                )
                #expect(elapsed < 10, "took \(elapsed) s")
            }
        }

        /// A write error on stdout is an error of the command (exit 1), with or without a daemon.
        @Test func aFailedWriteToStandardOutputExitsNonZero() async throws {
            try await Self.withPlace { place in
                let full = try await Self.bpfman(place, ["list", "programs"], stdout: "/dev/full")
                #expect(full.status == 1)
                #expect(full.stderr == "Error: cannot write to standard output: No space left on device\n")
                let goEra = try await Self.bpfman(place, ["version"], stdout: "/dev/full")
                #expect(goEra.status == 1, "\(goEra.stderr)")
                try place.start()
                let viaDaemon = try await Self.bpfman(place, ["status"], stdout: "/dev/full")
                #expect(viaDaemon.status == 1)
                #expect(viaDaemon.stderr.hasPrefix("Error: cannot write to standard output"), "\(viaDaemon.stderr)")
            }
        }

        /// No daemon and no root: the message says how to start the daemon or to run as root; nothing is made.
        @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv"), "needs setpriv"))
        func withoutDaemonOrRootTheMessageSaysWhatToDo() async throws {
            try await Self.withPlace { place in
                // The directories must be reachable by nobody for it to run the binary and reach the socket path.
                chmod(place.directory, 0o755)
                let run = try await Self.bpfman(
                    place,
                    ["list", "programs"],
                    prefix: ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
                )
                #expect(run.status == 1, "\(run.stdout)\(run.stderr)")
                #expect(
                    run.stderr
                        == "Error: cannot reach the bpfman daemon at \(place.socketPath) and running in-process needs root: start it with 'systemctl start bpfman.socket' or 'bpfman serve', or run as root\n",
                    "\(run.stderr)"
                )
                #expect(!Self.exists(place.runtimeDirectory))
            }
        }

        /// A second `serve` on a socket a live daemon answers on refuses to start and names both; the first keeps
        /// serving. A stale socket file (nobody behind it) is replaced.
        @Test func serveRefusesALiveDaemonsSocketAndReplacesAStaleOne() async throws {
            try await withDaemon { daemon in
                let other = daemon.directory + "/rd2"
                let second = try await spawn(
                    DaemonTools.bpfman!,
                    [
                        "serve", "--socket-path", daemon.socketPath, "--runtime-dir", other, "--config",
                        daemon.directory + "/bpfman.toml", "--image-cache-dir", daemon.imageCacheDirectory,
                    ],
                    timeout: 30
                )
                #expect(second.status == 1, "\(second.output)")
                #expect(
                    second.output.contains(
                        "bpfman: another bpfman daemon is serving \(daemon.socketPath) (runtime directory \(daemon.runtimeDirectory)); stop it or choose another --socket-path\n"
                    ),
                    "\(second.output)"
                )
                #expect(!Self.exists(other), "the refused daemon made nothing")
                let still = try await Self.bpfman(daemon, ["status"])
                #expect(still.status == 0 && CLI.row("Runtime Dir", in: still.stdout) == daemon.runtimeDirectory)

                // Stale: the daemon killed outright leaves its socket file; the next one replaces it.
                daemon.stop(signal: SIGKILL)
                #expect(Self.exists(daemon.socketPath) && !TestDaemon.canConnect(daemon.socketPath))
                try daemon.start()
                let again = try await Self.bpfman(daemon, ["status"])
                #expect(again.status == 0, "\(again.stderr)")
            }
        }

        /// Images without a daemon: `image inspect` reads the image's manifest and config and prints its labels
        /// (caching nothing); a Go-era `program load image` in-process pulls and loads it, as a daemon would.
        @Test func imagesWithoutADaemon() async throws {
            let layout = try DaemonKernelTests.Images.tracepointLayout()
            defer { try? FileManager.default.removeItem(atPath: layout.directory) }
            // The fetcher reads the layout as user nobody (SPEC §8).
            chmod(layout.directory, 0o755)
            try await Self.withPlace { place in
                let reference = "oci:\(layout.directory):tp"
                let inspect = try await Self.bpfman(place, ["image", "inspect", reference])
                #expect(inspect.status == 0, "\(inspect.stderr)")
                let described = try Self.json(inspect.stdout)
                #expect(described["reference"] as? String == reference, "\(inspect.stdout)")
                #expect((described["digest"] as? String)?.hasPrefix("sha256:") == true)
                #expect(
                    described["programs"] as? [String: String] == [DaemonKernelTests.tracepointFunction: "tracepoint"]
                )
                #expect(described["maps"] as? [String: String] == ["counter": "array"])
                #expect(!Self.exists(place.runtimeDirectory), "inspect needs no runtime directory")

                // Inspecting cached nothing: a load that may not pull finds nothing; one that may, loads.
                let never = try await Self.bpfman(
                    place,
                    ["program", "load", "image", reference, "--programs", "tracepoint:count_kill", "-p", "never"]
                )
                #expect(never.status == 1 && never.stderr.contains("not in cache"), "\(never.stderr)")
                let load = try await Self.bpfman(
                    place,
                    ["program", "load", "image", reference, "--programs", "tracepoint:count_kill"]
                )
                #expect(load.status == 0, "\(load.stderr)")
                #expect(load.stdout.contains("    Image URL:      \(reference)\n"), "\(load.stdout)")
                #expect(load.stdout.contains("    Pull Policy:    IfNotPresent\n"), "\(load.stdout)")
                let missing = try await Self.bpfman(place, ["image", "inspect", "oci:\(layout.directory):nope"])
                #expect(missing.status == 1)
                #expect(missing.stderr.hasPrefix("bpfman: error: "), "\(missing.stderr)")
            }
        }

        /// Bash completion in the order users type: program ids after `attach`, the kinds after the id, the
        /// kind's options and values (interfaces, directions, actions) after that; ids come from the daemon.
        @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/bin/bash"), "needs bash"))
        func bashCompletesAttachInTheOrderUsersTypeIt() async throws {
            let object = try DaemonKernelTests.tracepointObject
            try await withDaemon { daemon in
                let load = try await Self.bpfman(
                    daemon,
                    ["load", "file", "-p", object, "--programs", "tracepoint:count_kill"]
                )
                let id = try #require(CLI.row("Program ID", in: load.stdout), "\(load.stdout)\(load.stderr)")
                let script = daemon.directory + "/bpfman.bash"
                let generated = try TestSupport.run(DaemonTools.bpfman!, ["--generate-completion-script", "bash"])
                #expect(generated.status == 0, "\(generated.output)")
                try generated.output.write(toFile: script, atomically: true, encoding: .utf8)
                // Each line: the words typed so far, the last one being completed.
                let driver = """
                    source \(script)
                    complete_words() {
                      COMP_WORDS=("$@"); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
                      COMPREPLY=()
                      _bpfman bpfman "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
                      echo "${COMPREPLY[*]}"
                    }
                    complete_words bpfman attach ""
                    complete_words bpfman attach \(id) ""
                    complete_words bpfman attach \(id) tc -d ""
                    complete_words bpfman attach \(id) xdp -i ""
                    complete_words bpfman attach \(id) xdp --proceed-on d
                    complete_words bpfman link attach tcx \(id) ""
                    complete_words bpfman program unload ""
                    """
                let bin = URL(fileURLWithPath: DaemonTools.bpfman!).deletingLastPathComponent().path
                let run = try TestSupport.run(
                    "bash",
                    ["-c", driver],
                    environment: [
                        "PATH": bin + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"),
                        "BPFMAN_SOCKET_PATH": daemon.socketPath,
                    ]
                )
                #expect(run.status == 0, "\(run.output)")
                let lines = run.output.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
                try #require(lines.count >= 7, "\(run.output)")
                let kinds = "xdp tc tcx tracepoint kprobe uprobe fentry fexit lsm"
                #expect(lines[0] == "\(id) \(kinds)")
                #expect(lines[1] == kinds)
                #expect(lines[2] == "ingress egress")
                #expect(lines[3].split(separator: " ").contains("lo"), "\(lines[3])")
                #expect(lines[4] == "drop dispatcher_return")
                #expect(lines[5].split(separator: " ").contains("lo"), "\(lines[5])")
                #expect(lines[6] == "\(id)")
            }
        }
    }
}
