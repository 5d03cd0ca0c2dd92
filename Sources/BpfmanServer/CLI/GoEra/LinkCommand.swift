internal import ArgumentParser
internal import Proto

/// `-m/--metadata` and `-o` of every Go-era `link attach`.
struct GoAttachOptions: ParsableArguments {
    @Option(name: [.short, .customLong("metadata")], help: ArgumentHelp("Link metadata.", valueName: "key=value"))
    var metadata: [String] = []
    @OptionGroup var options: GoClientOptions

    /// Attaches and prints the link as `link get` does.
    func attach(_ programID: UInt32, _ info: Bpfman_V1_AttachInfo.OneOf_Info) async throws {
        let backend = try await options.connect()
        let link = try await backend.attach(programID, info)
        try await printGoLink(link, backend, options.output)
    }

    func parsedMetadata() throws -> [String: String] { try keyValues(metadata, option: "-m/--metadata") }
}

/// Prints a link as `link get` does (its program's details name return probes and fentry/fexit/lsm targets).
private func printGoLink(
    _ link: Bpfman_Ext_V1_LinkInfo,
    _ backend: Backend,
    _ output: GoOutputFormat
) async throws {
    let program = (try? await backend.details([link.programID]))?[link.programID]
    switch output {
    case .json: printJSON(goLinkJSON(link, program: program))
    case .text: emit(goLinkText(link, program: program))
    }
}

extension BpfmanCommand {
    /// `bpfman link …` (Go-era tree, SPEC §9.4); no verb means `link list`.
    struct LinkCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "link",
            abstract: "Attach, detach, get and list links (upstream's noun-verb tree).",
            subcommands: [Attach.self, Detach.self, Get.self, List.self],
            defaultSubcommand: List.self
        )

        struct Attach: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Attach a loaded program; prints the new link.",
                usage: "bpfman link attach <kind> <program-id> <attach point...> [options]",
                discussion: """
                    Examples:
                      bpfman link attach xdp 42 eth0 -p 50
                      bpfman link attach tc 42 eth0 ingress -p 50 --proceed-on ok,pipe
                      bpfman link attach tracepoint 42 syscalls/sys_enter_openat
                      bpfman link attach uprobe 42 libc -f malloc
                    """,
                subcommands: [
                    XDP.self, TC.self, TCX.self, Tracepoint.self, Kprobe.self, Uprobe.self, Fentry.self, Fexit.self,
                    LSM.self,
                ]
            )

            struct XDP: AsyncParsableCommand {
                static let configuration = CommandConfiguration(
                    commandName: "xdp",
                    abstract: "Attach an XDP program to an interface."
                )
                @Argument(help: "The program id.", completion: .programIDs) var programID: UInt32
                @Argument(help: "The interface.", completion: .interfaces) var iface: String
                @OptionGroup var priority: PriorityOption
                @Option(name: [.short, .customLong("netns")], help: "Network namespace path.") var netns: String?
                @Option(
                    name: .customLong("proceed-on"),
                    help: ArgumentHelp(
                        "aborted, drop, pass, tx, redirect, dispatcher_return (default: pass dispatcher_return).",
                        valueName: "action"
                    ),
                    completion: .list(["aborted", "drop", "pass", "tx", "redirect", "dispatcher_return"])
                )
                var proceedOn: [String] = []
                @OptionGroup var attach: GoAttachOptions

                func run() async throws {
                    let info = try AttachRequest.xdp(
                        iface: iface,
                        priority: priority.value,
                        proceedOn: proceedOn,
                        netns: netns,
                        metadata: try attach.parsedMetadata()
                    )
                    try await attach.attach(programID, info)
                }
            }

            struct TC: AsyncParsableCommand {
                static let configuration = CommandConfiguration(
                    commandName: "tc",
                    abstract: "Attach a TC program to an interface."
                )
                @Argument(help: "The program id.", completion: .programIDs) var programID: UInt32
                @Argument(help: "The interface.", completion: .interfaces) var iface: String
                @Argument(help: "ingress or egress.", completion: .list(["ingress", "egress"])) var direction: String
                @OptionGroup var priority: PriorityOption
                @Option(name: [.short, .customLong("netns")], help: "Network namespace path.") var netns: String?
                @Option(
                    name: .customLong("proceed-on"),
                    help: ArgumentHelp(
                        "unspec, ok, reclassify, shot, pipe, stolen, queued, repeat, redirect, trap, dispatcher_return (default: pipe dispatcher_return).",
                        valueName: "action"
                    ),
                    completion: .list([
                        "unspec", "ok", "reclassify", "shot", "pipe", "stolen", "queued", "repeat", "redirect", "trap",
                        "dispatcher_return",
                    ])
                )
                var proceedOn: [String] = []
                @OptionGroup var attach: GoAttachOptions

                func run() async throws {
                    let info = try AttachRequest.tc(
                        iface: iface,
                        direction: direction,
                        priority: priority.value,
                        proceedOn: proceedOn,
                        netns: netns,
                        metadata: try attach.parsedMetadata()
                    )
                    try await attach.attach(programID, info)
                }
            }

            struct TCX: AsyncParsableCommand {
                static let configuration = CommandConfiguration(
                    commandName: "tcx",
                    abstract: "Attach a TCX program to an interface."
                )
                @Argument(help: "The program id.", completion: .programIDs) var programID: UInt32
                @Argument(help: "The interface.", completion: .interfaces) var iface: String
                @Argument(help: "ingress or egress.", completion: .list(["ingress", "egress"])) var direction: String
                @OptionGroup var priority: PriorityOption
                @Option(name: [.short, .customLong("netns")], help: "Network namespace path.") var netns: String?
                @OptionGroup var attach: GoAttachOptions

                func run() async throws {
                    let info = AttachRequest.tcx(
                        iface: iface,
                        direction: direction,
                        priority: priority.value,
                        netns: netns,
                        metadata: try attach.parsedMetadata()
                    )
                    try await attach.attach(programID, info)
                }
            }

            struct Tracepoint: AsyncParsableCommand {
                static let configuration = CommandConfiguration(
                    commandName: "tracepoint",
                    abstract: "Attach to a tracepoint."
                )
                @Argument(help: "The program id.", completion: .programIDs) var programID: UInt32
                @Argument(help: "GROUP/NAME, e.g. syscalls/sys_enter_openat.") var tracepoint: String
                @OptionGroup var attach: GoAttachOptions

                func run() async throws {
                    let info = AttachRequest.tracepoint(tracepoint, metadata: try attach.parsedMetadata())
                    try await attach.attach(programID, info)
                }
            }

            struct Kprobe: AsyncParsableCommand {
                static let configuration = CommandConfiguration(
                    commandName: "kprobe",
                    abstract: "Attach a kprobe or kretprobe."
                )
                @Argument(help: "The program id.", completion: .programIDs) var programID: UInt32
                @Argument(help: "The kernel function.") var fnName: String
                @Option(help: "Offset within the function.") var offset: UInt64 = 0
                @OptionGroup var attach: GoAttachOptions

                func run() async throws {
                    let info = AttachRequest.kprobe(
                        fnName: fnName,
                        offset: offset,
                        containerPid: nil,
                        metadata: try attach.parsedMetadata()
                    )
                    try await attach.attach(programID, info)
                }
            }

            struct Uprobe: AsyncParsableCommand {
                static let configuration = CommandConfiguration(
                    commandName: "uprobe",
                    abstract: "Attach a uprobe or uretprobe."
                )
                @Argument(help: "The program id.", completion: .programIDs) var programID: UInt32
                @Argument(help: "Binary path or library name.") var target: String
                @Option(name: [.short, .customLong("fn-name")], help: "Symbol.") var fnName: String?
                @Option(help: "Offset (file offset without --fn-name).") var offset: UInt64 = 0
                @Option(parsing: .unconditional, help: "Only this process.") var pid: Int32?
                @Option(
                    name: .customLong("container-pid"),
                    parsing: .unconditional,
                    help: "A process in the target's container."
                )
                var containerPid: Int32?
                @OptionGroup var attach: GoAttachOptions

                func run() async throws {
                    let info = AttachRequest.uprobe(
                        target: target,
                        fnName: fnName,
                        offset: offset,
                        pid: pid,
                        containerPid: containerPid,
                        metadata: try attach.parsedMetadata()
                    )
                    try await attach.attach(programID, info)
                }
            }

            struct Fentry: AsyncParsableCommand {
                static let configuration = CommandConfiguration(
                    commandName: "fentry",
                    abstract: "Attach an fentry program (function set at load)."
                )
                @Argument(help: "The program id.", completion: .programIDs) var programID: UInt32
                @OptionGroup var attach: GoAttachOptions

                func run() async throws {
                    let info = AttachRequest.fentry(metadata: try attach.parsedMetadata())
                    try await attach.attach(programID, info)
                }
            }

            struct Fexit: AsyncParsableCommand {
                static let configuration = CommandConfiguration(
                    commandName: "fexit",
                    abstract: "Attach an fexit program (function set at load)."
                )
                @Argument(help: "The program id.", completion: .programIDs) var programID: UInt32
                @OptionGroup var attach: GoAttachOptions

                func run() async throws {
                    let info = AttachRequest.fexit(metadata: try attach.parsedMetadata())
                    try await attach.attach(programID, info)
                }
            }

            struct LSM: AsyncParsableCommand {
                static let configuration = CommandConfiguration(
                    commandName: "lsm",
                    abstract: "Attach an LSM program (hook set at load)."
                )
                @Argument(help: "The program id.", completion: .programIDs) var programID: UInt32
                @OptionGroup var attach: GoAttachOptions

                func run() async throws {
                    let info = AttachRequest.lsm(metadata: try attach.parsedMetadata())
                    try await attach.attach(programID, info)
                }
            }
        }

        struct Detach: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Detach links; their programs stay loaded.")
            @Argument(help: "Link ids.", completion: .linkIDs) var ids: [UInt32]
            @Flag(help: "Succeed for links that do not exist.") var ignoreMissing = false
            @OptionGroup var options: GoClientOptions

            func run() async throws {
                let backend = try await options.connect()
                try await forEachID(ids, noun: "link", verb: "detach", ignoreMissing: ignoreMissing) {
                    id throws(ClientError) in
                    var request = Bpfman_V1_DetachRequest()
                    request.linkID = id
                    _ = try await backend.call(
                        Bpfman_V1_Bpfman.Method.detach.path,
                        request,
                        Bpfman_V1_DetachResponse.self
                    )
                }
            }
        }

        struct Get: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Show one link.")
            @Argument(help: "The link id.", completion: .linkIDs) var id: UInt32
            @OptionGroup var options: GoClientOptions

            func run() async throws {
                let backend = try await options.connect()
                try await printGoLink(try await backend.link(id), backend, options.output)
            }
        }

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List links.")
            @Flag(name: [.short, .customLong("quiet")], help: "Print link ids only.") var quiet = false
            @Option(name: .customLong("program-id"), help: "Only links of this program.") var programID: UInt32?
            @Option(
                name: .customLong("kind"),
                help: ArgumentHelp("Only links of this kind (xdp, tc, tcx, tracepoint, ...).", valueName: "kind")
            )
            var kinds: [String] = []
            @Option(
                name: [.short, .customLong("program-type")],
                help: ArgumentHelp(programTypeHelp, valueName: "type")
            )
            var programType: String?
            @Option(help: "Only links of programs of this application.") var application: String?
            @Option(
                name: [.short, .customLong("metadata-selector")],
                help: ArgumentHelp("Only links of programs with this metadata.", valueName: "key=value")
            )
            var metadata: [String] = []
            @OptionGroup var options: GoClientOptions

            func run() async throws {
                var request = Bpfman_Ext_V1_ListLinksRequest()
                if let programType {
                    guard let number = programTypeNumber(programType) else {
                        throw ValidationError("unknown program type \"\(programType)\"")
                    }
                    request.programType = number
                }
                if let programID { request.programID = programID }
                request.matchMetadata = try keyValues(metadata, option: "-m/--metadata-selector")
                let wantedKinds = Set(listItems(kinds).map { $0.lowercased() })
                let backend = try await options.connect()
                let links = try await backend.call(
                    Bpfman_Ext_V1_Inspect.Method.listLinks.path,
                    request,
                    Bpfman_Ext_V1_ListLinksResponse.self
                ).links.filter { l in
                    (wantedKinds.isEmpty || wantedKinds.contains(l.kind))
                        && (application == nil || applicationName(l.programMetadata) == application)
                }
                if quiet {
                    for l in links { emit("\(l.linkID)") }
                    return
                }
                let details = (try? await backend.details([])) ?? [:]
                switch options.output {
                case .json:
                    printJSON(
                        jsonObject([
                            ("links", jsonArray(links.map { goLinkRecordJSON($0, program: details[$0.programID]) }))
                        ])
                    )
                case .text:
                    let withApplication = links.contains { !applicationName($0.programMetadata).isEmpty }
                    var header = ["LINK ID", "KERNEL LINK ID", "KIND", "PROGRAM ID"]
                    if withApplication { header.append("APPLICATION") }
                    header += ["FUNCTION NAME", "ATTACHMENT"]
                    let rows = links.map { l in
                        var row = [
                            "\(l.linkID)", l.hasKernelLinkID ? "\(l.kernelLinkID)" : "<none>", l.kind, "\(l.programID)",
                        ]
                        if withApplication { row.append(applicationName(l.programMetadata)) }
                        row += [
                            l.programName.isEmpty ? "<none>" : l.programName,
                            goAttachmentText(l, target: details[l.programID]?.attachTarget),
                        ]
                        return row
                    }
                    if let text = goTable(header, rows) { emit(text) }
                }
            }
        }
    }
}
