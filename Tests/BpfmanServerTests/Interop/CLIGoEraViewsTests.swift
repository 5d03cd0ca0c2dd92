import Foundation
import TestSupport
import Testing

extension DaemonKernelTests.CLITrees {
    /// The Go-era detail views and JSON objects as upstream's Go CLI prints them (SPEC §9.4), with and without a
    /// daemon: `program get` (Spec, Status with one sub-section per link, Stats), `link get` (Spec, Status),
    /// `bpfman.Program` / `bpfman.Link` / `ProgramListEntry` / `LinkRecord` JSON, checked against the kernel
    /// (bpftool) and the pins on disk; and `program list -l/--selector` with upstream's label-selector syntax.
    @Test(arguments: [false, true])
    func goEraViewsAndSelector(daemon: Bool) async throws {
        typealias C = DaemonKernelTests.CLIWithoutDaemon
        let object = try DaemonKernelTests.tracepointObject
        try await Self.withPlace(daemon: daemon) { place in
            let fs = place.runtimeDirectory + "/fs"
            func load(_ metadata: [String]) async throws -> (id: Int, json: [String: Any]) {
                let load = try await Self.bpfman(
                    place,
                    ["program", "load", "file", object, "--programs", "tracepoint:count_kill", "-o", "json"] + metadata
                )
                #expect(load.status == 0, "\(load.stderr)")
                let program = try #require((try C.json(load.stdout)["programs"] as? [[String: Any]])?.first)
                return (try #require(C.dig(program, "record", "program_id") as? Int, "\(load.stdout)"), program)
            }
            let (id, loaded) = try await load(["-a", "demo", "-m", "owner=go", "-m", "tier=5"])
            #expect(C.dig(loaded, "record", "load", "program_type") as? String == "tracepoint")
            #expect(C.dig(loaded, "record", "load", "source_path") as? String == object)
            #expect(C.dig(loaded, "record", "load", "image_source") is NSNull)
            #expect(C.dig(loaded, "record", "load", "global_data") as? [String: String] == [:])
            #expect(C.dig(loaded, "record", "handles", "pin_path") as? String == "\(fs)/prog_\(id)")
            #expect(C.exists("\(fs)/prog_\(id)"))
            #expect(C.dig(loaded, "record", "handles", "map_pin_path") as? String == "\(fs)/maps/\(id)")
            #expect(C.dig(loaded, "record", "handles", "map_owner_id") is NSNull)
            #expect(
                C.dig(loaded, "record", "meta", "metadata") as? [String: String]
                    == ["bpfman.io/application": "demo", "owner": "go", "tier": "5"]
            )
            #expect(C.dig(loaded, "status", "kernel", "id") as? Int == id)
            #expect(C.dig(loaded, "status", "kernel", "program_type") as? String == "tracepoint")
            #expect(C.dig(loaded, "status", "links") as? [Any] != nil, "\(loaded)")
            #expect(C.dig(loaded, "status", "map_used_by") as? [Int] == [id])
            // The kernel's view is the kernel's: tag and map ids as bpftool reports them.
            let prog = try #require(
                try JSONSerialization.jsonObject(
                    with: Data(try TestSupport.run("bpftool", ["-j", "prog", "show", "id", "\(id)"]).output.utf8)
                ) as? [String: Any]
            )
            #expect(C.dig(loaded, "status", "kernel", "tag") as? String == prog["tag"] as? String)
            #expect(C.dig(loaded, "status", "kernel", "map_ids") as? [Int] == prog["map_ids"] as? [Int])
            #expect(
                (C.dig(loaded, "status", "maps") as? [[String: Any]])?.map { $0["id"] as? Int }
                    == (prog["map_ids"] as? [Int])
            )

            let attach = try await Self.bpfman(
                place,
                [
                    "link", "attach", "tracepoint", "\(id)", DaemonKernelTests.tracepoint, "-m", "role=probe", "-o",
                    "json",
                ]
            )
            #expect(attach.status == 0, "\(attach.stderr)")
            let attached = try C.json(attach.stdout)
            let link = try #require(C.dig(attached, "record", "id") as? Int, "\(attach.stdout)")
            #expect(C.dig(attached, "record", "program_id") as? Int == id)
            #expect(C.dig(attached, "record", "kind") as? String == "tracepoint")
            #expect(
                C.dig(attached, "record", "details") as? [String: String]
                    == ["group": "syscalls", "name": "sys_enter_kill"]
            )
            #expect(C.dig(attached, "record", "metadata") as? [String: String] == ["role": "probe"])
            #expect(C.dig(attached, "record", "pin_path") as? String == "\(fs)/links/\(link)")
            #expect(C.dig(attached, "status", "pin_present") as? Bool == true)
            // The kernel link id is the kernel's: bpftool shows that link running this program.
            let kernelLink = try #require(C.dig(attached, "record", "kernel_link_id") as? Int)
            let shown = try TestSupport.run("bpftool", ["-j", "link", "show", "id", "\(kernelLink)"])
            #expect(shown.output.contains("\"prog_id\":\(id)"), "\(shown.output)")

            // program get: Spec and Status fields ordered by label, one sub-section per link, then Stats.
            let get = try await Self.bpfman(place, ["program", "get", "\(id)"])
            #expect(get.status == 0, "\(get.stderr)")
            let lines = Self.lines(get.stdout)
            #expect(lines.first == "Program ID: \(id)")
            func labels(_ section: String) -> [String] {
                guard let start = lines.firstIndex(of: "  \(section):") else { return [] }
                return lines[(start + 1)...].prefix { $0.hasPrefix("    ") }.filter { !$0.hasPrefix("     ") }.map {
                    String($0.dropFirst(4).prefix { $0 != ":" })
                }
            }
            #expect(
                labels("Spec")
                    == [
                        "GPL Compatible", "Global", "Map Owner ID", "Map Pin Path", "Metadata", "Name", "Path", "Type",
                    ],
                "\(get.stdout)"
            )
            #expect(
                labels("Status")
                    == [
                        "BTF ID", "Instructions", "Kernel Type", "Loaded At", "Map Dir", "Maps Used By", "Memory",
                        "Prog Pin", "Size JITted", "Size Translated", "Tag", "Links", "Maps",
                    ],
                "\(get.stdout)"
            )
            #expect(get.stdout.contains("    Metadata:       bpfman.io/application=demo, owner=go, tier=5\n"))
            #expect(get.stdout.contains("    Prog Pin:        \(fs)/prog_\(id)\n"), "\(get.stdout)")
            #expect(
                get.stdout.contains(
                    "    Links:\n      \(link):\n        Attach: \(DaemonKernelTests.tracepoint)\n"
                        + "        Kind:   tracepoint\n        Pin:    \(fs)/links/\(link)\n"
                ),
                "\(get.stdout)"
            )
            let mapIDs = (prog["map_ids"] as? [Int] ?? []).map(String.init).joined(separator: " ")
            #expect(get.stdout.contains("    Maps:            [\(mapIDs)]\n  Stats:\n"), "\(get.stdout)")
            let getJSON = try C.json(try await Self.bpfman(place, ["program", "get", "\(id)", "-o", "json"]).stdout)
            #expect(C.dig(getJSON, "record", "program_id") as? Int == id)
            let links = try #require(C.dig(getJSON, "status", "links") as? [[String: Any]])
            #expect(links.map { C.dig($0, "record", "id") as? Int } == [link], "\(getJSON)")

            // link get: Spec ordered by label, Status with the pin's presence.
            let getLink = try await Self.bpfman(place, ["link", "get", "\(link)"])
            #expect(
                getLink.stdout == """
                    Link ID: \(link)
                      Spec:
                        BPF Function:   count_kill
                        Kernel Link ID: \(kernelLink)
                        Metadata:       role=probe
                        Pin Path:       \(fs)/links/\(link)
                        Program ID:     \(id)
                        Tracepoint:     \(DaemonKernelTests.tracepoint)
                        Type:           tracepoint
                      Status:
                        Pin Present: true

                    """,
                "\(getLink.stdout)"
            )
            let getLinkJSON = try C.json(try await Self.bpfman(place, ["link", "get", "\(link)", "-o", "json"]).stdout)
            #expect(NSDictionary(dictionary: getLinkJSON).isEqual(to: attached), "\(getLinkJSON)")

            // The lists' JSON: ProgramListEntry and LinkRecord in their envelopes.
            let list = try C.json(try await Self.bpfman(place, ["program", "list", "-o", "json"]).stdout)
            let entry = try #require((list["programs"] as? [[String: Any]])?.first, "\(list)")
            #expect(entry["program_id"] as? Int == id && entry["managed"] as? Bool == true)
            #expect(entry["application"] as? String == "demo" && entry["type"] as? String == "tracepoint")
            #expect(entry["function_name"] as? String == "count_kill" && entry["links"] as? [Int] == [link])
            #expect(C.dig(entry, "record", "program_id") as? Int == id && C.dig(entry, "kernel", "id") as? Int == id)
            let linkList = try C.json(try await Self.bpfman(place, ["link", "list", "-o", "json"]).stdout)
            let linkRecord = try #require((linkList["links"] as? [[String: Any]])?.first, "\(linkList)")
            #expect(
                NSDictionary(dictionary: linkRecord).isEqual(to: attached["record"] as? [String: Any] ?? [:]),
                "\(linkRecord)"
            )

            // -l/--selector: upstream's label selectors over the programs' metadata.
            let (other, _) = try await load(["-m", "owner=rust"])
            let cases: [(String, [Int])] = [
                ("owner=go", [id]), ("owner==go", [id]), ("owner!=go", [other]), ("owner in (go, rust)", [id, other]),
                ("owner notin (go)", [other]), ("!owner", []), ("owner", [id, other]), ("tier", [id]),
                ("!tier", [other]), ("tier>4", [id]), ("tier<5", []), ("owner=go,tier=5", [id]),
                ("bpfman.io/application=demo", [id]), ("owner=go,owner=rust", []),
            ]
            for (selector, expected) in cases {
                let run = try await Self.bpfman(place, ["program", "list", "-q", "-l", selector])
                #expect(run.status == 0, "\(selector): \(run.stderr)")
                #expect(Self.lines(run.stdout).compactMap { Int($0) }.sorted() == expected.sorted(), "\(selector)")
            }
            let long = try await Self.bpfman(
                place,
                ["program", "list", "-q", "--selector", "owner=rust", "-m", "owner=rust"]
            )
            #expect(long.stdout == "\(other)\n", "\(long.stdout)\(long.stderr)")
            for bad in ["owner in go", "owner=a=b", "a b=c", "(owner)"] {
                let run = try await Self.bpfman(place, ["program", "list", "-l", bad])
                #expect(run.status == 1, "\(bad): \(run.stdout)")
                #expect(run.stderr.hasPrefix("bpfman: error: invalid label selector: "), "\(bad): \(run.stderr)")
            }

            let unload = try await Self.bpfman(place, ["program", "unload", "\(id)", "\(other)"])
            #expect(unload.status == 0, "\(unload.stderr)")
            #expect(!C.exists("\(fs)/links/\(link)") && !C.exists("\(fs)/prog_\(id)"))
        }
    }
}
