internal import BpfmanEngine
package import H2Transport
internal import Proto

/// `bpfman.ext.v1.Inspect` (SPEC §3.9): links, dispatchers, program details and daemon status for the CLI.
package struct InspectService: Sendable {
    let context: ServiceContext

    package init(context: ServiceContext) {
        self.context = context
    }

    package func register(on router: inout GRPCRouter) {
        typealias M = Bpfman_Ext_V1_Inspect.Method
        let c = context
        router.register(
            M.getLink.path,
            c.unary("GetLink") { _, bytes in
                let request = try decode(Bpfman_Ext_V1_GetLinkRequest.self, bytes)
                let link = try c.engine.reader.link(id: request.linkID)
                let program = try? await c.engine.get(id: link.programID).info?.record
                return Bpfman_Ext_V1_LinkInfo(link, program: program).serializedBytes()
            }
        )
        router.register(
            M.listLinks.path,
            c.unary("ListLinks") { _, bytes in
                let filter = LinkFilter(try decode(Bpfman_Ext_V1_ListLinksRequest.self, bytes))
                let (links, programs) = try await Self.linksAndPrograms(c.engine)
                var response = Bpfman_Ext_V1_ListLinksResponse()
                response.links = links.sorted { $0.id < $1.id }.compactMap { link in
                    let program = programs[link.programID]
                    return filter.matches(link, program: program) ? Bpfman_Ext_V1_LinkInfo(link, program: program) : nil
                }
                return response.serializedBytes()
            }
        )
        router.register(
            M.listDispatchers.path,
            c.unary("ListDispatchers") { _, bytes in
                let request = try decode(Bpfman_Ext_V1_ListDispatchersRequest.self, bytes)
                let pinRoot = DispatcherPaths(fsRoot: await c.engine.paths.bpffs)
                var response = Bpfman_Ext_V1_ListDispatchersResponse()
                response.dispatchers = try await c.engine.dispatchers(iface: request.hasIface ? request.iface : nil)
                    .map { Bpfman_Ext_V1_DispatcherInfo($0, paths: pinRoot) }
                return response.serializedBytes()
            }
        )
        router.register(
            M.getProgramDetails.path,
            c.unary("GetProgramDetails") { _, bytes in
                let request = try decode(Bpfman_Ext_V1_GetProgramDetailsRequest.self, bytes)
                var details: [ProgramDetails] = []
                if request.programIds.isEmpty {
                    details = try await c.engine.list(ListFilter(bpfmanProgramsOnly: true))
                } else {
                    for id in request.programIds { details.append(try await c.engine.get(id: id)) }
                }
                var response = Bpfman_Ext_V1_GetProgramDetailsResponse()
                response.programs = details.map(Bpfman_Ext_V1_ProgramDetails.init)
                return response.serializedBytes()
            }
        )
        router.register(
            M.status.path,
            c.unary("Status") { _, bytes in
                _ = try decode(Bpfman_Ext_V1_StatusRequest.self, bytes)
                let facts = c.facts
                var response = Bpfman_Ext_V1_StatusResponse()
                response.version = facts.version
                response.attachMode = facts.attachMode
                response.attachModeReason = facts.attachModeReason
                response.runtimeDir = facts.runtimeDirectory
                response.socketPath = facts.socketPath
                response.csiEnabled = facts.csiEnabled
                response.csiSocketPath = facts.csiSocketPath
                response.idleTimeoutSecs = facts.idleTimeoutSeconds
                response.socketActivated = facts.socketActivated
                response.programCount = UInt32(try await c.engine.list(ListFilter(bpfmanProgramsOnly: true)).count)
                response.linkCount = UInt32(try await c.engine.links().count)
                response.kernelFeatures = facts.kernelFeatures
                return response.serializedBytes()
            }
        )
    }

    /// Every active link and the records of managed programs by id.
    static func linksAndPrograms(_ engine: Engine) async throws(EngineError) -> ([LinkRecord], [UInt32: ProgramRecord])
    {
        let links = try await engine.links()
        var programs: [UInt32: ProgramRecord] = [:]
        for details in try await engine.list(ListFilter(bpfmanProgramsOnly: true)) {
            if let record = details.info?.record { programs[record.id] = record }
        }
        return (links, programs)
    }
}
