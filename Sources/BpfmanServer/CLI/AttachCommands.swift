internal import ArgumentParser
internal import BpfmanEngine
internal import Proto

/// Attaches and prints the new link like `get link`.
func attach(
    _ programID: UInt32,
    _ info: Bpfman_V1_AttachInfo.OneOf_Info,
    client options: ClientOptions
) async throws {
    let link = try await options.connect().attach(programID, info)
    switch options.output {
    case .json: printJSON(json(link))
    case .table: emit(linkText(link))
    }
}

/// The attach request of each kind, built the same way for both command trees (`bpfman attach <id> <kind>` and
/// the Go-era `bpfman link attach <kind> <id>`), which differ only in how the values are spelled on the line.
enum AttachRequest {
    typealias Info = Bpfman_V1_AttachInfo.OneOf_Info

    static func xdp(
        iface: String,
        priority: Int32,
        proceedOn: [String],
        netns: String?,
        metadata: [String: String]
    )
        throws -> Info
    {
        var a = Bpfman_V1_XDPAttachInfo()
        a.iface = iface
        a.priority = priority
        a.proceedOn = try proceedOnCodes(proceedOn, xdp: true)
        if let netns { a.netns = netns }
        a.metadata = metadata
        return .xdpAttachInfo(a)
    }

    static func tc(
        iface: String,
        direction: String,
        priority: Int32,
        proceedOn: [String],
        netns: String?,
        metadata: [String: String]
    ) throws -> Info {
        var a = Bpfman_V1_TCAttachInfo()
        a.iface = iface
        a.direction = direction
        a.priority = priority
        a.proceedOn = try proceedOnCodes(proceedOn, xdp: false)
        if let netns { a.netns = netns }
        a.metadata = metadata
        return .tcAttachInfo(a)
    }

    static func tcx(
        iface: String,
        direction: String,
        priority: Int32,
        netns: String?,
        metadata: [String: String]
    )
        -> Info
    {
        var a = Bpfman_V1_TCXAttachInfo()
        a.iface = iface
        a.direction = direction
        a.priority = priority
        if let netns { a.netns = netns }
        a.metadata = metadata
        return .tcxAttachInfo(a)
    }

    static func tracepoint(_ tracepoint: String, metadata: [String: String]) -> Info {
        var a = Bpfman_V1_TracepointAttachInfo()
        a.tracepoint = tracepoint
        a.metadata = metadata
        return .tracepointAttachInfo(a)
    }

    static func kprobe(fnName: String, offset: UInt64, containerPid: Int32?, metadata: [String: String]) -> Info {
        var a = Bpfman_V1_KprobeAttachInfo()
        a.fnName = fnName
        a.offset = offset
        if let containerPid { a.containerPid = containerPid }
        a.metadata = metadata
        return .kprobeAttachInfo(a)
    }

    static func uprobe(
        target: String,
        fnName: String?,
        offset: UInt64,
        pid: Int32?,
        containerPid: Int32?,
        metadata: [String: String]
    ) -> Info {
        var a = Bpfman_V1_UprobeAttachInfo()
        a.target = target
        if let fnName { a.fnName = fnName }
        a.offset = offset
        if let pid { a.pid = pid }
        if let containerPid { a.containerPid = containerPid }
        a.metadata = metadata
        return .uprobeAttachInfo(a)
    }

    static func fentry(metadata: [String: String]) -> Info {
        var a = Bpfman_V1_FentryAttachInfo()
        a.metadata = metadata
        return .fentryAttachInfo(a)
    }

    static func fexit(metadata: [String: String]) -> Info {
        var a = Bpfman_V1_FexitAttachInfo()
        a.metadata = metadata
        return .fexitAttachInfo(a)
    }

    static func lsm(metadata: [String: String]) -> Info {
        var a = Bpfman_V1_LsmAttachInfo()
        a.metadata = metadata
        return .lsmAttachInfo(a)
    }
}

/// `--proceed-on` names to codes (SPEC §4.8), repeatable or comma-separated.
func proceedOnCodes(_ names: [String], xdp: Bool) throws -> [Int32] {
    try listItems(names).map { name in
        let lower = name.lowercased()
        let code =
            xdp
            ? XDPAction.allCases.first { $0.name == lower }?.rawValue
            : TCAction.allCases.first { $0.name == lower }?.rawValue
        guard let code else {
            let known = xdp ? XDPAction.allCases.map(\.name) : TCAction.allCases.map(\.name)
            throw ValidationError(
                "unknown \(xdp ? "XDP" : "TC") action \"\(name)\"; expected one of \(known.joined(separator: ", "))"
            )
        }
        return code
    }
}

/// `-m/--metadata KEY=VALUE` (repeatable): what every attach kind stores on its link.
struct LinkMetadataOptions: ParsableArguments {
    @Option(
        name: [.short, .customLong("metadata")],
        parsing: .upToNextOption,
        help: ArgumentHelp(
            "Link metadata, space- or comma-separated or repeated (-m k=v k2=v2).",
            valueName: "key=value"
        )
    )
    var metadata: [String] = []

    func parsed() throws -> [String: String] { try keyValues(metadata, option: "-m/--metadata") }
}

/// `-p/--priority` of the xdp, tc and tcx attaches. Parsed `.unconditional`ly, so that in `-p -1` the `-1` is the
/// value (which the daemon then refuses as negative, SPEC §3.3) and not taken for an option.
struct PriorityOption: ParsableArguments {
    @Option(
        name: [.customShort("p"), .customLong("priority")],
        parsing: .unconditional,
        help: "Priority (lower runs first)."
    )
    var value: Int32
}

extension BpfmanCommand {
    /// `bpfman attach <PROGRAM_ID> <kind> ...` (the id is moved after the kind before parsing).
    struct Attach: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Attach a loaded program; prints the new link.",
            usage: "bpfman attach <program-id> <kind> [options]",
            subcommands: [
                XDP.self, TC.self, TCX.self, Tracepoint.self, Kprobe.self, Uprobe.self, Fentry.self, Fexit.self,
                LSM.self,
            ]
        )

        /// Kinds as they follow the program id: the subcommands' names, in their order.
        static let kinds: [String] = configuration.subcommands.map { $0._commandName }

        struct XDP: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "xdp",
                abstract: "Attach an XDP program to an interface.",
                usage:
                    "bpfman attach <program-id> xdp -i <iface> -p <priority> [--proceed-on <action>...] [-n <netns>] [-m <key=value>...]",
                discussion: "Example:\n  bpfman attach 42 xdp -i eth0 -p 50 --proceed-on pass dispatcher_return"
            )
            @Argument(help: "The program id.", completion: .programIDs) var programID: UInt32
            @Option(name: [.short, .customLong("iface")], help: "Interface.", completion: .interfaces) var iface: String
            @OptionGroup var priority: PriorityOption
            @Option(
                name: .customLong("proceed-on"),
                parsing: .upToNextOption,
                help: ArgumentHelp(
                    "XDP actions that continue the chain: aborted, drop, pass, tx, redirect, dispatcher_return (default: pass dispatcher_return).",
                    valueName: "action"
                ),
                completion: .list(["aborted", "drop", "pass", "tx", "redirect", "dispatcher_return"])
            )
            var proceedOn: [String] = []
            @Option(name: [.short, .customLong("netns")], help: "Network namespace path.") var netns: String?
            @OptionGroup var link: LinkMetadataOptions
            @OptionGroup var client: ClientOptions

            func run() async throws {
                let info = try AttachRequest.xdp(
                    iface: iface,
                    priority: priority.value,
                    proceedOn: proceedOn,
                    netns: netns,
                    metadata: try link.parsed()
                )
                try await attach(programID, info, client: client)
            }
        }

        struct TC: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "tc",
                abstract: "Attach a TC program to an interface.",
                usage:
                    "bpfman attach <program-id> tc -d <ingress|egress> -i <iface> -p <priority> [--proceed-on <action>...] [-n <netns>] [-m <key=value>...]",
                discussion:
                    "Example:\n  bpfman attach 42 tc -d ingress -i eth0 -p 50 --proceed-on pipe dispatcher_return"
            )
            @Argument(help: "The program id.", completion: .programIDs) var programID: UInt32
            @Option(
                name: [.short, .customLong("direction")],
                help: "ingress or egress.",
                completion: .list(["ingress", "egress"])
            )
            var direction: String
            @Option(name: [.short, .customLong("iface")], help: "Interface.", completion: .interfaces) var iface: String
            @OptionGroup var priority: PriorityOption
            @Option(
                name: .customLong("proceed-on"),
                parsing: .upToNextOption,
                help: ArgumentHelp(
                    "TC actions that continue the chain: unspec, ok, reclassify, shot, pipe, stolen, queued, repeat, redirect, trap, dispatcher_return (default: pipe dispatcher_return).",
                    valueName: "action"
                ),
                completion: .list([
                    "unspec", "ok", "reclassify", "shot", "pipe", "stolen", "queued", "repeat", "redirect", "trap",
                    "dispatcher_return",
                ])
            )
            var proceedOn: [String] = []
            @Option(name: [.short, .customLong("netns")], help: "Network namespace path.") var netns: String?
            @OptionGroup var link: LinkMetadataOptions
            @OptionGroup var client: ClientOptions

            func run() async throws {
                let info = try AttachRequest.tc(
                    iface: iface,
                    direction: direction,
                    priority: priority.value,
                    proceedOn: proceedOn,
                    netns: netns,
                    metadata: try link.parsed()
                )
                try await attach(programID, info, client: client)
            }
        }

        struct TCX: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "tcx",
                abstract: "Attach a TCX program to an interface.",
                usage:
                    "bpfman attach <program-id> tcx -d <ingress|egress> -i <iface> -p <priority> [-n <netns>] [-m <key=value>...]",
                discussion: "Example:\n  bpfman attach 42 tcx -d egress -i eth0 -p 50"
            )
            @Argument(help: "The program id.", completion: .programIDs) var programID: UInt32
            @Option(
                name: [.short, .customLong("direction")],
                help: "ingress or egress.",
                completion: .list(["ingress", "egress"])
            )
            var direction: String
            @Option(name: [.short, .customLong("iface")], help: "Interface.", completion: .interfaces) var iface: String
            @OptionGroup var priority: PriorityOption
            @Option(name: [.short, .customLong("netns")], help: "Network namespace path.") var netns: String?
            @OptionGroup var link: LinkMetadataOptions
            @OptionGroup var client: ClientOptions

            func run() async throws {
                let info = AttachRequest.tcx(
                    iface: iface,
                    direction: direction,
                    priority: priority.value,
                    netns: netns,
                    metadata: try link.parsed()
                )
                try await attach(programID, info, client: client)
            }
        }

        struct Tracepoint: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "tracepoint",
                abstract: "Attach to a tracepoint.",
                usage: "bpfman attach <program-id> tracepoint -t <group/name> [-m <key=value>...]",
                discussion: "Example:\n  bpfman attach 42 tracepoint -t syscalls/sys_enter_openat"
            )
            @Argument(help: "The program id.", completion: .programIDs) var programID: UInt32
            @Option(name: [.short, .customLong("tracepoint")], help: "GROUP/NAME, e.g. syscalls/sys_enter_openat.")
            var tracepoint: String
            @OptionGroup var link: LinkMetadataOptions
            @OptionGroup var client: ClientOptions

            func run() async throws {
                let info = AttachRequest.tracepoint(tracepoint, metadata: try link.parsed())
                try await attach(programID, info, client: client)
            }
        }

        struct Kprobe: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "kprobe",
                abstract: "Attach a kprobe or kretprobe.",
                usage: "bpfman attach <program-id> kprobe -f <function> [-o <offset>] [-m <key=value>...]",
                discussion: "Example:\n  bpfman attach 42 kprobe -f try_to_wake_up"
            )
            @Argument(help: "The program id.", completion: .programIDs) var programID: UInt32
            @Option(name: [.short, .customLong("fn-name")], help: "Kernel function.") var fnName: String
            @Option(name: [.short, .customLong("offset")], help: "Offset within the function.") var offset: UInt64 = 0
            @Option(
                name: [.short, .customLong("container-pid")],
                parsing: .unconditional,
                help: "Accepted for compatibility."
            )
            var containerPid: Int32?
            @OptionGroup var link: LinkMetadataOptions
            @OptionGroup var client: ClientOptionsLongOutput

            func run() async throws {
                let info = AttachRequest.kprobe(
                    fnName: fnName,
                    offset: offset,
                    containerPid: containerPid,
                    metadata: try link.parsed()
                )
                try await attach(programID, info, client: client.common)
            }
        }

        struct Uprobe: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "uprobe",
                abstract: "Attach a uprobe or uretprobe.",
                usage:
                    "bpfman attach <program-id> uprobe -t <target> [-f <function>] [-o <offset>] [-p <pid>] [-c <container-pid>] [-m <key=value>...]",
                discussion: "Example:\n  bpfman attach 42 uprobe -t libc -f malloc"
            )
            @Argument(help: "The program id.", completion: .programIDs) var programID: UInt32
            @Option(name: [.short, .customLong("target")], help: "Binary path or library name.") var target: String
            @Option(name: [.short, .customLong("fn-name")], help: "Symbol.") var fnName: String?
            @Option(name: [.short, .customLong("offset")], help: "Offset (file offset without --fn-name).")
            var offset: UInt64 = 0
            // `.unconditional` as in `PriorityOption`: a negative pid reaches the daemon's check.
            @Option(name: [.short, .customLong("pid")], parsing: .unconditional, help: "Only this process.")
            var pid: Int32?
            @Option(
                name: [.short, .customLong("container-pid")],
                parsing: .unconditional,
                help: "A process in the target's container."
            )
            var containerPid: Int32?
            @OptionGroup var link: LinkMetadataOptions
            @OptionGroup var client: ClientOptionsLongOutput

            func run() async throws {
                let info = AttachRequest.uprobe(
                    target: target,
                    fnName: fnName,
                    offset: offset,
                    pid: pid,
                    containerPid: containerPid,
                    metadata: try link.parsed()
                )
                try await attach(programID, info, client: client.common)
            }
        }

        struct Fentry: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "fentry",
                abstract: "Attach an fentry program (target set at load).",
                usage: "bpfman attach <program-id> fentry [-m <key=value>...]",
                discussion: "Example:\n  bpfman attach 42 fentry"
            )
            @Argument(help: "The program id.", completion: .programIDs) var programID: UInt32
            @OptionGroup var link: LinkMetadataOptions
            @OptionGroup var client: ClientOptions

            func run() async throws {
                let info = AttachRequest.fentry(metadata: try link.parsed())
                try await attach(programID, info, client: client)
            }
        }

        struct Fexit: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "fexit",
                abstract: "Attach an fexit program (target set at load).",
                usage: "bpfman attach <program-id> fexit [-m <key=value>...]",
                discussion: "Example:\n  bpfman attach 42 fexit"
            )
            @Argument(help: "The program id.", completion: .programIDs) var programID: UInt32
            @OptionGroup var link: LinkMetadataOptions
            @OptionGroup var client: ClientOptions

            func run() async throws {
                let info = AttachRequest.fexit(metadata: try link.parsed())
                try await attach(programID, info, client: client)
            }
        }

        struct LSM: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "lsm",
                abstract: "Attach an LSM program (hook set at load).",
                usage: "bpfman attach <program-id> lsm [-m <key=value>...]",
                discussion: "Example:\n  bpfman attach 42 lsm"
            )
            @Argument(help: "The program id.", completion: .programIDs) var programID: UInt32
            @OptionGroup var link: LinkMetadataOptions
            @OptionGroup var client: ClientOptions

            func run() async throws {
                let info = AttachRequest.lsm(metadata: try link.parsed())
                try await attach(programID, info, client: client)
            }
        }
    }
}
