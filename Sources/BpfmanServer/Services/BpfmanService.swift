internal import BpfmanEngine
internal import BpfmanImages
package import H2Transport
internal import Proto

/// `bpfman.v1.Bpfman` (SPEC §3.1-3.7): decode, check, call the engine, encode.
package struct BpfmanService: Sendable {
    let context: ServiceContext

    package init(context: ServiceContext) {
        self.context = context
    }

    package func register(on router: inout GRPCRouter) {
        typealias M = Bpfman_V1_Bpfman.Method
        let c = context
        router.register(
            M.load.path,
            c.unary("Load", mutating: true) { call, bytes in
                var validated = try LoadRequest(validating: try decode(Bpfman_V1_LoadRequest.self, bytes))
                if case .image(let image) = validated.bytecode {
                    validated.imageObjectPath = try await c.resolve(image).objectPath
                }
                let request = validated
                let loaded = try await c.mutate(call) { engine throws(EngineError) in try await engine.load(request) }
                var response = Bpfman_V1_LoadResponse()
                response.programs = loaded.map(Bpfman_V1_LoadResponseInfo.init)
                return response.serializedBytes()
            }
        )
        router.register(
            M.unload.path,
            c.unary("Unload", mutating: true) { call, bytes in
                let id = try IDValidation.programID(try decode(Bpfman_V1_UnloadRequest.self, bytes).id)
                try await c.mutate(call) { engine throws(EngineError) in
                    try await engine.unload(id: id)
                    // A client that calls Get right after Unload must see NOT_FOUND, not the dying program as
                    // an unmanaged one (SPEC §3.2, §3.6).
                    await engine.waitUntilProgramGone(id)
                }
                return Bpfman_V1_UnloadResponse().serializedBytes()
            }
        )
        router.register(
            M.attach.path,
            c.unary("Attach", mutating: true) { call, bytes in
                let request = try AttachCall(validating: try decode(Bpfman_V1_AttachRequest.self, bytes))
                let linkID = try await c.mutate(call) { engine throws(EngineError) in
                    try await engine.attach(programID: request.programID, spec: request.spec)
                }
                var response = Bpfman_V1_AttachResponse()
                response.linkID = linkID
                return response.serializedBytes()
            }
        )
        router.register(
            M.detach.path,
            c.unary("Detach", mutating: true) { call, bytes in
                let id = try IDValidation.linkID(try decode(Bpfman_V1_DetachRequest.self, bytes).linkID)
                try await c.mutate(call) { engine throws(EngineError) in try await engine.detach(linkID: id) }
                return Bpfman_V1_DetachResponse().serializedBytes()
            }
        )
        router.register(
            M.list.path,
            c.unary("List") { _, bytes in
                let filter = ListFilter(try decode(Bpfman_V1_ListRequest.self, bytes))
                let kept = c.listAnswers.kept(for: filter)
                let answer = try await c.engine.listWithGeneration(filter, unless: kept?.stamp)
                guard let results = answer.results else { return kept?.bytes ?? [] }
                let response = c.listAnswers.response(results, generation: answer.generation)
                if let stamp = answer.stamp { c.listAnswers.keep(response, stamp: stamp) }
                return response
            }
        )
        router.register(
            M.get.path,
            c.unary("Get") { _, bytes in
                let id = try IDValidation.programID(try decode(Bpfman_V1_GetRequest.self, bytes).id)
                return Bpfman_V1_GetResponse(try await c.engine.get(id: id)).serializedBytes()
            }
        )
        router.register(
            M.pullBytecode.path,
            c.unary("PullBytecode", mutating: true) { _, bytes in
                let image = try BytecodeImage(validatingPull: try decode(Bpfman_V1_PullBytecodeRequest.self, bytes))
                _ = try await c.resolve(image)
                return Bpfman_V1_PullBytecodeResponse().serializedBytes()
            }
        )
    }
}
