import Foundation
import TestSupport
import Testing

extension DaemonKernelTests.CLITrees {
    /// The Go-era reference's forms that `goEraTree` does not type (SPEC §9.4), each as upstream writes it, with
    /// and without a daemon: TC and TCX attaches with their positional interface and direction on a veth, a
    /// uprobe on `libc -f getpid`, the list filters `-p`, `--type`, `--application`, `--program-id`, `dispatcher
    /// list|get`, and multi-id detach and unload. (kprobe, fentry, fexit and LSM attach need kernel B, where the
    /// engine's own suites run them; this kernel has no kprobes and no BTF for fentry.)
    @Test(arguments: [false, true])
    func goEraReferenceForms(daemon: Bool) async throws {
        let tcObject = try BPFFixtures.object("tc_counter")
        let tcxObject = try BPFFixtures.object("tcx_counter")
        let uprobeObject = try BPFFixtures.object("uprobe_counter")
        try await Self.withPlace(daemon: daemon) { place in
            func load(_ object: String, _ programs: String, _ extra: [String] = []) async throws -> Int {
                let load = try await Self.bpfman(
                    place,
                    ["program", "load", "file", object, "--programs", programs, "-o", "json"] + extra
                )
                #expect(load.status == 0, "\(programs): \(load.stderr)")
                let loaded = try DaemonKernelTests.CLIWithoutDaemon.json(load.stdout)["programs"] as? [[String: Any]]
                return try #require(
                    DaemonKernelTests.CLIWithoutDaemon.dig(loaded?.first, "record", "program_id") as? Int,
                    "\(load.stdout)"
                )
            }
            func linkID(_ run: Run) throws -> Int {
                let first = try #require(Self.lines(run.stdout).first, "\(run.stdout)\(run.stderr)")
                return try #require(first.hasPrefix("Link ID: ") ? Int(first.dropFirst(9)) : nil, "\(run.stdout)")
            }
            let tc = try await load(tcObject, "tc:tc_count_pipe", ["-a", "ref", "-m", "team=net"])
            let tcx = try await load(tcxObject, "tcx:tcx_count")
            let uprobe = try await load(uprobeObject, "uprobe:count_call")

            try await Self.withVeth("goref") { netns, iface in
                // bpfman link attach tc <id> <iface> <direction> -p N -n PATH --proceed-on A,B
                let tcAttach = try await Self.bpfman(
                    place,
                    [
                        "link", "attach", "tc", "\(tc)", iface, "ingress", "-p", "5", "-n", netns, "--proceed-on",
                        "pipe,dispatcher_return",
                    ]
                )
                #expect(tcAttach.status == 0, "\(tcAttach.stderr)")
                let tcLink = try linkID(tcAttach)
                #expect(tcAttach.stdout.contains("    Direction:         ingress\n"), "\(tcAttach.stdout)")
                #expect(tcAttach.stdout.contains("    Interface:         \(iface)\n"), "\(tcAttach.stdout)")
                #expect(
                    tcAttach.stdout.contains("    Proceed On:        pipe, dispatcher_return\n"),
                    "\(tcAttach.stdout)"
                )
                // bpfman link attach tcx <id> <iface> <direction> -p N -n PATH
                let tcxAttach = try await Self.bpfman(
                    place,
                    ["link", "attach", "tcx", "\(tcx)", iface, "ingress", "-p", "7", "-n", netns]
                )
                #expect(tcxAttach.status == 0, "\(tcxAttach.stderr)")
                let tcxLink = try linkID(tcxAttach)
                // bpfman link attach uprobe <id> <target> -f FN
                let uprobeAttach = try await Self.bpfman(
                    place,
                    ["link", "attach", "uprobe", "\(uprobe)", "libc", "-f", "getpid"]
                )
                #expect(uprobeAttach.status == 0, "\(uprobeAttach.stderr)")
                let uprobeLink = try linkID(uprobeAttach)
                #expect(uprobeAttach.stdout.contains("    Target Function: getpid\n"), "\(uprobeAttach.stdout)")

                // The list filters, each as upstream spells it.
                let byProgram = try await Self.bpfman(place, ["link", "list", "--program-id", "\(tc)", "-q"])
                #expect(byProgram.stdout == "\(tcLink)\n", "\(byProgram.stdout)\(byProgram.stderr)")
                let byKind = try await Self.bpfman(place, ["link", "list", "--kind", "tcx", "-q"])
                #expect(byKind.stdout == "\(tcxLink)\n", "\(byKind.stdout)\(byKind.stderr)")
                let byApplication = try await Self.bpfman(place, ["link", "list", "--application", "ref", "-q"])
                #expect(byApplication.stdout == "\(tcLink)\n", "\(byApplication.stdout)")
                let byOwnerMetadata = try await Self.bpfman(place, ["link", "list", "-m", "team=net", "-q"])
                #expect(byOwnerMetadata.stdout == "\(tcLink)\n", "\(byOwnerMetadata.stdout)")
                let uprobes = try await Self.bpfman(place, ["program", "list", "--type", "uprobe", "-q"])
                #expect(uprobes.stdout == "\(uprobe)\n", "\(uprobes.stdout)\(uprobes.stderr)")
                let tcFamily = try await Self.bpfman(place, ["program", "list", "-p", "tc,tcx", "-q"])
                #expect(Set(Self.lines(tcFamily.stdout)) == ["\(tc)", "\(tcx)"], "\(tcFamily.stdout)")
                let application = try await Self.bpfman(place, ["program", "list", "--application", "ref", "-q"])
                #expect(application.stdout == "\(tc)\n", "\(application.stdout)")
                let links = try await Self.bpfman(place, ["link", "list"])
                let tcRow = try #require(Self.lines(links.stdout).first { Self.words($0).first == "\(tcLink)" })
                #expect(tcRow.hasSuffix("\(iface) ingress pos-0 netns=\(netns)"), "\(links.stdout)")

                // bpfman dispatcher list / get <type> <nsid> <ifindex>: the TC dispatcher in dispatcher mode,
                // nothing in native mode (this kernel without freplace).
                let dispatchers = try await Self.bpfman(place, ["dispatcher", "list", "-o", "json"])
                #expect(dispatchers.status == 0, "\(dispatchers.stderr)")
                let listed =
                    try DaemonKernelTests.CLIWithoutDaemon.json(dispatchers.stdout)["dispatchers"] as? [[String: Any]]
                    ?? []
                if let first = listed.first {
                    let type = try #require(first["type"] as? String)
                    let nsid = try #require(first["nsid"] as? Int)
                    let ifindex = try #require(first["ifindex"] as? Int)
                    let get = try await Self.bpfman(place, ["dispatcher", "get", type, "\(nsid)", "\(ifindex)"])
                    #expect(get.status == 0, "\(get.stderr)")
                } else {
                    let text = try await Self.bpfman(place, ["dispatcher", "list"])
                    #expect(text.status == 0 && text.stdout.isEmpty, "\(text.stdout)")
                    let get = try await Self.bpfman(place, ["dispatcher", "get", "tc-ingress", "1", "1"])
                    #expect(get.status == 1 && get.stderr.hasPrefix("bpfman: error: "), "\(get.stderr)")
                }

                // bpfman link detach <id>... and program unload <id>...
                let detach = try await Self.bpfman(
                    place,
                    ["link", "detach", "\(tcLink)", "\(tcxLink)", "\(uprobeLink)"]
                )
                #expect(detach.status == 0, "\(detach.stderr)")
                let none = try await Self.bpfman(place, ["link", "list", "-q"])
                #expect(none.stdout.isEmpty, "\(none.stdout)")
            }
            let unload = try await Self.bpfman(place, ["program", "unload", "\(tc)", "\(tcx)", "\(uprobe)"])
            #expect(unload.status == 0, "\(unload.stderr)")
            let empty = try await Self.bpfman(place, ["program", "list"])
            #expect(empty.status == 0 && empty.stdout.isEmpty, "\(empty.stdout)")
        }
    }
}
