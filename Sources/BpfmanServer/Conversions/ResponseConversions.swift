package import BpfmanEngine
package import Proto

// Responses: engine values into bpfman.v1 and bpfman.ext.v1 messages (SPEC §3.8, §3.9).

extension Bpfman_V1_BytecodeLocation {
    package init(_ location: BytecodeLocation) {
        self.init()
        switch location {
        case .file(let path):
            self.location = .file(path)
        case .image(let image):
            var proto = Bpfman_V1_BytecodeImage()
            proto.url = image.url
            proto.imagePullPolicy = image.pullPolicy.rawValue
            // Credentials are never echoed: reported images carry them as "" (SPEC §3.8).
            proto.username = ""
            proto.password = ""
            self.location = .image(proto)
        }
    }
}

extension Bpfman_V1_ProgramInfo {
    package init(_ info: ProgramInfo) {
        self.init()
        name = info.name
        bytecode = Bpfman_V1_BytecodeLocation(info.bytecode)
        links = info.links
        globalData = info.globalData
        if let owner = info.mapOwnerID { mapOwnerID = owner }
        mapPinPath = info.mapPinPath
        mapUsedBy = info.mapUsedBy
        metadata = info.metadata
    }
}

extension Bpfman_V1_KernelProgramInfo {
    package init(_ info: KernelProgramInfo) {
        self.init()
        id = info.id
        name = info.name
        programType = info.programType
        loadedAt = info.loadedAt
        tag = info.tag
        gplCompatible = info.gplCompatible
        mapIds = info.mapIDs
        btfID = info.btfID
        bytesXlated = info.bytesXlated
        jited = info.jited
        bytesJited = info.bytesJited
        bytesMemlock = info.bytesMemlock
        verifiedInsns = info.verifiedInsns
    }
}

extension Bpfman_V1_LoadResponseInfo {
    package init(_ details: ProgramDetails) {
        self.init()
        if let info = details.info { self.info = Bpfman_V1_ProgramInfo(info) }
        kernelInfo = Bpfman_V1_KernelProgramInfo(details.kernelInfo)
    }
}

extension Bpfman_V1_ListResponse.ListResult {
    package init(_ details: ProgramDetails) {
        self.init()
        if let info = details.info { self.info = Bpfman_V1_ProgramInfo(info) }
        kernelInfo = Bpfman_V1_KernelProgramInfo(details.kernelInfo)
    }
}

extension Bpfman_V1_GetResponse {
    package init(_ details: ProgramDetails) {
        self.init()
        if let info = details.info { self.info = Bpfman_V1_ProgramInfo(info) }
        kernelInfo = Bpfman_V1_KernelProgramInfo(details.kernelInfo)
    }
}

extension Bpfman_Ext_V1_ProgramDetails {
    package init(_ details: ProgramDetails) {
        self.init()
        programID = details.kernelInfo.id
        kernelType = details.kernelInfo.kernelProgramType
        if let record = details.info?.record {
            kind = record.kind.rawValue
            loadMode = record.kind.usesHookAttacher ? record.loadMode.rawValue : "plain"
            attachTarget = record.attachTarget ?? ""
        }
    }
}

/// The effective proceed_on of an XDP or TC link: the requested codes, or the default list (SPEC §3.8).
func effectiveProceedOn(_ requested: [Int32], family: ProceedOnFamily) -> (codes: [Int32], mask: UInt32) {
    if let proceedOn = try? ProceedOn(family: family, codes: requested) {
        return (proceedOn.codes, proceedOn.mask)
    }
    return (requested, 0)
}

extension Bpfman_V1_AttachInfo {
    /// The attach info of a link as reported: request fields as given, `position` live, `proceed_on` effective.
    package init(_ link: LinkRecord) {
        self.init()
        let position = link.position ?? 0
        switch link.spec {
        case .xdp(let a):
            var p = Bpfman_V1_XDPAttachInfo()
            p.priority = a.priority
            p.iface = a.iface
            p.position = position
            p.proceedOn = effectiveProceedOn(a.proceedOn, family: .xdp).codes
            if let netns = a.netns { p.netns = netns }
            p.metadata = a.metadata
            info = .xdpAttachInfo(p)
        case .tc(let a):
            var p = Bpfman_V1_TCAttachInfo()
            p.priority = a.priority
            p.iface = a.iface
            p.position = position
            p.direction = a.direction
            p.proceedOn = effectiveProceedOn(a.proceedOn, family: .tc).codes
            if let netns = a.netns { p.netns = netns }
            p.metadata = a.metadata
            info = .tcAttachInfo(p)
        case .tcx(let a):
            var p = Bpfman_V1_TCXAttachInfo()
            p.priority = a.priority
            p.iface = a.iface
            p.position = position
            p.direction = a.direction
            if let netns = a.netns { p.netns = netns }
            p.metadata = a.metadata
            info = .tcxAttachInfo(p)
        case .tracepoint(let a):
            var p = Bpfman_V1_TracepointAttachInfo()
            p.tracepoint = a.tracepoint
            p.metadata = a.metadata
            info = .tracepointAttachInfo(p)
        case .kprobe(let a):
            var p = Bpfman_V1_KprobeAttachInfo()
            p.fnName = a.fnName
            p.offset = a.offset
            if let pid = a.containerPid { p.containerPid = pid }
            p.metadata = a.metadata
            info = .kprobeAttachInfo(p)
        case .uprobe(let a):
            var p = Bpfman_V1_UprobeAttachInfo()
            if let fn = a.fnName { p.fnName = fn }
            p.offset = a.offset
            p.target = a.target
            if let pid = a.pid { p.pid = pid }
            if let pid = a.containerPid { p.containerPid = pid }
            p.metadata = a.metadata
            info = .uprobeAttachInfo(p)
        case .fentry(let metadata):
            var p = Bpfman_V1_FentryAttachInfo()
            p.metadata = metadata
            info = .fentryAttachInfo(p)
        case .fexit(let metadata):
            var p = Bpfman_V1_FexitAttachInfo()
            p.metadata = metadata
            info = .fexitAttachInfo(p)
        case .lsm(let metadata):
            var p = Bpfman_V1_LsmAttachInfo()
            p.metadata = metadata
            info = .lsmAttachInfo(p)
        }
    }
}

extension Bpfman_Ext_V1_LinkInfo {
    /// A link as Inspect reports it; `program` is the owning program's record when it is known.
    package init(_ link: LinkRecord, program: ProgramRecord?) {
        self.init()
        linkID = link.id
        programID = link.programID
        programName = program?.name ?? ""
        kind = link.kind.rawValue
        attach = Bpfman_V1_AttachInfo(link)
        metadata = link.metadata
        if let id = link.kernelLinkID { kernelLinkID = id }
        pinPath = link.pinPath ?? ""
        programMetadata = program?.metadata ?? [:]
        if let nsid = link.nsid { self.nsid = nsid }
        if let ifindex = link.ifindex { self.ifindex = ifindex }
        switch link.spec {
        case .xdp(let a): proceedOnMask = effectiveProceedOn(a.proceedOn, family: .xdp).mask
        case .tc(let a): proceedOnMask = effectiveProceedOn(a.proceedOn, family: .tc).mask
        default: break
        }
    }
}

/// ListLinks filters (SPEC §3.9).
package struct LinkFilter: Sendable {
    package var programID: UInt32?
    package var programType: UInt32?
    package var matchMetadata: [String: String]
    package var matchLinkMetadata: [String: String]

    package init(_ proto: Bpfman_Ext_V1_ListLinksRequest) {
        programID = proto.hasProgramID ? proto.programID : nil
        programType = proto.hasProgramType ? proto.programType : nil
        matchMetadata = proto.matchMetadata
        matchLinkMetadata = proto.matchLinkMetadata
    }

    package func matches(_ link: LinkRecord, program: ProgramRecord?) -> Bool {
        if let programID, link.programID != programID { return false }
        if let programType, link.kind.reportedKernelType != programType { return false }
        let programMetadata = program?.metadata ?? [:]
        guard matchMetadata.allSatisfy({ programMetadata[$0.key] == $0.value }) else { return false }
        return matchLinkMetadata.allSatisfy { link.metadata[$0.key] == $0.value }
    }
}

extension Bpfman_Ext_V1_DispatcherInfo {
    /// A live dispatcher as `ListDispatchers` reports it (SPEC §3.9).
    package init(_ state: DispatcherState, paths: DispatcherPaths) {
        self.init()
        switch state.hook.kind {
        case .xdp: kind = "xdp"
        case .tcIngress:
            kind = "tc"
            direction = "ingress"
        case .tcEgress:
            kind = "tc"
            direction = "egress"
        }
        iface = state.iface
        ifindex = state.hook.ifindex
        nsid = state.hook.nsid
        netns = state.netns.path ?? ""
        revision = state.revision
        programID = state.programID
        tcHandle = state.tcHandle ?? 0
        tcPriority = UInt32(state.tcPriority ?? 0)
        pinDir = state.pinDirectory(paths)
        members = state.memberViews.map { view in
            var member = Bpfman_Ext_V1_DispatcherMember()
            member.linkID = view.linkID
            member.programID = view.programID
            member.programName = view.programName
            member.position = UInt32(view.position)
            member.priority = view.priority
            member.proceedOnMask = view.proceedOnMask
            return member
        }
    }
}
