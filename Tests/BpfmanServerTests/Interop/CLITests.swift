import BpfmanEngine
import Foundation
import TestSupport
import Testing

extension DaemonKernelTests {
    /// The `bpfman` CLI driven as a person would, against a real daemon (SPEC §9).
    @Suite struct CLI {
        /// Runs `bpfman ARGS` with the daemon's socket in `$BPFMAN_SOCKET_PATH`.
        static func bpfman(_ daemon: TestDaemon, _ arguments: [String]) async throws -> SpawnResult {
            try await spawn(
                DaemonTools.bpfman!,
                arguments,
                environment: ["BPFMAN_SOCKET_PATH": daemon.socketPath],
                timeout: 60
            )
        }

        static func json(_ text: String) throws -> Any {
            try JSONSerialization.jsonObject(with: Data(text.utf8))
        }

        /// The value of a "Key:" row of a block.
        static func row(_ key: String, in output: String) -> String? {
            output.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
                .first { $0.hasPrefix(key + ":") }
                .map { String($0.dropFirst(key.count + 1)).trimmingCharacters(in: .whitespaces) }
        }

        @Test func loadAttachListGetDetachUnload() async throws {
            let object = try DaemonKernelTests.tracepointObject
            try await withDaemon { daemon in
                // load file: a relative path is made absolute by the CLI.
                let cwd = FileManager.default.currentDirectoryPath
                let relative = object.hasPrefix(cwd + "/") ? String(object.dropFirst(cwd.count + 1)) : object
                let load = try await Self.bpfman(
                    daemon,
                    [
                        "load", "file", "-p", relative, "--programs", "tracepoint:count_kill", "-m", "owner=cli,team=a",
                        "-a", "demo",
                    ]
                )
                #expect(load.status == 0, "\(load.output)")
                let id = try #require(Self.row("Program ID", in: load.output).flatMap { UInt32($0) }, "\(load.output)")
                #expect(Self.row("BPF Function", in: load.output) == "count_kill")
                #expect(Self.row("Path", in: load.output) == object)
                #expect(load.output.contains("bpfman_application=demo") && load.output.contains("owner=cli"))

                let attach = try await Self.bpfman(
                    daemon,
                    ["attach", "\(id)", "tracepoint", "-t", DaemonKernelTests.tracepoint, "-m", "role=probe"]
                )
                #expect(attach.status == 0, "\(attach.output)")
                let link = try #require(
                    Self.row("Link ID", in: attach.output).flatMap { UInt32($0) },
                    "\(attach.output)"
                )
                #expect(Self.row("Tracepoint", in: attach.output) == DaemonKernelTests.tracepoint)
                #expect(Self.row("Metadata", in: attach.output) == "role=probe")
                // SPEC §6.5: the daemon keeps the program and its link through pins, not fds.
                #expect(daemon.bpfDescriptors.isEmpty, "daemon fds with a link attached: \(daemon.bpfDescriptors)")

                let list = try await Self.bpfman(daemon, ["list", "programs"])
                #expect(list.status == 0, "\(list.output)")
                let lines = list.output.split(separator: "\n").map(String.init)
                #expect(lines.first == "Program ID  Application  Type        Function Name  Links")
                let rowLine = try #require(lines.first { $0.hasPrefix("\(id) ") }, "\(list.output)")
                #expect(
                    rowLine.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
                        == ["\(id)", "demo", "tracepoint", "count_kill", "(1)", "\(link)"]
                )

                let links = try await Self.bpfman(daemon, ["list", "links", "--program-id", "\(id)"])
                #expect(links.output.contains(DaemonKernelTests.tracepoint), "\(links.output)")

                let getLink = try await Self.bpfman(daemon, ["get", "link", "\(link)"])
                #expect(Self.row("Program ID", in: getLink.output) == "\(id)", "\(getLink.output)")
                #expect(Self.row("Link Type", in: getLink.output) == "tracepoint")
                #expect(Self.row("Metadata", in: getLink.output) == "role=probe", "\(getLink.output)")

                let getJSON = try await Self.bpfman(daemon, ["get", "program", "\(id)", "-o", "json"])
                #expect(getJSON.status == 0, "\(getJSON.output)")
                let got = try #require(try Self.json(getJSON.output) as? [String: Any], "\(getJSON.output)")
                let info = try #require(got["info"] as? [String: Any])
                let kernel = try #require(got["kernel_info"] as? [String: Any])
                let details = try #require(got["details"] as? [String: Any])
                #expect(info["links"] as? [Int] == [Int(link)])
                #expect(info["name"] as? String == "count_kill")
                #expect((info["metadata"] as? [String: String])?["bpfman_application"] == "demo")
                #expect(kernel["id"] as? Int == Int(id))
                #expect(kernel["program_type"] as? Int == 5)
                #expect(details["kind"] as? String == "tracepoint")

                let listJSON = try await Self.bpfman(daemon, ["list", "links", "-o", "json"])
                let linkArray = try #require(try Self.json(listJSON.output) as? [[String: Any]], "\(listJSON.output)")
                #expect(linkArray.map { $0["link_id"] as? Int } == [Int(link)])

                let status = try await Self.bpfman(daemon, ["status"])
                #expect(status.status == 0, "\(status.output)")
                #expect(
                    Self.row("XDP/TC Attach Mode", in: status.output)?.hasPrefix("native (") == true,
                    "\(status.output)"
                )
                #expect(Self.row("Programs", in: status.output) == "1")
                #expect(Self.row("Links", in: status.output) == "1")
                #expect(
                    status.output.contains(
                        "Kind  Interface  Netns  Direction  Revision  Dispatcher Program ID  Members"
                    )
                )
                // kernel_features (SPEC §3.9) are the engine's start-up probe (TCX by BPF_PROG_QUERY, not by the kernel
                // version), plus the dispatcher's freplace probe.
                let statusJSON = try await Self.bpfman(daemon, ["status", "-o", "json"])
                let statusObject = try #require(try Self.json(statusJSON.output) as? [String: Any])
                var features = try #require(statusObject["kernel_features"] as? [String: Bool], "\(statusJSON.output)")
                #expect(features.removeValue(forKey: "freplace") != nil, "\(statusJSON.output)")
                #expect(
                    features == ProbedKernelFeatures.probe().reported(freplace: false).filter { $0.key != "freplace" },
                    "\(statusJSON.output)"
                )

                let detach = try await Self.bpfman(daemon, ["detach", "\(link)"])
                #expect(detach.status == 0 && detach.output.isEmpty, "\(detach.output)")
                let again = try await Self.bpfman(daemon, ["detach", "\(link)"])
                #expect(again.status == 1)
                #expect(again.output == "Error: NOT_FOUND: link \(link) does not exist\n")
                let ignored = try await Self.bpfman(daemon, ["detach", "\(link)", "--ignore-missing"])
                #expect(ignored.status == 0, "\(ignored.output)")

                let unload = try await Self.bpfman(daemon, ["unload", "\(id)"])
                #expect(unload.status == 0 && unload.output.isEmpty, "\(unload.output)")
                let gone = try await Self.bpfman(daemon, ["get", "program", "\(id)"])
                #expect(gone.status == 1)
                #expect(gone.output == "Error: NOT_FOUND: program \(id) does not exist\n")
                let empty = try await Self.bpfman(daemon, ["list", "programs", "-o", "json"])
                #expect(
                    try Self.json(empty.output) as? [Any] != nil && (try Self.json(empty.output) as? [Any])!.isEmpty
                )
            }
        }

        /// SPEC §10 scenario 6 from the command line: `-g NAME=HEX` and `-m` reach the daemon, Get and List
        /// return them byte for byte (base64 in JSON), and bad globals are refused with SPEC's messages.
        @Test func globalDataAndMetadataRoundTripThroughLoadGetAndList() async throws {
            let object = try BPFFixtures.object("tracepoint_multi")
            try await withDaemon { daemon in
                let load = try await Self.bpfman(
                    daemon,
                    [
                        "load", "file", "-p", object, "--programs", "tracepoint:multi_kill",
                        "-g", "increment=0x05000000", "-g", "bias=0x0100000000000000",
                        "-m", "owner=test-team", "-m", "environment=e2e-testing",
                    ]
                )
                #expect(load.status == 0, "\(load.output)")
                let id = try #require(Self.row("Program ID", in: load.output).flatMap { UInt32($0) }, "\(load.output)")
                #expect(Self.row("Global", in: load.output) == "bias=0x0100000000000000, increment=0x05000000")

                let expectedGlobals = ["increment": "BQAAAA==", "bias": "AQAAAAAAAAA="]
                let expectedMetadata = ["owner": "test-team", "environment": "e2e-testing"]
                let get = try await Self.bpfman(daemon, ["get", "program", "\(id)", "-o", "json"])
                let got = try #require(try Self.json(get.output) as? [String: Any], "\(get.output)")
                let info = try #require(got["info"] as? [String: Any], "\(get.output)")
                #expect(info["global_data"] as? [String: String] == expectedGlobals, "\(get.output)")
                #expect(info["metadata"] as? [String: String] == expectedMetadata, "\(get.output)")

                let list = try await Self.bpfman(daemon, ["list", "programs", "-o", "json"])
                let listed = try #require(try Self.json(list.output) as? [[String: Any]], "\(list.output)")
                let entry = try #require(
                    listed.first { ($0["kernel_info"] as? [String: Any])?["id"] as? Int == Int(id) },
                    "\(list.output)"
                )
                let listedInfo = try #require(entry["info"] as? [String: Any])
                #expect(listedInfo["global_data"] as? [String: String] == expectedGlobals, "\(list.output)")
                #expect(listedInfo["metadata"] as? [String: String] == expectedMetadata, "\(list.output)")

                let unknown = try await Self.bpfman(
                    daemon,
                    ["load", "file", "-p", object, "--programs", "tracepoint:multi_kill", "-g", "nope=01"]
                )
                #expect(unknown.status == 1)
                #expect(
                    unknown.output.hasPrefix("Error: INVALID_ARGUMENT: global variable \"nope\" not found"),
                    "\(unknown.output)"
                )
                let short = try await Self.bpfman(
                    daemon,
                    ["load", "file", "-p", object, "--programs", "tracepoint:multi_kill", "-g", "increment=01"]
                )
                #expect(short.status == 1)
                #expect(short.output.contains("is 4 bytes but 1 bytes were given"), "\(short.output)")

                let unload = try await Self.bpfman(daemon, ["unload", "\(id)"])
                #expect(unload.status == 0, "\(unload.output)")
                let managed = try await Self.bpfman(daemon, ["list", "programs", "-o", "json"])
                #expect((try Self.json(managed.output) as? [Any])?.isEmpty == true, "refused loads left nothing")
            }
        }

        @Test func errorsAreReadableWithStatusNamesAndExitCodes() async throws {
            let object = try DaemonKernelTests.tracepointObject
            try await withDaemon { daemon in
                let wrongType = try await Self.bpfman(
                    daemon,
                    ["load", "file", "-p", object, "--programs", "xdp:count_kill"]
                )
                #expect(wrongType.status == 1)
                #expect(
                    wrongType.output.hasPrefix(
                        "Error: INVALID_ARGUMENT: program type mismatch: count_kill was requested as xdp"
                    ),
                    "\(wrongType.output)"
                )
                let missing = try await Self.bpfman(daemon, ["attach", "4000000000", "tracepoint", "-t", "a/b"])
                #expect(missing.output == "Error: NOT_FOUND: program 4000000000 does not exist\n", "\(missing.output)")
                // A registry on a loopback port where nothing listens: the pull fails, nothing leaves this machine.
                let pull = try await Self.bpfman(daemon, ["image", "pull", "-i", "127.0.0.1:1/xdp_pass:latest"])
                #expect(
                    pull.status == 1
                        && pull.output.hasPrefix("Error: INTERNAL: failed to pull image 127.0.0.1:1/xdp_pass:latest: "),
                    "\(pull.output)"
                )
                // Usage errors: exit 2.
                let usage = try await Self.bpfman(daemon, ["load", "file", "-p", object, "--programs", "bogus"])
                #expect(usage.status == 2, "\(usage.output)")
                let noKind = try await Self.bpfman(daemon, ["attach", "12"])
                #expect(noKind.status == 2, "\(noKind.output)")
                #expect(
                    noKind.output.hasPrefix("Error: 'bpfman attach 12' needs the kind of attachment next"),
                    "\(noKind.output)"
                )
                // A command's own check of its options points at that command's usage.
                let badAction = try await Self.bpfman(
                    daemon,
                    ["attach", "12", "xdp", "-i", "lo", "-p", "1", "--proceed-on", "bogus"]
                )
                #expect(badAction.status == 2, "\(badAction.output)")
                #expect(badAction.output.hasPrefix("Error: unknown XDP action \"bogus\""), "\(badAction.output)")
                #expect(
                    badAction.output.contains("\nUsage: bpfman attach <program-id> xdp -i <iface> -p <priority> "),
                    "\(badAction.output)"
                )
                #expect(badAction.output.contains("See 'bpfman attach xdp --help'"), "\(badAction.output)")
                let bareGroup = try await Self.bpfman(daemon, ["list"])
                #expect(bareGroup.status == 2, "\(bareGroup.output)")
                #expect(
                    bareGroup.output.hasPrefix("Error: 'bpfman list' requires a subcommand: programs, links\n"),
                    "\(bareGroup.output)"
                )
                // No daemon at the socket: the CLI runs in-process on the runtime directory, which this daemon
                // holds locked; it waits --lock-timeout for it, then says so (SPEC §9).
                let down = try await spawn(
                    DaemonTools.bpfman!,
                    [
                        "list", "programs", "-s", daemon.directory + "/nobody.sock", "--runtime-dir",
                        daemon.runtimeDirectory, "--lock-timeout", "200ms",
                    ]
                )
                #expect(down.status == 1)
                #expect(
                    down.output
                        == "Error: another bpfman process holds \(daemon.runtimeDirectory)/.lock and no daemon answers at \(daemon.directory)/nobody.sock (waited 0.2 seconds)\n",
                    "\(down.output)"
                )
                let help = try await spawn(DaemonTools.bpfman!, ["attach", "12", "uprobe", "--help"])
                #expect(help.status == 0 && help.output.contains("--container-pid"), "\(help.output)")
            }
        }
    }
}
