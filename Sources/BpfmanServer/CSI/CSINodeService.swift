internal import BpfmanEngine
internal import H2Transport
internal import Logging
internal import Proto
internal import Synchronization
internal import SystemCalls

#if canImport(Glibc)
@preconcurrency internal import Glibc
#endif

/// `csi.v1.Node` (SPEC §7.2-7.4): publishes a managed program's maps into a pod as a bind-mounted bpffs.
///
/// Publish builds `<rd>/csi/fs/<volume_id>` (a bpffs of its own holding second pins of the program's maps) and
/// bind-mounts it at the kubelet's `target_path`; unpublish undoes both. Operations on one volume id never
/// overlap: a second one arriving while the first runs gets ABORTED, as the CSI spec asks.
package final class CSINodeService: Sendable {
    package let paths: CSIPaths
    package let nodeID: String
    let engine: Engine
    let podsRoot: String?
    let logger: Logger
    let records: CSIVolumeRecords
    /// Volume ids with an operation in flight.
    private let busy = Mutex<Set<String>>([])

    /// Entries the kernel puts in every new bpffs (preloaded iterators); not ours.
    static let kernelEntries: Set<String> = ["maps.debug", "progs.debug"]

    init(engine: Engine, paths: CSIPaths, nodeID: String, podsRoot: String?, logger: Logger) {
        self.engine = engine
        self.paths = paths
        self.nodeID = nodeID
        self.podsRoot = podsRoot
        self.logger = logger
        self.records = CSIVolumeRecords(directory: paths.volumeRecords)
    }

    // MARK: - Info and capabilities

    func getInfo(_ request: Csi_V1_NodeGetInfoRequest) -> Csi_V1_NodeGetInfoResponse {
        var response = Csi_V1_NodeGetInfoResponse()
        response.nodeID = nodeID
        response.maxVolumesPerNode = 0
        return response
    }

    func getCapabilities(_ request: Csi_V1_NodeGetCapabilitiesRequest) -> Csi_V1_NodeGetCapabilitiesResponse {
        var rpc = Csi_V1_NodeServiceCapability.RPC()
        rpc.type = .volumeMountGroup
        var capability = Csi_V1_NodeServiceCapability()
        capability.rpc = rpc
        var response = Csi_V1_NodeGetCapabilitiesResponse()
        response.capabilities = [capability]
        return response
    }

    // MARK: - Publish

    /// NodePublishVolume (SPEC §7.3).
    /// - Throws: `CSIError` (INVALID_ARGUMENT, ABORTED, FAILED_PRECONDITION, ALREADY_EXISTS, NOT_FOUND or
    ///   INTERNAL); after a failure nothing of this call is left mounted or pinned.
    func publish(
        _ request: Csi_V1_NodePublishVolumeRequest
    ) async throws(CSIError) -> Csi_V1_NodePublishVolumeResponse {
        let plan = try CSIPublishRequest(validating: request, podsRoot: podsRoot)
        try await withVolumeLock(plan.volumeID) { () async throws(CSIError) in
            try await publishLocked(plan)
        }
        return Csi_V1_NodePublishVolumeResponse()
    }

    /// What a publish has mounted so far, for the roll-back (SPEC §7.3 step 9).
    private struct PublishProgress {
        var mountedVolume = false
        var mountedTarget = false
    }

    /// SPEC §7.3 steps 3-9 for a validated request, holding the volume's in-flight mark.
    private func publishLocked(_ plan: CSIPublishRequest) async throws(CSIError) {
        var log = logger
        log[metadataKey: "volume_id"] = "\(plan.volumeID)"
        log[metadataKey: "target_path"] = "\(plan.targetPath)"

        // Step 3: a repeat of an earlier publish.
        if let top = MountEntry.mounts(at: Syscalls.canonicalPath(plan.targetPath)).last {
            try await confirmRepeatedPublish(plan, top: top)
            log.info("volume already published", metadata: ["rpc": "NodePublishVolume"])
            return
        }

        // Step 4: the program.
        let source: CSIMapSource
        do {
            source = try await engine.csiMapSource(programName: plan.programName)
        } catch {
            throw .engine(error)
        }
        log[metadataKey: "program_id"] = "\(source.programID)"

        // Steps 5-8, rolled back as one.
        let volume = try prepareVolumeDirectory(plan.volumeID)
        var progress = PublishProgress()
        do throws(CSIError) {
            try mountVolumeFilesystem(volume, group: plan.group, progress: &progress)
            try pinMaps(plan, from: source, into: volume)
            try bindTarget(plan, to: volume, progress: &progress)
            try saveRecord(plan, programID: source.programID)
        } catch {
            rollBack(plan, volume: volume, progress: progress)
            log.info(
                "publish failed, rolled back",
                metadata: ["rpc": "NodePublishVolume", "error": "\(ErrorMapping.status(for: error))"]
            )
            throw error
        }
        log.info(
            "published volume",
            metadata: [
                "rpc": "NodePublishVolume", "program": "\(plan.programName)",
                "maps": "\(plan.maps.joined(separator: ","))",
                "readonly": "\(plan.readOnly)", "group": "\(plan.group.map { String($0) } ?? "")",
            ]
        )
    }

    /// Step 3: the target is already a mount. Succeeds when it is this volume published the same way (writing the
    /// record a crash between the bind mount and the record left out).
    private func confirmRepeatedPublish(_ plan: CSIPublishRequest, top: MountEntry) async throws(CSIError) {
        guard top.filesystemType == "bpf" else {
            throw .targetMountedWithOtherFilesystem(targetPath: plan.targetPath, filesystem: top.filesystemType)
        }
        let target = Syscalls.canonicalPath(plan.targetPath)
        let entries = Set(Syscalls.listDirectory(target)).subtracting(Self.kernelEntries)
        guard entries == Set(plan.maps), top.isReadOnly == plan.readOnly else {
            throw .targetPublishedDifferently(targetPath: plan.targetPath)
        }
        if records.record(plan.volumeID) == nil {
            let programID = (try? await engine.csiMapSource(programName: plan.programName))?.programID ?? 0
            try? records.save(CSIVolumeRecord(plan, programID: programID))
        }
    }

    /// Step 5's directories: `<rd>/csi`, `<rd>/csi/fs`, `<rd>/csi/volumes`, and no leftover
    /// `<rd>/csi/fs/<volume_id>` of a crashed attempt. Returns the per-volume directory's path.
    private func prepareVolumeDirectory(_ volumeID: String) throws(CSIError) -> String {
        try ensureDirectory(paths.directory, mode: 0o755)
        try ensureDirectory(paths.filesystems, mode: 0o755)
        try ensureDirectory(paths.volumeRecords, mode: 0o700)
        let volume = paths.volumeFilesystem(volumeID)
        try removeStaleVolumeFilesystem(volume)
        return volume
    }

    /// Step 5: a fresh bpffs at `volume`, mode 0750, owned by `group` when the kubelet passed one.
    private func mountVolumeFilesystem(
        _ volume: String,
        group: UInt32?,
        progress: inout PublishProgress
    ) throws(CSIError) {
        try Self.orSystemCallError("cannot create \(volume)") { Syscalls.mkdir(volume, 0o750) }
        try Self.orSystemCallError("cannot mount bpffs at \(volume)") { CSIMounts.mountBPFFS(at: volume) }
        progress.mountedVolume = true
        guard Engine.csiIsBPFFS(volume) else { throw .notBPFFS(path: volume) }
        try Self.orSystemCallError("cannot set the mode of \(volume)") { Syscalls.chmod(volume, 0o750) }
        if let group {
            try Self.orSystemCallError("cannot set the group of \(volume)") {
                Syscalls.changeGroup(volume, to: gid_t(group))
            }
        }
    }

    /// Step 6: a second pin of each requested map in `volume`, mode 0660, owned by the request's group.
    private func pinMaps(_ plan: CSIPublishRequest, from source: CSIMapSource, into volume: String) throws(CSIError) {
        for map in plan.maps {
            let pin = volume + "/" + map
            do {
                try Engine.csiRepinMap(map, from: source, to: pin, programName: plan.programName)
            } catch {
                throw .engine(error)
            }
            try Self.orSystemCallError("cannot set the mode of \(pin)") { Syscalls.chmod(pin, 0o660) }
            if let group = plan.group {
                try Self.orSystemCallError("cannot set the group of \(pin)") {
                    Syscalls.changeGroup(pin, to: gid_t(group))
                }
            }
        }
    }

    /// Step 7: `volume` bind-mounted at the target path (made when missing), read-only when asked.
    private func bindTarget(
        _ plan: CSIPublishRequest,
        to volume: String,
        progress: inout PublishProgress
    ) throws(CSIError) {
        if !Syscalls.isDirectory(plan.targetPath) {
            try Self.orSystemCallError("cannot create target path \(plan.targetPath)") {
                Syscalls.mkdir(plan.targetPath, 0o755)
            }
        }
        try Self.orSystemCallError("cannot bind-mount \(volume) at \(plan.targetPath)") {
            CSIMounts.bindMount(volume, onto: plan.targetPath)
        }
        progress.mountedTarget = true
        if plan.readOnly {
            try Self.orSystemCallError("cannot make \(plan.targetPath) read-only") {
                CSIMounts.remountReadOnly(plan.targetPath)
            }
        }
    }

    /// Step 8: the volume's record, which unpublish and start-up reconciliation read.
    private func saveRecord(_ plan: CSIPublishRequest, programID: UInt32) throws(CSIError) {
        do {
            try records.save(CSIVolumeRecord(plan, programID: programID))
        } catch {
            throw .nodeOperation(what: "cannot record volume \(plan.volumeID)", cause: "\(error)")
        }
    }

    /// Step 9: undoes a failed publish in reverse order, all but the target directory (the CO owns it).
    private func rollBack(_ plan: CSIPublishRequest, volume: String, progress: PublishProgress) {
        if progress.mountedTarget { unmountAll(plan.targetPath) }
        if progress.mountedVolume { unmountAll(volume) }
        _ = Syscalls.rmdir(volume)
    }

    /// A per-volume directory left by a crashed attempt: unmount whatever is there and remove it.
    private func removeStaleVolumeFilesystem(_ volume: String) throws(CSIError) {
        unmountAll(volume)
        if Syscalls.status(volume) != nil {
            // An unmounted leftover is an empty directory (pins only ever live inside the bpffs).
            try Self.orSystemCallError("cannot remove stale \(volume)") { Syscalls.rmdir(volume) }
        }
    }

    // MARK: - Unpublish

    /// NodeUnpublishVolume (SPEC §7.4): unmounts and removes the target, then the per-volume bpffs. Idempotent.
    /// - Throws: `CSIError` (INVALID_ARGUMENT, ABORTED, or INTERNAL when the target cannot be unmounted/removed).
    func unpublish(
        _ request: Csi_V1_NodeUnpublishVolumeRequest
    ) async throws(CSIError) -> Csi_V1_NodeUnpublishVolumeResponse {
        let volumeID = try CSIPublishRequest.validVolumeID(request.volumeID)
        let targetPath = try CSIPublishRequest.validTargetPath(request.targetPath, podsRoot: podsRoot)
        try await withVolumeLock(volumeID) { () async throws(CSIError) in
            var log = logger
            log[metadataKey: "volume_id"] = "\(volumeID)"
            log[metadataKey: "target_path"] = "\(targetPath)"
            let target = Syscalls.canonicalPath(targetPath)
            var rounds = 0
            while !MountEntry.mounts(at: target).isEmpty && rounds < 16 {
                rounds += 1
                switch CSIMounts.unmount(target) {
                case .success: break
                case .failure(let error) where error.errno == .invalidArgument || error.errno == .noSuchFileOrDirectory:
                    break
                case .failure(let error) where error.errno == .resourceBusy:
                    try Self.orSystemCallError("cannot unmount \(targetPath)") {
                        CSIMounts.unmount(target, detach: true)
                    }
                case .failure(let error):
                    throw .nodeOperation(what: "cannot unmount \(targetPath)", cause: "\(error)")
                }
            }
            switch Syscalls.rmdir(targetPath) {
            case .success: break
            case .failure(let error) where error.errno == .noSuchFileOrDirectory: break
            case .failure(let error):
                throw .nodeOperation(what: "cannot remove target path \(targetPath)", cause: "\(error)")
            }
            let volume = paths.volumeFilesystem(volumeID)
            unmountAll(volume)
            _ = Syscalls.rmdir(volume)
            records.remove(volumeID)
            log.info("unpublished volume", metadata: ["rpc": "NodeUnpublishVolume", "rounds": "\(rounds)"])
        }
        return Csi_V1_NodeUnpublishVolumeResponse()
    }

    // MARK: - Start-up bookkeeping

    /// Drops the records of volumes whose target is no longer mounted (unmounted behind the plugin's back, e.g.
    /// by a node clean-up while the daemon was down), unmounting and removing their per-volume bpffs. Volumes
    /// whose target is still mounted are kept: kubelet will unpublish them.
    /// - Returns: how many records were kept and dropped.
    @discardableResult
    func reconcileRecords() -> (kept: Int, dropped: Int) {
        let table = MountEntry.current()
        var kept = 0
        var dropped = 0
        for record in records.all() {
            let target = Syscalls.canonicalPath(record.targetPath)
            if MountEntry.mounts(at: target, in: table).last?.filesystemType == "bpf" {
                kept += 1
                continue
            }
            let volume = paths.volumeFilesystem(record.volumeID)
            unmountAll(volume)
            _ = Syscalls.rmdir(volume)
            records.remove(record.volumeID)
            dropped += 1
            logger.info(
                "dropped the record of a volume no longer mounted",
                metadata: ["volume_id": "\(record.volumeID)", "target_path": "\(record.targetPath)"]
            )
        }
        return (kept, dropped)
    }

    // MARK: - Helpers

    /// Test hook: marks `volumeID` busy as an operation in flight would; the returned closure clears it.
    func _testOnlyMarkBusy(_ volumeID: String) -> @Sendable () -> Void {
        busy.withLock { _ = $0.insert(volumeID) }
        return { [self] in _ = busy.withLock { $0.remove(volumeID) } }
    }

    /// Runs `body` holding the per-volume in-flight mark; ABORTED when another operation holds it.
    private func withVolumeLock(
        _ volumeID: String,
        _ body: () async throws(CSIError) -> Void
    ) async throws(CSIError) {
        let acquired = busy.withLock { $0.insert(volumeID).inserted }
        guard acquired else { throw .volumeBusy(volumeID: volumeID) }
        defer { _ = busy.withLock { $0.remove(volumeID) } }
        try await body()
    }

    /// Unmounts everything stacked at `path` (lazily when busy); best effort.
    private func unmountAll(_ path: String) {
        let canonical = Syscalls.canonicalPath(path)
        var rounds = 0
        while !MountEntry.mounts(at: canonical).isEmpty && rounds < 16 {
            rounds += 1
            if case .failure(let error) = CSIMounts.unmount(canonical) {
                if case .failure = CSIMounts.unmount(canonical, detach: true) {
                    logger.warning("cannot unmount", metadata: ["path": "\(path)", "error": "\(error)"])
                    return
                }
            }
        }
    }

    private func ensureDirectory(_ path: String, mode: mode_t) throws(CSIError) {
        if Syscalls.isDirectory(path) { return }
        switch Syscalls.mkdir(path, mode) {
        case .success: return
        case .failure(let error) where error.errno == .fileExists: return
        case .failure(let error): throw .nodeOperation(what: "cannot create \(path)", cause: "\(error)")
        }
    }

    /// Runs a system call wrapper and turns its failure into `CSIError.systemCall` (INTERNAL
    /// `<what>: <errno text>`).
    @discardableResult
    private static func orSystemCallError<T>(
        _ what: String,
        _ body: () -> Result<T, SystemCallError>
    ) throws(CSIError) -> T {
        switch body() {
        case .success(let value): return value
        case .failure(let error): throw .systemCall(what, errno: error.errno)
        }
    }
}

extension CSIVolumeRecord {
    /// The record of a publish of `plan` whose maps came from program `programID`.
    init(_ plan: CSIPublishRequest, programID: UInt32) {
        self.init(
            volumeID: plan.volumeID,
            targetPath: plan.targetPath,
            programName: plan.programName,
            programID: programID,
            maps: plan.maps,
            readOnly: plan.readOnly,
            group: plan.group
        )
    }
}
