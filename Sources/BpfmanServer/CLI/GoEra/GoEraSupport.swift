internal import ArgumentParser
internal import FoundationEssentials
internal import H2Transport
internal import Proto

// Upstream's Go-era command tree (SPEC §9.4): noun-verb commands with their own output shapes. They run on the
// same backend as the Rust-era tree (the daemon, or the engine in-process) and only present differently.

/// `-o text|json` of the Go-era tree.
enum GoOutputFormat: String, ExpressibleByArgument, CaseIterable, Sendable {
    case text, json
}

/// What every Go-era client command takes: `-o`, the socket, and where the state lives when no daemon answers.
struct GoClientOptions: ParsableArguments {
    @Option(name: [.short, .customLong("output")], help: "Output format: text or json.")
    var output: GoOutputFormat = .text

    @Option(
        name: .customLong("socket-path"),
        help: "The daemon's socket (default $BPFMAN_SOCKET_PATH, else /run/bpfman-sock/bpfman.sock)."
    )
    var socketPath: String?

    @OptionGroup var connection: ConnectionOptions

    func connect() async throws(ClientError) -> Backend {
        try await Backend.open(socketPath: resolveSocketPath(socketPath), connection)
    }
}

/// The metadata key the Go-era tree's `-a/--application` sets (the Rust-era tree's is `bpfman_application`).
let goApplicationKey = "bpfman.io/application"

/// A program's application under either tree's key.
func applicationName(_ metadata: [String: String]) -> String {
    metadata[goApplicationKey] ?? metadata["bpfman_application"] ?? ""
}

/// The Go-era table: upper-case headers, two-space gaps; nothing at all for no rows (SPEC §9.4).
func goTable(_ header: [String], _ rows: [[String]]) -> String? {
    rows.isEmpty ? nil : table(header, rows)
}

/// One row of a Go-era detail view: `Label: value`, or a section of rows one level deeper.
enum DetailRow {
    case field(String, String)
    case section(String, [DetailRow])
    /// A bare line standing for a section with nothing to show (`(not collected)`).
    case note(String)

    var label: String {
        switch self {
        case .field(let label, _), .section(let label, _): label
        case .note: ""
        }
    }
}

/// Renders detail rows two spaces deeper per level; values align within a group of siblings.
func renderDetail(_ rows: [DetailRow], depth: Int = 1) -> [String] {
    let indent = String(repeating: "  ", count: depth)
    let width =
        rows.compactMap { row -> Int? in
            if case .field(let label, _) = row { return label.count }
            return nil
        }.max() ?? 0
    var lines: [String] = []
    for row in rows {
        switch row {
        case .field(let label, let value):
            let padded = (label + ":").padding(to: width + 1)
            var line = indent + padded + " " + value
            while line.hasSuffix(" ") { line.removeLast() }
            lines.append(line)
        case .section(let label, let children):
            lines.append(indent + label + ":")
            lines += renderDetail(children, depth: depth + 1)
        case .note(let text):
            lines.append(indent + text)
        }
    }
    return lines
}

extension String {
    fileprivate func padding(to width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}

/// Sorted by label, as upstream orders the fields of a detail section.
func byLabel(_ rows: [DetailRow]) -> [DetailRow] {
    rows.sorted { $0.label < $1.label }
}

/// `program get` / `program load` text as upstream prints it: `Program ID: N`, then Spec, Status (with one
/// sub-section per link, and the map ids) and Stats, fields ordered by label.
func goProgramText(
    info: Bpfman_V1_ProgramInfo?,
    kernel: Bpfman_V1_KernelProgramInfo,
    details: Bpfman_Ext_V1_ProgramDetails?,
    links: [Bpfman_Ext_V1_LinkInfo] = []
) -> String {
    var spec: [DetailRow] = []
    if let info {
        spec.append(
            .field(
                "Global",
                info.globalData.isEmpty
                    ? "None"
                    : info.globalData.sorted { $0.key < $1.key }.map { "\($0.key)=\(hex($0.value))" }.joined(
                        separator: ", "
                    )
            )
        )
        spec.append(.field("Map Owner ID", info.hasMapOwnerID ? "\(info.mapOwnerID)" : "None"))
        spec.append(.field("Map Pin Path", info.mapPinPath.isEmpty ? "None" : info.mapPinPath))
        spec.append(.field("Metadata", metadataText(info.metadata)))
        spec.append(.field("Name", info.name))
        switch info.bytecode.location {
        case .image(let image)?:
            spec.append(.field("Image URL", image.url))
            let policies = ["Always", "IfNotPresent", "Never"]
            let index = Int(image.imagePullPolicy)
            spec.append(.field("Pull Policy", policies.indices.contains(index) ? policies[index] : "\(index)"))
        case .file(let path)?: spec.append(.field("Path", path))
        case nil: spec.append(.field("Path", "None"))
        }
    } else {
        spec.append(.field("Name", kernel.name))
    }
    spec.append(.field("GPL Compatible", "\(kernel.gplCompatible)"))
    spec.append(.field("Type", details.map { $0.kind } ?? goKernelTypeName(kernel.programType)))
    var status: [DetailRow] = [
        .field("Instructions", "\(kernel.verifiedInsns)"),
        .field("Kernel Type", goKernelTypeName(details.map { $0.kernelType } ?? kernel.programType)),
        .field("Loaded At", goTimestamp(kernel.loadedAt)),
        .field("Size JITted", "\(kernel.bytesJited) bytes"),
        .field("Size Translated", "\(kernel.bytesXlated) bytes"),
        .field("Tag", kernel.tag),
    ]
    if kernel.btfID != 0 { status.append(.field("BTF ID", "\(kernel.btfID)")) }
    if kernel.bytesMemlock != 0 { status.append(.field("Memory", "\(kernel.bytesMemlock) bytes")) }
    if let info {
        if !info.mapUsedBy.isEmpty { status.append(.field("Maps Used By", info.mapUsedBy.joined(separator: " "))) }
        if let pin = goProgramPin(info, id: kernel.id) {
            status.append(.field("Map Dir", info.mapPinPath))
            status.append(.field("Prog Pin", pin))
        }
    }
    status = byLabel(status)
    let byID = Dictionary(links.map { ($0.linkID, $0) }, uniquingKeysWith: { first, _ in first })
    let ids = info?.links ?? []
    if ids.isEmpty {
        status.append(.field("Links", "None"))
    } else {
        status.append(
            .section(
                "Links",
                ids.map { id in
                    guard let link = byID[id] else { return .section("\(id)", [.note("(not found)")]) }
                    var rows: [DetailRow] = [
                        .field("Attach", goAttachDetails(link, target: details?.attachTarget)),
                        .field("Kind", goLinkKind(link, program: details)),
                    ]
                    if !link.pinPath.isEmpty {
                        rows.append(
                            .field("Pin", link.pinPath + (pathPresent(link.pinPath) == false ? " (missing)" : ""))
                        )
                    }
                    return .section("\(id)", rows)
                }
            )
        )
    }
    status.append(
        .field(
            "Maps",
            kernel.mapIds.isEmpty ? "None" : "[" + kernel.mapIds.map(String.init).joined(separator: " ") + "]"
        )
    )
    return
        (["Program ID: \(kernel.id)"]
        + renderDetail([
            .section("Spec", byLabel(spec)), .section("Status", status),
            .section("Stats", [.note("(not collected)")]),
        ])).joined(separator: "\n")
}

/// A link's attach point as the Links rows of `program get` show it (upstream's `eth0 (ifindex=2, pos=0)`,
/// `eth0/ingress (...)`, `group/name`, `target:fn`, the function or hook).
func goAttachDetails(_ link: Bpfman_Ext_V1_LinkInfo, target: String?) -> String {
    let ifindex = link.hasIfindex ? "\(link.ifindex)" : "?"
    switch link.attach.info {
    case .xdpAttachInfo(let a)?: return "\(a.iface) (ifindex=\(ifindex), pos=\(a.position))"
    case .tcAttachInfo(let a)?: return "\(a.iface)/\(a.direction) (ifindex=\(ifindex), pos=\(a.position))"
    case .tcxAttachInfo(let a)?: return "\(a.iface)/\(a.direction) (ifindex=\(ifindex), pos=\(a.position))"
    case .tracepointAttachInfo(let a)?: return a.tracepoint
    case .kprobeAttachInfo(let a)?: return a.fnName
    case .uprobeAttachInfo(let a)?: return a.target + ":" + (a.hasFnName ? a.fnName : "")
    case .fentryAttachInfo?, .fexitAttachInfo?, .lsmAttachInfo?, nil: return target ?? ""
    }
}

/// `link get` / `link attach` text as upstream prints it: `Link ID: N`, then Spec (the kind's fields among the
/// common ones, ordered by label) and Status (whether the pin is there, when this process may look).
func goLinkText(_ link: Bpfman_Ext_V1_LinkInfo, program: Bpfman_Ext_V1_ProgramDetails?) -> String {
    var spec: [DetailRow] = [
        .field("BPF Function", link.programName),
        .field("Kernel Link ID", link.hasKernelLinkID ? "\(link.kernelLinkID)" : "None"),
        .field("Metadata", metadataText(link.metadata)),
        .field("Pin Path", link.pinPath.isEmpty ? "None" : link.pinPath),
        .field("Program ID", "\(link.programID)"),
        .field("Type", goLinkKind(link, program: program)),
    ]
    func netns(_ has: Bool, _ value: String) -> String { has && !value.isEmpty ? value : "None" }
    let target = program?.attachTarget ?? ""
    switch link.attach.info {
    case .xdpAttachInfo(let a)?:
        spec += [
            .field("Interface", a.iface), .field("Network Namespace", netns(a.hasNetns, a.netns)),
            .field("Position", "\(a.position)"), .field("Priority", "\(a.priority)"),
            .field("Proceed On", proceedOnText(a.proceedOn, xdp: true)),
        ]
    case .tcAttachInfo(let a)?:
        spec += [
            .field("Direction", a.direction), .field("Interface", a.iface),
            .field("Network Namespace", netns(a.hasNetns, a.netns)), .field("Position", "\(a.position)"),
            .field("Priority", "\(a.priority)"), .field("Proceed On", proceedOnText(a.proceedOn, xdp: false)),
        ]
    case .tcxAttachInfo(let a)?:
        spec += [
            .field("Direction", a.direction), .field("Interface", a.iface),
            .field("Network Namespace", netns(a.hasNetns, a.netns)), .field("Position", "\(a.position)"),
            .field("Priority", "\(a.priority)"),
        ]
    case .tracepointAttachInfo(let a)?:
        spec.append(.field("Tracepoint", a.tracepoint))
    case .kprobeAttachInfo(let a)?:
        spec.append(.field("Attach Type", goLinkKind(link, program: program)))
        spec.append(.field("Target Function", a.fnName))
        if a.offset != 0 { spec.append(.field("Target Offset", "\(a.offset)")) }
    case .uprobeAttachInfo(let a)?:
        spec.append(.field("Attach Type", goLinkKind(link, program: program)))
        if a.hasPid, a.pid != 0 { spec.append(.field("PID", "\(a.pid)")) }
        spec.append(.field("Target", a.target))
        spec.append(.field("Target Function", a.hasFnName ? a.fnName : ""))
        if a.offset != 0 { spec.append(.field("Target Offset", "\(a.offset)")) }
        if a.hasContainerPid { spec.append(.field("Container PID", "\(a.containerPid)")) }
    case .fentryAttachInfo?, .fexitAttachInfo?:
        spec.append(.field("Target Function", target))
    case .lsmAttachInfo?:
        spec.append(.field("LSM Hook", target))
    case nil:
        break
    }
    var status: [DetailRow] = []
    if !link.pinPath.isEmpty, let present = pathPresent(link.pinPath) {
        status.append(.field("Pin Present", "\(present)"))
    }
    var sections: [DetailRow] = [.section("Spec", byLabel(spec))]
    if !status.isEmpty { sections.append(.section("Status", status)) }
    return (["Link ID: \(link.linkID)"] + renderDetail(sections)).joined(separator: "\n")
}

/// The ATTACHMENT column of `link list` (upstream's summary; `netns=<path>` when not the host's).
func goAttachmentText(_ link: Bpfman_Ext_V1_LinkInfo, target: String?) -> String {
    var text = attachmentText(link, target: target)
    switch link.attach.info {
    case .xdpAttachInfo(let a)? where a.hasNetns && !a.netns.isEmpty: text += " netns=" + a.netns
    case .tcAttachInfo(let a)? where a.hasNetns && !a.netns.isEmpty: text += " netns=" + a.netns
    case .tcxAttachInfo(let a)? where a.hasNetns && !a.netns.isEmpty: text += " netns=" + a.netns
    default: break
    }
    return text.isEmpty ? "<none>" : text
}

/// Runs `body` for each id, reporting each failure (`<noun> <id>: <error>`) on stderr, then one summary
/// (`N of M <noun>(s) failed to <verb>`) as the command's error (SPEC §9.4). NOT_FOUND counts as done with
/// `ignoreMissing`.
func forEachID(
    _ ids: [UInt32],
    noun: String,
    verb: String,
    ignoreMissing: Bool,
    _ body: (UInt32) async throws(ClientError) -> Void
) async throws(ClientError) {
    var failed = 0
    for id in ids {
        do {
            try await body(id)
        } catch {
            if ignoreMissing && error.status.code == .notFound { continue }
            failed += 1
            writeToStandardError("\(noun) \(id): \(error.status.message)\n")
        }
    }
    if failed > 0 {
        throw ClientError(
            plain: "\(failed) of \(ids.count) \(noun)(s) failed to \(verb)",
            code: .unknown
        )
    }
}
