internal import CBPF
internal import Glibc
internal import Logging
internal import SystemCalls

extension Engine {
    /// Loads the requested programs of one object (SPEC §3.1): one kernel load, every program pinned at
    /// `fs/prog_<id>`, maps pinned per owner, one transaction of records. All or nothing.
    ///
    /// `request` has passed the input checks of SPEC §3.1 (see `LoadRequest`); the checks here are the ones
    /// that need the store, the object file or the kernel, in the table's order.
    ///
    /// - Returns: one entry per requested program, in request order, with `info` and `kernelInfo` set.
    /// - Throws: `EngineError` with the §3.1 code and message of the first failing check.
    package func load(_ request: LoadRequest) throws(EngineError) -> [ProgramDetails] {
        dropStaleRecords()
        let mapOwner = try checkMapOwner(request.mapOwnerID ?? 0)
        let objectPath = try objectPath(of: request)
        let object = try openObject(at: objectPath)
        let chosen = try choosePrograms(request.programs, of: object)
        try applyGlobalData(request.globalData, to: object)
        // Map sharing: reuse the owner's pinned maps (SPEC §5.2).
        if let mapOwner { try reuseOwnerMaps(of: object, owner: mapOwner) }
        // Which PIN_BY_NAME pins the kernel load creates, to remove them again on failure.
        let sharedBefore = sharedMapPins(of: object)
        let loadModes = try loadIntoKernel(object, chosen)
        // Pin programs and maps, then commit. Anything created is removed again on failure.
        var created = CreatedPins(sharedMaps: sharedMapPins(of: object).subtracting(sharedBefore))
        let loaded: [LoadedProgram]
        do throws(EngineError) {
            loaded = try pin(chosen, of: object, request: request, mapOwner: mapOwner, loadModes, &created)
            crashPoint("load.beforeCommit")
            try commit(loaded.map(\.record))
        } catch {
            remove(created)
            throw error
        }
        // The object's program and map fds close here, once the records are committed (SPEC §6.2). The raw
        // program handles in `chosen` point into it, so its end is stated rather than left to the scope.
        _ = consume object
        crashPoint("load.afterCommit")
        logger.info("loaded programs", metadata: ["program_ids": "\(loaded.map(\.record.id))"])
        return try loaded.map { program throws(EngineError) in try details(of: program) }
    }

    /// A requested program found in the object, with the kind its section and requested type make.
    private struct ChosenProgram {
        var name: String
        var kind: ProgramKind
        /// The object's `struct bpf_program *`; valid while the object is.
        var handle: OpaquePointer
        var target: LoadTarget?
    }

    /// A program loaded and pinned, with the record to commit and the kernel info read right after the load.
    private struct LoadedProgram {
        var record: ProgramRecord
        var kernelInfo: KernelProgramInfo
    }

    /// What a Load created in bpffs, removed again when it fails: program and map pins in reverse order of
    /// creation, then the map-set directories, then the PIN_BY_NAME pins the kernel load made.
    private struct CreatedPins {
        var pins: [String] = []
        var directories: [String] = []
        var sharedMaps: Set<String>
    }

    private func remove(_ created: CreatedPins) {
        for pin in created.pins.reversed() { removePin(pin) }
        for directory in created.directories { removeDirectory(directory) }
        for name in created.sharedMaps { removePin(paths.sharedMapsDirectory + "/" + name) }
    }

    /// Opens the object file at `path` with libbpf (read whole, ELF header checked first).
    private func openObject(at path: String) throws(EngineError) -> BPFObject {
        let image = try readObjectFile(path)
        do {
            return try BPFObject.open(image: image, path: path, pinRoot: paths.sharedMapsDirectory)
        } catch {
            throw .invalidArgument("object file \(path) is not a BPF object: \(error.errno)")
        }
    }

    /// The requested programs by name, in request order, each with its kind (SPEC §3.1, §4.2). The object's
    /// other programs are not loaded.
    private func choosePrograms(
        _ requested: [ProgramLoadInfo],
        of object: borrowing BPFObject
    ) throws(EngineError) -> [ChosenProgram] {
        let declared = object.programs
        let found = requested.compactMap { info in declared.first { $0.name == info.name }.map { (info, $0) } }
        guard found.count == requested.count else {
            let missing = requested.map(\.name).filter { name in !declared.contains { $0.name == name } }
            throw .invalidArgument(
                "program(s) not found in object file: [\(missing.joined(separator: ", "))]; available programs: "
                    + "[\(declared.map(\.name).joined(separator: ", "))]"
            )
        }
        var chosen: [ChosenProgram] = []
        for (info, program) in found {
            guard let kind = Engine.kind(section: program.section, requested: info.type) else {
                throw .invalidArgument(
                    Engine.sectionMismatchMessage(program: info.name, section: program.section, requested: info.type)
                )
            }
            chosen.append(ChosenProgram(name: info.name, kind: kind, handle: program.handle, target: info.target))
        }
        for program in declared where !chosen.contains(where: { $0.name == program.name }) {
            bpf_program__set_autoload(program.handle, false)
        }
        return chosen
    }

    /// The names of the pins in the shared maps directory when the object pins maps by name, else none.
    private func sharedMapPins(of object: borrowing BPFObject) -> Set<String> {
        guard object.maps.contains(where: { $0.pinPath != nil }) else { return [] }
        return Set(Syscalls.listDirectory(paths.sharedMapsDirectory))
    }

    /// Sets each program's kernel type and load-time target (SPEC §4.1, §4.15), then loads the object; a
    /// verifier rejection is reported with the failing program's log.
    /// - Returns: each program's load mode, by name.
    private func loadIntoKernel(
        _ object: borrowing BPFObject,
        _ chosen: [ChosenProgram]
    ) throws(EngineError) -> [String: LoadMode] {
        var loadModes: [String: LoadMode] = [:]
        // Fds libbpf needs until the load (EXT targets); closed when this call returns.
        var heldUntilLoad: [CInt] = []
        defer { for fd in heldUntilLoad { _ = Glibc.close(fd) } }
        for program in chosen {
            loadModes[program.name] = try configure(
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
        return loadModes
    }

    /// Pins every loaded program at `fs/prog_<id>` and, without a map owner, its maps in a map set of its own;
    /// returns the records to commit. Each path is added to `created` as it is made.
    private func pin(
        _ chosen: [ChosenProgram],
        of object: borrowing BPFObject,
        request: LoadRequest,
        mapOwner: UInt32?,
        _ loadModes: [String: LoadMode],
        _ created: inout CreatedPins
    ) throws(EngineError) -> [LoadedProgram] {
        let publicMaps = object.maps.filter { !$0.isInternal }
        let sharedNames = publicMaps.compactMap { map -> String? in
            guard let pin = map.pinPath, pin.hasPrefix(paths.sharedMapsDirectory + "/") else { return nil }
            return String(pin.dropFirst(paths.sharedMapsDirectory.count + 1))
        }
        let storedLocation: BytecodeLocation =
            switch request.bytecode {
            case .file(let path): .file(path)
            case .image(let image): .image(image.withoutCredentials)
            }
        let clock = LoadTimeClock()
        var loaded: [LoadedProgram] = []
        for program in chosen {
            let fd = bpf_program__fd(program.handle)
            // The program's kernel facts, read once here and recorded (SPEC §3.8): Get and List answer from them.
            guard let (id, facts) = KernelProgramFacts.readWithID(rawFD: fd, clock: clock) else {
                throw .internal("failed to read the id for program \(program.name): \(Errno.current)")
            }
            let pin = paths.programPin(id)
            if case .failure(let error) = BPF.pin(rawFD: fd, at: pin) {
                throw .internal("failed to pin program for program \(program.name): \(error.errno)", errno: error.errno)
            }
            created.pins.append(pin)
            // The liveness check of Get and List compares this inode with the pin's (`ProgramPins`).
            guard let pinInode = ProgramPins.inode(at: pin) else {
                let error = Errno.current
                throw .internal("failed to pin program for program \(program.name): \(error)", errno: error)
            }
            if mapOwner == nil {
                try pinMapSet(publicMaps, owner: id, program: program.name, &created)
            }
            let record = ProgramRecord(
                id: id,
                name: program.name,
                kind: program.kind,
                loadMode: loadModes[program.name] ?? .native,
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
            let kernelInfo = KernelProgramInfo(
                id: id,
                facts: facts,
                reportedType: program.kind.reportedKernelType,
                clock: clock
            )
            loaded.append(LoadedProgram(record: record, kernelInfo: kernelInfo))
        }
        return loaded
    }

    /// Pins `maps` in the map-set directory of program `owner` (SPEC §5.1), made here.
    private func pinMapSet(
        _ maps: [BPFMapHandle],
        owner: UInt32,
        program: String,
        _ created: inout CreatedPins
    ) throws(EngineError) {
        let directory = paths.mapSetDirectory(owner)
        if case .failure(let error) = Syscalls.mkdir(directory, 0o755) {
            throw .internal("failed to create map directory for program \(program): \(error.errno)", errno: error.errno)
        }
        created.directories.append(directory)
        for map in maps {
            let mapPin = paths.mapPin(owner: owner, map: map.name)
            if case .failure(let error) = BPF.pin(rawFD: map.fd, at: mapPin) {
                throw .internal(
                    "failed to pin map \(map.name) for program \(program): \(error.errno)",
                    errno: error.errno
                )
            }
            _ = Syscalls.chmod(mapPin, mode_t(BpfmanPaths.mapPinMode))
        }
    }

    /// Writes the map sets and program records in one transaction.
    private func commit(_ records: [ProgramRecord]) throws(EngineError) {
        try db { () throws(SQLiteError) in
            try store.transaction { () throws(SQLiteError) in
                for record in records where record.mapOwnerID == nil {
                    try store.insertMapSet(id: record.id, pinDirectory: paths.mapSetDirectory(record.id))
                }
                for record in records { try store.insertProgram(record) }
            }
        }
    }

    /// The response entry of a committed program.
    private func details(of program: LoadedProgram) throws(EngineError) -> ProgramDetails {
        let record = program.record
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
        return ProgramDetails(info: info, kernelInfo: program.kernelInfo)
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
        switch request.bytecode {
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
                try converting(
                    { () throws(DispatchError) in
                        try DispatcherMemberLoading.prepareExtension(program: program, targetFD: dispatcher.rawValue)
                    },
                    mapError: { .internal("cannot target the test dispatcher: \($0.message)", errno: $0.errno) }
                )
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
            if let target,
                case .failure(let error) = BPFError.check(
                    "bpf_program__set_attach_target",
                    bpf_program__set_attach_target(program, 0, target.targetName)
                )
            {
                throw .internal(
                    "failed to load program \(String(cString: bpf_program__name(program))): "
                        + "\(target.targetName): \(error.errno)",
                    errno: error.errno
                )
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
