import Testing

@testable import H2Transport

/// The header checks, without sockets: which requests reach a handler and what the others get.
@Suite struct GRPCRequestHeadTests {
    static let router: GRPCRouter = {
        var router = GRPCRouter()
        router.register("/a.B/C", .unary { _, request in request })
        return router
    }()

    static func head(_ overrides: [String: String?]) -> GRPCRequestHead {
        var fields: [String: String?] = [
            "method": "POST", "path": "/a.B/C", "content-type": "application/grpc", "te": "trailers",
            "timeout": nil, "encoding": nil,
        ]
        for (key, value) in overrides { fields[key] = value }
        func bytes(_ key: String) -> [UInt8]? { fields[key]!.map { Array($0.utf8) } }
        return GRPCRequestHead(
            method: bytes("method") ?? [],
            path: bytes("path") ?? [],
            contentType: bytes("content-type"),
            te: bytes("te"),
            timeout: bytes("timeout"),
            encoding: bytes("encoding")
        )
    }

    @Test(
        arguments: [
            (["method": "GET"], 405, 13, "gRPC requires method POST", false),
            (
                ["content-type": "application/json"], 415, 13, #"invalid gRPC request content-type "application/json""#,
                false
            ),
            (["content-type": nil], 415, 13, #"invalid gRPC request content-type """#, false),
            (
                ["content-type": "application/grpcx"], 415, 13,
                #"invalid gRPC request content-type "application/grpcx""#, false
            ),
            (["te": nil], 400, 13, #"missing "te: trailers" header"#, false),
            (["te": "gzip"], 400, 13, #"missing "te: trailers" header"#, false),
            (["encoding": "gzip"], 200, 12, #"message encoding "gzip" is not supported (identity only)"#, true),
            (["path": "/a.B/D"], 200, 12, "unknown method D for service a.B", false),
            (["path": "/x.Y/C"], 200, 12, "unknown service x.Y", false),
            (["timeout": "soon"], 200, 13, "malformed grpc-timeout header", false),
        ] as [([String: String?], Int, Int, String, Bool)]
    )
    func rejected(_ overrides: [String: String?], _ http: Int, _ code: Int, _ message: String, _ acceptEncoding: Bool) {
        guard case .reject(let httpStatus, let status, let accept) = Self.head(overrides).classify(router: Self.router)
        else {
            Issue.record("accepted \(overrides)")
            return
        }
        #expect(httpStatus == http)
        #expect(status.code.rawValue == code)
        #expect(status.message == message)
        #expect(accept == acceptEncoding)
    }

    @Test(
        arguments: [
            (["content-type": "application/grpc+proto"], nil),
            (["content-type": "application/grpc;charset=utf-8"], nil),
            (["encoding": "identity"], nil),
            (["timeout": "250m"], UInt64(250_000_000)),
            (["timeout": "99999999H"], GRPCRequestHead.maxTimeout),
        ] as [([String: String?], UInt64?)]
    )
    func accepted(_ overrides: [String: String?], _ timeout: UInt64?) {
        guard case .accept(_, let path, let nanoseconds) = Self.head(overrides).classify(router: Self.router) else {
            Issue.record("rejected \(overrides)")
            return
        }
        #expect(path == "/a.B/C")
        #expect(nanoseconds == timeout)
    }
}
