package import BpfmanEngine
package import H2Transport
package import Logging

/// The CSI socket of `bpfman serve --csi-support` (SPEC §1.4, §1.5): its own router and server, sharing the
/// daemon's engine.
///
/// Serves `csi.v1.Identity`, `csi.v1.Node`, `grpc.health.v1.Health` (names `""`, `csi.v1.Identity`,
/// `csi.v1.Node`) and both reflection services on `<rd>/csi/csi.sock`, mode 0660. The daemon starts it after
/// its main socket, sets it SERVING with the main one and shuts it down with it.
package final class CSIEndpoint: Sendable {
    package let server: GRPCServer
    package let health: HealthService
    package let node: CSINodeService

    private init(server: GRPCServer, health: HealthService, node: CSINodeService) {
        self.server = server
        self.health = health
        self.node = node
    }

    /// Creates `<rd>/csi` and `<rd>/csi/fs`, registers the services and binds `<rd>/csi/csi.sock` (a stale
    /// socket file there is replaced). Health starts NOT_SERVING; call `health.setAll(.serving)` when ready.
    ///
    /// - Parameters:
    ///   - engine: the daemon's engine.
    ///   - runtimeDirectory: `<rd>`.
    ///   - configuration: node id, optional pods root, version.
    ///   - serverConfiguration: limits and the in-flight hook shared with the main socket (idle timer, §1.6).
    ///   - logger: the daemon's logger.
    /// - Throws: `StartupError` naming the directory or the socket that failed.
    package static func start(
        engine: Engine,
        runtimeDirectory: String,
        configuration: CSIConfiguration = CSIConfiguration(),
        serverConfiguration: GRPCServer.Configuration,
        logger: Logger
    ) throws(StartupError) -> CSIEndpoint {
        var router = GRPCRouter()
        let node = try CSIServices.register(
            on: &router,
            engine: engine,
            runtimeDirectory: runtimeDirectory,
            configuration: configuration,
            logger: logger
        )
        let health = HealthService(services: CSIServices.healthServiceNames)
        health.register(on: &router)
        ReflectionService(services: router.serviceNames + ReflectionService.serviceNames).register(on: &router)
        // Publish and unpublish mount and unmount synchronously; keep that off the transport's loop thread.
        var serverConfiguration = serverConfiguration
        serverConfiguration.handlerStart = .globalExecutor
        let server: GRPCServer
        do {
            server = try GRPCServer(router: router, configuration: serverConfiguration, logger: logger)
        } catch {
            throw StartupError("cannot start the CSI server: \(error)")
        }
        do {
            try server.bind(.unix(path: node.paths.socket, mode: 0o660))
        } catch {
            // The loop thread is running; stop it before giving up.
            let stopping = server
            Task { await stopping.shutdown(gracePeriod: .zero) }
            throw StartupError("cannot listen on \(node.paths.socket): \(error)")
        }
        let (kept, dropped) = node.reconcileRecords()
        logger.info(
            "serving CSI",
            metadata: [
                "socket": "\(node.paths.socket)", "node_id": "\(node.nodeID)", "volumes_published": "\(kept)",
                "stale_volume_records_dropped": "\(dropped)",
            ]
        )
        return CSIEndpoint(server: server, health: health, node: node)
    }

    /// NOT_SERVING to watchers, then a graceful stop of the CSI socket (SPEC §1.6).
    package func shutdown() async {
        health.setAll(.notServing)
        try? await Task.sleep(for: .milliseconds(20))
        health.finishWatchers()
        await server.shutdown(gracePeriod: .seconds(10))
    }
}
