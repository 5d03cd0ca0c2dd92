import ArgumentParser
import Proto
import Testing

@testable import BpfmanServer

@Suite struct CommandLineTests {
    static let invocations: [(String, [String], [String])] = [
        ("bpfman", ["--csi-support"], ["serve", "--csi-support"]),
        ("bpfman", ["--timeout=0"], ["serve", "--timeout=0"]),
        ("bpfman-rpc", ["--timeout", "5"], ["serve", "--timeout", "5"]),
        ("bpfman", ["list", "programs"], ["list", "programs"]),
        ("bpfman", [], []),
        (
            "bpfman", ["--socket-path", "/s", "--runtime-dir=/rd"],
            ["serve", "--socket-path", "/s", "--runtime-dir=/rd"]
        ),
        // Global options before a command move behind it (the Go-era tree takes them anywhere).
        (
            "bpfman", ["--runtime-dir", "/rd", "--log=debug", "program", "list"],
            ["program", "list", "--runtime-dir", "/rd", "--log=debug"]
        ),
        (
            "bpfman", ["--lock-timeout", "1s", "attach", "12", "xdp", "-i", "lo"],
            ["attach", "xdp", "12", "-i", "lo", "--lock-timeout", "1s"]
        ),
    ]

    @Test(arguments: invocations)
    func leadingServeFlagMeansServe(name: String, given: [String], expected: [String]) {
        #expect(BpfmanCommand.normalizedArguments(executableName: name, arguments: given) == expected)
    }

    @Test func attachWithAnIDButNoKnownKindIsAUsageError() throws {
        let kinds = "xdp, tc, tcx, tracepoint, kprobe, uprobe, fentry, fexit, lsm"
        let noKind = try #require(BpfmanCommand.attachKindProblem(["attach", "12"]))
        #expect(noKind.message == "'bpfman attach 12' needs the kind of attachment next, one of: \(kinds)")
        #expect(noKind.command == "bpfman attach")
        #expect(noKind.usage == "bpfman attach <program-id> <kind> [options]")
        let optionFirst = try #require(BpfmanCommand.attachKindProblem(["attach", "12", "-t", "a/b"]))
        #expect(optionFirst.message == noKind.message)
        let unknown = try #require(BpfmanCommand.attachKindProblem(["attach", "12", "sideways"]))
        #expect(unknown.message == "unknown attach kind 'sideways': expected one of: \(kinds)")
        // What reaches the check has been normalized: a known kind has moved in front of the id.
        let normalized = BpfmanCommand.normalizedArguments(
            executableName: "bpfman",
            arguments: ["attach", "12", "tracepoint", "-t", "a/b"]
        )
        #expect(BpfmanCommand.attachKindProblem(normalized) == nil)
        #expect(BpfmanCommand.attachKindProblem(["attach", "xdp", "12"]) == nil)
        #expect(
            BpfmanCommand.normalizedArguments(executableName: "bpfman", arguments: ["attach", "12", "--help"])
                == ["attach", "--help"]
        )
    }

    static let groups: [([String], String, String)] = [
        (
            [],
            "'bpfman' requires a subcommand: load, unload, attach, detach, list, get, image, status, serve, version, program, link, dispatcher",
            "bpfman <subcommand>"
        ),
        (
            ["attach"],
            "'bpfman attach' requires a subcommand: xdp, tc, tcx, tracepoint, kprobe, uprobe, fentry, fexit, lsm",
            "bpfman attach <program-id> <kind> [options]"
        ),
        (["list"], "'bpfman list' requires a subcommand: programs, links", "bpfman list <subcommand>"),
        (["get"], "'bpfman get' requires a subcommand: program, link", "bpfman get <subcommand>"),
        (["load"], "'bpfman load' requires a subcommand: file, image", "bpfman load <subcommand>"),
        (
            ["image"],
            "'bpfman image' requires a subcommand: pull, inspect, verify, build, generate-build-args, verify-bundle",
            "bpfman image <subcommand>"
        ),
    ]

    @Test(arguments: groups)
    func aGroupWithoutItsSubcommandIsAUsageError(arguments: [String], message: String, usage: String) throws {
        let parsed = try BpfmanCommand.parseAsRoot(arguments)
        let problem = try #require(BpfmanCommand.missingSubcommand(type(of: parsed), arguments: arguments))
        #expect(problem.message == message)
        #expect(problem.usage == usage)
        #expect(problem.command == (["bpfman"] + arguments).joined(separator: " "))
    }

    @Test func aCommandsPathIsTheWordsThatNameIt() throws {
        let cases: [([String], String)] = [
            (["attach", "xdp", "12", "-i", "lo", "-p", "1"], "bpfman attach xdp"),
            (["list", "programs", "--all"], "bpfman list programs"),
            (["detach", "3"], "bpfman detach"),
            ([], "bpfman"),
        ]
        for (arguments, path) in cases {
            let parsed = try BpfmanCommand.parseAsRoot(arguments)
            #expect(BpfmanCommand.commandPath(of: type(of: parsed), arguments: arguments) == path)
        }
    }

    @Test func negativePrioritiesAndPidsAreValuesForTheDaemonToRefuse() throws {
        // Without `.unconditional` parsing, `-p -1` failed with "Missing value for '-p <priority>'".
        let xdp = try #require(
            try BpfmanCommand.parseAsRoot(["attach", "xdp", "5", "-i", "lo", "-p", "-1"]) as? BpfmanCommand.Attach.XDP
        )
        #expect(xdp.priority.value == -1)
        let tcx = try #require(
            try BpfmanCommand.parseAsRoot(["attach", "tcx", "5", "-i", "lo", "-d", "ingress", "--priority", "-2"])
                as? BpfmanCommand.Attach.TCX
        )
        #expect(tcx.priority.value == -2)
        let uprobe = try #require(
            try BpfmanCommand.parseAsRoot(["attach", "uprobe", "5", "-t", "libc", "-p", "-5", "-c", "-6"])
                as? BpfmanCommand.Attach.Uprobe
        )
        #expect(uprobe.pid == -5 && uprobe.containerPid == -6)
    }

    @Test func aLeafCommandIsNotAGroup() throws {
        for arguments in [
            ["list", "programs"], ["version"], ["detach", "3"], ["attach", "tracepoint", "3", "-t", "a/b"],
        ] {
            let parsed = try BpfmanCommand.parseAsRoot(arguments)
            #expect(BpfmanCommand.missingSubcommand(type(of: parsed), arguments: arguments) == nil, "\(arguments)")
        }
    }

    @Test func serveDefaultsAreUpstreams() throws {
        let command = try BpfmanCommand.parseAsRoot(["serve"])
        let serve = try #require(command as? BpfmanCommand.Serve)
        #expect(serve.socketPath == "/run/bpfman-sock/bpfman.sock")
        #expect(serve.runtimeDirectory == "/run/bpfman")
        #expect(serve.imageCacheDirectory == "/var/cache/bpfman")
        #expect(serve.config == nil)  // the default path, /etc/bpfman/bpfman.toml, where a missing file means defaults
        #expect(serve.csiSupport == false)
        #expect(serve.timeout == nil)
    }

    @Test func serveAcceptsBothFlagSpellings() throws {
        let command = try BpfmanCommand.parseAsRoot(["serve", "--socket-path=/tmp/a.sock", "--runtime-dir", "/tmp/rd"])
        let serve = try #require(command as? BpfmanCommand.Serve)
        #expect(serve.socketPath == "/tmp/a.sock")
        #expect(serve.runtimeDirectory == "/tmp/rd")
    }

    @Test func multiValueOptionsTakeSpacesCommasAndRepeats() throws {
        let load = try #require(
            try BpfmanCommand.parseAsRoot([
                "load", "file", "-p", "/x.o", "--programs", "tracepoint:a", "xdp:b", "-g", "A=01", "B=02,C=03", "-m",
                "k=v", "k2=v2", "-m", "k3=v3",
            ]) as? BpfmanCommand.Load.File
        )
        var location = Bpfman_V1_BytecodeLocation()
        location.location = .file("/x.o")
        let request = try load.load.request(location)
        #expect(request.info.map(\.name) == ["a", "b"])
        #expect(request.globalData == ["A": [1], "B": [2], "C": [3]])
        #expect(request.metadata == ["k": "v", "k2": "v2", "k3": "v3"])
        let xdp = try #require(
            try BpfmanCommand.parseAsRoot(["attach", "xdp", "5", "-i", "lo", "-p", "1", "--proceed-on", "drop", "pass"])
                as? BpfmanCommand.Attach.XDP
        )
        #expect(try proceedOnCodes(xdp.proceedOn, xdp: true) == [1, 2])
        let list = try #require(
            try BpfmanCommand.parseAsRoot(["list", "programs", "--metadata-selector", "a=1", "b=2", "-a"])
                as? BpfmanCommand.List.Programs
        )
        #expect(list.metadata == ["a=1", "b=2"] && list.all)
    }

    @Test func listFiltersTakeUpstreamsTypeNames() {
        #expect(programTypeNumber("probe") == 2)
        #expect(programTypeNumber("kprobe") == 2)
        #expect(programTypeNumber("tc") == 3)
        #expect(programTypeNumber("sched_cls") == 3)
        #expect(programTypeNumber("socket-filter") == 1)
        #expect(programTypeNumber("cgroup-skb") == 8)
        #expect(programTypeNumber("Tracepoint") == 5)
        #expect(programTypeNumber("raw-tracepoint-writable") == 24)
        #expect(programTypeNumber("nonsense") == nil)
    }

    @Test func anUnknownSubcommandSuggestsTheClosestOne() throws {
        let root = try #require(BpfmanCommand.unknownSubcommand(["lst", "programs"]))
        #expect(root.message == "unrecognized subcommand 'lst'; a similar subcommand exists: 'list'")
        #expect(root.command == "bpfman")
        let nested = try #require(BpfmanCommand.unknownSubcommand(["list", "prgrams"]))
        #expect(nested.message == "unrecognized subcommand 'prgrams'; a similar subcommand exists: 'programs'")
        #expect(nested.command == "bpfman list")
        let far = try #require(BpfmanCommand.unknownSubcommand(["frobnicate"]))
        #expect(far.message.hasPrefix("unrecognized subcommand 'frobnicate'; expected one of: load, unload"))
        // A group with a default subcommand takes other words as that subcommand's arguments.
        #expect(BpfmanCommand.unknownSubcommand(["program", "lst"])?.message.contains("'list'") == true)
        #expect(BpfmanCommand.unknownSubcommand(["program", "-o", "json"]) == nil)
        #expect(BpfmanCommand.unknownSubcommand(["list", "links", "--program-id", "3"]) == nil)
        #expect(BpfmanCommand.unknownSubcommand(["link", "attach", "xdp", "3", "eth0"]) == nil)
    }

    @Test func theGoEraTreeIsRecognised() {
        #expect(BpfmanCommand.isGoEra(["program", "list"]))
        #expect(BpfmanCommand.isGoEra(["link"]))
        #expect(BpfmanCommand.isGoEra(["image", "inspect", "quay.io/x"]))
        #expect(BpfmanCommand.isGoEra(["image", "build", "oci:/tmp/x", "a.o"]))
        #expect(BpfmanCommand.isGoEra(["image", "generate-build-args", "a.o"]))
        #expect(BpfmanCommand.isGoEra(["image", "verify", "quay.io/x"]))
        #expect(!BpfmanCommand.isGoEra(["image", "pull", "-i", "quay.io/x"]))
        #expect(!BpfmanCommand.isGoEra(["list", "programs"]))
        #expect(!BpfmanCommand.isGoEra([]))
    }

    @Test func goEraAttachTakesPositionalAttachPoints() throws {
        let tc = try #require(
            try BpfmanCommand.parseAsRoot([
                "link", "attach", "tc", "7", "eth0", "ingress", "-p", "50", "--proceed-on", "ok,pipe",
            ])
                as? BpfmanCommand.LinkCommand.Attach.TC
        )
        #expect(tc.programID == 7 && tc.iface == "eth0" && tc.direction == "ingress" && tc.priority.value == 50)
        #expect(try proceedOnCodes(tc.proceedOn, xdp: false) == [0, 3])
        let uprobe = try #require(
            try BpfmanCommand.parseAsRoot(["link", "attach", "uprobe", "7", "libc", "-f", "malloc", "--pid", "-3"])
                as? BpfmanCommand.LinkCommand.Attach.Uprobe
        )
        #expect(uprobe.target == "libc" && uprobe.fnName == "malloc" && uprobe.pid == -3)
        // No verb means list.
        #expect(try BpfmanCommand.parseAsRoot(["program", "-o", "json"]) is BpfmanCommand.ProgramCommand.List)
        #expect(try BpfmanCommand.parseAsRoot(["link"]) is BpfmanCommand.LinkCommand.List)
        #expect(try BpfmanCommand.parseAsRoot(["dispatcher"]) is BpfmanCommand.DispatcherCommand.List)
        // -p is required on xdp, tc and tcx.
        #expect(throws: (any Error).self) { try BpfmanCommand.parseAsRoot(["link", "attach", "xdp", "7", "eth0"]) }
    }

    @Test func durationsAreWrittenAsUsersWriteThem() throws {
        #expect(try duration("30s", option: "--t", default: .zero) == .seconds(30))
        #expect(try duration("500ms", option: "--t", default: .zero) == .milliseconds(500))
        #expect(try duration("1m30s", option: "--t", default: .zero) == .seconds(90))
        #expect(try duration("2", option: "--t", default: .zero) == .seconds(2))
        #expect(try duration(nil, option: "--t", default: .seconds(7)) == .seconds(7))
        #expect(throws: ClientError.self) { try duration("soon", option: "--t", default: .zero) }
        #expect(throws: ClientError.self) { try duration("5x", option: "--t", default: .zero) }
    }

    @Test func proceedOnMasksReadBackAsActionNames() {
        #expect(proceedOnMaskText(0x8000_0004, xdp: true) == "pass, dispatcher_return")
        #expect(proceedOnMaskText(0x8000_0012, xdp: false) == "ok, pipe, dispatcher_return")
        #expect(proceedOnMaskText(0, xdp: true) == "None")
    }

    @Test func attachmentTextIsUpstreams() {
        func link(_ info: Bpfman_V1_AttachInfo.OneOf_Info) -> Bpfman_Ext_V1_LinkInfo {
            var link = Bpfman_Ext_V1_LinkInfo()
            var attach = Bpfman_V1_AttachInfo()
            attach.info = info
            link.attach = attach
            link.programName = "prog"
            return link
        }
        var xdp = Bpfman_V1_XDPAttachInfo()
        xdp.iface = "eno3"
        xdp.position = 2
        #expect(attachmentText(link(.xdpAttachInfo(xdp))) == "eno3 pos-2")
        var tc = Bpfman_V1_TCAttachInfo()
        tc.iface = "eno3"
        tc.direction = "ingress"
        #expect(attachmentText(link(.tcAttachInfo(tc))) == "eno3 ingress pos-0")
        var uprobe = Bpfman_V1_UprobeAttachInfo()
        uprobe.target = "libc"
        uprobe.fnName = "malloc"
        #expect(attachmentText(link(.uprobeAttachInfo(uprobe))) == "libc malloc")
        uprobe.offset = 16
        #expect(attachmentText(link(.uprobeAttachInfo(uprobe))) == "libc malloc+16")
        var kprobe = Bpfman_V1_KprobeAttachInfo()
        kprobe.fnName = "try_to_wake_up"
        #expect(attachmentText(link(.kprobeAttachInfo(kprobe))) == "try_to_wake_up")
        #expect(
            attachmentText(link(.fentryAttachInfo(Bpfman_V1_FentryAttachInfo())), target: "do_unlinkat")
                == "do_unlinkat"
        )
        var netns = xdp
        netns.netns = "/var/run/netns/blue"
        #expect(goAttachmentText(link(.xdpAttachInfo(netns)), target: nil) == "eno3 pos-2 netns=/var/run/netns/blue")
    }

    @Test func aBackslashKeepsACommaInAValue() throws {
        #expect(listItems(["a=1,b=2", "c=x\\,y", "d=\\n"]) == ["a=1", "b=2", "c=x,y", "d=\\n"])
        #expect(try keyValues(["note=one\\, two"], option: "-m") == ["note": "one, two"])
    }
}
