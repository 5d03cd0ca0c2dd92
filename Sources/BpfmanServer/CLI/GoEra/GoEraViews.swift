internal import FoundationEssentials
internal import Proto
internal import SystemCalls

// The JSON of the Go-era `program get|load|list` and `link get|attach|list` (SPEC §9.4): the objects upstream's Go
// CLI marshals (`bpfman.Program` = {record, status}, `bpfman.Link` = {record, status}, `ProgramListEntry`,
// `LinkRecord`), with upstream's field names and nesting. Fields our records do not carry (creation times, the
// licence string, owner/description, dispatcher revisions, kernel link details) are left out rather than invented.

private let null = "null"

private func jsonStringMap(_ map: [String: String]) -> String {
    "{" + map.sorted { $0.key < $1.key }.map { jsonString($0.key) + ":" + jsonString($0.value) }.joined(separator: ",")
        + "}"
}

private func jsonNumbers(_ values: [some BinaryInteger]) -> String {
    "[" + values.map { "\($0)" }.joined(separator: ",") + "]"
}

/// The kernel's program type as upstream names it (cilium/ebpf's names lower-cased: `schedcls`, `tracing`,
/// `extension`, ...): the kernel name without underscores, `ext` spelt out.
func goKernelTypeName(_ type: UInt32) -> String {
    let name = kernelTypeName(type)
    return name == "ext" ? "extension" : String(name.filter { $0 != "_" })
}

/// `loaded_at` as RFC 3339 (`2026-01-02T10:11:12+01:00`, what Go's time.Time marshals to) from our
/// `%Y-%m-%dT%H:%M:%S%z`; other text is kept as it is.
func goTimestamp(_ text: String) -> String {
    guard text.count == 24, let sign = text.dropFirst(19).first, sign == "+" || sign == "-" else { return text }
    let offset = text.suffix(4)
    if offset == "0000" { return text.prefix(19) + "Z" }
    return text.prefix(20) + offset.prefix(2) + ":" + offset.suffix(2)
}

/// The bpffs directory a program's pins live in (`<rd>/fs`), from its maps directory `<rd>/fs/maps/<id>`.
private func bpffsDirectory(_ mapPinPath: String) -> String? {
    let parts = mapPinPath.split(separator: "/", omittingEmptySubsequences: false)
    guard parts.count >= 3, parts[parts.count - 2] == "maps" else { return nil }
    return parts.dropLast(2).joined(separator: "/")
}

/// Where a managed program is pinned (`<rd>/fs/prog_<id>`, SPEC §10).
func goProgramPin(_ info: Bpfman_V1_ProgramInfo, id: UInt32) -> String? {
    bpffsDirectory(info.mapPinPath).map { "\($0)/prog_\(id)" }
}

/// Whether `path` exists; nil when that cannot be told (no permission to look).
func pathPresent(_ path: String) -> Bool? {
    switch Syscalls.stat(path) {
    case .success: true
    case .failure(let error): error.errno == .noSuchFileOrDirectory ? false : nil
    }
}

private let pullPolicyNames = ["Always", "IfNotPresent", "Never"]

/// `kernel.Program` as upstream marshals it, from the fields the kernel's program info gives us.
private func goKernelProgramJSON(_ k: Bpfman_V1_KernelProgramInfo) -> String {
    jsonObject([
        ("id", "\(k.id)"), ("name", jsonString(k.name)), ("program_type", jsonString(goKernelTypeName(k.programType))),
        ("tag", jsonString(k.tag)), ("loaded_at", jsonString(goTimestamp(k.loadedAt))), ("btf_id", "\(k.btfID)"),
        ("map_ids", jsonNumbers(k.mapIds)), ("jited_size", "\(k.bytesJited)"), ("xlated_size", "\(k.bytesXlated)"),
        ("verified_insns", "\(k.verifiedInsns)"), ("memlock", "\(k.bytesMemlock)"),
    ])
}

/// `ProgramRecord`: `program_id`, `load` (the LoadSpec), `gpl_compatible`, `handles`, `meta`.
private func goProgramRecordJSON(
    _ info: Bpfman_V1_ProgramInfo,
    kernel: Bpfman_V1_KernelProgramInfo,
    details: Bpfman_Ext_V1_ProgramDetails?
) -> String {
    var path: String? = nil
    var image: String? = nil
    switch info.bytecode.location {
    case .file(let file)?: path = file
    case .image(let i)?:
        let index = Int(i.imagePullPolicy)
        image = jsonObject([
            ("url", jsonString(i.url)),
            (
                "pull_policy",
                jsonString(pullPolicyNames.indices.contains(index) ? pullPolicyNames[index] : "\(index)")
            ),
        ])
    case nil: break
    }
    let target = details.map(\.attachTarget).flatMap { $0.isEmpty ? nil : $0 }
    let owner = info.hasMapOwnerID ? "\(info.mapOwnerID)" : null
    let load = jsonObject([
        ("object_path", path.map(jsonString)), ("source_path", path.map(jsonString) ?? null),
        ("program_name", jsonString(info.name)),
        ("program_type", jsonString(details?.kind ?? goKernelTypeName(kernel.programType))),
        (
            "global_data",
            "{"
                + info.globalData.sorted { $0.key < $1.key }.map {
                    jsonString($0.key) + ":" + jsonString(Data($0.value).base64EncodedString())
                }.joined(separator: ",") + "}"
        ),
        ("image_source", image ?? null), ("attach_func", target.map(jsonString) ?? null), ("map_owner_id", owner),
    ])
    return jsonObject([
        ("program_id", "\(kernel.id)"), ("load", load), ("gpl_compatible", kernel.gplCompatible ? "true" : "false"),
        (
            "handles",
            jsonObject([
                ("pin_path", goProgramPin(info, id: kernel.id).map(jsonString)),
                ("map_pin_path", jsonString(info.mapPinPath)), ("map_owner_id", owner),
            ])
        ),
        ("meta", jsonObject([("name", jsonString(info.name)), ("metadata", jsonStringMap(info.metadata))])),
    ])
}

/// `bpfman.Program` ({record, status}) of `program get` and `program load`; `links` are the program's links as
/// `link get` shows them. A program bpfman does not manage has a null record.
func goProgramJSON(
    info: Bpfman_V1_ProgramInfo?,
    kernel: Bpfman_V1_KernelProgramInfo,
    details: Bpfman_Ext_V1_ProgramDetails?,
    links: [Bpfman_Ext_V1_LinkInfo]
) -> String {
    let record = info.map { goProgramRecordJSON($0, kernel: kernel, details: details) } ?? null
    var status: [(String, String?)] = [("kernel", goKernelProgramJSON(kernel)), ("stats", null)]
    if let info {
        status += [
            ("prog_pin", goProgramPin(info, id: kernel.id).map(jsonString)),
            ("map_dir", jsonString(info.mapPinPath)),
        ]
    }
    status += [
        ("links", jsonArray(links.map { goLinkJSON($0, program: details) })),
        ("maps", jsonArray(kernel.mapIds.map { jsonObject([("id", "\($0)")]) })),
        ("map_used_by", jsonNumbers(info?.mapUsedBy.compactMap { UInt32($0) } ?? [])),
    ]
    return jsonObject([("record", record), ("status", jsonObject(status))])
}

/// One `program list` entry (`ProgramListEntry`): the row's columns, then the record (null when unmanaged) and
/// the kernel's view.
func goProgramListEntryJSON(
    _ result: Bpfman_V1_ListResponse.ListResult,
    details: Bpfman_Ext_V1_ProgramDetails?
) -> String {
    let managed = result.hasInfo
    let kernel = result.kernelInfo
    return jsonObject([
        ("program_id", "\(kernel.id)"), ("managed", managed ? "true" : "false"),
        ("application", jsonString(managed ? applicationName(result.info.metadata) : "")),
        ("type", jsonString(details?.kind ?? goKernelTypeName(kernel.programType))),
        ("function_name", jsonString(managed ? result.info.name : kernel.name)),
        ("links", jsonNumbers(managed ? result.info.links : [])),
        ("record", managed ? goProgramRecordJSON(result.info, kernel: kernel, details: details) : null),
        ("kernel", goKernelProgramJSON(kernel)),
    ])
}

/// A link's kind as upstream names it: `kretprobe`/`uretprobe` for return probes.
func goLinkKind(_ link: Bpfman_Ext_V1_LinkInfo, program: Bpfman_Ext_V1_ProgramDetails?) -> String {
    guard program?.kind.hasSuffix("retprobe") == true else { return link.kind }
    switch link.kind {
    case "kprobe": return "kretprobe"
    case "uprobe": return "uretprobe"
    default: return link.kind
    }
}

/// The kind's `details` object of a `LinkRecord`.
private func goLinkDetailsJSON(_ link: Bpfman_Ext_V1_LinkInfo, program: Bpfman_Ext_V1_ProgramDetails?) -> String {
    let target = program?.attachTarget ?? ""
    let ifindex = link.hasIfindex ? "\(link.ifindex)" : nil
    let nsid = link.hasNsid ? "\(link.nsid)" : nil
    func netns(_ has: Bool, _ value: String) -> String { jsonString(has ? value : "") }
    let ret = program.map { $0.kind.hasSuffix("retprobe") ? "true" : "false" }
    switch link.attach.info {
    case .xdpAttachInfo(let a)?:
        return jsonObject([
            ("interface", jsonString(a.iface)), ("ifindex", ifindex), ("priority", "\(a.priority)"),
            ("position", "\(a.position)"), ("proceed_on", jsonNumbers(a.proceedOn)),
            ("netns", netns(a.hasNetns, a.netns)), ("nsid", nsid),
        ])
    case .tcAttachInfo(let a)?:
        return jsonObject([
            ("interface", jsonString(a.iface)), ("ifindex", ifindex), ("direction", jsonString(a.direction)),
            ("priority", "\(a.priority)"), ("position", "\(a.position)"), ("proceed_on", jsonNumbers(a.proceedOn)),
            ("netns", netns(a.hasNetns, a.netns)), ("nsid", nsid),
        ])
    case .tcxAttachInfo(let a)?:
        return jsonObject([
            ("interface", jsonString(a.iface)), ("ifindex", ifindex), ("direction", jsonString(a.direction)),
            ("priority", "\(a.priority)"), ("position", "\(a.position)"), ("netns", netns(a.hasNetns, a.netns)),
            ("nsid", nsid),
        ])
    case .tracepointAttachInfo(let a)?:
        let (group, name) =
            a.tracepoint.firstIndex(of: "/").map {
                (String(a.tracepoint[..<$0]), String(a.tracepoint[a.tracepoint.index(after: $0)...]))
            } ?? ("", a.tracepoint)
        return jsonObject([("group", jsonString(group)), ("name", jsonString(name))])
    case .kprobeAttachInfo(let a)?:
        return jsonObject([("fn_name", jsonString(a.fnName)), ("offset", "\(a.offset)"), ("retprobe", ret)])
    case .uprobeAttachInfo(let a)?:
        return jsonObject([
            ("target", jsonString(a.target)), ("fn_name", jsonString(a.hasFnName ? a.fnName : "")),
            ("offset", "\(a.offset)"), ("pid", "\(a.hasPid ? a.pid : 0)"), ("retprobe", ret),
            ("container_pid", "\(a.hasContainerPid ? a.containerPid : 0)"),
        ])
    case .fentryAttachInfo?, .fexitAttachInfo?: return jsonObject([("fn_name", jsonString(target))])
    case .lsmAttachInfo?: return jsonObject([("hook_name", jsonString(target))])
    case nil: return null
    }
}

/// `LinkRecord` (a `link list` entry, and the record of `link get`).
func goLinkRecordJSON(_ link: Bpfman_Ext_V1_LinkInfo, program: Bpfman_Ext_V1_ProgramDetails?) -> String {
    jsonObject([
        ("id", "\(link.linkID)"), ("program_id", "\(link.programID)"),
        ("kernel_link_id", link.hasKernelLinkID ? "\(link.kernelLinkID)" : null),
        ("kind", jsonString(goLinkKind(link, program: program))),
        ("pin_path", link.pinPath.isEmpty ? null : jsonString(link.pinPath)),
        ("details", goLinkDetailsJSON(link, program: program)),
        ("metadata", link.metadata.isEmpty ? null : jsonStringMap(link.metadata)),
    ])
}

/// `bpfman.Link` ({record, status}) of `link get` and `link attach`; the status says whether the pin is there
/// (left out when this process may not look).
func goLinkJSON(_ link: Bpfman_Ext_V1_LinkInfo, program: Bpfman_Ext_V1_ProgramDetails?) -> String {
    let present = link.pinPath.isEmpty ? false : pathPresent(link.pinPath)
    return jsonObject([
        ("record", goLinkRecordJSON(link, program: program)),
        ("status", jsonObject([("pin_present", present.map { $0 ? "true" : "false" })])),
    ])
}
