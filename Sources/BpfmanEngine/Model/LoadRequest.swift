/// Where a Load's bytecode comes from (`bpfman.v1.BytecodeLocation`).
package enum BytecodeLocation: Sendable, Hashable, Codable {
    /// An absolute path to an ELF object on the daemon's host.
    case file(String)
    /// An OCI image; credentials are never stored (SPEC §3.8).
    case image(BytecodeImage)
}

/// An OCI bytecode image reference (`bpfman.v1.BytecodeImage`).
package struct BytecodeImage: Sendable, Hashable, Codable {
    package var url: String
    package var pullPolicy: Int32
    package var username: String?
    package var password: String?

    package init(url: String, pullPolicy: Int32 = 1, username: String? = nil, password: String? = nil) {
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
    /// The wire value of `BpfmanProgramType`; anything outside 0...8 is rejected with INVALID_ARGUMENT.
    package var programType: Int32
    package var target: LoadTarget?

    package init(name: String, programType: Int32, target: LoadTarget? = nil) {
        self.name = name
        self.programType = programType
        self.target = target
    }

    package init(name: String, type: BpfmanProgramType, target: LoadTarget? = nil) {
        self.init(name: name, programType: type.rawValue, target: target)
    }
}

/// A Load (`bpfman.v1.LoadRequest`): one object, several programs, shared maps and global data.
package struct LoadRequest: Sendable, Hashable {
    /// `nil` when the request's `bytecode` (or its oneof) is unset.
    package var bytecode: BytecodeLocation?
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
        bytecode: BytecodeLocation?,
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
