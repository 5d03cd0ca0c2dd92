import ArgumentParser
import Testing

@testable import BpfmanServer

@Suite struct CommandLineTests {
    static let invocations: [(String, [String], [String])] = [
        ("bpfman", ["--csi-support"], ["serve", "--csi-support"]),
        ("bpfman", ["--timeout=0"], ["serve", "--timeout=0"]),
        ("bpfman-rpc", ["--timeout", "5"], ["serve", "--timeout", "5"]),
        ("bpfman", ["list", "programs"], ["list", "programs"]),
        ("bpfman", [], []),
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
            "'bpfman' requires a subcommand: load, unload, attach, detach, list, get, image, status, serve, version",
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
        (["image"], "'bpfman image' requires a subcommand: pull, verify-bundle", "bpfman image <subcommand>"),
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
}
