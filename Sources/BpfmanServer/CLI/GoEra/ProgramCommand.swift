internal import ArgumentParser
internal import FoundationEssentials
internal import H2Transport
internal import Proto

/// The Go-era `--programs`, `-g`, `-a`, `-m`, `--map-owner-id` of `program load file|image` (repeatable options
/// that also split on commas; no space-separated lists, as upstream's Go CLI takes them).
struct GoLoadOptions: ParsableArguments {
    @Option(
        name: .customLong("programs"),
        help: ArgumentHelp(
            "Programs to load (required), repeated or comma-separated. TYPE: xdp, tc, tcx, tracepoint, kprobe, kretprobe, uprobe, uretprobe, fentry, fexit, lsm; fentry, fexit and lsm need the attach function or hook.",
            valueName: "type:name[:attach_func]"
        )
    )
    var programs: [String]

    @Option(name: [.short, .customLong("global")], help: ArgumentHelp("Global data.", valueName: "name=hex"))
    var global: [String] = []

    @Option(
        name: [.short, .customLong("application")],
        help: ArgumentHelp("Application name (stored as metadata bpfman.io/application).", valueName: "name")
    )
    var application: String?

    @Option(name: [.short, .customLong("metadata")], help: ArgumentHelp("Metadata.", valueName: "key=value"))
    var metadata: [String] = []

    @Option(name: .customLong("map-owner-id"), help: "Share the maps of this program.")
    var mapOwnerID: UInt32?

    func request(_ location: Bpfman_V1_BytecodeLocation) throws -> Bpfman_V1_LoadRequest {
        try loadRequest(
            location,
            programs: programs,
            global: global,
            metadata: metadata,
            application: application.map { (goApplicationKey, $0) },
            mapOwnerID: mapOwnerID
        )
    }
}

/// Loads, then prints the programs as `program get` does, or `{"programs":[…]}`.
private func goLoad(_ request: Bpfman_V1_LoadRequest, _ options: GoClientOptions) async throws {
    let backend = try await options.connect()
    let response = try await backend.call(Bpfman_V1_Bpfman.Method.load.path, request, Bpfman_V1_LoadResponse.self)
    let programs = response.programs.sorted { $0.kernelInfo.id < $1.kernelInfo.id }
    let details = (try? await backend.details(programs.map(\.kernelInfo.id))) ?? [:]
    let views = programs.map { ProgramView($0, details) }
    switch options.output {
    case .json:
        printJSON(jsonObject([("programs", jsonArray(views.map { $0.goJSON(links: []) }))]))
    case .text:
        emit(views.map { $0.goText(links: []) }.joined(separator: "\n\n"))
    }
}

extension ProgramView {
    /// `bpfman.Program` JSON (SPEC §9.4).
    func goJSON(links: [Bpfman_Ext_V1_LinkInfo]) -> String {
        goProgramJSON(info: info, kernel: kernel, details: details, links: links)
    }

    /// `program get` text (SPEC §9.4).
    func goText(links: [Bpfman_Ext_V1_LinkInfo]) -> String {
        goProgramText(info: info, kernel: kernel, details: details, links: links)
    }
}

extension Backend {
    /// The program's links as `link get` shows them; a link gone meanwhile is left out.
    func links(of view: ProgramView) async -> [Bpfman_Ext_V1_LinkInfo] {
        var found: [Bpfman_Ext_V1_LinkInfo] = []
        for id in view.info?.links ?? [] {
            if let link = try? await link(id) { found.append(link) }
        }
        return found
    }
}

extension BpfmanCommand {
    /// `bpfman program …` (Go-era tree, SPEC §9.4); no verb means `program list`.
    struct ProgramCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "program",
            abstract: "Load, unload, get and list programs (upstream's noun-verb tree).",
            subcommands: [Load.self, Unload.self, Get.self, List.self],
            defaultSubcommand: List.self
        )

        struct Load: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Load programs from an object file or an OCI image.",
                subcommands: [File.self, Image.self]
            )

            struct File: AsyncParsableCommand {
                static let configuration = CommandConfiguration(
                    abstract: "Load programs from an ELF object file.",
                    usage: "bpfman program load file <path> --programs <type:name[:attach_func]>... [options]",
                    discussion: """
                        Example:
                          bpfman program load file ./xdp_pass.o --programs xdp:pass -a demo -m owner=me
                        """
                )
                @Argument(help: "The object file.") var path: String
                @OptionGroup var load: GoLoadOptions
                @OptionGroup var options: GoClientOptions

                func run() async throws {
                    let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
                    var location = Bpfman_V1_BytecodeLocation()
                    location.location = .file(absolute)
                    try await goLoad(try load.request(location), options)
                }
            }

            struct Image: AsyncParsableCommand {
                static let configuration = CommandConfiguration(
                    abstract: "Load programs from an OCI bytecode image.",
                    usage: "bpfman program load image <image> --programs <type:name[:attach_func]>... [options]"
                )
                @Argument(help: "The image reference.") var image: String
                @Option(
                    name: [.short, .customLong("pull-policy")],
                    help: "Always, IfNotPresent or Never, any case (default IfNotPresent)."
                )
                var pullPolicy: String = "IfNotPresent"
                @Option(
                    name: .customLong("registry-auth"),
                    help: "BASE64(user:password) (default $BPFMAN_REGISTRY_AUTH)."
                )
                var registryAuth: String?
                @OptionGroup var load: GoLoadOptions
                @OptionGroup var options: GoClientOptions

                func run() async throws {
                    let auth = registryAuth ?? ProcessInfo.processInfo.environment["BPFMAN_REGISTRY_AUTH"]
                    var location = Bpfman_V1_BytecodeLocation()
                    location.location = .image(try bytecodeImage(image, pullPolicy, auth))
                    try await goLoad(try load.request(location), options)
                }
            }
        }

        struct Unload: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Unload programs (detaching their links).")
            @Argument(help: "Program ids.", completion: .programIDs) var ids: [UInt32]
            @Flag(help: "Succeed for programs that do not exist.") var ignoreMissing = false
            @OptionGroup var options: GoClientOptions

            func run() async throws {
                let backend = try await options.connect()
                try await forEachID(ids, noun: "program", verb: "unload", ignoreMissing: ignoreMissing) {
                    id throws(ClientError) in
                    var request = Bpfman_V1_UnloadRequest()
                    request.id = id
                    _ = try await backend.call(
                        Bpfman_V1_Bpfman.Method.unload.path,
                        request,
                        Bpfman_V1_UnloadResponse.self
                    )
                }
            }
        }

        struct Get: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Show one program.")
            @Argument(help: "The program id.", completion: .programIDs) var id: UInt32
            @OptionGroup var options: GoClientOptions

            func run() async throws {
                let backend = try await options.connect()
                let view = try await backend.program(id)
                let links = await backend.links(of: view)
                switch options.output {
                case .json: printJSON(view.goJSON(links: links))
                case .text: emit(view.goText(links: links))
                }
            }
        }

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List programs (managed ones unless --all).")
            @Flag(name: [.short, .customLong("quiet")], help: "Print program ids only.") var quiet = false
            @Flag(help: "Only programs with links.") var attached = false
            @Flag(help: "Only programs without links.") var unattached = false
            @Option(name: .customLong("type"), help: ArgumentHelp(programTypeHelp, valueName: "type"))
            var types: [String] = []
            @Option(
                name: [.short, .customLong("program-type")],
                help: ArgumentHelp("Same as --type.", valueName: "type")
            )
            var programTypes: [String] = []
            @Option(help: "Only programs of this application.") var application: String?
            @Option(
                name: [.short, .customLong("metadata-selector")],
                help: ArgumentHelp("Only programs with this metadata.", valueName: "key=value")
            )
            var metadata: [String] = []
            @Flag(name: [.short, .customLong("all")], help: "Include programs bpfman does not manage.") var all = false
            @Option(
                name: [.customShort("l"), .customLong("selector")],
                help: ArgumentHelp(
                    "Only programs whose metadata matches this label selector (k=v, k!=v, k in (a,b), k notin (a,b), k, !k; comma-separated, all must hold).",
                    valueName: "selector"
                )
            )
            var selector: String?
            @OptionGroup var options: GoClientOptions

            func validate() throws {
                if attached && unattached { throw ValidationError("--attached and --unattached exclude each other") }
            }

            func run() async throws {
                let labels: LabelSelector?
                do {
                    labels = try selector.map { text throws(LabelSelector.ParseError) in
                        try LabelSelector(parsing: text)
                    }
                } catch {
                    throw ClientError(plain: "invalid label selector: \(error)", code: .invalidArgument)
                }
                let wanted = try listItems(types + programTypes).map {
                    name in
                    guard let number = programTypeNumber(name) else {
                        throw ValidationError("unknown program type \"\(name)\"")
                    }
                    return number
                }
                var request = Bpfman_V1_ListRequest()
                if wanted.count == 1 { request.programType = wanted[0] }
                request.bpfmanProgramsOnly = !all
                request.matchMetadata = try keyValues(metadata, option: "-m/--metadata-selector")
                let backend = try await options.connect()
                var results = try await backend.call(
                    Bpfman_V1_Bpfman.Method.list.path,
                    request,
                    Bpfman_V1_ListResponse.self
                ).results
                results = results.filter { r in
                    (wanted.isEmpty || wanted.contains(r.kernelInfo.programType))
                        && (application == nil || (r.hasInfo && applicationName(r.info.metadata) == application))
                        && (!attached || (r.hasInfo && !r.info.links.isEmpty))
                        && (!unattached || !r.hasInfo || r.info.links.isEmpty)
                        && (labels?.matches(r.hasInfo ? r.info.metadata : [:]) ?? true)
                }
                if quiet {
                    for r in results { emit("\(r.kernelInfo.id)") }
                    return
                }
                let details = try await backend.details([])
                switch options.output {
                case .json:
                    printJSON(
                        jsonObject([
                            (
                                "programs",
                                jsonArray(
                                    results.map { goProgramListEntryJSON($0, details: details[$0.kernelInfo.id]) }
                                )
                            )
                        ])
                    )
                case .text:
                    let withApplication = results.contains { $0.hasInfo && !applicationName($0.info.metadata).isEmpty }
                    let header =
                        withApplication
                        ? ["PROGRAM ID", "APPLICATION", "TYPE", "FUNCTION NAME", "LINK IDS"]
                        : ["PROGRAM ID", "TYPE", "FUNCTION NAME", "LINK IDS"]
                    let rows = results.map { r in
                        let managed = r.hasInfo
                        var row = ["\(r.kernelInfo.id)"]
                        if withApplication { row.append(managed ? applicationName(r.info.metadata) : "") }
                        let links = managed ? r.info.links : []
                        row += [
                            details[r.kernelInfo.id]?.kind ?? kernelTypeName(r.kernelInfo.programType),
                            managed ? r.info.name : r.kernelInfo.name,
                            links.isEmpty ? "<none>" : links.map(String.init).joined(separator: " "),
                        ]
                        return row
                    }
                    if let text = goTable(header, rows) { emit(text) }
                }
            }
        }
    }
}
