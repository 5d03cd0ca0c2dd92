import Foundation
import TestSupport
import Testing

/// Both upstream command trees as their users type them (SPEC §9.1 and §9.4), each with and without a daemon:
/// the Go-era noun-verb tree with its tables, envelopes, multi-id commands and exit codes, and the Rust-era
/// tree's upstream spellings (space-separated lists, metadata selectors, type names, attachment text).
extension DaemonKernelTests {
    @Suite struct CLITrees {
        typealias Run = CLIWithoutDaemon.Run

        /// A place with or without a daemon on it, for `body`.
        static func withPlace(daemon: Bool, _ body: (TestDaemon) async throws -> Void) async throws {
            try await CLIWithoutDaemon.withPlace { place in
                if daemon { try place.start() }
                try await body(place)
                if daemon {
                    #expect(place.log.contains("rpc=List"), "with a daemon, the calls went through it")
                } else {
                    #expect(!TestDaemon.canConnect(place.socketPath))
                }
            }
        }

        static func bpfman(_ place: TestDaemon, _ arguments: [String]) async throws -> Run {
            try await CLIWithoutDaemon.bpfman(place, arguments)
        }

        static func lines(_ text: String) -> [String] {
            text.split(separator: "\n").map(String.init)
        }

        static func words(_ line: String) -> [String] {
            line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        }

        /// A veth pair in a test network namespace, removed afterwards.
        static func withVeth(
            _ name: String,
            _ body: (_ netnsPath: String, _ iface: String) async throws -> Void
        )
            async throws
        {
            let netns = "\(name)-\(getpid())"
            _ = try TestSupport.run("ip", ["netns", "add", netns])
            defer { _ = try? TestSupport.run("ip", ["netns", "del", netns]) }
            let veth = try TestSupport.run(
                "ip",
                ["-n", netns, "link", "add", "\(name)0", "type", "veth", "peer", "name", "\(name)1"]
            )
            try #require(veth.status == 0, "\(veth.output)")
            _ = try TestSupport.run("ip", ["-n", netns, "link", "set", "\(name)0", "up"])
            _ = try TestSupport.run("ip", ["-n", netns, "link", "set", "\(name)1", "up"])
            try await body("/var/run/netns/\(netns)", "\(name)0")
        }

        @Test(arguments: [false, true])
        func goEraTree(daemon: Bool) async throws {
            let object = try DaemonKernelTests.tracepointObject
            let xdpObject = try BPFFixtures.object("xdp_counter")
            try await Self.withPlace(daemon: daemon) { place in
                let empty = try await Self.bpfman(place, ["program", "list"])
                #expect(empty.status == 0 && empty.stdout.isEmpty, "empty lists print nothing: \(empty.stdout)")
                let load = try await Self.bpfman(
                    place,
                    [
                        "program", "load", "file", object, "--programs", "tracepoint:count_kill", "-a", "demo", "-m",
                        "owner=go", "-o", "json",
                    ]
                )
                #expect(load.status == 0, "\(load.stderr)")
                let loaded = try #require(
                    try CLIWithoutDaemon.json(load.stdout)["programs"] as? [[String: Any]],
                    "\(load.stdout)"
                )
                #expect(loaded.count == 1)
                let id = try #require(CLIWithoutDaemon.dig(loaded.first, "record", "program_id") as? Int)
                let metadata = CLIWithoutDaemon.dig(loaded.first, "record", "meta", "metadata") as? [String: String]
                #expect(metadata == ["bpfman.io/application": "demo", "owner": "go"])

                let list = try await Self.bpfman(place, ["program", "list"])
                #expect(
                    Self.lines(list.stdout)
                        == [
                            "PROGRAM ID  APPLICATION  TYPE        FUNCTION NAME  LINK IDS",
                            "\(id)".padding(toLength: 12, withPad: " ", startingAt: 0)
                                + "demo         tracepoint  count_kill     <none>",
                        ],
                    "\(list.stdout)"
                )
                let unattached = try await Self.bpfman(place, ["program", "--unattached", "-q"])
                #expect(unattached.stdout == "\(id)\n", "\(unattached.stdout)\(unattached.stderr)")

                let attach = try await Self.bpfman(
                    place,
                    ["link", "attach", "tracepoint", "\(id)", DaemonKernelTests.tracepoint, "-m", "role=probe"]
                )
                #expect(attach.status == 0, "\(attach.stderr)")
                let linkLine = try #require(Self.lines(attach.stdout).first, "\(attach.stdout)")
                let link = try #require(linkLine.hasPrefix("Link ID: ") ? Int(linkLine.dropFirst(9)) : nil)
                #expect(attach.stdout.contains("\n  Spec:\n"), "\(attach.stdout)")
                #expect(
                    attach.stdout.contains("    Tracepoint:     \(DaemonKernelTests.tracepoint)\n"),
                    "\(attach.stdout)"
                )
                #expect(attach.stdout.contains("    Metadata:       role=probe\n"), "\(attach.stdout)")

                let attached = try await Self.bpfman(place, ["program", "list", "--attached", "-q"])
                #expect(attached.stdout == "\(id)\n")
                let otherType = try await Self.bpfman(place, ["program", "list", "--type", "xdp", "-q"])
                #expect(otherType.status == 0 && otherType.stdout.isEmpty, "\(otherType.stdout)")

                let links = try await Self.bpfman(place, ["link", "list"])
                let linkRows = Self.lines(links.stdout)
                #expect(
                    linkRows.first
                        == "LINK ID  KERNEL LINK ID  KIND        PROGRAM ID  APPLICATION  FUNCTION NAME  ATTACHMENT",
                    "\(links.stdout)"
                )
                let row = Self.words(try #require(linkRows.dropFirst().first))
                #expect(row.count == 7 && row[0] == "\(link)" && Int(row[1]) != nil, "\(links.stdout)")
                #expect(
                    Array(row[2...]) == ["tracepoint", "\(id)", "demo", "count_kill", DaemonKernelTests.tracepoint]
                )
                let linksJSON = try await Self.bpfman(place, ["link", "-o", "json"])
                let envelope = try #require(
                    try CLIWithoutDaemon.json(linksJSON.stdout)["links"] as? [[String: Any]],
                    "\(linksJSON.stdout)"
                )
                #expect(envelope.map { $0["id"] as? Int } == [link])

                let get = try await Self.bpfman(place, ["program", "get", "\(id)"])
                #expect(get.stdout.hasPrefix("Program ID: \(id)\n  Spec:\n"), "\(get.stdout)")
                #expect(get.stdout.contains("    Name:           count_kill\n"), "\(get.stdout)")
                #expect(
                    get.stdout.contains(
                        "    Links:\n      \(link):\n        Attach: \(DaemonKernelTests.tracepoint)\n"
                            + "        Kind:   tracepoint\n"
                    ),
                    "\(get.stdout)"
                )
                let getLink = try await Self.bpfman(place, ["link", "get", "\(link)", "-o", "json"])
                #expect(
                    CLIWithoutDaemon.dig(try CLIWithoutDaemon.json(getLink.stdout), "record", "program_id") as? Int
                        == id,
                    "\(getLink.stdout)"
                )

                // XDP with its positional interface, in a test namespace; the dispatcher list is empty in native
                // mode, which this kernel uses.
                try await Self.withVeth("cgx\(daemon ? "d" : "p")") { netns, iface in
                    let xdp = try await Self.bpfman(
                        place,
                        ["program", "load", "file", xdpObject, "--programs", "xdp:xdp_count_pass", "-o", "json"]
                    )
                    let xdpID = try #require(
                        CLIWithoutDaemon.dig(
                            (try CLIWithoutDaemon.json(xdp.stdout)["programs"] as? [Any])?.first,
                            "record",
                            "program_id"
                        ) as? Int,
                        "\(xdp.stdout)\(xdp.stderr)"
                    )
                    let attached = try await Self.bpfman(
                        place,
                        ["link", "attach", "xdp", "\(xdpID)", iface, "-p", "10", "-n", netns, "-o", "json"]
                    )
                    #expect(attached.status == 0, "\(attached.stderr)")
                    let xdpJSON = try CLIWithoutDaemon.json(attached.stdout)
                    let xdpLink = try #require(CLIWithoutDaemon.dig(xdpJSON, "record", "id") as? Int)
                    // The details as upstream's XDPDetails carry them; the interface index as ip reports it.
                    let ifindex = try #require(
                        Int(
                            try TestSupport.run(
                                "ip",
                                ["-n", (netns as NSString).lastPathComponent, "-o", "link", "show", iface]
                            )
                            .output.split(separator: ":").first ?? ""
                        )
                    )
                    let details = try #require(
                        CLIWithoutDaemon.dig(xdpJSON, "record", "details") as? [String: Any],
                        "\(attached.stdout)"
                    )
                    #expect(details["interface"] as? String == iface && details["ifindex"] as? Int == ifindex)
                    #expect(details["priority"] as? Int == 10 && details["position"] as? Int == 0)
                    #expect(details["netns"] as? String == netns && details["nsid"] is Int, "\(details)")
                    #expect(CLIWithoutDaemon.dig(xdpJSON, "record", "kind") as? String == "xdp")
                    let listed = try await Self.bpfman(place, ["link", "list", "--kind", "xdp"])
                    let xdpRow = try #require(Self.lines(listed.stdout).last, "\(listed.stdout)")
                    #expect(xdpRow.hasSuffix("  \(iface) pos-0 netns=\(netns)"), "\(listed.stdout)")
                    let missingPriority = try await Self.bpfman(place, ["link", "attach", "xdp", "\(xdpID)", iface])
                    #expect(missingPriority.status == 80, "\(missingPriority.stderr)")
                    #expect(missingPriority.stderr.hasPrefix("bpfman: error: "), "\(missingPriority.stderr)")
                    let detach = try await Self.bpfman(place, ["link", "detach", "\(xdpLink)"])
                    #expect(detach.status == 0, "\(detach.stderr)")
                    let unload = try await Self.bpfman(place, ["program", "unload", "\(xdpID)"])
                    #expect(unload.status == 0, "\(unload.stderr)")
                }
                let dispatchers = try await Self.bpfman(place, ["dispatcher", "list", "-o", "json"])
                #expect(
                    (try CLIWithoutDaemon.json(dispatchers.stdout)["dispatchers"] as? [Any])?.isEmpty == true,
                    "\(dispatchers.stdout)\(dispatchers.stderr)"
                )

                // Several ids: each failure reported, then the count; the others are done.
                let detach = try await Self.bpfman(place, ["link", "detach", "\(link)", "4000000"])
                #expect(detach.status == 1)
                #expect(
                    detach.stderr
                        == "link 4000000: link 4000000 does not exist\nbpfman: error: 1 of 2 link(s) failed to detach\n",
                    "\(detach.stderr)"
                )
                let ignored = try await Self.bpfman(place, ["link", "detach", "\(link)", "--ignore-missing"])
                #expect(ignored.status == 0, "\(ignored.stderr)")
                let unload = try await Self.bpfman(
                    place,
                    ["program", "unload", "\(id)", "4000000", "--ignore-missing"]
                )
                #expect(unload.status == 0 && unload.stdout.isEmpty, "\(unload.stderr)")
                let none = try await Self.bpfman(place, ["program", "list", "-o", "json"])
                #expect((try CLIWithoutDaemon.json(none.stdout)["programs"] as? [Any])?.isEmpty == true)
                let version = try await Self.bpfman(place, ["version"])
                #expect(version.stdout == "bpfman 0.1.0-dev\n")
            }
        }

        @Test(arguments: [false, true])
        func rustEraTreeAsUpstreamWritesIt(daemon: Bool) async throws {
            let object = try BPFFixtures.object("tracepoint_multi")
            let tcObject = try BPFFixtures.object("tc_counter")
            try await Self.withPlace(daemon: daemon) { place in
                // Space-separated values after one option, as upstream's CLI guide writes them.
                let load = try await Self.bpfman(
                    place,
                    [
                        "load", "file", "-p", object, "--programs", "tracepoint:multi_kill", "-m", "owner=a", "team=b",
                        "-g", "increment=05000000", "bias=0100000000000000",
                    ]
                )
                #expect(load.status == 0, "\(load.stderr)")
                let id = try #require(CLI.row("Program ID", in: load.stdout), "\(load.stdout)")
                #expect(CLI.row("Metadata", in: load.stdout) == "owner=a, team=b")
                #expect(CLI.row("Global", in: load.stdout) == "bias=0x0100000000000000, increment=0x05000000")
                for (selector, found) in [(["owner=a", "team=b"], true), (["owner=b"], false)] {
                    for spelling in ["-m", "--metadata-selector"] {
                        let list = try await Self.bpfman(place, ["list", "programs", spelling] + selector)
                        #expect(list.status == 0, "\(list.stderr)")
                        #expect(Self.lines(list.stdout).count == (found ? 2 : 1), "\(selector): \(list.stdout)")
                    }
                }
                // A program this runtime directory does not manage (one loaded on another) shows the kernel's part
                // only, as upstream prints it.
                try await CLIWithoutDaemon.withPlace { other in
                    let foreign = try await Self.bpfman(
                        other,
                        ["load", "file", "-p", object, "--programs", "tracepoint:multi_kill"]
                    )
                    let foreignID = try #require(CLI.row("Program ID", in: foreign.stdout), "\(foreign.stderr)")
                    let get = try await Self.bpfman(place, ["get", "program", foreignID])
                    #expect(get.status == 0 && get.stdout.hasPrefix(" Kernel State\n"), "\(get.stdout)\(get.stderr)")
                    #expect(CLI.row("Program ID", in: get.stdout) == foreignID)
                    #expect(!get.stdout.contains("Bpfman State"), "\(get.stdout)")
                }
                let byUpstreamName = try await Self.bpfman(place, ["list", "programs", "-p", "tracepoint"])
                #expect(Self.lines(byUpstreamName.stdout).count == 2, "\(byUpstreamName.stdout)")
                let probes = try await Self.bpfman(place, ["list", "programs", "-p", "probe"])
                #expect(Self.lines(probes.stdout).count == 1, "\(probes.stdout)")
                let attach = try await Self.bpfman(
                    place,
                    ["attach", id, "tracepoint", "-t", DaemonKernelTests.tracepoint]
                )
                #expect(attach.status == 0, "\(attach.stderr)")

                try await Self.withVeth("cgr\(daemon ? "d" : "p")") { netns, iface in
                    let tc = try await Self.bpfman(
                        place,
                        ["load", "file", "-p", tcObject, "--programs", "tc:tc_count_pipe"]
                    )
                    let tcID = try #require(CLI.row("Program ID", in: tc.stdout), "\(tc.stdout)\(tc.stderr)")
                    let tcAttach = try await Self.bpfman(
                        place,
                        [
                            "attach", tcID, "tc", "-d", "ingress", "-i", iface, "-p", "5", "-n", netns, "--proceed-on",
                            "pipe", "dispatcher_return",
                        ]
                    )
                    #expect(tcAttach.status == 0, "\(tcAttach.stderr)")
                    #expect(CLI.row("Proceed On", in: tcAttach.stdout) == "pipe, dispatcher_return")
                    let links = try await Self.bpfman(place, ["list", "links"])
                    let rows = Self.lines(links.stdout).dropFirst().map(Self.words)
                    // Attachment text as upstream prints it: column counting keeps working.
                    #expect(rows.contains { $0.suffix(3) == [iface, "ingress", "pos-0"] }, "\(links.stdout)")
                    #expect(rows.contains { $0.last == DaemonKernelTests.tracepoint }, "\(links.stdout)")
                    let unload = try await Self.bpfman(place, ["unload", tcID])
                    #expect(unload.status == 0, "\(unload.stderr)")
                }
                let unload = try await Self.bpfman(place, ["unload", id])
                #expect(unload.status == 0, "\(unload.stderr)")

                let version = try await Self.bpfman(place, ["list", "programs", "-V"])
                #expect(version.status == 2, "-V belongs before any subcommand, as with clap")
                let typo = try await Self.bpfman(place, ["lst", "programs"])
                #expect(typo.status == 2)
                #expect(
                    typo.stderr.hasPrefix(
                        "Error: unrecognized subcommand 'lst'; a similar subcommand exists: 'list'\n"
                    ),
                    "\(typo.stderr)"
                )
            }
            let version = try await spawn(DaemonTools.bpfman!, ["-V"])
            #expect(version.status == 0 && version.output == "bpfman 0.1.0-dev\n", "\(version.output)")
        }

        /// The examples of upstream's CLI guide (Rust era), with our fixtures for its objects and a test veth pair
        /// for `eno3`/`eno4` (hence the added `-n <netns>`): load with an application, attach one program to two
        /// interfaces, list by application, by type with `--all`, links by application and by type, get, detach,
        /// unload.
        @Test(arguments: [false, true])
        func theCLIGuidesExamples(daemon: Bool) async throws {
            let xdpObject = try BPFFixtures.object("xdp_counter")
            let tcObject = try BPFFixtures.object("tc_counter")
            try await Self.withPlace(daemon: daemon) { place in
                try await Self.withVeth("cgg\(daemon ? "d" : "p")") { netns, iface in
                    let peer = String(iface.dropLast()) + "1"
                    let load = try await Self.bpfman(
                        place,
                        [
                            "load", "file", "--path", xdpObject, "--programs", "xdp:xdp_count_pass", "--application",
                            "XdpPassProgram",
                        ]
                    )
                    let id = try #require(CLI.row("Program ID", in: load.stdout), "\(load.stdout)\(load.stderr)")
                    var links: [String] = []
                    for device in [iface, peer] {
                        let attach = try await Self.bpfman(
                            place,
                            ["attach", id, "xdp", "--iface", device, "--priority", "35", "-n", netns]
                        )
                        links.append(try #require(CLI.row("Link ID", in: attach.stdout), "\(attach.stderr)"))
                        #expect(CLI.row("Proceed On", in: attach.stdout) == "pass, dispatcher_return")
                    }
                    let byApplication = try await Self.bpfman(
                        place,
                        ["list", "programs", "--application", "XdpPassProgram"]
                    )
                    #expect(
                        Self.lines(byApplication.stdout).last.map(Self.words)
                            == [id, "XdpPassProgram", "xdp", "xdp_count_pass", "(2)", links[0] + ",", links[1]],
                        "\(byApplication.stdout)"
                    )
                    let tc = try await Self.bpfman(
                        place,
                        [
                            "load", "file", "-p", tcObject, "--programs", "tc:tc_count_pipe", "--application",
                            "TcPassProgram",
                        ]
                    )
                    let tcID = try #require(CLI.row("Program ID", in: tc.stdout), "\(tc.stderr)")
                    let tcAttach = try await Self.bpfman(
                        place,
                        ["attach", tcID, "tc", "-d", "ingress", "-i", iface, "-p", "40", "-n", netns]
                    )
                    let tcLink = try #require(CLI.row("Link ID", in: tcAttach.stdout), "\(tcAttach.stderr)")
                    let byType = try await Self.bpfman(place, ["list", "programs", "--all", "--program-type", "tc"])
                    let typeRows = Self.lines(byType.stdout).dropFirst().map(Self.words)
                    #expect(typeRows.contains { $0.prefix(4) == [tcID, "TcPassProgram", "tc", "tc_count_pipe"] })
                    #expect(!typeRows.contains { $0.first == id }, "\(byType.stdout)")
                    let linksByApplication = try await Self.bpfman(
                        place,
                        ["list", "links", "--application", "XdpPassProgram"]
                    )
                    let linkRows = Self.lines(linksByApplication.stdout).dropFirst().map(Self.words)
                    #expect(
                        Set(linkRows.map { Array($0.suffix(2)) }) == [[iface, "pos-0"], [peer, "pos-0"]],
                        "\(linksByApplication.stdout)"
                    )
                    let tcLinks = try await Self.bpfman(place, ["list", "links", "-p", "tc"])
                    #expect(
                        Self.lines(tcLinks.stdout).dropFirst().map(Self.words)
                            == [[tcID, tcLink, "TcPassProgram", "tc", "tc_count_pipe", iface, "ingress", "pos-0"]],
                        "\(tcLinks.stdout)"
                    )
                    let getProgram = try await Self.bpfman(place, ["get", "program", id])
                    #expect(CLI.row("Metadata", in: getProgram.stdout) == "bpfman_application=XdpPassProgram")
                    // One link a line with its attachment, as the guide shows it.
                    let programLines = Self.lines(getProgram.stdout)
                    let linksAt = try #require(
                        programLines.firstIndex { $0.hasPrefix(" Links:") },
                        "\(getProgram.stdout)"
                    )
                    let valueColumn = try #require(programLines[linksAt].firstIndex(of: links[0].first!))
                    #expect(
                        programLines[linksAt][valueColumn...] == "\(links[0]) (\(iface) pos-0)",
                        "\(getProgram.stdout)"
                    )
                    #expect(
                        programLines[linksAt + 1] == String(
                            repeating: " ",
                            count: programLines[linksAt].distance(
                                from: programLines[linksAt].startIndex,
                                to: valueColumn
                            )
                        ) + "\(links[1]) (\(peer) pos-0)",
                        "\(getProgram.stdout)"
                    )
                    let getLink = try await Self.bpfman(place, ["get", "link", links[1]])
                    #expect(CLI.row("Interface", in: getLink.stdout) == peer, "\(getLink.stdout)")
                    #expect(CLI.row("Priority", in: getLink.stdout) == "35")
                    let detach = try await Self.bpfman(place, ["detach", links[1]])
                    #expect(detach.status == 0, "\(detach.stderr)")
                    for program in [id, tcID] {
                        let unload = try await Self.bpfman(place, ["unload", program])
                        #expect(unload.status == 0, "\(unload.stderr)")
                    }
                    let none = try await Self.bpfman(place, ["list", "programs"])
                    #expect(Self.lines(none.stdout).count == 1, "\(none.stdout)")
                }
            }
        }
    }
}
