package import H2Transport
package import Proto

/// `grpc.reflection.v1.ServerReflection` and its `v1alpha` twin (SPEC §3.11), over the embedded descriptors.
///
/// The two versions have the same messages with the same field numbers, so one handler serves both paths,
/// decoding and encoding with the v1 types.
package struct ReflectionService: Sendable {
    /// Every service registered on the socket, reflection included.
    let services: [String]

    package init(services: [String]) {
        self.services = services.sorted()
    }

    package static let serviceNames = [
        "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection",
    ]

    /// Adds `ServerReflectionInfo` of both versions to `router`.
    package func register(on router: inout GRPCRouter) {
        let method = GRPCMethod.bidiStreaming { [self] _, requests, writer in
            for try await bytes in requests {
                let request = try decode(Grpc_Reflection_V1_ServerReflectionRequest.self, bytes)
                try await writer.write(answer(request).serializedBytes())
            }
        }
        router.register("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", method)
        router.register("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", method)
    }

    /// The response to one request: exactly one per request, echoing host and request.
    package func answer(
        _ request: Grpc_Reflection_V1_ServerReflectionRequest
    )
        -> Grpc_Reflection_V1_ServerReflectionResponse
    {
        var response = Grpc_Reflection_V1_ServerReflectionResponse()
        response.validHost = request.host
        response.originalRequest = request
        func error(_ message: String) -> Grpc_Reflection_V1_ServerReflectionResponse.OneOf_MessageResponse {
            var e = Grpc_Reflection_V1_ErrorResponse()
            e.errorCode = 5
            e.errorMessage = message
            return .errorResponse(e)
        }
        func files(_ file: ProtoDescriptors.File) -> Grpc_Reflection_V1_ServerReflectionResponse.OneOf_MessageResponse {
            var r = Grpc_Reflection_V1_FileDescriptorResponse()
            r.fileDescriptorProto = ProtoDescriptors.withTransitiveDependencies(file).map(\.serializedDescriptor)
            return .fileDescriptorResponse(r)
        }
        switch request.messageRequest {
        case .listServices?:
            var list = Grpc_Reflection_V1_ListServiceResponse()
            list.service = services.map { name in
                var s = Grpc_Reflection_V1_ServiceResponse()
                s.name = name
                return s
            }
            response.messageResponse = .listServicesResponse(list)
        case .fileByFilename(let name)?:
            response.messageResponse = ProtoDescriptors.file(named: name).map(files) ?? error("file not found: \(name)")
        case .fileContainingSymbol(let symbol)?:
            response.messageResponse =
                ProtoDescriptors.file(containingSymbol: symbol).map(files) ?? error("symbol not found: \(symbol)")
        case .fileContainingExtension(let ext)?:
            response.messageResponse = error(
                "extension not found: \(ext.containingType) \(ext.extensionNumber)"
            )
        case .allExtensionNumbersOfType(let type)?:
            if ProtoDescriptors.isMessage(type) {
                var numbers = Grpc_Reflection_V1_ExtensionNumberResponse()
                numbers.baseTypeName = type
                response.messageResponse = .allExtensionNumbersResponse(numbers)
            } else {
                response.messageResponse = error("type not found: \(type)")
            }
        case nil:
            response.messageResponse = error("request not found: empty reflection request")
        }
        return response
    }
}
