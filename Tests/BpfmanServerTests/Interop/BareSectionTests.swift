import Foundation
import TestSupport
import Testing

/// A function of the test bundle for the bare uprobe sections to probe; `@_cdecl` keeps its name in `.symtab`.
@_cdecl("bpfman_server_bare_uprobe_target")
@inline(never)
public func bpfmanServerBareUprobeTarget(_ value: Int32) -> Int32 {
    value &+ 2
}

/// Calls the target through an opaque pointer so the optimiser cannot drop the calls.
private let bareUprobeTarget: @convention(c) (Int32) -> Int32 = bpfmanServerBareUprobeTarget

/// The `bare_sections` fixture: one program per ELF section spelling of SPEC §4.2, each counting in its own slot
/// of the `hits` map (slots as in `Tests/Fixtures/bpf/bare_sections.bpf.c`).
enum BareSections {
    /// One program: its function, the `--programs` type it is loaded as, the kind bpfman records, and the
    /// `--programs` target (fentry/fexit/lsm only).
    struct Spelling: Sendable {
        var function: String
        var type: String
        var kind: String
        var target: String? = nil
        var argument: String { [type, function, target].compactMap { $0 }.joined(separator: ":") }
    }

    /// Every spelling kernel A loads: all but fentry, fexit and LSM, which it refuses (KERNEL.md).
    static let probesAndNetwork: [Spelling] = [
        Spelling(function: "tracepoint_bare", type: "tracepoint", kind: "tracepoint"),
        Spelling(function: "tracepoint_slash", type: "tracepoint", kind: "tracepoint"),
        Spelling(function: "tp_bare", type: "tracepoint", kind: "tracepoint"),
        Spelling(function: "tp_slash", type: "tracepoint", kind: "tracepoint"),
        // The API has KPROBE and UPROBE only: ret-ness comes from the section.
        Spelling(function: "kprobe_bare", type: "kprobe", kind: "kprobe"),
        Spelling(function: "kprobe_slash", type: "kprobe", kind: "kprobe"),
        Spelling(function: "kretprobe_bare", type: "kprobe", kind: "kretprobe"),
        Spelling(function: "kretprobe_slash", type: "kprobe", kind: "kretprobe"),
        Spelling(function: "uprobe_bare", type: "uprobe", kind: "uprobe"),
        Spelling(function: "uprobe_slash", type: "uprobe", kind: "uprobe"),
        Spelling(function: "uprobe_s_bare", type: "uprobe", kind: "uprobe"),
        Spelling(function: "uprobe_s_slash", type: "uprobe", kind: "uprobe"),
        Spelling(function: "uretprobe_bare", type: "uprobe", kind: "uretprobe"),
        Spelling(function: "uretprobe_slash", type: "uprobe", kind: "uretprobe"),
        Spelling(function: "uretprobe_s_bare", type: "uprobe", kind: "uretprobe"),
        Spelling(function: "uretprobe_s_slash", type: "uprobe", kind: "uretprobe"),
        Spelling(function: "xdp_bare", type: "xdp", kind: "xdp"),
        Spelling(function: "xdp_slash", type: "xdp", kind: "xdp"),
        Spelling(function: "xdp_frags_bare", type: "xdp", kind: "xdp"),
        Spelling(function: "xdp_frags_slash", type: "xdp", kind: "xdp"),
        Spelling(function: "classifier_bare", type: "tc", kind: "tc"),
        Spelling(function: "classifier_slash", type: "tcx", kind: "tcx"),
        Spelling(function: "tc_bare", type: "tc", kind: "tc"),
        Spelling(function: "tc_slash", type: "tcx", kind: "tcx"),
        Spelling(function: "tcx_bare", type: "tcx", kind: "tcx"),
        Spelling(function: "tcx_slash", type: "tc", kind: "tc"),
    ]

    /// fentry, fexit and LSM spellings with their load-time targets (kernel B). A sleepable LSM program needs a
    /// sleepable hook (file_open is one).
    static let tracing: [Spelling] = [
        Spelling(function: "fentry_bare", type: "fentry", kind: "fentry", target: "__x64_sys_getpgid"),
        Spelling(function: "fentry_slash", type: "fentry", kind: "fentry", target: "__x64_sys_getpgid"),
        Spelling(function: "fexit_bare", type: "fexit", kind: "fexit", target: "__x64_sys_getpgid"),
        Spelling(function: "fexit_slash", type: "fexit", kind: "fexit", target: "__x64_sys_getpgid"),
        Spelling(function: "lsm_bare", type: "lsm", kind: "lsm", target: "file_open"),
        Spelling(function: "lsm_slash", type: "lsm", kind: "lsm", target: "file_open"),
        Spelling(function: "lsm_s_bare", type: "lsm", kind: "lsm", target: "file_open"),
        Spelling(function: "lsm_s_slash", type: "lsm", kind: "lsm", target: "file_open"),
    ]

    /// Sleepable fentry/fexit spellings. The kernel lets such a program attach only to a function on its error
    /// injection list, and Debian's 6.1 kernel is built without CONFIG_FUNCTION_ERROR_INJECTION: it refuses every
    /// one of them ("<function> is not sleepable"), so kernel B can show only that bpfman took the section for
    /// its family and the sleepable flag reached the kernel.
    static let sleepableTracing: [Spelling] = [
        Spelling(function: "fentry_s_bare", type: "fentry", kind: "fentry", target: "__x64_sys_getpgid"),
        Spelling(function: "fentry_s_slash", type: "fentry", kind: "fentry", target: "__x64_sys_getpgid"),
        Spelling(function: "fexit_s_bare", type: "fexit", kind: "fexit", target: "__x64_sys_getpgid"),
        Spelling(function: "fexit_s_slash", type: "fexit", kind: "fexit", target: "__x64_sys_getpgid"),
    ]

    /// Slots of `hits` the counting tests read.
    enum Slot: UInt32 {
        case tracepointBare = 0
        case kprobeBare = 4
        case kretprobeBare = 6
        case uprobeBare = 8
        case uprobeSleepableBare = 10
        case uretprobeBare = 12
    }

    /// `bpftool prog show`'s type name of the program the kernel holds for `kind`: XDP and TC members are
    /// freplace (EXT) programs in dispatcher mode.
    static func kernelType(of kind: String, dispatcherMode: Bool) -> String {
        switch kind {
        case "tracepoint": "tracepoint"
        case "kprobe", "kretprobe", "uprobe", "uretprobe": "kprobe"
        case "xdp": dispatcherMode ? "ext" : "xdp"
        case "tc": dispatcherMode ? "ext" : "sched_cls"
        case "tcx": "sched_cls"
        case "fentry", "fexit": "tracing"
        default: kind
        }
    }

    /// Loads `spellings` from the fixture with one `bpfman load file` and checks each program as the daemon
    /// records it (`list programs`: kind, name) and as the kernel holds it (`bpftool prog show`: type, name).
    /// - Returns: program ids by function name.
    static func loadAndCheck(_ spellings: [Spelling], _ daemon: TestDaemon) async throws -> [String: String] {
        let object = try BPFFixtures.object("bare_sections")
        let load = try await DaemonKernelTests.CLI.bpfman(
            daemon,
            [
                "load", "file", "-p", object, "-o", "json", "--programs",
                spellings.map(\.argument).joined(separator: ","),
            ]
        )
        try #require(load.status == 0, "\(load.output)\n\(daemon.log)")
        let loaded = try #require(try DaemonKernelTests.CLI.json(load.output) as? [[String: Any]], "\(load.output)")
        #expect(loaded.count == spellings.count)
        var ids: [String: String] = [:]
        for entry in loaded {
            let name = try #require((entry["info"] as? [String: Any])?["name"] as? String, "\(entry)")
            let id = try #require((entry["kernel_info"] as? [String: Any])?["id"] as? Int, "\(entry)")
            ids[name] = "\(id)"
        }
        #expect(Set(ids.keys) == Set(spellings.map(\.function)), "\(load.output)")

        let list = try await DaemonKernelTests.CLI.bpfman(daemon, ["list", "programs", "-o", "json"])
        let listed = try #require(try DaemonKernelTests.CLI.json(list.output) as? [[String: Any]], "\(list.output)")
        var kinds: [String: String] = [:]
        for entry in listed {
            if let id = (entry["kernel_info"] as? [String: Any])?["id"] as? Int,
                let kind = (entry["details"] as? [String: Any])?["kind"] as? String
            {
                kinds["\(id)"] = kind
            }
        }
        let shown = try run("bpftool", ["-j", "prog", "show"])
        try #require(shown.status == 0, "\(shown.output)")
        let programs = try #require(try DaemonKernelTests.CLI.json(shown.output) as? [[String: Any]])
        var kernel: [String: (type: String, name: String)] = [:]
        for program in programs {
            if let id = program["id"] as? Int, let type = program["type"] as? String {
                kernel["\(id)"] = (type, program["name"] as? String ?? "")
            }
        }
        let dispatcherMode = daemon.log.contains("XDP/TC attach mode: dispatcher")
        for spelling in spellings {
            let id = try #require(ids[spelling.function])
            #expect(kinds[id] == spelling.kind, "\(spelling.function): recorded kind \(kinds[id] ?? "none")")
            let held = try #require(kernel[id], "program \(id) (\(spelling.function)) is not in the kernel")
            #expect(
                held.type == kernelType(of: spelling.kind, dispatcherMode: dispatcherMode),
                "\(spelling.function): the kernel holds a \(held.type) program"
            )
            // bpftool completes the kernel's 15-byte name from the program's BTF.
            #expect(held.name == spelling.function, "\(spelling.function): kernel name \(held.name)")
        }
        return ids
    }

    /// Slot `slot` of the `hits` map pinned for program `id`, read with bpftool.
    static func count(_ daemon: TestDaemon, program id: String, _ slot: Slot) throws -> UInt64 {
        let pin = daemon.runtimeDirectory + "/fs/maps/\(id)/hits"
        let key = withUnsafeBytes(of: slot.rawValue.littleEndian) { $0.map { "\($0)" } }
        let result = try run("bpftool", ["-j", "map", "lookup", "pinned", pin, "key"] + key)
        try #require(result.status == 0, "bpftool map lookup \(pin): \(result.output)")
        let entry = try #require(try DaemonKernelTests.CLI.json(result.output) as? [String: Any], "\(result.output)")
        let bytes = try #require(entry["value"] as? [String], "\(result.output)")
        return bytes.enumerated().reduce(UInt64(0)) { sum, byte in
            sum | (UInt64(byte.element.dropFirst(2), radix: 16) ?? 0) << (8 * UInt64(byte.offset))
        }
    }

    /// Attaches with `bpfman attach <id> ARGS` and returns the link id.
    static func attach(_ daemon: TestDaemon, _ id: String, _ arguments: [String]) async throws -> String {
        let attach = try await DaemonKernelTests.CLI.bpfman(daemon, ["attach", id] + arguments)
        try #require(attach.status == 0, "\(attach.output)\n\(daemon.log)")
        return try #require(DaemonKernelTests.CLI.row("Link ID", in: attach.output), "\(attach.output)")
    }

    /// Unloads every program through the CLI; nothing of theirs stays pinned.
    static func unloadAll(_ ids: [String: String], _ daemon: TestDaemon) async throws {
        for id in ids.values.sorted() {
            let unload = try await DaemonKernelTests.CLI.bpfman(daemon, ["unload", id])
            #expect(unload.status == 0, "\(unload.output)")
        }
        let fs = daemon.runtimeDirectory + "/fs"
        #expect(try FileManager.default.contentsOfDirectory(atPath: fs + "/links").isEmpty, "no link pins")
        #expect(try FileManager.default.contentsOfDirectory(atPath: fs + "/maps").isEmpty, "no map pins")
        #expect(try FileManager.default.contentsOfDirectory(atPath: fs).filter { $0.hasPrefix("prog_") }.isEmpty)
    }
}

extension DaemonKernelTests {
    /// Objects written for bpfman name their sections bare (SPEC §4.2): `bpfman load file` takes one with every
    /// spelling, bare and with a suffix, and each program runs as its family once attached.
    @Suite struct BareSectionsThroughTheCLI {
        @Test func everySpellingKernelALoadsIsItsFamily() async throws {
            try await withDaemon { daemon in
                let ids = try await BareSections.loadAndCheck(BareSections.probesAndNetwork, daemon)
                try await BareSections.unloadAll(ids, daemon)
            }
        }

        /// Bare `tracepoint`, `uprobe`, `uprobe.s` and `uretprobe` sections attached with the attach point given at
        /// attach time, each counting the calls it sees.
        @Test func bareTracepointAndUprobeSectionsCountOnceAttached() async throws {
            let bare = BareSections.probesAndNetwork.filter {
                ["tracepoint_bare", "uprobe_bare", "uprobe_s_bare", "uretprobe_bare"].contains($0.function)
            }
            try await withDaemon { daemon in
                let ids = try await BareSections.loadAndCheck(bare, daemon)
                let tracepoint = try #require(ids["tracepoint_bare"])
                _ = try await BareSections.attach(daemon, tracepoint, ["tracepoint", "-t", "syscalls/sys_enter_kill"])
                let before = try BareSections.count(daemon, program: tracepoint, .tracepointBare)
                for _ in 0..<5 { kill(getpid(), 0) }
                // The tracepoint is system-wide: other processes' kill(2) calls count too.
                #expect(try BareSections.count(daemon, program: tracepoint, .tracepointBare) >= before + 5)

                let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
                let probes: [(String, BareSections.Slot)] = [
                    ("uprobe_bare", .uprobeBare), ("uprobe_s_bare", .uprobeSleepableBare),
                    ("uretprobe_bare", .uretprobeBare),
                ]
                for (function, _) in probes {
                    _ = try await BareSections.attach(
                        daemon,
                        try #require(ids[function]),
                        [
                            "uprobe", "-t", executable, "-f", "bpfman_server_bare_uprobe_target", "--pid",
                            "\(getpid())",
                        ]
                    )
                }
                var sum: Int32 = 0
                for i in 0..<7 { sum &+= bareUprobeTarget(Int32(i)) }
                #expect(sum == 35)
                for (function, slot) in probes {
                    // Only this process, only these seven calls.
                    #expect(
                        try BareSections.count(daemon, program: try #require(ids[function]), slot) == 7,
                        "\(function)"
                    )
                }
                try await BareSections.unloadAll(ids, daemon)
            }
        }

        /// SPEC §3.3: the kernel keeps one copy of a program per tracepoint; a second Attach of the program to the
        /// tracepoint it is on is FAILED_PRECONDITION naming the existing link, and leaves no link, pin or fd.
        @Test func secondAttachToTheSameTracepointIsAFailedPrecondition() async throws {
            let bare = BareSections.probesAndNetwork.filter { $0.function == "tracepoint_bare" }
            try await withDaemon { daemon in
                let ids = try await BareSections.loadAndCheck(bare, daemon)
                let id = try #require(ids["tracepoint_bare"])
                let link = try await BareSections.attach(daemon, id, ["tracepoint", "-t", "syscalls/sys_enter_kill"])
                let twice = try await CLI.bpfman(daemon, ["attach", id, "tracepoint", "-t", "syscalls/sys_enter_kill"])
                #expect(twice.status == 1)
                #expect(
                    twice.output
                        == "Error: FAILED_PRECONDITION: program \(id) is already attached to tracepoint "
                        + "syscalls/sys_enter_kill as link \(link)\n"
                )
                let links = try await CLI.bpfman(daemon, ["list", "links", "-o", "json"])
                let listed = try #require(try CLI.json(links.output) as? [[String: Any]], "\(links.output)")
                #expect(listed.map { $0["link_id"] as? Int } == [Int(link)], "\(links.output)")
                #expect(
                    try FileManager.default.contentsOfDirectory(atPath: daemon.runtimeDirectory + "/fs/links")
                        == [link]
                )
                #expect(daemon.bpfDescriptors.isEmpty, "daemon fds after the refusal: \(daemon.bpfDescriptors)")
                #expect(daemon.log.contains("rpc=Attach status=FAILED_PRECONDITION"), "\(daemon.log)")
                try await BareSections.unloadAll(ids, daemon)
            }
        }

        /// A section of no bpfman family: the message names the section, the function and the spellings the
        /// requested type accepts.
        @Test func anUnrecognisedSectionIsRefusedWithTheAcceptedSpellings() async throws {
            let object = try BPFFixtures.object("bare_sections")
            try await withDaemon { daemon in
                let load = try await CLI.bpfman(
                    daemon,
                    ["load", "file", "-p", object, "--programs", "uprobe:not_for_bpfman"]
                )
                #expect(load.status == 1)
                #expect(
                    load.output
                        == "Error: INVALID_ARGUMENT: program type mismatch: not_for_bpfman was requested as uprobe but "
                        + "its ELF section \"socket\" is not one bpfman knows; a uprobe program's section is one of "
                        + "uprobe, uprobe.s, uretprobe, uretprobe.s (bare, or followed by \"/...\")\n"
                )
            }
        }
    }

    /// The same object in kernel B: the fentry, fexit and LSM spellings load too (sleepable fentry/fexit as far as
    /// this kernel allows), XDP and TC ones as dispatcher members (freplace), and bare `kprobe`/`kretprobe`
    /// sections count once attached.
    @Suite(.enabled(if: TestKernel.isKernelBLane, "\(TestKernel.needsKernelB)"))
    struct BareSectionsKernelB {
        @Test func everySpellingIsItsFamily() async throws {
            try await withDaemon { daemon in
                #expect(daemon.log.contains("XDP/TC attach mode: dispatcher"), "\(daemon.log)")
                let ids = try await BareSections.loadAndCheck(
                    BareSections.probesAndNetwork + BareSections.tracing,
                    daemon
                )
                try await BareSections.unloadAll(ids, daemon)
            }
        }

        /// `fentry.s` and `fexit.s`, bare and with a suffix: past bpfman's section check as their family, refused by
        /// this kernel as sleepable programs on a function it does not let them attach to (see `sleepableTracing`).
        @Test(arguments: BareSections.sleepableTracing.map(\.function))
        func sleepableFentryAndFexitSpellingsReachTheKernelAsSleepable(_ function: String) async throws {
            let spelling = try #require(BareSections.sleepableTracing.first { $0.function == function })
            let object = try BPFFixtures.object("bare_sections")
            try await withDaemon { daemon in
                let load = try await CLI.bpfman(
                    daemon,
                    ["load", "file", "-p", object, "--programs", spelling.argument]
                )
                #expect(load.status == 1)
                #expect(
                    load.output.hasPrefix("Error: INTERNAL: failed to load program \(function): Invalid argument\n"),
                    "\(load.output)"
                )
                #expect(load.output.contains("__x64_sys_getpgid is not sleepable"), "\(load.output)")
                let list = try await CLI.bpfman(daemon, ["list", "programs", "-o", "json"])
                #expect((try CLI.json(list.output) as? [Any])?.isEmpty == true, "\(list.output)")
            }
        }

        @Test func bareKprobeAndKretprobeSectionsCountOnceAttached() async throws {
            let bare = BareSections.probesAndNetwork.filter { ["kprobe_bare", "kretprobe_bare"].contains($0.function) }
            try await withDaemon { daemon in
                let ids = try await BareSections.loadAndCheck(bare, daemon)
                let entry = try #require(ids["kprobe_bare"])
                let exit = try #require(ids["kretprobe_bare"])
                for id in [entry, exit] {
                    _ = try await BareSections.attach(daemon, id, ["kprobe", "-f", "__x64_sys_getpgid"])
                }
                for _ in 0..<4 { getpgid(0) }
                // Kernel functions are system-wide: at least this process's four calls.
                #expect(try BareSections.count(daemon, program: entry, .kprobeBare) >= 4)
                #expect(try BareSections.count(daemon, program: exit, .kretprobeBare) >= 4)
                try await BareSections.unloadAll(ids, daemon)
            }
        }
    }
}
