/// Where a Load's bytecode comes from (`bpfman.v1.BytecodeLocation`).
package enum BytecodeLocation: Sendable, Hashable, Codable {
    /// An absolute path to an ELF object on the daemon's host.
    case file(String)
    /// An OCI image; credentials are never stored (SPEC §3.8).
    case image(BytecodeImage)
}

/// An OCI bytecode image reference (`bpfman.v1.BytecodeImage`).
package struct BytecodeImage: Sendable, Hashable, Codable {
    /// `bpfman.v1.BytecodeImage.image_pull_policy`, numbered as on the wire (SPEC §3.7).
    package enum PullPolicy: Int32, Sendable, Hashable, Codable, CaseIterable {
        case always = 0
        case ifNotPresent = 1
        case never = 2
    }

    package var url: String
    package var pullPolicy: PullPolicy
    package var username: String?
    package var password: String?

    package init(
        url: String,
        pullPolicy: PullPolicy = .ifNotPresent,
        username: String? = nil,
        password: String? = nil
    ) {
        self.url = url
        self.pullPolicy = pullPolicy
        self.username = username
        self.password = password
    }

    /// The same reference without credentials, as stored and reported.
    package var withoutCredentials: BytecodeImage {
        BytecodeImage(url: url, pullPolicy: pullPolicy, username: nil, password: nil)
    }
}

/// The load-time target of fentry, fexit and LSM programs (`bpfman.v1.ProgSpecificInfo`).
package enum LoadTarget: Sendable, Hashable, Codable {
    case fentry(functionName: String)
    case fexit(functionName: String)
    case lsm(hookName: String)

    /// Message spelling of the variant, e.g. `fentry_load_info`.
    package var variantName: String {
        switch self {
        case .fentry: "fentry_load_info"
        case .fexit: "fexit_load_info"
        case .lsm: "lsm_load_info"
        }
    }

    /// The kernel function or LSM hook.
    package var targetName: String {
        switch self {
        case .fentry(let name), .fexit(let name), .lsm(let name): name
        }
    }
}

/// One program of a Load (`bpfman.v1.LoadInfo`).
package struct ProgramLoadInfo: Sendable, Hashable {
    /// The function name in the object.
    package var name: String
    package var type: BpfmanProgramType
    /// Set for fentry and fexit (the kernel function) and lsm (the hook), nil for every other type.
    package var target: LoadTarget?

    package init(name: String, type: BpfmanProgramType, target: LoadTarget? = nil) {
        self.name = name
        self.type = type
        self.target = target
    }
}

/// A Load (`bpfman.v1.LoadRequest`) that passed SPEC §3.1's input checks: one object, several programs, shared
/// maps and global data.
///
/// The checks are made once, by the server's conversion from the wire (`LoadRequest(validating:)` in
/// BpfmanServer); what the types cannot say is the caller's promise: an absolute file path or a non-empty
/// image url, at least one program, non-empty unique names, and `target` set exactly for fentry, fexit and
/// lsm. The engine loads what it is given and does not check these again.
package struct LoadRequest: Sendable, Hashable {
    package var bytecode: BytecodeLocation
    package var programs: [ProgramLoadInfo]
    /// Global variable name → the bytes that overwrite its initial value (SPEC §5.4).
    package var globalData: [String: [UInt8]]
    package var metadata: [String: String]
    /// 0 or `nil` means no map owner.
    package var mapOwnerID: UInt32?
    /// For an image, the object file the server resolved it to before taking the writer lock (SPEC §1.7, §8):
    /// the engine never touches the network. The record keeps `bytecode`, not this path.
    package var imageObjectPath: String?

    package init(
        bytecode: BytecodeLocation,
        programs: [ProgramLoadInfo],
        globalData: [String: [UInt8]] = [:],
        metadata: [String: String] = [:],
        mapOwnerID: UInt32? = nil,
        imageObjectPath: String? = nil
    ) {
        self.bytecode = bytecode
        self.programs = programs
        self.globalData = globalData
        self.metadata = metadata
        self.mapOwnerID = mapOwnerID
        self.imageObjectPath = imageObjectPath
    }
}
