import Foundation
import Glibc
import Logging
import TestSupport
import Testing

@testable import BpfmanEngine
@testable import BpfmanServer
@testable import H2Transport

/// The serialized parent of the CSI tests that mount filesystems and load programs (the kernel's mount table
/// and bpffs are machine-wide). Gated on the same probe as the engine's kernel tests.
@Suite(.serialized, .enabled(if: TestKernel.canUseBPF, "\(TestKernel.needsRootAndBPF)"))
struct CSIKernelTests {}

/// What the CSI interop tests need beyond the shared tools: the kubelet stand-in's Python and its stubs.
extension InteropTools {
    /// The kubelet stand-in (grpcio) and bpftool are both there.
    static var csiAvailable: Bool { python != nil && bpftool != nil }
    static let csiMissing = "needs grpcio/grpcio-tools in .venv and bpftool (scripts/setup.sh)"

    /// Python stubs for proto/csi.proto, generated once per test process.
    static let csiStubs: String = {
        let directory = NSTemporaryDirectory() + "csi-stubs-\(getpid())"
        if let python {
            _ = try? TestSupport.run(
                python,
                [Repository.path("Interop/csi/kubelet.py"), "--stubs", directory, "generate"]
            )
        }
        return directory
    }()
}

/// The outcome of one RPC made by the kubelet stand-in.
struct CSIReply: Sendable {
    var code: String
    var message: String
    /// The response as proto3 JSON (field names as in the .proto), empty on errors.
    var response: [String: any Sendable]
}

/// A CSI plugin on a real Unix socket in front of a real engine, under a private runtime directory and bpffs.
final class CSIHarness: @unchecked Sendable {
    // @unchecked: used from the test's own task only.
    let root: String
    let paths: BpfmanPaths
    let csiPaths: CSIPaths
    var engine: Engine
    var server: GRPCServer
    var node: CSINodeService
    let logger: Logger
    var loadedIDs: [UInt32] = []

    /// - Parameter logger: where the plugin logs; by default a quiet one (`CSI_TEST_DEBUG` set: debug).
    init(root: String, configuration: CSIConfiguration, logger: Logger? = nil) async throws {
        self.root = root
        paths = BpfmanPaths(root: root)
        csiPaths = CSIPaths(runtimeDirectory: root)
        if let logger {
            self.logger = logger
        } else {
            var quiet = Logger(label: "csi-test")
            quiet.logLevel = ProcessInfo.processInfo.environment["CSI_TEST_DEBUG"] != nil ? .debug : .critical
            self.logger = quiet
        }
        engine = try await Engine(paths: paths, logger: self.logger)
        (server, node) = try Self.startServer(
            engine: engine,
            root: root,
            configuration: configuration,
            logger: self.logger
        )
    }

    private static func startServer(
        engine: Engine,
        root: String,
        configuration: CSIConfiguration,
        logger: Logger
    ) throws -> (GRPCServer, CSINodeService) {
        var router = GRPCRouter()
        let node = try CSIServices.register(
            on: &router,
            engine: engine,
            runtimeDirectory: root,
            configuration: configuration,
            logger: logger
        )
        node.reconcileRecords()  // as CSIEndpoint.start does
        var serverConfiguration = GRPCServer.Configuration()
        serverConfiguration.handlerStart = .globalExecutor
        let server = try GRPCServer(router: router, configuration: serverConfiguration, logger: logger)
        try server.bind(.unix(path: node.paths.socket, mode: 0o660))
        return (server, node)
    }

    /// Stops the server and closes the engine, then starts both again on the same runtime directory: what a
    /// daemon restart does (the mounts and pins stay in the kernel).
    func restart(configuration: CSIConfiguration = CSIConfiguration()) async throws {
        await server.shutdown(gracePeriod: .seconds(2))
        await engine.close()
        engine = try await Engine(paths: paths, logger: logger)
        (server, node) = try Self.startServer(engine: engine, root: root, configuration: configuration, logger: logger)
    }

    /// Loads `csi_count` from the csi_counter fixture with `bpfman.io/ProgramName = name` and attaches it to
    /// `syscalls/sys_enter_getppid`. Returns the program id.
    func loadCounter(named name: String) async throws -> UInt32 {
        let request = LoadRequest(
            bytecode: .file(try BPFFixtures.object("csi_counter")),
            programs: [ProgramLoadInfo(name: "csi_count", type: .tracepoint)],
            metadata: [Engine.csiProgramNameKey: name, "owner": "csi-tests"]
        )
        let id = try await engine.load(request)[0].kernelInfo.id
        loadedIDs.append(id)
        _ = try await engine.attach(
            programID: id,
            spec: .tracepoint(TracepointAttach(tracepoint: "syscalls/sys_enter_getppid"))
        )
        return id
    }

    /// One RPC through the Python (grpcio) kubelet stand-in, in its own process.
    func call(_ method: String, _ request: [String: Any]) async throws -> CSIReply {
        let json = String(decoding: try JSONSerialization.data(withJSONObject: request), as: UTF8.self)
        let result = try await spawn(
            InteropTools.python!,
            [
                Repository.path("Interop/csi/kubelet.py"), "--stubs", InteropTools.csiStubs, csiPaths.socket, "call",
                method,
                json,
            ]
        )
        try #require(result.status == 0, "kubelet.py failed:\n\(result.output)")
        let line = try #require(result.output.split(separator: "\n").last, "kubelet.py printed nothing")
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
            "not JSON: \(line)"
        )
        return CSIReply(
            code: object["code"] as? String ?? "?",
            message: object["message"] as? String ?? "",
            response: (object["response"] as? [String: Any] ?? [:]).mapValues { "\($0)" }
        )
    }

    /// N identical RPCs at once from N threads of one grpcio client; their status codes.
    func concurrent(_ count: Int, _ method: String, _ request: [String: Any]) async throws -> [String] {
        let json = String(decoding: try JSONSerialization.data(withJSONObject: request), as: UTF8.self)
        let result = try await spawn(
            InteropTools.python!,
            [
                Repository.path("Interop/csi/kubelet.py"), "--stubs", InteropTools.csiStubs, csiPaths.socket,
                "concurrent",
                "\(count)", method, json,
            ]
        )
        try #require(result.status == 0, "kubelet.py failed:\n\(result.output)")
        let line = try #require(result.output.split(separator: "\n").last)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        return object["codes"] as? [String] ?? []
    }

    func publish(
        _ volume: String,
        target: String,
        program: String = "csi-test",
        maps: String = "csi_counts,csi_last_pid",
        readOnly: Bool = false,
        group: String = ""
    ) async throws -> CSIReply {
        try await call(
            "Node/NodePublishVolume",
            Self.publishRequest(
                volume,
                target: target,
                program: program,
                maps: maps,
                readOnly: readOnly,
                group: group
            )
        )
    }

    static func publishRequest(
        _ volume: String,
        target: String,
        program: String = "csi-test",
        maps: String = "csi_counts,csi_last_pid",
        readOnly: Bool = false,
        group: String = ""
    ) -> [String: Any] {
        [
            "volume_id": volume, "target_path": target, "readonly": readOnly,
            "volume_capability": [
                "mount": ["volume_mount_group": group], "access_mode": ["mode": "SINGLE_NODE_WRITER"],
            ],
            "volume_context": [
                "csi.bpfman.io/program": program, "csi.bpfman.io/maps": maps,
                "csi.storage.k8s.io/pod.name": "stand-in", "csi.storage.k8s.io/ephemeral": "true",
            ],
        ]
    }

    func unpublish(_ volume: String, target: String) async throws -> CSIReply {
        try await call("Node/NodeUnpublishVolume", ["volume_id": volume, "target_path": target])
    }

    /// A kubelet-shaped target path: `<root>/pods/<uid>/volumes/kubernetes.io~csi/<volume>/mount`. The parent
    /// exists (kubelet creates it), the target itself does not.
    func podTarget(_ volume: String, pod: String = "pod-a") throws -> String {
        let parent = "\(root)/pods/\(pod)/volumes/kubernetes.io~csi/\(volume)"
        try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        return parent + "/mount"
    }
}

/// Runs `body` against a fresh CSI plugin and engine, then checks and cleans up: programs unloaded, no mount
/// left under the runtime directory, the private bpffs unmounted and the directory removed.
func withCSIPlugin(
    _ tag: String,
    configuration: CSIConfiguration = CSIConfiguration(),
    logger: Logger? = nil,
    _ body: (CSIHarness) async throws -> Void
) async throws {
    var template = Array("/tmp/csi-\(tag)-XXXXXX".utf8CString)
    let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    let root = String(cString: try #require(made))
    let bpffs = root + "/fs"
    try #require(mkdir(bpffs, 0o755) == 0)
    try #require(mount("bpf", bpffs, "bpf", 0, nil) == 0, "mount a private bpffs")
    defer {
        for mountPoint in csiMounts(under: root).reversed() { umount2(mountPoint.path, Int32(MNT_DETACH)) }
        try? FileManager.default.removeItem(atPath: root)
    }
    let harness = try await CSIHarness(root: root, configuration: configuration, logger: logger)
    var failure: (any Error)?
    do { try await body(harness) } catch { failure = error }
    for id in harness.loadedIDs { try? await harness.engine.unload(id: id) }
    await harness.server.shutdown(gracePeriod: .seconds(2))
    await harness.engine.close()
    if let failure { throw failure }
    let left = csiMounts(under: root).map(\.path).filter { $0 != bpffs }
    #expect(left.isEmpty, "mounts left behind: \(left)")
}

/// One mount from /proc/self/mountinfo, parsed here independently of the plugin's own parser.
struct CSITestMount: Equatable {
    var path: String
    var type: String
    var options: Set<String>
}

/// Mounts at or below `root`, in mount order.
func csiMounts(under root: String) -> [CSITestMount] {
    let text = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
    return text.split(separator: "\n").compactMap { line -> CSITestMount? in
        let fields = line.split(separator: " ")
        guard let dash = fields.firstIndex(of: "-"), fields.count > dash + 1 else { return nil }
        let path = String(fields[4]).replacingOccurrences(of: "\\040", with: " ")
        guard path == root || path.hasPrefix(root + "/") else { return nil }
        return CSITestMount(
            path: path,
            type: String(fields[dash + 1]),
            options: Set(fields[5].split(separator: ",").map(String.init))
        )
    }
}

/// Mounts exactly at `path`.
func csiMounts(at path: String) -> [CSITestMount] {
    csiMounts(under: path).filter { $0.path == path }
}

/// `bpftool -j <arguments>` in a separate process, decoded.
func bpftoolJSON(_ arguments: [String]) async throws -> Any {
    let result = try await spawn(InteropTools.bpftool!, ["-j"] + arguments)
    try #require(result.status == 0, "bpftool \(arguments) failed:\n\(result.output)")
    return try JSONSerialization.jsonObject(with: Data(result.output.utf8))
}
