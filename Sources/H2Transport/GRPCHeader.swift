/// Every wire name the transport reads or writes (STYLE.md convention 9).
enum GRPCHeader: String {
    case method = ":method"
    case path = ":path"
    case status = ":status"
    case scheme = ":scheme"
    case authority = ":authority"
    case contentType = "content-type"
    case te = "te"
    case grpcStatus = "grpc-status"
    case grpcMessage = "grpc-message"
    case grpcTimeout = "grpc-timeout"
    case grpcEncoding = "grpc-encoding"
    case grpcAcceptEncoding = "grpc-accept-encoding"
}

/// Values the transport compares against or sends.
enum GRPCHeaderValue {
    static let post: [UInt8] = Array("POST".utf8)
    static let trailers: [UInt8] = Array("trailers".utf8)
    static let applicationGRPC: [UInt8] = Array("application/grpc".utf8)
    static let identity: [UInt8] = Array("identity".utf8)
    /// The `:status` of every response but the early rejections (405, 415, 400).
    static let status200: [UInt8] = Array("200".utf8)
    /// The client's `:scheme` (a Unix socket, no TLS).
    static let http: [UInt8] = Array("http".utf8)
    /// The client's `:authority`: a Unix socket has no host name.
    static let localhost: [UInt8] = Array("localhost".utf8)
}

/// Request metadata: the non-pseudo headers of a call, in arrival order, names lower-case.
package struct GRPCMetadata: Sendable, Sequence {
    package var entries: [(name: String, value: String)] = []

    package init(_ entries: [(name: String, value: String)] = []) {
        self.entries = entries
    }

    /// The first value for `name` (lower-case), or `nil`.
    package subscript(name: String) -> String? {
        entries.first(where: { $0.name == name })?.value
    }

    package func makeIterator() -> IndexingIterator<[(name: String, value: String)]> {
        entries.makeIterator()
    }
}
