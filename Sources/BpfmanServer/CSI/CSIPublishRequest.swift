internal import Proto

/// The `volume_context` keys a bpfman CSI volume is described by (SPEC §7.3).
enum CSIVolumeContextKey {
    /// Matched against program metadata `bpfman.io/ProgramName`.
    static let program = "csi.bpfman.io/program"
    /// Comma-separated map names.
    static let maps = "csi.bpfman.io/maps"
}

/// A validated NodePublishVolume request (SPEC §7.3 step 1). Pure: building one touches nothing.
struct CSIPublishRequest: Sendable, Equatable {
    var volumeID: String
    /// Absolute, without trailing slashes.
    var targetPath: String
    var programName: String
    /// Trimmed, non-empty, de-duplicated, sorted.
    var maps: [String]
    var readOnly: Bool
    /// The fsGroup kubelet passed in `volume_mount_group`, if any.
    var group: UInt32?

    static let contextRequiredMessage =
        "csi.bpfman.io/program and at least one csi.bpfman.io/maps are required"

    /// Checks the request in SPEC's order and returns the first failure as INVALID_ARGUMENT naming the field.
    ///
    /// - Parameters:
    ///   - request: the decoded request.
    ///   - podsRoot: when set, `target_path` must lie below it (the kubelet's pods directory).
    /// - Throws: `CSIError.invalidRequest` (INVALID_ARGUMENT).
    init(validating request: Csi_V1_NodePublishVolumeRequest, podsRoot: String?) throws(CSIError) {
        volumeID = try Self.validVolumeID(request.volumeID)
        targetPath = try Self.validTargetPath(request.targetPath, podsRoot: podsRoot)
        guard request.hasVolumeCapability else { throw Self.invalid("volume_capability is required") }
        let capability = request.volumeCapability
        let mount: Csi_V1_VolumeCapability.MountVolume
        switch capability.accessType {
        case .mount(let value): mount = value
        case .block: throw Self.invalid("volume_capability must be a mount volume; block volumes are not supported")
        case nil: throw Self.invalid("volume_capability.mount is required")
        }
        guard mount.fsType.isEmpty else {
            throw Self.invalid("volume_capability.mount.fs_type must be empty, got \"\(mount.fsType)\"")
        }
        guard mount.mountFlags.isEmpty else {
            throw Self.invalid("volume_capability.mount.mount_flags are not supported, got \(mount.mountFlags)")
        }
        guard capability.hasAccessMode else { throw Self.invalid("volume_capability.access_mode is required") }
        switch capability.accessMode.mode {
        case .singleNodeWriter, .singleNodeSingleWriter: break
        default:
            throw Self.invalid(
                "volume_capability.access_mode must be SINGLE_NODE_WRITER or SINGLE_NODE_SINGLE_WRITER, got "
                    + (capability.accessMode.mode.protoName ?? "\(capability.accessMode.mode.rawValue)")
            )
        }
        if mount.volumeMountGroup.isEmpty {
            group = nil
        } else {
            guard mount.volumeMountGroup.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
                let gid = UInt32(mount.volumeMountGroup), gid != UInt32.max
            else {
                throw Self.invalid(
                    "volume_capability.mount.volume_mount_group \"\(mount.volumeMountGroup)\" is not a decimal group id"
                )
            }
            group = gid
        }
        readOnly = request.readonly

        let program = Self.trimmed(request.volumeContext[CSIVolumeContextKey.program] ?? "")
        var maps: [String] = []
        for piece in (request.volumeContext[CSIVolumeContextKey.maps] ?? "").split(separator: ",") {
            let name = Self.trimmed(String(piece))
            if !name.isEmpty && !maps.contains(name) { maps.append(name) }
        }
        guard !program.isEmpty, !maps.isEmpty else { throw Self.invalid(Self.contextRequiredMessage) }
        for name in maps where !Self.isSinglePathElement(name) {
            throw Self.invalid("map name \"\(name)\" in csi.bpfman.io/maps must be a single path element")
        }
        programName = program
        self.maps = maps.sorted()
    }

    /// `volume_id`: non-empty, one path element.
    static func validVolumeID(_ id: String) throws(CSIError) -> String {
        guard !id.isEmpty else { throw invalid("volume_id is required") }
        guard isSinglePathElement(id) else {
            throw invalid("volume_id \"\(id)\" must be a single path element (no \"/\", not \".\" or \"..\")")
        }
        return id
    }

    /// `target_path`: absolute, not `/`, no `.`/`..` components, below `podsRoot` when one is configured.
    /// Returns it without trailing slashes.
    static func validTargetPath(_ path: String, podsRoot: String?) throws(CSIError) -> String {
        guard !path.isEmpty else { throw invalid("target_path is required") }
        let components = path.split(separator: "/")
        guard path.hasPrefix("/"), !components.isEmpty else {
            throw invalid("target_path \"\(path)\" must be an absolute path other than /")
        }
        guard !components.contains(where: { $0 == "." || $0 == ".." }), !path.utf8.contains(0) else {
            throw invalid("target_path \"\(path)\" must not contain . or .. components")
        }
        let normalized = "/" + components.joined(separator: "/")
        if let podsRoot {
            let root = "/" + podsRoot.split(separator: "/").joined(separator: "/")
            guard normalized.hasPrefix(root == "/" ? "/" : root + "/") else {
                throw invalid("target_path \"\(path)\" is outside the kubelet pods directory \(root)")
            }
        }
        return normalized
    }

    static func isSinglePathElement(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && !name.contains("/") && !name.utf8.contains(0)
    }

    static func invalid(_ message: String) -> CSIError {
        .invalidRequest(message)
    }

    /// `text` without leading and trailing spaces, tabs and newlines.
    static func trimmed(_ text: String) -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        guard let start = text.firstIndex(where: { !isSpace($0) }), let end = text.lastIndex(where: { !isSpace($0) })
        else { return "" }
        return String(text[start...end])
    }
}
