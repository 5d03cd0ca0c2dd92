internal import CBPF
internal import Glibc
internal import SystemCalls

/// Builds, swaps and removes dispatchers in the kernel (SPEC §4.3-4.6). No records: the caller persists
/// the returned `DispatcherState` and feeds it back in for the next change.
///
/// The write protocol of SPEC §6.2 for one change is:
///
///     let next = try kernel.build(..., previous: state, members: plan)   // new revision pinned and swapped in
///     try store.commit(next)                                             // caller's transaction
///     kernel.removeRevision(of: state)                                   // old revision's pins go
///
/// and for the last member: `try kernel.teardown(state)`, then delete the record.
package struct DispatcherKernel: Sendable {
    package var paths: DispatcherPaths
    package var objects: DispatcherObjects
    /// libxdp's bpffs (`$LIBXDP_BPFFS`, default `/sys/fs/bpf`). When set, XDP members are also pinned at
    /// `<it>/xdp/dispatch-<ifindex>-<dispatcher id>/prog<i>-{prog,link}`, where libxdp looks for the
    /// members of a dispatcher, so `xdp-loader status` lists them; nil skips that.
    package var libxdpDirectory: String?

    package init(paths: DispatcherPaths, objects: DispatcherObjects = .embedded, libxdpDirectory: String? = nil) {
        self.paths = paths
        self.objects = objects
        self.libxdpDirectory = libxdpDirectory
    }

    /// The program pin of a managed program (`<fs>/prog_<id>`, SPEC §2).
    package func programPin(_ programID: UInt32) -> String { "\(paths.fsRoot)/prog_\(programID)" }

    // MARK: - Start-up

    /// The freplace probe of SPEC §4.3: load the XDP dispatcher, then load its `probe_pass` as an EXT
    /// program replacing `compat_test` and link it. All fds are closed again.
    /// - Returns: nil when freplace works (dispatcher mode), else the error (EPERM on kernel A).
    package func probeFreplace() -> DispatchError? {
        do throws(DispatchError) {
            let dispatcher = try LoadedDispatcher(
                objects: objects,
                family: .xdp,
                config: DispatcherConfig(family: .xdp, members: [])
            )
            let probe = try ObjectHandle(objects, .xdp)
            let program = try probe.enableOnly("probe_pass")
            try DispatcherMemberLoading.prepareExtension(program: program, targetFD: dispatcher.programFD)
            _ = try DispatchBPF.check(bpf_object__load(probe.object), "load freplace probe")
            let link = try Self.freplaceLink(
                extensionFD: bpf_program__fd(program),
                dispatcherFD: dispatcher.programFD,
                btfID: try dispatcher.functionBTFID(DispatcherMemberLoading.loadTargetFunction)
            )
            _ = link
            return nil
        } catch {
            return error
        }
    }

    /// Pins the two test dispatchers (`<fs>/dispatcher-test/{xdp,tc}`), replacing stale ones.
    package func installTestDispatchers() throws(DispatchError) {
        try Self.makeDirectory(paths.testDispatcherDirectory)
        for family in [ProceedOnFamily.xdp, .tc] {
            let pin = paths.testDispatcher(family)
            DispatchBPF.remove(pin)
            let dispatcher = try LoadedDispatcher(
                objects: objects,
                family: family,
                config: DispatcherConfig(family: family, members: [])
            )
            try DispatchBPF.pin(dispatcher.programFD, at: pin)
        }
    }

    // MARK: - Lookup

    /// Resolves the hook of `iface` in `netns` (the ifindex is looked up inside the namespace).
    package static func hook(
        kind: DispatcherHook.Kind,
        iface: String,
        netns: NetworkNamespace
    ) throws(DispatchError) -> DispatcherHook {
        try NetworkInterface.validate(name: iface)
        let ifindex = try netns.run { () throws(DispatchError) -> UInt32 in
            try NetworkInterface.index(of: iface, netnsLabel: netns.label)
        }
        return DispatcherHook(kind: kind, nsid: netns.nsid, ifindex: ifindex)
    }

    // MARK: - Rebuild

    /// Builds revision `previous.revision + 1` (or 1) holding `members` in slot order and swaps it in.
    ///
    /// Steps 2-4 of SPEC §4.6: load and pin the new dispatcher, link every member's pinned EXT program
    /// (`<fs>/prog_<id>`) into its slot and pin the links, then swap (XDP: create the interface link or
    /// `BPF_LINK_UPDATE` it; TC: add the new prio-50 filter, then delete the old one by exact handle).
    /// On failure the new revision's pins are removed and the old dispatcher keeps running.
    /// The previous revision's pins stay until `removeRevision(of:)`.
    package func build(
        hook: DispatcherHook,
        iface: String,
        netns: NetworkNamespace,
        previous: DispatcherState?,
        members: [DispatcherMember],
        xdpMode: XDPMode = .drv
    ) throws(DispatchError) -> DispatcherState {
        precondition(!members.isEmpty && members.count <= SlotPlanner.slotCount, "1...10 members")
        let revision = previous.map { DispatcherRevision.next(after: $0.revision) } ?? DispatcherRevision.first
        let directory = paths.revisionDirectory(hook, revision: revision)
        do {
            return try buildRevision(
                hook: hook,
                iface: iface,
                netns: netns,
                previous: previous,
                members: members,
                revision: revision,
                xdpMode: xdpMode
            )
        } catch {
            Self.removeTree(directory)
            throw error
        }
    }

    /// Steps 2-4 of SPEC §4.6 for `revision`, top-down; `build` removes the revision's directory on failure.
    private func buildRevision(
        hook: DispatcherHook,
        iface: String,
        netns: NetworkNamespace,
        previous: DispatcherState?,
        members: [DispatcherMember],
        revision: UInt32,
        xdpMode: XDPMode
    ) throws(DispatchError) -> DispatcherState {
        let dispatcher = try loadDispatcher(hook: hook, members: members, revision: revision)
        let dispatcherID = try DispatchBPF.programID(dispatcher.programFD)
        let linkIDs = try linkMembers(members, into: dispatcher, hook: hook, revision: revision)
        var state = DispatcherState(
            hook: hook,
            iface: iface,
            netns: netns,
            revision: revision,
            programID: dispatcherID,
            tcHandle: nil,
            xdpMode: nil,
            members: members,
            memberKernelLinkIDs: linkIDs
        )
        switch hook.kind {
        case .xdp:
            state.xdpMode = try swapInXDP(dispatcher.programFD, state: state, previous: previous, xdpMode: xdpMode)
            if let libxdpDirectory {
                pinForLibxdp(state: state, directory: libxdpDirectory)
            }
        case .tcIngress, .tcEgress:
            state.tcHandle = try swapInTC(dispatcher.programFD, state: state, previous: previous)
        }
        return state
    }

    /// Step 2: a fresh revision directory holding the new dispatcher, configured for `members` and pinned.
    private func loadDispatcher(
        hook: DispatcherHook,
        members: [DispatcherMember],
        revision: UInt32
    ) throws(DispatchError) -> LoadedDispatcher {
        let family = hook.kind.family
        let directory = paths.revisionDirectory(hook, revision: revision)
        Self.removeTree(directory)  // leftovers of an interrupted attempt
        try Self.makeDirectory(paths.kindDirectory(hook.kind))
        try Self.makeDirectory(directory)
        let dispatcher = try LoadedDispatcher(
            objects: objects,
            family: family,
            config: DispatcherConfig(family: family, members: members)
        )
        try DispatchBPF.pin(dispatcher.programFD, at: paths.dispatcherProgram(hook, revision: revision))
        return dispatcher
    }

    /// Step 3: links every member's pinned EXT program (`<fs>/prog_<id>`) into its slot and pins the links.
    /// - Returns: the kernel link ids, in slot order.
    private func linkMembers(
        _ members: [DispatcherMember],
        into dispatcher: borrowing LoadedDispatcher,
        hook: DispatcherHook,
        revision: UInt32
    ) throws(DispatchError) -> [UInt32] {
        var linkIDs: [UInt32] = []
        for (position, member) in members.enumerated() {
            let program = try DispatchBPF.open(pin: programPin(member.programID))
            let link = try Self.freplaceLink(
                extensionFD: program.rawValue,
                dispatcherFD: dispatcher.programFD,
                btfID: try dispatcher.functionBTFID("prog\(position)")
            )
            try DispatchBPF.pin(link.rawValue, at: paths.memberLink(hook, revision: revision, position: position))
            linkIDs.append(try DispatchBPF.linkInfo(link.rawValue).id)
        }
        return linkIDs
    }

    /// Step 4 for XDP: `BPF_LINK_UPDATE` the interface link to `newProgram`, or create and pin it.
    /// - Returns: the XDP mode the interface link uses.
    private func swapInXDP(
        _ newProgram: Int32,
        state: DispatcherState,
        previous: DispatcherState?,
        xdpMode: XDPMode
    ) throws(DispatchError) -> XDPMode {
        let hook = state.hook
        let linkPin = paths.xdpLink(hook)
        if let previous, let previousMode = previous.xdpMode, access(linkPin, F_OK) == 0 {
            let link = try DispatchBPF.open(pin: linkPin)
            _ = try DispatchBPF.check(bpf_link_update(link.rawValue, newProgram, nil), "update xdp link \(linkPin)")
            return previousMode
        }
        return try state.netns.run { () throws(DispatchError) -> XDPMode in
            var used = xdpMode
            let link = try XDPLink.create(
                programFD: newProgram,
                ifindex: hook.ifindex,
                iface: state.iface,
                mode: xdpMode,
                usedMode: &used
            )
            try DispatchBPF.pin(link.rawValue, at: linkPin)
            return used
        }
    }

    /// Step 4 for TC: adds the new prio-50 filter, then deletes the previous one by exact handle; when that
    /// fails the swap is rolled back (the old filter stays, the new one goes).
    /// - Returns: the new filter's handle.
    private func swapInTC(
        _ newProgram: Int32,
        state: DispatcherState,
        previous: DispatcherState?
    ) throws(DispatchError) -> UInt32 {
        let hook = state.hook
        let netns = state.netns
        let direction: TCDirection = hook.kind == .tcIngress ? .ingress : .egress
        let added = try netns.run { () throws(DispatchError) -> TCFilterHandle in
            try TCFilters.ensureClsact(ifindex: hook.ifindex, iface: state.iface)
            return try TCFilters.add(
                programFD: newProgram,
                ifindex: hook.ifindex,
                iface: state.iface,
                direction: direction,
                priority: DispatcherState.tcFilterPriority
            )
        }
        if let previous, let oldHandle = previous.tcHandle {
            let old = TCFilterHandle(
                ifindex: hook.ifindex,
                direction: direction,
                priority: DispatcherState.tcFilterPriority,
                handle: oldHandle
            )
            do {
                try netns.run { () throws(DispatchError) in try TCFilters.delete(old) }
            } catch {
                try? netns.run { () throws(DispatchError) in try TCFilters.delete(added) }
                throw error
            }
        }
        return added.handle
    }

    /// Removes the pins of `state`'s revision (step 5 of SPEC §4.6, after the caller committed the next
    /// revision). The kernel frees the old dispatcher and its freplace links with their last reference.
    package func removeRevision(of state: DispatcherState) {
        Self.removeTree(state.pinDirectory(paths))
        if state.hook.kind == .xdp, let libxdpDirectory {
            Self.removeTree(Self.libxdpDirectory(libxdpDirectory, state))
        }
    }

    /// Removes the dispatcher of `state` (last member gone, or its netns vanished): XDP detaches and
    /// unpins the interface link, TC deletes the filter by exact handle (nothing to do when the namespace
    /// is gone); then the revision directory goes.
    package func teardown(_ state: DispatcherState) throws(DispatchError) {
        switch state.hook.kind {
        case .xdp:
            let linkPin = paths.xdpLink(state.hook)
            if let link = try? DispatchBPF.open(pin: linkPin) {
                let result = bpf_link_detach(link.rawValue)
                // ENOLINK/ENODEV: the interface (or its namespace) is already gone; the link is defunct.
                if result < 0, -result != ENOLINK, -result != ENODEV, errno != ENOLINK {
                    _ = try DispatchBPF.check(result, "detach xdp link \(linkPin)")
                }
            }
            DispatchBPF.remove(linkPin)
        case .tcIngress, .tcEgress:
            if let handle = state.tcHandle {
                let direction: TCDirection = state.hook.kind == .tcIngress ? .ingress : .egress
                try NativeTC.detach(
                    netns: state.netns,
                    filter: TCFilterHandle(
                        ifindex: state.hook.ifindex,
                        direction: direction,
                        priority: DispatcherState.tcFilterPriority,
                        handle: handle
                    )
                )
            }
        }
        removeRevision(of: state)
    }

    // MARK: - Helpers

    /// Creates an freplace link of `extensionFD` into the function `btfID` of `dispatcherFD`.
    /// The corresponding C function is `bpf_link_create` (attach type 0, `target_btf_id`).
    static func freplaceLink(
        extensionFD: Int32,
        dispatcherFD: Int32,
        btfID: UInt32
    ) throws(DispatchError)
        -> OwnedFD
    {
        var opts = bpf_link_create_opts()
        withUnsafeMutableBytes(of: &opts) { _ = $0.initializeMemory(as: UInt8.self, repeating: 0) }
        opts.sz = MemoryLayout<bpf_link_create_opts>.size
        opts.target_btf_id = btfID
        let fd = try DispatchBPF.check(
            bpf_link_create(extensionFD, dispatcherFD, bpf_attach_type(rawValue: 0), &opts),
            "create freplace link"
        )
        return OwnedFD(taking: fd)
    }

    /// `<libxdp bpffs>/xdp/dispatch-<ifindex>-<dispatcher id>`.
    static func libxdpDirectory(_ root: String, _ state: DispatcherState) -> String {
        "\(root)/xdp/dispatch-\(state.hook.ifindex)-\(state.programID)"
    }

    /// Pins each member's program and freplace link where libxdp looks for them. Best effort: a failure
    /// only makes `xdp-loader status` show the dispatcher as a single program.
    private func pinForLibxdp(state: DispatcherState, directory root: String) {
        let directory = Self.libxdpDirectory(root, state)
        guard (try? Self.makeDirectory(root)) != nil, (try? Self.makeDirectory("\(root)/xdp")) != nil,
            (try? Self.makeDirectory(directory)) != nil
        else {
            return
        }
        for (position, member) in state.members.enumerated() {
            if let program = try? DispatchBPF.open(pin: programPin(member.programID)) {
                try? DispatchBPF.pin(program.rawValue, at: "\(directory)/prog\(position)-prog")
            }
            if let link = try? DispatchBPF.open(
                pin: paths.memberLink(state.hook, revision: state.revision, position: position)
            ) {
                try? DispatchBPF.pin(link.rawValue, at: "\(directory)/prog\(position)-link")
            }
        }
    }

    static func makeDirectory(_ path: String) throws(DispatchError) {
        if case .failure(let error) = Syscalls.mkdir(path, 0o755), error.errno != .fileExists {
            throw DispatchError(.internal, "mkdir \(path): \(error.errno)", errno: error.errno)
        }
    }

    /// Removes a directory of pins (one level deep) and the directory itself; missing is fine.
    static func removeTree(_ path: String) {
        for name in Syscalls.listDirectory(path) { _ = Syscalls.unlink("\(path)/\(name)") }
        _ = Syscalls.rmdir(path)
    }
}

/// An opened (and maybe loaded) `bpf_object`, closed in `deinit`, with the ELF bytes it was opened from.
struct ObjectHandle: ~Copyable {
    let object: OpaquePointer
    /// A private copy of the ELF bytes: libelf reads them in place until the object is closed.
    private let image: UnsafeMutableRawBufferPointer

    /// Opens the object file `bytes` from memory under `name` (libbpf's object name, which prefixes internal
    /// map names such as `<name>.rodata`).
    /// The corresponding C function is `bpf_object__open_mem` (via `cbpf_object_open_memory`).
    init(image bytes: [UInt8], name: String) throws(DispatchError) {
        let image = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 16)
        image.copyBytes(from: bytes)
        guard let object = cbpf_object_open_memory(image.baseAddress, bytes.count, name, nil) else {
            let error = Errno.current
            image.deallocate()
            throw DispatchError(.internal, "open BPF object \(name): \(error)", errno: error)
        }
        self.object = object
        self.image = image
    }

    /// Opens the dispatcher object of `family` from `objects`.
    init(_ objects: DispatcherObjects, _ family: ProceedOnFamily) throws(DispatchError) {
        try self.init(image: objects.bytes(for: family), name: DispatcherObjects.objectName(for: family))
    }

    deinit {
        bpf_object__close(object)
        image.deallocate()
    }

    /// Turns autoload off for every program but `name` and returns that one.
    func enableOnly(_ name: String) throws(DispatchError) -> OpaquePointer {
        var chosen: OpaquePointer?
        var program = bpf_object__next_program(object, nil)
        while let p = program {
            let matches = String(cString: bpf_program__name(p)) == name
            bpf_program__set_autoload(p, matches)
            if matches { chosen = p }
            program = bpf_object__next_program(object, p)
        }
        guard let chosen else { throw DispatchError(.internal, "no program \(name) in the dispatcher object") }
        return chosen
    }
}

/// A dispatcher object loaded with a given configuration; its program fd lives as long as this value.
struct LoadedDispatcher: ~Copyable {
    let handle: ObjectHandle
    let programFD: Int32

    init(objects: DispatcherObjects, family: ProceedOnFamily, config: DispatcherConfig) throws(DispatchError) {
        let handle = try ObjectHandle(objects, family)
        let program = try handle.enableOnly(family == .xdp ? "xdp_dispatcher" : "tc_dispatcher")
        var rodata: OpaquePointer?
        var map = bpf_object__next_map(handle.object, nil)
        while let m = map {
            if String(cString: bpf_map__name(m)).hasSuffix(".rodata") { rodata = m }
            map = bpf_object__next_map(handle.object, m)
        }
        guard let rodata else { throw DispatchError(.internal, "dispatcher object has no .rodata") }
        let bytes = config.bytes
        _ = try DispatchBPF.check(
            bytes.withUnsafeBytes { bpf_map__set_initial_value(rodata, $0.baseAddress, $0.count) },
            "set dispatcher config"
        )
        _ = try DispatchBPF.check(bpf_object__load(handle.object), "load \(family.rawValue) dispatcher")
        self.programFD = bpf_program__fd(program)
        self.handle = handle
    }

    /// BTF type id of the global function `name` (a slot or `compat_test`).
    func functionBTFID(_ name: String) throws(DispatchError) -> UInt32 {
        guard let btf = bpf_object__btf(handle.object) else {
            throw DispatchError(.internal, "dispatcher object has no BTF")
        }
        let id = btf__find_by_name_kind(btf, name, 12)  // BTF_KIND_FUNC
        guard id > 0 else { throw DispatchError(.internal, "no function \(name) in the dispatcher's BTF") }
        return UInt32(id)
    }
}
