/// The request headers that decide whether a call reaches a handler, as they arrived.
struct GRPCRequestHead {
    var method: [UInt8] = []
    var path: [UInt8] = []
    var contentType: [UInt8]?
    var te: [UInt8]?
    var timeout: [UInt8]?
    var encoding: [UInt8]?

    /// What to do with a request whose headers are complete (STYLE.md convention 8: the caller does
    /// the I/O).
    enum OnHeadersComplete {
        /// Route to `method`; `timeout` is the client's deadline in nanoseconds from now, if any.
        case accept(GRPCMethod, path: String, timeout: UInt64?)
        /// Answer at once in the Trailers-Only form with this HTTP status and gRPC status.
        case reject(httpStatus: Int, GRPCStatus, acceptEncoding: Bool)
    }

    /// Longest deadline honoured (longer ones are clamped): ten years.
    static let maxTimeout: UInt64 = 10 * 365 * 24 * 3600 * 1_000_000_000

    /// Checks the headers in gRPC's order (method, content-type, te, encoding, path, timeout).
    func classify(router: GRPCRouter) -> OnHeadersComplete {
        guard method.elementsEqual(GRPCHeaderValue.post) else {
            return .reject(httpStatus: 405, GRPCStatus(.internal, "gRPC requires method POST"), acceptEncoding: false)
        }
        guard let contentType, Self.isGRPCContentType(contentType) else {
            let shown = contentType.map { String(decoding: $0, as: UTF8.self) } ?? ""
            return .reject(
                httpStatus: 415,
                GRPCStatus(.internal, "invalid gRPC request content-type \"\(shown)\""),
                acceptEncoding: false
            )
        }
        guard let te, te.elementsEqual(GRPCHeaderValue.trailers) else {
            return .reject(
                httpStatus: 400,
                GRPCStatus(.internal, "missing \"te: trailers\" header"),
                acceptEncoding: false
            )
        }
        if let encoding, !encoding.elementsEqual(GRPCHeaderValue.identity) {
            let name = String(decoding: encoding, as: UTF8.self)
            return .reject(
                httpStatus: 200,
                GRPCStatus(.unimplemented, "message encoding \"\(name)\" is not supported (identity only)"),
                acceptEncoding: true
            )
        }
        let pathString = String(decoding: path, as: UTF8.self)
        let found: GRPCMethod
        switch router.lookup(pathString) {
        case .found(let method): found = method
        case .unimplemented(let message):
            return .reject(httpStatus: 200, GRPCStatus(.unimplemented, message), acceptEncoding: false)
        }
        guard let timeout else { return .accept(found, path: pathString, timeout: nil) }
        guard let nanoseconds = GRPCFraming.parseTimeout(timeout) else {
            return .reject(
                httpStatus: 200,
                GRPCStatus(.internal, "malformed grpc-timeout header"),
                acceptEncoding: false
            )
        }
        return .accept(found, path: pathString, timeout: min(nanoseconds, Self.maxTimeout))
    }

    /// `application/grpc`, optionally followed by `+<subtype>` or `;<parameters>`.
    static func isGRPCContentType(_ value: [UInt8]) -> Bool {
        let prefix = GRPCHeaderValue.applicationGRPC
        guard value.count >= prefix.count, value.prefix(prefix.count).elementsEqual(prefix) else { return false }
        if value.count == prefix.count { return true }
        let next = value[prefix.count]
        return next == UInt8(ascii: "+") || next == UInt8(ascii: ";")
    }
}
