internal import CBPF
internal import Glibc
internal import Logging
internal import SystemCalls

extension Engine {
    /// Loads the requested programs of one object (SPEC §3.1): one kernel load, every program pinned at
    /// `fs/prog_<id>`, maps pinned per owner, one transaction of records. All or nothing.
    ///
    /// - Returns: one entry per requested program, in request order, with `info` and `kernelInfo` set.
    /// - Throws: `EngineError` with the §3.1 code and message of the first failing check.
    package func load(_ request: LoadRequest) throws(EngineError) -> [ProgramDetails] {
        let validated = try validate(request)
        dropStaleRecords()
        let mapOwner = try checkMapOwner(request.mapOwnerID ?? 0)
        let objectPath = try objectPath(of: request)
        let image = try readObjectFile(objectPath)
        let pinRoot = paths.sharedMapsDirectory
        let object: BPFObject
        do { object = try BPFObject.open(image: image, path: objectPath, pinRoot: pinRoot) } catch {
            throw .invalidArgument("object file \(objectPath) is not a BPF object: \(error.errno)")
        }
        // Programs by name; unrequested ones are not loaded.
        let declared = object.programs
        let missing = validated.map(\.info.name).filter { name in !declared.contains { $0.name == name } }
        guard missing.isEmpty else {
            throw .invalidArgument(
                "program(s) not found in object file: [\(missing.joined(separator: ", "))]; available programs: "
                    + "[\(declared.map(\.name).joined(separator: ", "))]"
            )
        }
        var chosen: [(name: String, kind: ProgramKind, handle: OpaquePointer, target: LoadTarget?)] = []
        for item in validated {
            let program = declared.first { $0.name == item.info.name }!
            guard let kind = Engine.kind(section: program.section, requested: item.type) else {
                throw .invalidArgument(
                    Engine.sectionMismatchMessage(
                        program: item.info.name,
                        section: program.section,
                        requested: item.type
                    )
                )
            }
            chosen.append((item.info.name, kind, program.handle, item.info.target))
        }
        for program in declared where !chosen.contains(where: { $0.name == program.name }) {
            bpf_program__set_autoload(program.handle, false)
        }
        try applyGlobalData(request.globalData, to: object)
        // Map sharing: reuse the owner's pinned maps (SPEC §5.2).
        if let mapOwner {
            try reuseOwnerMaps(of: object, owner: mapOwner)
        }
        // Kernel types and load-time targets (SPEC §4.1, §4.15).
        var loadMode: [String: LoadMode] = [:]
        // Fds libbpf needs until the load (EXT targets); closed when this call returns.
        var heldUntilLoad: [CInt] = []
        defer { for fd in heldUntilLoad { _ = Glibc.close(fd) } }
        for program in chosen {
            loadMode[program.name] = try configure(
                program.handle,
                kind: program.kind,
                target: program.target,
                holding: &heldUntilLoad
            )
        }
        // Verifier logs, one buffer per requested program; libbpf retries with log level 1 on failure.
        let logs = verifierLogs.buffers(chosen.count)
        for (index, program) in chosen.enumerated() {
            logs[index].initialize(to: 0)
            bpf_program__set_log_buf(program.handle, logs[index], VerifierLogBuffers.size)
        }
        // Which PIN_BY_NAME pins this load creates (to remove them again on failure).
        let usesSharedPins = object.maps.contains { $0.pinPath != nil }
        let sharedBefore = usesSharedPins ? Set(Syscalls.listDirectory(paths.sharedMapsDirectory)) : []
        if case .failure(let error) = object.load() {
            let failed = chosen.indices.first { logs[$0][0] != 0 } ?? 0
            var message = "failed to load program \(chosen[failed].name): \(error.errno)"
            let log = String(cString: logs[failed])
            if !log.isEmpty {
                let tail =
                    log.utf8.count > 16384
                    ? "...(truncated)" + String(decoding: log.utf8.suffix(16384), as: UTF8.self) : log
                message += "\nverifier log:\n" + tail
            }
            throw .internal(message, errno: error.errno)
        }

        // Pin programs and maps, then commit. Anything created is removed again on failure.
        var createdPins: [String] = []
        var createdDirectories: [String] = []
        let sharedCreated =
            usesSharedPins ? Set(Syscalls.listDirectory(paths.sharedMapsDirectory)).subtracting(sharedBefore) : []
        func rollback() {
            for pin in createdPins.reversed() { removePin(pin) }
            for directory in createdDirectories { removeDirectory(directory) }
            for name in sharedCreated { removePin(paths.sharedMapsDirectory + "/" + name) }
        }
        let publicMaps = object.maps.filter { !$0.isInternal }
        let sharedNames = publicMaps.compactMap { map -> String? in
            guard let pin = map.pinPath, pin.hasPrefix(paths.sharedMapsDirectory + "/") else { return nil }
            return String(pin.dropFirst(paths.sharedMapsDirectory.count + 1))
        }
        var records: [ProgramRecord] = []
        var kernelInfos: [KernelProgramInfo] = []
        let clock = LoadTimeClock()
        do throws(EngineError) {
            for program in chosen {
                let fd = bpf_program__fd(program.handle)
                // The program's kernel facts, read once here and recorded (SPEC §3.8): Get and List answer from them.
                guard let (id, facts) = KernelProgramFacts.readWithID(rawFD: fd, clock: clock) else {
                    throw .internal("failed to read the id for program \(program.name): \(Errno.current)")
                }
                kernelInfos.append(
                    KernelProgramInfo(id: id, facts: facts, reportedType: program.kind.reportedKernelType, clock: clock)
                )
                let pin = paths.programPin(id)
                if bpf_obj_pin(fd, pin) != 0 {
                    let error = Errno.current
                    throw .internal("failed to pin program for program \(program.name): \(error)", errno: error)
                }
                createdPins.append(pin)
                // The liveness check of Get and List compares this inode with the pin's (`ProgramPins`).
                guard let pinInode = ProgramPins.inode(at: pin) else {
                    let error = Errno.current
                    throw .internal("failed to pin program for program \(program.name): \(error)", errno: error)
                }
                if mapOwner == nil {
                    let directory = paths.mapSetDirectory(id)
                    if case .failure(let error) = Syscalls.mkdir(directory, 0o755) {
                        throw .internal("failed to create map directory for program \(program.name): \(error.errno)")
                    }
                    createdDirectories.append(directory)
                    for map in publicMaps {
                        let mapPin = paths.mapPin(owner: id, map: map.name)
                        if bpf_obj_pin(map.fd, mapPin) != 0 {
                            let error = Errno.current
                            throw .internal("failed to pin map \(map.name) for program \(program.name): \(error)")
                        }
                        _ = Syscalls.chmod(mapPin, mode_t(BpfmanPaths.mapPinMode))
                    }
                }
                let storedLocation: BytecodeLocation =
                    switch request.bytecode! {
                    case .file(let path): .file(path)
                    case .image(let image): .image(image.withoutCredentials)
                    }
                records.append(
                    ProgramRecord(
                        id: id,
                        name: program.name,
                        kind: program.kind,
                        loadMode: loadMode[program.name] ?? .native,
                        location: storedLocation,
                        metadata: request.metadata,
                        globalData: request.globalData,
                        mapOwnerID: mapOwner,
                        mapSetID: mapOwner ?? id,
                        attachTarget: program.target?.targetName,
                        sharedMaps: sharedNames,
                        kernelFacts: facts,
                        pinInode: pinInode
                    )
                )
            }
            crashPoint("load.beforeCommit")
            try db { () throws(SQLiteError) in
                try store.transaction { () throws(SQLiteError) in
                    for record in records where record.mapOwnerID == nil {
                        try store.insertMapSet(id: record.id, pinDirectory: paths.mapSetDirectory(record.id))
                    }
                    for record in records { try store.insertProgram(record) }
                }
            }
        } catch {
            rollback()
            throw error
        }
        // The object's program and map fds close here, once the records are committed (SPEC §6.2). The raw
        // program handles in `chosen` point into it, so its end is stated rather than left to the scope.
        _ = consume object
        crashPoint("load.afterCommit")
        logger.info("loaded programs", metadata: ["program_ids": "\(records.map(\.id))"])
        // Responses in request order, with the kernel info read right after the load.
        var results: [ProgramDetails] = []
        for (index, record) in records.enumerated() {
            let kernel = kernelInfos[index]
            // A fresh owner is the only member of its own set and has no links yet.
            let info =
                record.mapOwnerID == nil
                ? ProgramInfo(
                    record: record,
                    links: [],
                    mapPinPath: paths.mapSetDirectory(record.id),
                    mapUsedBy: ["\(record.id)"]
                )
                : try programInfo(record)
            results.append(ProgramDetails(info: info, kernelInfo: kernel))
        }
        return results
    }

    /// The checks of SPEC §3.1 that need no file or kernel, in table order.
    private func validate(
        _ request: LoadRequest
    ) throws(EngineError) -> [(
        info: ProgramLoadInfo, type: BpfmanProgramType
    )] {
        guard let bytecode = request.bytecode else { throw .invalidArgument("bytecode location is required") }
        switch bytecode {
        case .file(let path):
            guard path.hasPrefix("/") else {
                throw .invalidArgument("bytecode file path must be absolute, got \"\(path)\"")
            }
        case .image(let image):
            guard !image.url.isEmpty else { throw .invalidArgument("image url is required") }
            guard (0...2).contains(image.pullPolicy) else {
                throw .invalidArgument("invalid pull policy: unknown pull policy: \(image.pullPolicy)")
            }
        }
        guard !request.programs.isEmpty else { throw .invalidArgument("at least one program info is required") }
        var seen: Set<String> = []
        var result: [(ProgramLoadInfo, BpfmanProgramType)] = []
        for (index, info) in request.programs.enumerated() {
            guard !info.name.isEmpty else { throw .invalidArgument("program name is required (info[\(index)])") }
            guard seen.insert(info.name).inserted else {
                throw .invalidArgument("program \(info.name) is listed more than once")
            }
            guard let type = BpfmanProgramType(rawValue: info.programType) else {
                throw .invalidArgument(
                    "invalid program type for \(info.name): unknown program type: \(info.programType)"
                )
            }
            switch (type, info.target) {
            case (.fentry, .fentry(let name)?) where !name.isEmpty, (.fexit, .fexit(let name)?) where !name.isEmpty,
                (.lsm, .lsm(let name)?) where !name.isEmpty:
                break
            case (.fentry, nil), (.fentry, .fentry?), (.fexit, nil), (.fexit, .fexit?):
                throw .invalidArgument("fn_name is required for \(type.name) program \(info.name)")
            case (.lsm, nil), (.lsm, .lsm?):
                throw .invalidArgument("hook_name is required for lsm program \(info.name)")
            case (_, nil):
                break
            case (_, let target?):
                throw .invalidArgument(
                    "program \(info.name): \(target.variantName) does not apply to a \(type.name) program"
                )
            }
            result.append((info, type))
        }
        return result
    }

    /// The owner id when `id` is a live map-set owner; nil for 0.
    private func checkMapOwner(_ id: UInt32) throws(EngineError) -> UInt32? {
        guard id != 0 else { return nil }
        let owner = try db { () throws(SQLiteError) in try store.program(id) }
        guard let owner, owner.mapOwnerID == nil, isAlive(owner) else {
            throw .invalidArgument("map_owner_id \(id) does not exist: map owner not found")
        }
        return id
    }

    /// The object file to open: the file's path, or the one the server resolved an image to. Requested names are
    /// checked against the object either way; an image's labels only inform (SPEC §8.1).
    private func objectPath(of request: LoadRequest) throws(EngineError) -> String {
        switch request.bytecode! {
        case .file(let path): return path
        case .image(let image):
            guard let path = request.imageObjectPath else {
                throw .failedPrecondition("image \(image.url) was not resolved to an object file before the load")
            }
            return path
        }
    }

    /// Reads the object file whole and checks its ELF header (SPEC §3.1).
    private func readObjectFile(_ path: String) throws(EngineError) -> ObjectImage {
        let image = try converting(
            { () throws(SystemCallError) in try ObjectImage.read(path: path) },
            mapError: { .invalidArgument("object file \(path): \($0.errno)") }
        )
        if let problem = ELFFile.bpfObjectProblem(header: image.prefix(64)) {
            throw .invalidArgument("object file \(path) is not a BPF object: \(problem)")
        }
        return image
    }

    /// SPEC §4.2's section names in table order, each with the kind of section it makes. A section matches a
    /// name as libbpf matches its own table: it equals the name, or starts with the name followed by `/`
    /// (`xdp.frags` is not `xdp` + `/`, hence its own row). Kinds are the section's: a `tc` section is loaded as
    /// tc or tcx, whichever was requested; ret-ness of probes comes from here, never from the API type.
    static let sectionNames: [(name: String, kind: ProgramKind)] = [
        ("xdp", .xdp), ("xdp.frags", .xdp),
        ("classifier", .tc), ("tc", .tc), ("tcx", .tc),
        ("tracepoint", .tracepoint), ("tp", .tracepoint),
        ("kprobe", .kprobe), ("kretprobe", .kretprobe),
        ("uprobe", .uprobe), ("uprobe.s", .uprobe), ("uretprobe", .uretprobe), ("uretprobe.s", .uretprobe),
        ("fentry", .fentry), ("fentry.s", .fentry), ("fexit", .fexit), ("fexit.s", .fexit),
        ("lsm", .lsm), ("lsm.s", .lsm),
    ]

    /// The kind of ELF section `section` (SPEC §4.2), or nil when it is none of the table's.
    static func sectionKind(_ section: String) -> ProgramKind? {
        sectionNames.first { entry in
            section == entry.name || (section.hasPrefix(entry.name) && section.dropFirst(entry.name.count).first == "/")
        }?.kind
    }

    /// The section names a program requested as `type` may have (SPEC §4.2), in table order.
    static func sectionNames(for type: BpfmanProgramType) -> [String] {
        sectionNames.filter { kind(sectionKind: $0.kind, requested: type) != nil }.map(\.name)
    }

    /// The kind recorded for a program of ELF `section` requested as `type`, or nil on a mismatch.
    static func kind(section: String, requested type: BpfmanProgramType) -> ProgramKind? {
        sectionKind(section).flatMap { kind(sectionKind: $0, requested: type) }
    }

    private static func kind(sectionKind: ProgramKind, requested type: BpfmanProgramType) -> ProgramKind? {
        switch (sectionKind, type) {
        case (.tc, .tcx): .tcx
        case (let kind, let type) where kind.programType == type: kind
        default: nil
        }
    }

    /// SPEC §3.1's message for a program whose section does not fit the requested type: the section's kind
    /// when it has one, else the spellings a program of that type may use.
    static func sectionMismatchMessage(program: String, section: String, requested type: BpfmanProgramType) -> String {
        let head = "program type mismatch: \(program) was requested as \(type.name) but its ELF section \"\(section)\""
        if let kind = sectionKind(section) { return head + " is a \(kind.rawValue) section" }
        return head + " is not one bpfman knows; a \(type.name) program's section is one of "
            + sectionNames(for: type).joined(separator: ", ") + " (bare, or followed by \"/...\")"
    }

    /// Writes `globalData` over the variables' initial values (SPEC §5.4).
    private func applyGlobalData(_ globalData: [String: [UInt8]], to object: borrowing BPFObject) throws(EngineError) {
        guard !globalData.isEmpty else { return }
        let variables = object.globalVariables
        var images: [OpaquePointer: [UInt8]] = [:]
        for (name, value) in globalData.sorted(by: { $0.key < $1.key }) {
            guard let variable = variables.first(where: { $0.name == name }) else {
                throw .invalidArgument(
                    "global variable \"\(name)\" not found in object; available: "
                        + "[\(variables.map(\.name).sorted().joined(separator: ", "))]"
                )
            }
            guard variable.size == value.count else {
                throw .invalidArgument(
                    "global variable \"\(name)\" is \(variable.size) bytes but \(value.count) bytes were given"
                )
            }
            var image = images[variable.map.pointer] ?? variable.map.initialValue ?? []
            guard variable.offset + variable.size <= image.count else {
                throw .internal("global variable \"\(name)\" lies outside its section")
            }
            image.replaceSubrange(variable.offset..<(variable.offset + variable.size), with: value)
            images[variable.map.pointer] = image
        }
        for (pointer, image) in images {
            if case .failure(let error) = BPFMapHandle(pointer: pointer).setInitialValue(image) {
                throw .internal("failed to set global data: \(error)", errno: error.errno)
            }
        }
    }

    /// Points every non-internal map at the owner's pinned map after checking the definitions match.
    private func reuseOwnerMaps(of object: borrowing BPFObject, owner: UInt32) throws(EngineError) {
        for map in object.maps where !map.isInternal {
            let pin = paths.mapPin(owner: owner, map: map.name)
            let fd = try converting(
                { () throws(BPFError) in try BPF.objectGet(pin) },
                mapError: { _ in .invalidArgument("map \"\(map.name)\" is not in the map set of owner \(owner)") }
            )
            guard case .success(let info) = BPF.mapInfo(fd) else {
                throw .internal("cannot read map \"\(map.name)\" of owner \(owner)")
            }
            let fields: [(String, UInt32, UInt32)] = [
                ("type", map.type, info.type), ("key size", map.keySize, info.key_size),
                ("value size", map.valueSize, info.value_size), ("max entries", map.maxEntries, info.max_entries),
                ("flags", map.flags, info.map_flags),
            ]
            if let (field, mine, theirs) = fields.first(where: { $0.1 != $0.2 }) {
                throw .invalidArgument(
                    "map \"\(map.name)\" of owner \(owner) does not match this object (\(field): \(mine) vs \(theirs))"
                )
            }
            if case .failure(let error) = map.reuse(fd) {
                throw .internal("failed to reuse map \"\(map.name)\" of owner \(owner): \(error.errno)")
            }
        }
    }

    /// Sets the kernel program type and load-time target; returns the load mode.
    private func configure(
        _ program: OpaquePointer,
        kind: ProgramKind,
        target: LoadTarget?,
        holding held: inout [CInt]
    ) throws(EngineError) -> LoadMode {
        switch kind {
        case .xdp, .tc:
            if let hooks, hooks.loadMode == .ext, let testPin = hooks.testDispatcherPin(for: kind) {
                let dispatcher = try converting(
                    { () throws(BPFError) in try BPF.objectGet(testPin) },
                    mapError: { .internal("cannot open the test dispatcher \(testPin): \($0.errno)") }
                )
                bpf_program__set_type(program, BPF_PROG_TYPE_EXT)
                // The kernel refuses EXT programs that carry an expected attach type (EINVAL), and libbpf gives
                // `xdp` sections BPF_XDP: clear it.
                bpf_program__set_expected_attach_type(program, bpf_attach_type(rawValue: 0))
                let rc = bpf_program__set_attach_target(program, dispatcher.rawValue, "compat_test")
                if rc != 0 { throw .internal("cannot target the test dispatcher: \(Errno(rawValue: -rc))") }
                // libbpf passes attach_prog_fd to the kernel at load: keep it open until then.
                held.append(dispatcher.take())
                return .ext
            }
            bpf_program__set_type(program, kind == .xdp ? BPF_PROG_TYPE_XDP : BPF_PROG_TYPE_SCHED_CLS)
        case .tcx:
            bpf_program__set_type(program, BPF_PROG_TYPE_SCHED_CLS)
        case .tracepoint:
            bpf_program__set_type(program, BPF_PROG_TYPE_TRACEPOINT)
        case .kprobe, .kretprobe, .uprobe, .uretprobe:
            bpf_program__set_type(program, BPF_PROG_TYPE_KPROBE)
        case .fentry, .fexit, .lsm:
            let (type, attach): (bpf_prog_type, bpf_attach_type) =
                switch kind {
                case .fentry: (BPF_PROG_TYPE_TRACING, BPF_TRACE_FENTRY)
                case .fexit: (BPF_PROG_TYPE_TRACING, BPF_TRACE_FEXIT)
                default: (BPF_PROG_TYPE_LSM, BPF_LSM_MAC)
                }
            bpf_program__set_type(program, type)
            bpf_program__set_expected_attach_type(program, attach)
            if let target {
                let rc = bpf_program__set_attach_target(program, 0, target.targetName)
                if rc != 0 {
                    throw .internal(
                        "failed to load program \(String(cString: bpf_program__name(program))): "
                            + "\(target.targetName): \(Errno(rawValue: -rc))",
                        errno: Errno(rawValue: -rc)
                    )
                }
            }
        }
        return .native
    }
}

/// The verifier-log buffers Load hands libbpf, one per requested program, kept for the engine's lifetime.
///
/// A megabyte each, so a failing program's whole log fits (a 6.1 kernel fails the load with ENOSPC when the
/// log does not). libbpf only writes to them when a load fails and is retried with log level 1, so a buffer
/// costs address space and one touched page; allocating and freeing them per Load cost an `mmap`, a page
/// fault and a `munmap` per program. Owned by the `Engine` actor, used by one Load at a time.
final class VerifierLogBuffers {
    static let size = 1 << 20
    private var pool: [UnsafeMutablePointer<CChar>] = []

    /// At least `count` buffers (the first `count` of the pool, growing it when needed).
    func buffers(_ count: Int) -> ArraySlice<UnsafeMutablePointer<CChar>> {
        while pool.count < count { pool.append(.allocate(capacity: Self.size)) }
        return pool[0..<count]
    }

    deinit { for buffer in pool { buffer.deallocate() } }
}
