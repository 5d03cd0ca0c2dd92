internal import ArgumentParser
internal import Proto

extension BpfmanCommand {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List programs or links.",
            subcommands: [Programs.self, Links.self]
        )

        struct Programs: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "programs",
                abstract: "List programs (managed ones unless --all).",
                aliases: ["program"]
            )
            @Option(
                name: [.short, .customLong("program-type")],
                help: ArgumentHelp(programTypeHelp, valueName: "type")
            )
            var programType: String?
            @Option(name: .customLong("application"), help: "Only programs with metadata bpfman_application=NAME.")
            var application: String?
            @Option(
                name: [.short, .customLong("metadata-selector"), .customLong("metadata")],
                parsing: .upToNextOption,
                help: ArgumentHelp(
                    "Only programs whose metadata has these pairs (-m k=v k2=v2).",
                    valueName: "key=value"
                )
            )
            var metadata: [String] = []
            @Flag(name: [.short, .customLong("all")], help: "Include programs bpfman does not manage.") var all = false
            @OptionGroup var client: ClientOptions

            func run() async throws {
                var request = Bpfman_V1_ListRequest()
                if let programType {
                    guard let number = programTypeNumber(programType) else {
                        throw ValidationError("unknown program type \"\(programType)\"")
                    }
                    request.programType = number
                }
                request.bpfmanProgramsOnly = !all
                request.matchMetadata = try keyValues(metadata, option: "-m/--metadata")
                if let application { request.matchMetadata["bpfman_application"] = application }
                let daemon = try await client.connect()
                let results = try await daemon.call(
                    Bpfman_V1_Bpfman.Method.list.path,
                    request,
                    Bpfman_V1_ListResponse.self
                )
                .results
                let details = try await daemon.details([])
                switch client.output {
                case .json:
                    printJSON(jsonArray(results.map { ProgramView($0, details).json }))
                case .table:
                    emit(
                        table(
                            ["Program ID", "Application", "Type", "Function Name", "Links"],
                            results.map { r in
                                let managed = r.hasInfo
                                return [
                                    "\(r.kernelInfo.id)", managed ? r.info.metadata["bpfman_application"] ?? "" : "",
                                    details[r.kernelInfo.id]?.kind ?? kernelTypeName(r.kernelInfo.programType),
                                    managed ? r.info.name : r.kernelInfo.name, managed ? linksColumn(r.info.links) : "",
                                ]
                            }
                        )
                    )
                }
            }
        }

        struct Links: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "links",
                abstract: "List links.",
                aliases: ["link"]
            )
            @Option(
                name: [.short, .customLong("program-type")],
                help: ArgumentHelp(programTypeHelp, valueName: "type")
            )
            var programType: String?
            @Option(name: .customLong("application"), help: "Only links of programs with bpfman_application=NAME.")
            var application: String?
            @Option(
                name: [.short, .customLong("metadata-selector"), .customLong("metadata")],
                parsing: .upToNextOption,
                help: ArgumentHelp(
                    "Only programs whose metadata has these pairs (-m k=v k2=v2).",
                    valueName: "key=value"
                )
            )
            var metadata: [String] = []
            @Option(name: .customLong("program-id"), help: "Only links of this program.") var programID: UInt32?
            @OptionGroup var client: ClientOptions

            func run() async throws {
                var request = Bpfman_Ext_V1_ListLinksRequest()
                if let programType {
                    guard let number = programTypeNumber(programType) else {
                        throw ValidationError("unknown program type \"\(programType)\"")
                    }
                    request.programType = number
                }
                if let programID { request.programID = programID }
                request.matchMetadata = try keyValues(metadata, option: "-m/--metadata")
                if let application { request.matchMetadata["bpfman_application"] = application }
                let backend = try await client.connect()
                let links = try await backend.call(
                    Bpfman_Ext_V1_Inspect.Method.listLinks.path,
                    request,
                    Bpfman_Ext_V1_ListLinksResponse.self
                ).links
                switch client.output {
                case .json: printJSON(jsonArray(links.map { json($0) }))
                case .table:
                    // fentry/fexit/lsm links show the function or hook their program was loaded for.
                    let needsTargets = links.contains { l in
                        switch l.attach.info {
                        case .fentryAttachInfo?, .fexitAttachInfo?, .lsmAttachInfo?: true
                        default: false
                        }
                    }
                    let details = needsTargets ? ((try? await backend.details([])) ?? [:]) : [:]
                    emit(
                        table(
                            ["Program ID", "Link ID", "Application", "Type", "Function Name", "Attachment"],
                            links.map { l in
                                [
                                    "\(l.programID)", "\(l.linkID)", l.programMetadata["bpfman_application"] ?? "",
                                    l.kind,
                                    l.programName,
                                    attachmentText(l, target: details[l.programID]?.attachTarget),
                                ]
                            }
                        )
                    )
                }
            }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show one program or link.",
            subcommands: [Program.self, Link.self]
        )

        struct Program: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "program", abstract: "Show a program.")
            @Argument(help: "The program id.", completion: .programIDs) var programID: UInt32
            @OptionGroup var client: ClientOptions

            func run() async throws {
                let backend = try await client.connect()
                let view = try await backend.program(programID)
                switch client.output {
                case .json: printJSON(view.json)
                case .table:
                    var request = Bpfman_Ext_V1_ListLinksRequest()
                    request.programID = programID
                    let links =
                        view.info == nil || view.info!.links.isEmpty
                        ? []
                        : (try? await backend.call(
                            Bpfman_Ext_V1_Inspect.Method.listLinks.path,
                            request,
                            Bpfman_Ext_V1_ListLinksResponse.self
                        ).links) ?? []
                    emit(programText(info: view.info, kernel: view.kernel, details: view.details, links: links))
                }
            }
        }

        struct Link: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "link", abstract: "Show a link.")
            @Argument(help: "The link id.", completion: .linkIDs) var linkID: UInt32
            @OptionGroup var client: ClientOptions

            func run() async throws {
                let link = try await client.connect().link(linkID)
                switch client.output {
                case .json: printJSON(json(link))
                case .table: emit(linkText(link))
                }
            }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the daemon's state and its dispatchers.")
        @OptionGroup var client: ClientOptions

        func run() async throws {
            let daemon = try await client.connect()
            let status = try await daemon.call(
                Bpfman_Ext_V1_Inspect.Method.status.path,
                Bpfman_Ext_V1_StatusRequest(),
                Bpfman_Ext_V1_StatusResponse.self
            )
            let dispatchers = try await daemon.call(
                Bpfman_Ext_V1_Inspect.Method.listDispatchers.path,
                Bpfman_Ext_V1_ListDispatchersRequest(),
                Bpfman_Ext_V1_ListDispatchersResponse.self
            ).dispatchers
            switch client.output {
            case .json:
                // StatusResponse plus `dispatchers` (SPEC §9.3).
                var text = json(status)
                text.removeLast()
                text +=
                    (text.hasSuffix("{") ? "" : ",") + "\"dispatchers\":" + jsonArray(dispatchers.map { json($0) })
                    + "}"
                printJSON(text)
            case .table:
                let mode = status.attachMode == "native" ? "native (\(status.attachModeReason))" : status.attachMode
                emit(
                    block(
                        nil,
                        [
                            ("Version", status.version), ("Socket", status.socketPath),
                            ("Runtime Dir", status.runtimeDir),
                            ("XDP/TC Attach Mode", mode),
                            ("CSI", status.csiEnabled ? "enabled (\(status.csiSocketPath))" : "disabled"),
                            ("Idle Timeout", status.idleTimeoutSecs == 0 ? "none" : "\(status.idleTimeoutSecs) s"),
                            ("Programs", "\(status.programCount)"), ("Links", "\(status.linkCount)"),
                            (
                                "Kernel Features",
                                status.kernelFeatures.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(
                                    separator: " "
                                )
                            ),
                        ]
                    )
                )
                emit("")
                emit(
                    table(
                        ["Kind", "Interface", "Netns", "Direction", "Revision", "Dispatcher Program ID", "Members"],
                        dispatchers.map { d in
                            [
                                d.kind, d.iface, d.netns.isEmpty ? "host" : d.netns,
                                d.direction.isEmpty ? "-" : d.direction,
                                "\(d.revision)", "\(d.programID)",
                                d.members.map { "\($0.position):\($0.linkID)/\($0.programID)" }.joined(separator: " "),
                            ]
                        }
                    )
                )
            }
        }
    }
}
