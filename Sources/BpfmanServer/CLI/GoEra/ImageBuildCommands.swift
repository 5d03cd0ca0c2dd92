internal import ArgumentParser
internal import BpfmanEngine
internal import BpfmanImages
internal import FoundationEssentials
internal import Glibc

// Upstream's Go-era `image build` and `image generate-build-args` (SPEC §9.4): both read the bytecode objects
// and compute the same plan (build args, platforms, the io.ebpf.programs / io.ebpf.maps labels of the first
// object, SPEC §8.1); `generate-build-args` prints it, `build` writes the image. No daemon is involved.

/// One architecture slot of a bytecode image: its OCI platform, its build arg, and the byte order its object has.
struct BytecodeArch {
    var platform: String
    var buildArg: String
    var bigEndian: Bool
    /// The names cilium/ebpf's bpf2go gives the architecture in object file names.
    var ciliumNames: [String]

    /// Upstream's table, in its order.
    static let all: [BytecodeArch] = [
        BytecodeArch(platform: "linux/386", buildArg: "BC_386_EL", bigEndian: false, ciliumNames: ["386"]),
        BytecodeArch(platform: "linux/amd64", buildArg: "BC_AMD64_EL", bigEndian: false, ciliumNames: ["x86"]),
        BytecodeArch(platform: "linux/arm", buildArg: "BC_ARM_EL", bigEndian: false, ciliumNames: ["arm"]),
        BytecodeArch(platform: "linux/arm64", buildArg: "BC_ARM64_EL", bigEndian: false, ciliumNames: ["arm64"]),
        BytecodeArch(
            platform: "linux/loong64",
            buildArg: "BC_LOONG64_EL",
            bigEndian: false,
            ciliumNames: ["loongarch", "loong64"]
        ),
        BytecodeArch(platform: "linux/mips", buildArg: "BC_MIPS_EB", bigEndian: true, ciliumNames: ["mips"]),
        BytecodeArch(platform: "linux/mipsle", buildArg: "BC_MIPSLE_EL", bigEndian: false, ciliumNames: ["mipsle"]),
        BytecodeArch(platform: "linux/mips64", buildArg: "BC_MIPS64_EB", bigEndian: true, ciliumNames: ["mips64"]),
        BytecodeArch(
            platform: "linux/mips64le",
            buildArg: "BC_MIPS64LE_EL",
            bigEndian: false,
            ciliumNames: ["mips64le"]
        ),
        BytecodeArch(
            platform: "linux/ppc64",
            buildArg: "BC_PPC64_EB",
            bigEndian: true,
            ciliumNames: ["powerpc", "ppc64"]
        ),
        BytecodeArch(
            platform: "linux/ppc64le",
            buildArg: "BC_PPC64LE_EL",
            bigEndian: false,
            ciliumNames: ["powerpc", "ppc64le"]
        ),
        BytecodeArch(
            platform: "linux/riscv64",
            buildArg: "BC_RISCV64_EL",
            bigEndian: false,
            ciliumNames: ["riscv", "riscv64"]
        ),
        BytecodeArch(
            platform: "linux/s390x",
            buildArg: "BC_S390X_EB",
            bigEndian: true,
            ciliumNames: ["s390", "s390x"]
        ),
    ]

    static var hostBigEndian: Bool { 1.bigEndian == 1 }
}

/// What `image build` writes and `image generate-build-args` prints.
struct BytecodeImagePlan {
    /// Build arg name and object path, in input order.
    var inputs: [(buildArg: String, path: String, arch: BytecodeArch?)]
    var multiArch: Bool
    var programs: [String: String]
    var maps: [String: String]

    /// Reads the objects named by `bytecode` (`FILE`, or `linux/ARCH=FILE`...) or found in a cilium/ebpf project.
    init(bytecode: [String], ciliumProject: String?) throws {
        var bare: [String] = []
        var mapped: [(String, String, BytecodeArch?)] = []
        if let ciliumProject {
            guard bytecode.isEmpty else {
                throw ClientError(plain: "--cilium-ebpf-project conflicts with bytecode inputs")
            }
            mapped = try Self.ciliumInputs(ciliumProject)
        }
        for argument in bytecode {
            let parts = argument.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, parts[0].contains("/") else {
                bare.append(argument)
                continue
            }
            let platform = String(parts[0])
            guard !parts[1].isEmpty else { throw ClientError(plain: "bytecode path is required for \(platform)") }
            guard let arch = BytecodeArch.all.first(where: { $0.platform == platform }) else {
                throw ClientError(
                    plain: "unsupported OCI platform \"\(platform)\"; supported platforms: "
                        + BytecodeArch.all.map(\.platform).joined(separator: ", ")
                )
            }
            guard !mapped.contains(where: { $0.2?.platform == platform }) else {
                throw ClientError(plain: "platform \(platform) specified more than once")
            }
            mapped.append((arch.buildArg, String(parts[1]), arch))
        }
        if !mapped.isEmpty {
            guard bare.isEmpty else {
                throw ClientError(plain: "cannot mix bare bytecode inputs with platform-mapped inputs")
            }
            inputs = mapped
            multiArch = true
        } else if bare.count > 1 {
            throw ClientError(
                plain: "cannot infer OCI platforms from multiple BPF objects: BPF ELF records EM_BPF and endianness, "
                    + "not CPU architecture; pass one BYTECODE file, use linux/arch=BYTECODE inputs, or use "
                    + "--cilium-ebpf-project"
            )
        } else if let only = bare.first {
            inputs = [("BYTECODE_FILE", only, nil)]
            multiArch = false
        } else {
            throw ClientError(plain: "no bytecode files found for building BPF image")
        }
        programs = [:]
        maps = [:]
        for (index, input) in inputs.enumerated() {
            let (programs, maps) = try Self.inspect(
                input.path,
                bigEndian: input.arch?.bigEndian ?? BytecodeArch.hostBigEndian
            )
            if index == 0 {
                self.programs = programs
                self.maps = maps
            }
        }
    }

    /// The `.o` files of a cilium/ebpf project (`<name>_<arch>_bpfel.o`, `..._bpfeb.o`), sorted by platform.
    static func ciliumInputs(_ directory: String) throws -> [(String, String, BytecodeArch?)] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else {
            throw ClientError(plain: "cannot read cilium/ebpf project \(directory)")
        }
        var found: [(String, String, BytecodeArch?)] = []
        for name in names.sorted() where name.hasSuffix(".o") {
            let words = name.lowercased().dropLast(2).split { $0 == "_" || $0 == "-" || $0 == "." }.map(String.init)
            guard let endian = words.last(where: { $0 == "bpfel" || $0 == "bpfeb" }) else { continue }
            let arch = BytecodeArch.all.first { arch in
                arch.bigEndian == (endian == "bpfeb") && words.contains { arch.ciliumNames.contains($0) }
            }
            guard let arch, !found.contains(where: { $0.2?.platform == arch.platform }) else { continue }
            found.append((arch.buildArg, directory + "/" + name, arch))
        }
        guard !found.isEmpty else { throw ClientError(plain: "no cilium/ebpf bytecode files found in \(directory)") }
        return found.sorted { ($0.2?.platform ?? "") < ($1.2?.platform ?? "") }
    }

    /// Checks one object's byte order and reads its labels.
    static func inspect(_ path: String, bigEndian: Bool) throws -> ([String: String], [String: String]) {
        guard let header = readSmallFile(path, limit: 64 << 20)?.prefix(64), header.count >= 6 else {
            throw ClientError(plain: "cannot read bytecode \(path)")
        }
        let order = header[header.startIndex + 5]
        guard order == (bigEndian ? 2 : 1) else {
            let name = { (big: Bool) in big ? "big-endian" : "little-endian" }
            throw ClientError(
                plain: "bytecode \(path) has \(name(order == 2)) byte order, expected \(name(bigEndian))"
            )
        }
        // libbpf reads objects of this machine's byte order only; the other order's are checked by header.
        guard bigEndian == BytecodeArch.hostBigEndian else { return ([:], [:]) }
        if let problem = ELFFile.bpfObjectProblem(header: Array(header)) {
            throw ClientError(plain: "bytecode \(path) is not a BPF object: \(problem)")
        }
        let contents: (programs: [(name: String, kind: ProgramKind?)], maps: [(name: String, type: UInt32)])
        do { contents = try ObjectFile.contents(at: path) } catch {
            throw ClientError(plain: "load bytecode \(path): \(error.description)")
        }
        guard !contents.programs.isEmpty else { throw ClientError(plain: "no programs found in bytecode \(path)") }
        var programs: [String: String] = [:]
        for program in contents.programs {
            if let kind = program.kind { programs[program.name] = kind.rawValue }
        }
        guard !programs.isEmpty else { throw ClientError(plain: "no supported programs found in bytecode \(path)") }
        var maps: [String: String] = [:]
        for map in contents.maps { maps[map.name] = mapTypeName(map.type) }
        return (programs, maps)
    }

    /// The map type names bytecode image labels use (upstream's spelling), by kernel map type number.
    static func mapTypeName(_ type: UInt32) -> String {
        let names = [
            "unspec", "hash", "array", "prog_array", "perf_event_array", "per_cpu_hash", "per_cpu_array",
            "stack_trace", "cgroup_array", "lru_hash", "lru_per_cpu_hash", "lpm_trie", "array_of_maps",
            "hash_of_maps", "devmap", "sockmap", "cpumap", "xskmap", "sockhash", "cgroup_storage",
            "reuseport_sockarray", "per_cpu_cgroup_storage", "queue", "stack", "sk_storage", "devmap_hash",
            "struct_ops", "ringbuf", "inode_storage", "task_storage", "bloom_filter", "user_ringbuf",
            "cgrp_storage", "arena",
        ]
        return Int(type) < names.count ? names[Int(type)] : "\(type)"
    }

    /// A label's value: a compact JSON object with sorted keys (what Go's json.Marshal writes for a map).
    static func labelJSON(_ map: [String: String]) -> String {
        "{"
            + map.sorted { $0.key < $1.key }.map { "\(jsonString($0.key)):\(jsonString($0.value))" }
            .joined(separator: ",") + "}"
    }

    var buildArgs: [String] { inputs.map { "\($0.buildArg)=\($0.path)" } }
    var platforms: [String] { multiArch ? inputs.compactMap { $0.arch?.platform } : [] }

    /// `KEY=VALUE` lines: the build args, then PROGRAMS and MAPS.
    var text: String {
        (buildArgs + ["PROGRAMS=" + Self.labelJSON(programs), "MAPS=" + Self.labelJSON(maps)]).joined(separator: "\n")
    }

    /// `{"platforms":[…],"build_args":{…},"programs":{…},"maps":{…}}`, indented by two.
    var json: String {
        var args: [String: String] = [:]
        for input in inputs { args[input.buildArg] = input.path }
        return jsonObject([
            ("platforms", jsonArray(platforms.map(jsonString))), ("build_args", Self.labelJSON(args)),
            ("programs", Self.labelJSON(programs)), ("maps", Self.labelJSON(maps)),
        ])
    }
}

/// The positional bytecode inputs and `-c` shared by `image build` and `image generate-build-args`.
struct BytecodeInputOptions: ParsableArguments {
    @Argument(
        help: ArgumentHelp(
            "Bytecode input: BYTECODE for a single host-architecture image, or linux/arch=BYTECODE for a multi-architecture image.",
            valueName: "bytecode"
        )
    )
    var bytecode: [String] = []

    @Option(
        name: [.short, .customLong("cilium-ebpf-project")],
        help: ArgumentHelp("Directory containing cilium/ebpf bpf2go object files.", valueName: "dir")
    )
    var ciliumProject: String?

    /// The global options the Go-era tree takes anywhere (`--runtime-dir`, `--config`, ...): accepted, unused.
    @OptionGroup var connection: ConnectionOptions

    func plan() throws -> BytecodeImagePlan {
        try BytecodeImagePlan(bytecode: bytecode, ciliumProject: ciliumProject)
    }
}

extension BpfmanCommand.ImageCommand {
    /// `bpfman image generate-build-args [<bytecode>…]` (Go era): the build args, PROGRAMS and MAPS a container
    /// build of the bytecode image takes, as upstream prints them.
    struct GenerateBuildArgs: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "generate-build-args",
            abstract: "Generate OCI image build arguments for BPF bytecode.",
            discussion: """
                Examples:
                  bpfman image generate-build-args ./bpf_x86_bpfel.o
                  bpfman image generate-build-args linux/amd64=./bpf_x86_bpfel.o linux/arm64=./bpf_arm64_bpfel.o
                  bpfman image generate-build-args -o json -c ./examples/go-xdp-counter/
                """
        )
        @Option(name: [.short, .customLong("output")], help: "Output format: text or json.")
        var output: GoOutputFormat = .text
        @OptionGroup var inputs: BytecodeInputOptions

        func run() throws {
            let plan = try inputs.plan()
            switch output {
            case .text: emit(plan.text)
            case .json: printJSON(plan.json)
            }
        }
    }

    /// `bpfman image build <image> [<bytecode>…]` (Go era): writes the bytecode image itself, with no container
    /// engine, as an OCI image layout (`oci:<dir>[:<tag>]`) or OCI archive (`oci-archive:<file>[:<tag>]`); the
    /// same inputs and `SOURCE_DATE_EPOCH` (0 when unset) give the same digests. Upstream pushes to a registry;
    /// here `skopeo copy --all` does that from the layout.
    struct Build: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Build an OCI image containing BPF bytecode, as an OCI layout or archive.",
            discussion: """
                Examples:
                  bpfman image build oci:/tmp/xdp-pass:latest ./xdp_pass.bpf.o
                  bpfman image build oci-archive:/tmp/counter.tar:v1 linux/amd64=./bpf_x86_bpfel.o linux/arm64=./bpf_arm64_bpfel.o
                  bpfman image build oci:/tmp/counter -c ./examples/go-xdp-counter/
                """
        )
        @Argument(
            help: ArgumentHelp("Where to write: oci:<dir>[:<tag>] or oci-archive:<file>[:<tag>].", valueName: "image")
        )
        var image: String
        @OptionGroup var inputs: BytecodeInputOptions

        func run() throws {
            let plan = try inputs.plan()
            let destination = try Self.absoluteDestination(image)
            let epoch = ProcessInfo.processInfo.environment["SOURCE_DATE_EPOCH"].map {
                String($0.drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
            }
            var timestamp: Int64 = 0
            if let epoch, !epoch.isEmpty {
                guard let seconds = Int64(epoch), seconds >= 0 else {
                    throw ClientError(plain: "invalid SOURCE_DATE_EPOCH \"\(epoch)\": not a non-negative integer")
                }
                timestamp = seconds
            }
            let host = hostPlatform
            let request = ImageBuildRequest(
                destination: destination,
                inputs: plan.inputs.map { input in
                    let platform = (input.arch?.platform ?? host).split(separator: "/").map(String.init)
                    return ImageBuildRequest.Input(os: platform[0], architecture: platform[1], path: input.path)
                },
                multiArch: plan.multiArch,
                labels: [
                    "io.ebpf.programs": BytecodeImagePlan.labelJSON(plan.programs),
                    "io.ebpf.maps": BytecodeImagePlan.labelJSON(plan.maps),
                ],
                timestamp: timestamp
            )
            guard let encoded = try? JSONEncoder().encode(request) else {
                throw ClientError(plain: "cannot encode the build request")
            }
            // The writer (OCI format, libarchive) belongs to the image fetcher's module, which this one does not
            // import: run it as this same executable, `bpfman-image build-image`, under the caller's identity.
            let fetcher = ImageStore.fetcherPath(environment: ProcessInfo.processInfo.environment)
            let arguments = ["bpfman-image", "build-image", String(decoding: encoded, as: UTF8.self)]
            var argv = arguments.map { strdup($0) } + [nil]
            _ = StandardOutput.flush()
            execv(fetcher, &argv)
            let reason = String(cString: strerror(errno))
            throw ClientError(plain: "cannot run the image writer \(fetcher): \(reason)")
        }

        /// `oci:`/`oci-archive:` with a relative path made absolute (the reference form wants absolute paths).
        static func absoluteDestination(_ image: String) throws -> String {
            for scheme in ["oci-archive:", "oci:"] where image.hasPrefix(scheme) {
                let rest = image.dropFirst(scheme.count)
                guard !rest.isEmpty else { throw ClientError(plain: "\(image): a path is required") }
                if rest.hasPrefix("/") { return image }
                return scheme + FileManager.default.currentDirectoryPath + "/" + rest
            }
            throw ClientError(
                plain: "image build writes oci:<dir>[:<tag>] or oci-archive:<file>[:<tag>]; copy the result to a "
                    + "registry with 'skopeo copy --all oci:<dir>:<tag> docker://\(image)'"
            )
        }

        /// `linux/<Go architecture name>` of this machine.
        var hostPlatform: String {
            #if arch(x86_64)
            "linux/amd64"
            #elseif arch(arm64)
            "linux/arm64"
            #elseif arch(s390x)
            "linux/s390x"
            #elseif arch(powerpc64le)
            "linux/ppc64le"
            #else
            "linux/unknown"
            #endif
        }
    }
}
