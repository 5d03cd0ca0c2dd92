package import BpfmanEngine
package import H2Transport
package import Logging
internal import Proto
internal import SystemCalls

/// Where the CSI plugin keeps its state under the runtime directory (SPEC §0.2, §2).
package struct CSIPaths: Sendable, Hashable {
    package var runtimeDirectory: String

    package init(runtimeDirectory: String) {
        var root = runtimeDirectory
        while root.count > 1 && root.hasSuffix("/") { root.removeLast() }
        self.runtimeDirectory = root
    }

    /// `<rd>/csi`
    package var directory: String { runtimeDirectory + "/csi" }
    /// `<rd>/csi/csi.sock`, the CSI endpoint (mode 0660).
    package var socket: String { directory + "/csi.sock" }
    /// `<rd>/csi/fs`, parent of the per-volume bpffs mounts.
    package var filesystems: String { directory + "/fs" }
    /// `<rd>/csi/fs/<volume_id>`, one bpffs per published volume.
    package func volumeFilesystem(_ volumeID: String) -> String { filesystems + "/" + volumeID }
    /// `<rd>/csi/volumes`, one `<volume_id>.json` record per published volume (see `CSIVolumeRecord`).
    package var volumeRecords: String { directory + "/volumes" }
}

/// Settings of the CSI plugin beyond the runtime directory. Defaults suit the daemon.
package struct CSIConfiguration: Sendable {
    /// The node id NodeGetInfo reports; nil means `$KUBE_NODE_NAME`, else the host name (SPEC §1.9).
    package var nodeID: String?
    /// When set, NodePublishVolume and NodeUnpublishVolume refuse a `target_path` outside this directory
    /// (e.g. `/var/lib/kubelet/pods`) with INVALID_ARGUMENT. Off by default.
    package var podsRoot: String?
    /// GetPluginInfo's `vendor_version`.
    package var version: String

    package init(nodeID: String? = nil, podsRoot: String? = nil, version: String = BpfmanVersion.string) {
        self.nodeID = nodeID
        self.podsRoot = podsRoot
        self.version = version
    }
}

/// The CSI node plugin's entry point for the daemon (`bpfman serve --csi-support`, SPEC §1.4, §1.5, §7).
///
/// The daemon, after the engine is up:
/// ```swift
/// var csiRouter = GRPCRouter()
/// let csi = try CSIServices.register(on: &csiRouter, engine: engine, runtimeDirectory: rd, logger: logger)
/// // + grpc.health.v1.Health with CSIServices.healthServiceNames, and both reflection services
/// let csiServer = try GRPCServer(router: csiRouter, logger: logger)   // or the main server, bound twice
/// try csiServer.bind(.unix(path: csi.paths.socket, mode: 0o660))
/// ```
/// `csi.v1.Controller` and `csi.v1.GroupController` are deliberately not registered, so the router answers
/// UNIMPLEMENTED for them. `CSIEndpoint.start` does all of the above for the daemon.
///
/// - Important: NodePublishVolume and NodeUnpublishVolume make mount system calls before their first
///   suspension; serve them from a server whose `handlerStart` is `.globalExecutor`, not `.inline`.
package enum CSIServices {
    /// The CSI plugin name (SPEC §0.2).
    package static let pluginName = "csi.bpfman.io"
    /// Health service names reported SERVING on the CSI socket once ready (SPEC §1.5).
    package static let healthServiceNames = ["", Csi_V1_Identity.serviceName, Csi_V1_Node.serviceName]

    /// Creates `<rd>/csi` and `<rd>/csi/fs` and registers `csi.v1.Identity` and `csi.v1.Node` on `router`.
    ///
    /// - Parameters:
    ///   - router: the CSI socket's router.
    ///   - engine: the daemon's engine; the CSI plugin uses it read-only, to find programs and their map pins.
    ///   - runtimeDirectory: `<rd>`.
    ///   - configuration: node id, optional pods root, version.
    ///   - logger: where publish/unpublish log their outcome.
    /// - Returns: the node service (its `paths.socket` is where the daemon binds the CSI socket).
    /// - Throws: `StartupError` when the directories cannot be created.
    @discardableResult
    package static func register(
        on router: inout GRPCRouter,
        engine: Engine,
        runtimeDirectory: String,
        configuration: CSIConfiguration = CSIConfiguration(),
        logger: Logger
    ) throws(StartupError) -> CSINodeService {
        let paths = CSIPaths(runtimeDirectory: runtimeDirectory)
        try makeDirectories(paths.filesystems, mode: 0o755)
        let nodeID = configuration.nodeID ?? Syscalls.environment("KUBE_NODE_NAME") ?? Syscalls.hostName()
        let node = CSINodeService(
            engine: engine,
            paths: paths,
            nodeID: nodeID,
            podsRoot: configuration.podsRoot,
            logger: logger
        )
        let version = configuration.version

        router.register(
            Csi_V1_Identity.Method.getPluginInfo.path,
            unary("GetPluginInfo", logger) { (_: Csi_V1_GetPluginInfoRequest) in
                var response = Csi_V1_GetPluginInfoResponse()
                response.name = pluginName
                response.vendorVersion = version
                return response
            }
        )
        router.register(
            Csi_V1_Identity.Method.getPluginCapabilities.path,
            unary("GetPluginCapabilities", logger) { (_: Csi_V1_GetPluginCapabilitiesRequest) in
                Csi_V1_GetPluginCapabilitiesResponse()
            }
        )
        router.register(
            Csi_V1_Identity.Method.probe.path,
            unary("Probe", logger) { (_: Csi_V1_ProbeRequest) in
                var response = Csi_V1_ProbeResponse()
                response.ready.value = true
                return response
            }
        )

        router.register(Csi_V1_Node.Method.nodeGetInfo.path, unary("NodeGetInfo", logger) { node.getInfo($0) })
        router.register(
            Csi_V1_Node.Method.nodeGetCapabilities.path,
            unary("NodeGetCapabilities", logger) { node.getCapabilities($0) }
        )
        router.register(
            Csi_V1_Node.Method.nodePublishVolume.path,
            unary("NodePublishVolume", logger) { try await node.publish($0) }
        )
        router.register(
            Csi_V1_Node.Method.nodeUnpublishVolume.path,
            unary("NodeUnpublishVolume", logger) { try await node.unpublish($0) }
        )
        for method in [Csi_V1_Node.Method.nodeStageVolume, .nodeUnstageVolume, .nodeGetVolumeStats, .nodeExpandVolume] {
            router.register(
                method.path,
                RPCLog.unary(method.rawValue, logger: logger) { _, _ in
                    throw CSIError.unimplemented(method: method.fullName, plugin: pluginName)
                }
            )
        }
        return node
    }

    /// A unary handler over decoded messages, logging one line per call (`RPCLog`); an undecodable request is
    /// INVALID_ARGUMENT.
    private static func unary<Request: ProtoMessage, Response: ProtoMessage>(
        _ name: String,
        _ logger: Logger,
        _ handler: @escaping @Sendable (Request) async throws -> Response
    ) -> GRPCMethod {
        RPCLog.unary(name, logger: logger) { _, bytes in
            try await handler(try decode(Request.self, bytes)).serializedBytes()
        }
    }
}
