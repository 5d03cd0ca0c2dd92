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

    package init(
        bytecode: BytecodeLocation?,
        programs: [ProgramLoadInfo],
        globalData: [String: [UInt8]] = [:],
        metadata: [String: String] = [:],
        mapOwnerID: UInt32? = nil
    ) {
        self.bytecode = bytecode
        self.programs = programs
        self.globalData = globalData
        self.metadata = metadata
        self.mapOwnerID = mapOwnerID
    }
}

/// Turns an OCI image reference into a local ELF object path (SPEC §8). Implemented outside the engine's
/// core; without one, image Loads fail with FAILED_PRECONDITION.
package protocol BytecodeImageResolver: Sendable {
    /// The object file of `image`, pulling it according to its policy.
    /// - Throws: `EngineError` with the §8 codes.
    func objectPath(for image: BytecodeImage) throws(EngineError) -> String
    /// Program names the image declares (`io.ebpf.programs`), or nil when it declares none.
    func declaredProgramNames(for image: BytecodeImage) -> [String]?
}
