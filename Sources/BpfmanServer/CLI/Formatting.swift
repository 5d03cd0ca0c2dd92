internal import BpfmanEngine
internal import Proto

// Human-readable output of the CLI (SPEC §9.2): borderless tables and "Key: value" blocks.

/// Columns left-aligned, separated by two spaces, header first; trailing spaces trimmed.
func table(_ header: [String], _ rows: [[String]]) -> String {
    let all = [header] + rows
    var widths = [Int](repeating: 0, count: header.count)
    for row in all {
        for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
    }
    return all.map { row in
        var line = ""
        for (i, cell) in row.enumerated() {
            line += cell
            if i < row.count - 1 { line += String(repeating: " ", count: widths[i] - cell.count + 2) }
        }
        while line.hasSuffix(" ") { line.removeLast() }
        return line
    }.joined(separator: "\n")
}

/// "Key:" rows with aligned values; a value of several lines continues under the first, aligned with it.
func block(_ title: String?, _ rows: [(String, String)]) -> String {
    let width = (rows.map { $0.0.count }.max() ?? 0) + 2
    var lines: [String] = []
    if let title { lines.append(" \(title)") }
    for (key, value) in rows {
        let label = key + ":"
        let parts = value.split(separator: "\n", omittingEmptySubsequences: false)
        lines.append(" " + label + String(repeating: " ", count: max(1, width - label.count)) + (parts.first ?? ""))
        for part in parts.dropFirst() {
            lines.append(String(repeating: " ", count: 1 + max(width, label.count + 1)) + part)
        }
    }
    return lines.joined(separator: "\n")
}

/// Kernel program type names (`enum bpf_prog_type`), lower-case without the prefix.
let kernelTypeNames = [
    "unspec", "socket_filter", "kprobe", "sched_cls", "sched_act", "tracepoint", "xdp", "perf_event", "cgroup_skb",
    "cgroup_sock", "lwt_in", "lwt_out", "lwt_xmit", "sock_ops", "sk_skb", "cgroup_device", "sk_msg", "raw_tracepoint",
    "cgroup_sock_addr", "lwt_seg6local", "lirc_mode2", "sk_reuseport", "flow_dissector", "cgroup_sysctl",
    "raw_tracepoint_writable", "cgroup_sockopt", "tracing", "struct_ops", "ext", "lsm", "sk_lookup", "syscall",
    "netfilter",
]

func kernelTypeName(_ type: UInt32) -> String {
    Int(type) < kernelTypeNames.count ? kernelTypeNames[Int(type)] : "type \(type)"
}

/// `-p/--program-type` on list: a kind name (its reported kernel number), a kernel type name, or upstream's
/// name for it (`probe`, `cgroup-skb`, `socket-filter`, `sched-act`, ...: the kernel names in kebab case, with
/// `probe` for kprobe and `tc` for sched_cls).
func programTypeNumber(_ name: String) -> UInt32? {
    let lower = name.lowercased()
    if let kind = ProgramKind(rawValue: lower) { return kind.reportedKernelType }
    let snake = String(lower.map { $0 == "-" ? "_" : $0 })
    if snake == "probe" { return 2 }
    if snake == "schedcls" { return 3 }
    return kernelTypeNames.firstIndex(of: snake).map { UInt32($0) }
}

/// What `-p/--program-type` accepts, for help.
let programTypeHelp =
    "A kind (xdp, tc, tcx, tracepoint, kprobe, uprobe, fentry, fexit, lsm), a kernel type name (sched_cls, ext, tracing, ...) or upstream's name for it (probe, socket-filter, cgroup-skb, ...)."

func metadataText(_ metadata: [String: String]) -> String {
    metadata.isEmpty
        ? "None" : metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
}

func hex(_ bytes: [UInt8]) -> String {
    bytes.map { byte in
        let digits = String(byte, radix: 16)
        return digits.count == 1 ? "0" + digits : digits
    }.joined()
}

/// `get program` / `load` output: "Bpfman State" then "Kernel State".
func programText(
    info: Bpfman_V1_ProgramInfo?,
    kernel: Bpfman_V1_KernelProgramInfo,
    details: Bpfman_Ext_V1_ProgramDetails?,
    links: [Bpfman_Ext_V1_LinkInfo] = []
)
    -> String
{
    var bpfman: [(String, String)] = []
    if let info {
        bpfman.append(("BPF Function", info.name))
        bpfman.append(
            (
                "Program Type",
                details.map { $0.kind.isEmpty ? kernelTypeName(kernel.programType) : $0.kind }
                    ?? kernelTypeName(kernel.programType)
            )
        )
        switch info.bytecode.location {
        case .file(let path)?: bpfman.append(("Path", path))
        case .image(let image)?:
            bpfman.append(("Image URL", image.url))
            bpfman.append(
                (
                    "Pull Policy",
                    ["Always", "IfNotPresent", "Never"].indices.contains(Int(image.imagePullPolicy))
                        ? ["Always", "IfNotPresent", "Never"][Int(image.imagePullPolicy)] : "\(image.imagePullPolicy)"
                )
            )
        case nil: bpfman.append(("Path", "None"))
        }
        bpfman.append(
            (
                "Global",
                info.globalData.isEmpty
                    ? "None"
                    : info.globalData.sorted { $0.key < $1.key }.map { "\($0.key)=0x\(hex($0.value))" }.joined(
                        separator: ", "
                    )
            )
        )
        bpfman.append(("Metadata", metadataText(info.metadata)))
        bpfman.append(("Map Pin Path", info.mapPinPath.isEmpty ? "None" : info.mapPinPath))
        bpfman.append(("Map Owner ID", info.hasMapOwnerID ? "\(info.mapOwnerID)" : "None"))
        bpfman.append(("Maps Used By", info.mapUsedBy.isEmpty ? "None" : info.mapUsedBy.joined(separator: ", ")))
        // One link a line with where it is attached, as upstream prints it (`1301256968 (eno4 pos-0)`), when the
        // links were fetched; the ids alone otherwise.
        let attached = Dictionary(links.map { ($0.linkID, $0) }, uniquingKeysWith: { first, _ in first })
        let linkLines = info.links.map { id in
            attached[id].map { "\(id) (\(attachmentText($0, target: details?.attachTarget)))" } ?? "\(id)"
        }
        bpfman.append(
            (
                "Links",
                linkLines.isEmpty
                    ? "None" : links.isEmpty ? linkLines.joined(separator: ", ") : linkLines.joined(separator: "\n")
            )
        )
    }
    let kernelRows: [(String, String)] = [
        ("Program ID", "\(kernel.id)"),
        ("BPF Function", kernel.name),
        ("Kernel Type", kernelTypeName(details.map { $0.kernelType } ?? kernel.programType)),
        ("Loaded At", kernel.loadedAt),
        ("Tag", kernel.tag),
        ("GPL Compatible", "\(kernel.gplCompatible)"),
        (
            "Map IDs",
            kernel.mapIds.isEmpty ? "None" : "[" + kernel.mapIds.map(String.init).joined(separator: ", ") + "]"
        ),
        ("BTF ID", "\(kernel.btfID)"),
        ("Size Translated (bytes)", "\(kernel.bytesXlated)"),
        ("JITted", "\(kernel.jited)"),
        ("Size JITted", "\(kernel.bytesJited)"),
        ("Kernel Allocated Memory (bytes)", "\(kernel.bytesMemlock)"),
        ("Verified Instruction Count", "\(kernel.verifiedInsns)"),
    ]
    // A program bpfman does not manage has the kernel's part only, as upstream prints it.
    let kernelBlock = block("Kernel State", kernelRows)
    return bpfman.isEmpty ? kernelBlock : block("Bpfman State", bpfman) + "\n\n" + kernelBlock
}

/// `get link` / `attach` output.
func linkText(_ link: Bpfman_Ext_V1_LinkInfo) -> String {
    var rows: [(String, String)] = [
        ("Program ID", "\(link.programID)"), ("Link ID", "\(link.linkID)"), ("BPF Function", link.programName),
        ("Link Type", link.kind),
    ]
    func netns(_ has: Bool, _ value: String) -> String { has && !value.isEmpty ? value : "None" }
    switch link.attach.info {
    case .xdpAttachInfo(let a)?:
        rows += [
            ("Interface", a.iface), ("Priority", "\(a.priority)"), ("Position", "\(a.position)"),
            ("Proceed On", proceedOnText(a.proceedOn, xdp: true)), ("Network Namespace", netns(a.hasNetns, a.netns)),
        ]
    case .tcAttachInfo(let a)?:
        rows += [
            ("Interface", a.iface), ("Direction", a.direction), ("Priority", "\(a.priority)"),
            ("Position", "\(a.position)"), ("Proceed On", proceedOnText(a.proceedOn, xdp: false)),
            ("Network Namespace", netns(a.hasNetns, a.netns)),
        ]
    case .tcxAttachInfo(let a)?:
        rows += [
            ("Interface", a.iface), ("Direction", a.direction), ("Priority", "\(a.priority)"),
            ("Position", "\(a.position)"), ("Network Namespace", netns(a.hasNetns, a.netns)),
        ]
    case .tracepointAttachInfo(let a)?:
        rows += [("Tracepoint", a.tracepoint)]
    case .kprobeAttachInfo(let a)?:
        rows += [
            ("Attach Function", a.fnName), ("Offset", "\(a.offset)"),
            ("Container PID", a.hasContainerPid ? "\(a.containerPid)" : "None"),
        ]
    case .uprobeAttachInfo(let a)?:
        rows += [
            ("Attach Function", a.hasFnName ? a.fnName : "None"), ("Offset", "\(a.offset)"), ("Target", a.target),
            ("PID", a.hasPid ? "\(a.pid)" : "None"),
            ("Container PID", a.hasContainerPid ? "\(a.containerPid)" : "None"),
        ]
    case .fentryAttachInfo?, .fexitAttachInfo?, .lsmAttachInfo?, nil:
        break
    }
    rows.append(("Metadata", metadataText(link.metadata)))
    return block(nil, rows)
}

func proceedOnText(_ codes: [Int32], xdp: Bool) -> String {
    codes.map { code in
        let name = xdp ? XDPAction(rawValue: code)?.name : TCAction(rawValue: code)?.name
        return name ?? "\(code)"
    }.joined(separator: ", ")
}

/// The `Attachment` column of `list links`, as upstream prints it (SPEC §9.2): xdp `eno3 pos-0`, tc and tcx
/// `eno3 ingress pos-0`, a tracepoint's `group/name`, a probe's function (`+<offset>` when not zero), a uprobe's
/// `target function`, the fentry/fexit function or LSM hook (`target`, from the program's details).
func attachmentText(_ link: Bpfman_Ext_V1_LinkInfo, target: String? = nil) -> String {
    func offset(_ value: UInt64) -> String { value == 0 ? "" : "+\(value)" }
    switch link.attach.info {
    case .xdpAttachInfo(let a)?: return "\(a.iface) pos-\(a.position)"
    case .tcAttachInfo(let a)?: return "\(a.iface) \(a.direction) pos-\(a.position)"
    case .tcxAttachInfo(let a)?: return "\(a.iface) \(a.direction) pos-\(a.position)"
    case .tracepointAttachInfo(let a)?: return a.tracepoint
    case .kprobeAttachInfo(let a)?: return a.fnName + offset(a.offset)
    case .uprobeAttachInfo(let a)?:
        let function = a.hasFnName && !a.fnName.isEmpty ? " " + a.fnName : ""
        let at = a.offset == 0 ? "" : (function.isEmpty ? " +\(a.offset)" : "+\(a.offset)")
        return a.target + function + at
    case .fentryAttachInfo?, .fexitAttachInfo?, .lsmAttachInfo?, nil: return target ?? link.programName
    }
}

/// The `Links` column of `list programs`: `(<n>) id1, id2, id3, ...`.
func linksColumn(_ links: [UInt32]) -> String {
    guard !links.isEmpty else { return "" }
    let shown = links.prefix(3).map(String.init).joined(separator: ", ")
    return "(\(links.count)) " + shown + (links.count > 3 ? ", ..." : "")
}
