package import BpfmanEngine
package import Proto

// Requests: bpfman.v1 messages into engine values, with the input checks of SPEC §3 that need no state.
//
// The checks run before the writer lock is taken, in the order of SPEC's tables, so the first failing
// check is the one reported. Checks that need the store or the kernel (unknown ids, kind mismatch,
// interfaces, tracefs, ...) come after these in the tables and are the engine's.

extension LoadRequest {
    /// Validates and converts a Load request (SPEC §3.1, rows up to `map_owner_id`): the only place these
    /// checks are made; the engine's `load` relies on them (see `LoadRequest`).
    /// - Throws: `EngineError.invalidArgument` with the message of the first failing check.
    package init(validating proto: Bpfman_V1_LoadRequest) throws(EngineError) {
        guard proto.hasBytecode, let location = proto.bytecode.location else {
            throw .invalidArgument("bytecode location is required")
        }
        let bytecode: BytecodeLocation
        switch location {
        case .file(let path):
            guard path.hasPrefix("/") else {
                throw .invalidArgument("bytecode file path must be absolute, got \"\(path)\"")
            }
            bytecode = .file(path)
        case .image(let image):
            bytecode = .image(try BytecodeImage(validating: image))
        }
        guard !proto.info.isEmpty else { throw .invalidArgument("at least one program info is required") }
        var seen: Set<String> = []
        var programs: [ProgramLoadInfo] = []
        for (index, info) in proto.info.enumerated() {
            guard !info.name.isEmpty else { throw .invalidArgument("program name is required (info[\(index)])") }
            guard seen.insert(info.name).inserted else {
                throw .invalidArgument("program \(info.name) is listed more than once")
            }
            let raw = info.programType.rawValue
            guard let type = BpfmanProgramType(rawValue: raw) else {
                throw .invalidArgument("invalid program type for \(info.name): unknown program type: \(raw)")
            }
            let target = LoadTarget(info.hasInfo ? info.info.info : nil)
            try Self.check(target, type: type, program: info.name)
            programs.append(ProgramLoadInfo(name: info.name, type: type, target: target))
        }
        self.init(
            bytecode: bytecode,
            programs: programs,
            globalData: proto.globalData,
            metadata: proto.metadata,
            mapOwnerID: proto.hasMapOwnerID && proto.mapOwnerID != 0 ? proto.mapOwnerID : nil
        )
    }

    /// The load-info rows of SPEC §3.1: fentry/fexit need `fn_name`, lsm needs `hook_name`, and no other
    /// type takes load info.
    private static func check(_ target: LoadTarget?, type: BpfmanProgramType, program: String) throws(EngineError) {
        switch (type, target) {
        case (.fentry, .fentry(let name)?) where !name.isEmpty, (.fexit, .fexit(let name)?) where !name.isEmpty,
            (.lsm, .lsm(let name)?) where !name.isEmpty:
            return
        case (.fentry, nil), (.fentry, .fentry?), (.fexit, nil), (.fexit, .fexit?):
            throw .invalidArgument("fn_name is required for \(type.name) program \(program)")
        case (.lsm, nil), (.lsm, .lsm?):
            throw .invalidArgument("hook_name is required for lsm program \(program)")
        case (_, nil):
            return
        case (_, let target?):
            throw .invalidArgument("program \(program): \(target.variantName) does not apply to a \(type.name) program")
        }
    }
}

extension LoadTarget {
    init?(_ proto: Bpfman_V1_ProgSpecificInfo.OneOf_Info?) {
        switch proto {
        case nil: return nil
        case .fentryLoadInfo(let info)?: self = .fentry(functionName: info.fnName)
        case .fexitLoadInfo(let info)?: self = .fexit(functionName: info.fnName)
        case .lsmLoadInfo(let info)?: self = .lsm(hookName: info.hookName)
        }
    }
}

extension BytecodeImage {
    /// Validates an image reference (`url` required, pull policy 0...2; SPEC §3.1, §3.7).
    package init(validating proto: Bpfman_V1_BytecodeImage) throws(EngineError) {
        guard !proto.url.isEmpty else { throw .invalidArgument("image url is required") }
        guard let pullPolicy = BytecodeImage.PullPolicy(rawValue: proto.imagePullPolicy) else {
            throw .invalidArgument("invalid pull policy: unknown pull policy: \(proto.imagePullPolicy)")
        }
        self.init(
            url: proto.url,
            pullPolicy: pullPolicy,
            username: proto.hasUsername ? proto.username : nil,
            password: proto.hasPassword ? proto.password : nil
        )
    }
}

/// A validated Attach request.
package struct AttachCall: Sendable, Hashable {
    package var programID: UInt32
    package var spec: AttachSpec

    /// Validates and converts an Attach request (SPEC §3.3: `id`, then `attach`; the rest is the engine's).
    package init(validating proto: Bpfman_V1_AttachRequest) throws(EngineError) {
        guard proto.id != 0 else { throw .invalidArgument("program id is required") }
        guard proto.hasAttach, let info = proto.attach.info else { throw .invalidArgument("attach info is required") }
        programID = proto.id
        spec = AttachSpec(info)
    }
}

extension AttachSpec {
    /// The engine's view of an `AttachInfo` variant. Empty optional strings count as unset.
    package init(_ proto: Bpfman_V1_AttachInfo.OneOf_Info) {
        func optional(_ present: Bool, _ value: String) -> String? { present && !value.isEmpty ? value : nil }
        switch proto {
        case .xdpAttachInfo(let a):
            self = .xdp(
                XDPAttach(
                    priority: a.priority,
                    iface: a.iface,
                    proceedOn: a.proceedOn,
                    netns: optional(a.hasNetns, a.netns),
                    metadata: a.metadata
                )
            )
        case .tcAttachInfo(let a):
            self = .tc(
                TCAttach(
                    priority: a.priority,
                    iface: a.iface,
                    direction: a.direction,
                    proceedOn: a.proceedOn,
                    netns: optional(a.hasNetns, a.netns),
                    metadata: a.metadata
                )
            )
        case .tcxAttachInfo(let a):
            self = .tcx(
                TCXAttach(
                    priority: a.priority,
                    iface: a.iface,
                    direction: a.direction,
                    netns: optional(a.hasNetns, a.netns),
                    metadata: a.metadata
                )
            )
        case .tracepointAttachInfo(let a):
            self = .tracepoint(TracepointAttach(tracepoint: a.tracepoint, metadata: a.metadata))
        case .kprobeAttachInfo(let a):
            self = .kprobe(
                KprobeAttach(
                    fnName: a.fnName,
                    offset: a.offset,
                    containerPid: a.hasContainerPid ? a.containerPid : nil,
                    metadata: a.metadata
                )
            )
        case .uprobeAttachInfo(let a):
            self = .uprobe(
                UprobeAttach(
                    fnName: a.hasFnName ? a.fnName : nil,
                    offset: a.offset,
                    target: a.target,
                    pid: a.hasPid ? a.pid : nil,
                    containerPid: a.hasContainerPid ? a.containerPid : nil,
                    metadata: a.metadata
                )
            )
        case .fentryAttachInfo(let a): self = .fentry(metadata: a.metadata)
        case .fexitAttachInfo(let a): self = .fexit(metadata: a.metadata)
        case .lsmAttachInfo(let a): self = .lsm(metadata: a.metadata)
        }
    }
}

/// The id checks of Unload, Detach and Get (SPEC §3.2, §3.4, §3.6).
package enum IDValidation {
    package static func programID(_ id: UInt32) throws(EngineError) -> UInt32 {
        guard id != 0 else { throw .invalidArgument("program id is required") }
        return id
    }

    package static func linkID(_ id: UInt32) throws(EngineError) -> UInt32 {
        guard id != 0 else { throw .invalidArgument("link id is required") }
        return id
    }
}

extension BytecodeImage {
    /// PullBytecode's checks (SPEC §3.7): `image` set, then the image rows of Load.
    package init(validatingPull proto: Bpfman_V1_PullBytecodeRequest) throws(EngineError) {
        guard proto.hasImage else { throw .invalidArgument("image is required") }
        try self.init(validating: proto.image)
    }
}

extension ListFilter {
    package init(_ proto: Bpfman_V1_ListRequest) {
        self.init(
            programType: proto.hasProgramType ? proto.programType : nil,
            bpfmanProgramsOnly: proto.bpfmanProgramsOnly,
            matchMetadata: proto.matchMetadata
        )
    }
}
