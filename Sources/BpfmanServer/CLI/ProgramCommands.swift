internal import ArgumentParser
internal import FoundationEssentials
internal import Glibc
internal import H2Transport
internal import Proto

/// The entries of repeated, comma-separated option values; `\,` is a literal comma (as upstream's Go-era CLI
/// reads them), so a value may contain one.
func listItems(_ values: [String]) -> [String] {
    var items: [String] = []
    for value in values {
        var current = ""
        var escaped = false
        for character in value {
            if escaped {
                if character != "," { current.append("\\") }
                current.append(character)
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else if character == "," {
                if !current.isEmpty { items.append(current) }
                current = ""
            } else {
                current.append(character)
            }
        }
        if escaped { current.append("\\") }
        if !current.isEmpty { items.append(current) }
    }
    return items
}

/// `KEY=VALUE` pairs from repeatable, comma-separable options.
func keyValues(_ items: [String], option: String) throws -> [String: String] {
    var result: [String: String] = [:]
    for item in listItems(items) {
        guard let eq = item.firstIndex(of: "="), eq != item.startIndex else {
            throw ValidationError("\(option) expects KEY=VALUE, got \"\(item)\"")
        }
        result[String(item[..<eq])] = String(item[item.index(after: eq)...])
    }
    return result
}

/// `-g NAME=HEX`: hex bytes in order, optional `0x`, even digit count.
func globalData(_ items: [String]) throws -> [String: [UInt8]] {
    var result: [String: [UInt8]] = [:]
    for (name, text) in try keyValues(items, option: "-g/--global") {
        var digits = Substring(text)
        if digits.hasPrefix("0x") || digits.hasPrefix("0X") { digits = digits.dropFirst(2) }
        guard !digits.isEmpty, digits.count % 2 == 0 else {
            throw ValidationError("-g \(name): \"\(text)\" is not an even number of hex digits")
        }
        var bytes: [UInt8] = []
        var index = digits.startIndex
        while index < digits.endIndex {
            let next = digits.index(index, offsetBy: 2)
            guard let byte = UInt8(digits[index..<next], radix: 16) else {
                throw ValidationError("-g \(name): \"\(text)\" is not hex")
            }
            bytes.append(byte)
            index = next
        }
        result[name] = bytes
    }
    return result
}

/// `--programs TYPE:FN[:TARGET]`, repeatable and comma-separable.
func loadInfos(_ items: [String]) throws -> [Bpfman_V1_LoadInfo] {
    let types: [String: Bpfman_V1_BpfmanProgramType] = [
        "xdp": .xdp, "tc": .tc, "tcx": .tcx, "tracepoint": .tracepoint, "kprobe": .kprobe, "kretprobe": .kprobe,
        "uprobe": .uprobe, "uretprobe": .uprobe, "fentry": .fentry, "fexit": .fexit, "lsm": .lsm,
    ]
    var infos: [Bpfman_V1_LoadInfo] = []
    for item in listItems(items) {
        let parts = item.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 2, let type = types[parts[0].lowercased()], !parts[1].isEmpty else {
            throw ValidationError(
                "--programs expects TYPE:FUNCTION[:TARGET] with TYPE one of \(types.keys.sorted().joined(separator: ", ")), got \"\(item)\""
            )
        }
        var info = Bpfman_V1_LoadInfo()
        info.name = parts[1]
        info.programType = type
        let target = parts.count == 3 ? parts[2] : nil
        switch type {
        case .fentry, .fexit, .lsm:
            guard let target, !target.isEmpty else {
                throw ValidationError("--programs \(item): \(parts[0]) needs a target (\(parts[0]):FUNCTION:TARGET)")
            }
            var specific = Bpfman_V1_ProgSpecificInfo()
            switch type {
            case .fentry:
                var f = Bpfman_V1_FentryLoadInfo()
                f.fnName = target
                specific.info = .fentryLoadInfo(f)
            case .fexit:
                var f = Bpfman_V1_FexitLoadInfo()
                f.fnName = target
                specific.info = .fexitLoadInfo(f)
            default:
                var l = Bpfman_V1_LsmLoadInfo()
                l.hookName = target
                specific.info = .lsmLoadInfo(l)
            }
            info.info = specific
        default:
            if target != nil { throw ValidationError("--programs \(item): \(parts[0]) takes no target") }
        }
        infos.append(info)
    }
    guard !infos.isEmpty else { throw ValidationError("--programs is required") }
    return infos
}

/// Options shared by `load file` and `load image`.
struct LoadOptions: ParsableArguments {
    @Option(
        name: .customLong("programs"),
        parsing: .upToNextOption,
        help: ArgumentHelp(
            "Programs to load, space- or comma-separated or repeated. TYPE is one of xdp, tc, tcx, tracepoint, kprobe, kretprobe, uprobe, uretprobe, fentry, fexit, lsm; TARGET (the function, or the LSM hook) is required for fentry, fexit and lsm.",
            valueName: "type:function[:target]"
        )
    )
    var programs: [String]

    @Option(
        name: [.short, .customLong("global")],
        parsing: .upToNextOption,
        help: ArgumentHelp("Global data, hex bytes in order (-g config_u32=0xdeadbeef flag=01).", valueName: "name=hex")
    )
    var global: [String] = []

    @Option(name: [.short, .customLong("application")], help: "Adds metadata bpfman_application=NAME.")
    var application: String?

    @Option(
        name: [.short, .customLong("metadata")],
        parsing: .upToNextOption,
        help: ArgumentHelp("Metadata, space- or comma-separated or repeated (-m k=v k2=v2).", valueName: "key=value")
    )
    var metadata: [String] = []

    @Option(name: .customLong("map-owner-id"), help: "Share the maps of this program.")
    var mapOwnerID: UInt32?

    func request(_ location: Bpfman_V1_BytecodeLocation) throws -> Bpfman_V1_LoadRequest {
        try loadRequest(
            location,
            programs: programs,
            global: global,
            metadata: metadata,
            application: application.map { ("bpfman_application", $0) },
            mapOwnerID: mapOwnerID
        )
    }
}

/// A LoadRequest from the options both trees' load commands take; `application` is the metadata pair the tree
/// stores its `-a` under.
func loadRequest(
    _ location: Bpfman_V1_BytecodeLocation,
    programs: [String],
    global: [String],
    metadata: [String],
    application: (key: String, name: String)?,
    mapOwnerID: UInt32?
) throws -> Bpfman_V1_LoadRequest {
    var request = Bpfman_V1_LoadRequest()
    request.bytecode = location
    request.info = try loadInfos(programs)
    request.globalData = try globalData(global)
    request.metadata = try keyValues(metadata, option: "-m/--metadata")
    if let application { request.metadata[application.key] = application.name }
    if let mapOwnerID { request.mapOwnerID = mapOwnerID }
    return request
}

/// Prints a Load's programs like `get program` (SPEC §9.2) or as a JSON array.
func printLoaded(_ response: Bpfman_V1_LoadResponse, client: Backend, output: OutputFormat) async throws {
    let details = (try? await client.details(response.programs.map(\.kernelInfo.id))) ?? [:]
    switch output {
    case .json:
        printJSON(jsonArray(response.programs.map { json($0) }))
    case .table:
        emit(
            response.programs.map { p in
                programText(info: p.hasInfo ? p.info : nil, kernel: p.kernelInfo, details: details[p.kernelInfo.id])
            }.joined(separator: "\n\n")
        )
    }
}

extension BpfmanCommand {
    struct Load: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Load eBPF programs from an object file or an OCI image.",
            subcommands: [File.self, Image.self]
        )

        struct File: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Load programs from an ELF object file.",
                discussion: """
                    Examples:
                      bpfman load file -p xdp_pass.o --programs xdp:pass
                      bpfman load file -p kprobe.o --programs kprobe:kprobe_counter -g GLOBAL_u8=01 GLOBAL_u32=0A0B0C0D
                      bpfman load file -p fentry.o --programs fentry:test_fentry:do_unlinkat -m owner=acme
                    """
            )
            @Option(name: [.short, .customLong("path")], help: "The object file (made absolute before sending).")
            var path: String
            @OptionGroup var load: LoadOptions
            @OptionGroup var client: ClientOptions

            func run() async throws {
                let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
                var location = Bpfman_V1_BytecodeLocation()
                location.location = .file(absolute)
                let request = try load.request(location)
                let daemon = try await client.connect()
                let response = try await daemon.call(
                    Bpfman_V1_Bpfman.Method.load.path,
                    request,
                    Bpfman_V1_LoadResponse.self
                )
                try await printLoaded(response, client: daemon, output: client.output)
            }
        }

        struct Image: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Load programs from an OCI bytecode image.",
                discussion: """
                    Example:
                      bpfman load image -i quay.io/bpfman-bytecode/xdp_pass:latest --programs xdp:pass -p Always
                    """
            )
            @Option(name: [.short, .customLong("image-url")], help: "The image reference.")
            var imageURL: String
            @Option(name: [.short, .customLong("pull-policy")], help: "Always, IfNotPresent or Never.")
            var pullPolicy: String = "IfNotPresent"
            @Option(name: [.short, .customLong("registry-auth")], help: "BASE64(user:password).")
            var registryAuth: String?
            @OptionGroup var load: LoadOptions
            @OptionGroup var client: ClientOptions

            func run() async throws {
                var location = Bpfman_V1_BytecodeLocation()
                location.location = .image(try bytecodeImage(imageURL, pullPolicy, registryAuth))
                let request = try load.request(location)
                let daemon = try await client.connect()
                let response = try await daemon.call(
                    Bpfman_V1_Bpfman.Method.load.path,
                    request,
                    Bpfman_V1_LoadResponse.self
                )
                try await printLoaded(response, client: daemon, output: client.output)
            }
        }
    }

    struct Unload: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Unload a program (detaching all its links).")
        @Argument(help: "The program id.", completion: .programIDs) var programID: UInt32
        @Flag(help: "Succeed when the program does not exist.") var ignoreMissing = false
        @OptionGroup var client: ClientOptions

        func run() async throws {
            var request = Bpfman_V1_UnloadRequest()
            request.id = programID
            do {
                _ = try await client.connect().call(
                    Bpfman_V1_Bpfman.Method.unload.path,
                    request,
                    Bpfman_V1_UnloadResponse.self
                )
            } catch {
                guard ignoreMissing && error.status.code == .notFound else { throw error }
            }
            if client.output == .json { emit("{}") }
        }
    }

    struct Detach: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Detach a link; the program stays loaded.")
        @Argument(help: "The link id.", completion: .linkIDs) var linkID: UInt32
        @Flag(help: "Succeed when the link does not exist.") var ignoreMissing = false
        @OptionGroup var client: ClientOptions

        func run() async throws {
            var request = Bpfman_V1_DetachRequest()
            request.linkID = linkID
            do {
                _ = try await client.connect().call(
                    Bpfman_V1_Bpfman.Method.detach.path,
                    request,
                    Bpfman_V1_DetachResponse.self
                )
            } catch {
                guard ignoreMissing && error.status.code == .notFound else { throw error }
            }
            if client.output == .json { emit("{}") }
        }
    }
}

func bytecodeImage(_ url: String, _ policy: String, _ auth: String?) throws -> Bpfman_V1_BytecodeImage {
    var image = Bpfman_V1_BytecodeImage()
    image.url = url
    switch policy.lowercased() {
    case "always": image.imagePullPolicy = 0
    case "ifnotpresent": image.imagePullPolicy = 1
    case "never": image.imagePullPolicy = 2
    default: throw ValidationError("--pull-policy must be Always, IfNotPresent or Never, got \"\(policy)\"")
    }
    if let auth {
        guard let data = Data(base64Encoded: auth), let text = String(data: data, encoding: .utf8),
            let colon = text.firstIndex(of: ":")
        else { throw ValidationError("--registry-auth must be base64 of user:password") }
        image.username = String(text[..<colon])
        image.password = String(text[text.index(after: colon)...])
    }
    return image
}
