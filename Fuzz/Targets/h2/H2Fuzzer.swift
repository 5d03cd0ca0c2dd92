// The server's byte stream, from the connection preface to handler dispatch: the real nghttp2 session, our gRPC
// layer and a router with the daemon's method paths, through GRPCMemoryConnection (no socket).
//
// Input: one flags byte, then the client's bytes. Flags: bits 0-3 pick the read size the bytes are cut into (a
// whole frame arrives in pieces, or many frames in one read); bit 4 prepends the connection preface, which the
// fuzzer would otherwise have to rediscover on every input.
//
// What must hold:
// - every handler that runs got a message that decodes as its request type and whose encoding decodes back to it;
// - the server's output is whole HTTP/2 frames, starting with its SETTINGS, and at most a bounded multiple of the
//   input (no amplification);
// - at most 256 streams are ever tracked (the advertised SETTINGS_MAX_CONCURRENT_STREAMS);
// - after the client hangs up, no stream, no call in flight and no connection is left behind.
internal import FuzzSupport
internal import H2Transport
internal import Logging
internal import Proto

private let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
private let readSizes = [1, 2, 3, 5, 7, 9, 13, 24, 64, 100, 512, 4096, 16384, 65536, 1 << 20, 1 << 20]

/// Decodes the request as `M`, checks that its encoding decodes to the same message, and answers it re-encoded.
private func roundTrip<M: ProtoMessage>(_: M.Type, _ bytes: [UInt8]) throws -> [UInt8] {
    let message: M
    do { message = try M(serializedBytes: bytes) } catch {
        throw GRPCStatus(.invalidArgument, "bad \(M.protoMessageName): \(error)")
    }
    let encoded = message.serializedBytes()
    require(encoded.count == message.serializedSize, "\(M.protoMessageName): size differs from encoding")
    // A NaN float is not == to itself: such a message must then come back bit for bit.
    guard let again = try? M(serializedBytes: encoded), again == message || again.serializedBytes() == encoded else {
        fail("\(M.protoMessageName): encoding does not decode to the same message")
    }
    return encoded
}

private func unary<M: ProtoMessage>(_ type: M.Type) -> GRPCMethod {
    .unary { _, request in try roundTrip(type, request) }
}

private let router: GRPCRouter = {
    var router = GRPCRouter()
    router.register(Bpfman_V1_Bpfman.Method.load.path, unary(Bpfman_V1_LoadRequest.self))
    router.register(Bpfman_V1_Bpfman.Method.unload.path, unary(Bpfman_V1_UnloadRequest.self))
    router.register(Bpfman_V1_Bpfman.Method.attach.path, unary(Bpfman_V1_AttachRequest.self))
    router.register(Bpfman_V1_Bpfman.Method.detach.path, unary(Bpfman_V1_DetachRequest.self))
    router.register(Bpfman_V1_Bpfman.Method.list.path, unary(Bpfman_V1_ListRequest.self))
    router.register(Bpfman_V1_Bpfman.Method.pullBytecode.path, unary(Bpfman_V1_PullBytecodeRequest.self))
    router.register(Bpfman_V1_Bpfman.Method.get.path, unary(Bpfman_V1_GetRequest.self))
    router.register(Grpc_Health_V1_Health.Method.check.path, unary(Grpc_Health_V1_HealthCheckRequest.self))
    router.register(
        Grpc_Health_V1_Health.Method.watch.path,
        .serverStreaming { _, request, writer in
            let answer = try roundTrip(Grpc_Health_V1_HealthCheckRequest.self, request)
            try await writer.write(answer)
            try await writer.write(answer)
        }
    )
    router.register(
        Grpc_Reflection_V1_ServerReflection.Method.serverReflectionInfo.path,
        .bidiStreaming { _, requests, writer in
            for try await request in requests {
                try await writer.write(try roundTrip(Grpc_Reflection_V1_ServerReflectionRequest.self, request))
            }
        }
    )
    router.register(
        Grpc_Reflection_V1alpha_ServerReflection.Method.serverReflectionInfo.path,
        .bidiStreaming { _, requests, writer in
            for try await request in requests {
                try await writer.write(try roundTrip(Grpc_Reflection_V1alpha_ServerReflectionRequest.self, request))
            }
        }
    )
    router.register(Csi_V1_Node.Method.nodePublishVolume.path, unary(Csi_V1_NodePublishVolumeRequest.self))
    router.register(Csi_V1_Node.Method.nodeUnpublishVolume.path, unary(Csi_V1_NodeUnpublishVolumeRequest.self))
    router.register(Csi_V1_Node.Method.nodeGetCapabilities.path, unary(Csi_V1_NodeGetCapabilitiesRequest.self))
    router.register(Csi_V1_Identity.Method.getPluginInfo.path, unary(Csi_V1_GetPluginInfoRequest.self))
    router.register(
        "/fuzz.Collect/Count",
        .clientStreaming { _, requests in
            var count: UInt32 = 0
            for try await request in requests {
                _ = try roundTrip(Grpc_Health_V1_HealthCheckRequest.self, request)
                count += 1
            }
            return [0x08, UInt8(truncatingIfNeeded: count & 0x7f)]
        }
    )
    return router
}()

private let logger: Logger = {
    var logger = Logger(label: "fuzz-h2")
    logger.logLevel = .critical
    return logger
}()

/// Checks that `bytes` is a run of whole HTTP/2 frames; returns how many.
private func checkFrames(_ bytes: [UInt8], first: Bool) -> Int {
    var offset = 0
    var count = 0
    while offset < bytes.count {
        require(bytes.count - offset >= 9, "server output ends inside a frame header")
        let length = Int(bytes[offset]) << 16 | Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2])
        let type = bytes[offset + 3]
        if first && count == 0 { require(type == 4, "the server's first frame is not SETTINGS") }
        require(type <= 9, "server sent frame type \(type)")
        require(bytes.count - offset - 9 >= length, "server output ends inside a frame")
        offset += 9 + length
        count += 1
    }
    return count
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let flags = data[0]
    var input = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    if flags & 0x10 != 0 { input = preface + input }
    let step = readSizes[Int(flags & 0x0f)]

    let connection: GRPCMemoryConnection
    do { connection = try GRPCMemoryConnection(router: router, logger: logger) } catch {
        fail("cannot make a connection: \(error)")
    }
    var output = connection.takeOutput()
    require(!output.isEmpty, "the server sent nothing at start")
    _ = checkFrames(output, first: true)
    var offset = 0
    while offset < input.count {
        let end = min(input.count, offset + step)
        let alive = connection.receive(Array(input[offset..<end]))
        offset = end
        require(connection.openStreams <= 257, "\(connection.openStreams) streams tracked")
        let more = connection.takeOutput()
        _ = checkFrames(more, first: false)
        output += more
        if !alive { break }
    }
    connection.pump()
    output += connection.takeOutput()
    require(
        output.count <= 4096 + 32 * input.count,
        "\(output.count) bytes out for \(input.count) in"
    )
    connection.close()
    require(connection.isClosed)
    require(connection.openStreams == 0, "streams left after close")
    require(connection.callsInFlight == 0, "\(connection.callsInFlight) calls in flight after close")
    require(connection.loopConnections == 0, "the loop still holds the connection")
    return 0
}
