internal import BpfmanImages
internal import CCurl
internal import Glibc
internal import Synchronization
internal import SystemCalls

/// Set when every caller waiting for a pull has gone; the transfer in progress then stops at its next
/// progress report.
final class CancellationFlag: Sendable {
    private let value = Atomic(false)
    func cancel() { value.store(true, ordering: .relaxed) }
    var isCancelled: Bool { value.load(ordering: .relaxed) }
}

/// Where a response body goes, and how much of it may come (SPEC §8.1's caps).
enum BodySink {
    /// Kept in memory: manifests, configs, tokens.
    case memory
    /// Written to this file descriptor: layers.
    case file(CInt)
}

/// One HTTP response after libcurl followed any redirects.
struct HTTPResponse {
    var status: Int
    /// Header names in lower case; the last response's headers only.
    var headers: [(name: String, value: String)]
    /// The body when the sink was `.memory` and the status 2xx; up to 4 KiB of it for other statuses.
    var body: [UInt8]
    /// Bytes of the body received, and their sha256 (2xx only).
    var length: Int
    var digest: String

    func header(_ name: String) -> String? { headers.last { $0.name == name }?.value }
}

/// A libcurl easy handle that makes the requests of one pull, reusing its connections (HTTP/2 where the
/// server offers it over TLS, HTTP/1.1 otherwise). Used by one thread at a time; blocking.
final class HTTPSession {
    /// libcurl, opened on the first request of the process (CCurl): the table of its functions, or why not.
    nonisolated(unsafe) private static let library: Result<UnsafePointer<ccurl_api>, PullFailure> = {
        var error: UnsafePointer<CChar>?
        guard let api = ccurl_load(&error) else {
            let reason = error.map { String(cString: $0) } ?? "unknown error"
            return .failure(.transfer("libcurl cannot be loaded: \(reason)"))
        }
        return .success(api)
    }()

    private let curl: UnsafePointer<ccurl_api>

    private let handle: UnsafeMutableRawPointer
    private let cancellation: CancellationFlag
    /// The PEM certificates libcurl verifies servers with (the daemon's `SSL_CERT_FILE`, as OpenSSL's own tools
    /// honour it), else the system bundle libcurl was built with.
    private var caBundle: [UInt8]?
    private let userAgent: String

    init(userAgent: String, caBundle: [UInt8]?, cancellation: CancellationFlag) throws(PullFailure) {
        let curl = try Self.library.get()
        guard let handle = curl.pointee.easy_init() else { throw .transfer("libcurl cannot make a transfer handle") }
        self.curl = curl
        self.handle = handle
        self.cancellation = cancellation
        self.caBundle = caBundle
        self.userAgent = userAgent
    }

    deinit { curl.pointee.easy_cleanup(handle) }

    /// GETs `url`.
    /// - Parameters:
    ///   - headers: extra request headers (`Accept`, `Authorization`).
    ///   - limit: a 2xx body longer than this fails the request without reading on.
    ///   - allowPlainRedirects: whether a redirect may lead to `http:` (only for a registry spoken to over HTTP).
    /// - Throws: `PullFailure.transfer` for network errors, the cap, or a cancelled pull; HTTP statuses are
    ///   returned, not thrown.
    func get(
        _ url: String,
        headers: [String],
        sink: BodySink,
        limit: Int,
        allowPlainRedirects: Bool
    ) throws(PullFailure) -> HTTPResponse {
        let hasher: SHA256Hasher
        do { hasher = try SHA256Hasher() } catch { throw .transfer(error.message) }
        let transfer = Transfer(
            curl: curl,
            handle: handle,
            sink: sink,
            limit: limit,
            cancellation: cancellation,
            hasher: hasher
        )
        let context = Unmanaged.passRetained(transfer)
        defer { context.release() }

        var list: UnsafeMutablePointer<curl_slist>?
        for header in headers { list = curl.pointee.slist_append(list, header) }
        defer { curl.pointee.slist_free_all(list) }

        curl.pointee.easy_reset(handle)
        ccurl_setopt_string(curl, handle, CURLOPT_URL, url)
        ccurl_setopt_list(curl, handle, CURLOPT_HTTPHEADER, list)
        ccurl_setopt_string(curl, handle, CURLOPT_USERAGENT, userAgent)
        ccurl_setopt_string(curl, handle, CURLOPT_PROTOCOLS_STR, "http,https")
        ccurl_setopt_string(curl, handle, CURLOPT_REDIR_PROTOCOLS_STR, allowPlainRedirects ? "http,https" : "https")
        ccurl_setopt_long(curl, handle, CURLOPT_FOLLOWLOCATION, 1)
        ccurl_setopt_long(curl, handle, CURLOPT_MAXREDIRS, 8)
        ccurl_setopt_long(curl, handle, CURLOPT_NOSIGNAL, 1)
        ccurl_setopt_long(curl, handle, CURLOPT_CONNECTTIMEOUT, 30)
        // A registry that stops sending for a minute is given up on (no whole-transfer timeout: layers are large).
        ccurl_setopt_long(curl, handle, CURLOPT_LOW_SPEED_LIMIT, 1)
        ccurl_setopt_long(curl, handle, CURLOPT_LOW_SPEED_TIME, 60)
        ccurl_setopt_long(curl, handle, CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_2TLS))
        ccurl_setopt_string(curl, handle, CURLOPT_ACCEPT_ENCODING, "")
        if caBundle != nil {
            caBundle!.withUnsafeMutableBytes { _ = ccurl_setopt_ca_blob(curl, handle, $0.baseAddress, $0.count) }
        }
        ccurl_setopt_pointer(curl, handle, CURLOPT_WRITEDATA, context.toOpaque())
        ccurl_setopt_data_callback(curl, handle, CURLOPT_WRITEFUNCTION) { data, size, count, context in
            let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
            return transfer.receive(UnsafeRawBufferPointer(start: data, count: size * count)) ? size * count : 0
        }
        ccurl_setopt_pointer(curl, handle, CURLOPT_HEADERDATA, context.toOpaque())
        ccurl_setopt_data_callback(curl, handle, CURLOPT_HEADERFUNCTION) { data, size, count, context in
            let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
            transfer.header(UnsafeRawBufferPointer(start: data, count: size * count))
            return size * count
        }
        ccurl_setopt_long(curl, handle, CURLOPT_NOPROGRESS, 0)
        ccurl_setopt_pointer(curl, handle, CURLOPT_XFERINFODATA, context.toOpaque())
        ccurl_setopt_progress_callback(curl, handle) { context, _, _, _, _ in
            Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue().cancellation.isCancelled ? 1 : 0
        }
        var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        let code = errorBuffer.withUnsafeMutableBufferPointer { buffer in
            ccurl_setopt_pointer(curl, handle, CURLOPT_ERRORBUFFER, buffer.baseAddress)
            let code = curl.pointee.easy_perform(handle)
            ccurl_setopt_pointer(curl, handle, CURLOPT_ERRORBUFFER, nil)
            return code
        }
        if let problem = transfer.problem { throw .transfer(problem) }
        guard code == CURLE_OK else {
            if cancellation.isCancelled { throw .transfer("cancelled") }
            let detail = String(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let summary =
                curl.pointee.easy_strerror(code).map { String(cString: $0) } ?? "libcurl error \(code.rawValue)"
            throw PullFailure(
                kind: .transfer,
                reason: "\(detail.isEmpty ? summary : detail)",
                curlCode: Int(code.rawValue)
            )
        }
        var status = 0
        ccurl_getinfo_long(curl, handle, CURLINFO_RESPONSE_CODE, &status)
        return HTTPResponse(
            status: status,
            headers: transfer.headers,
            body: transfer.body,
            length: transfer.received,
            digest: transfer.finishDigest()
        )
    }
}

/// The state of one request, reached from libcurl's callbacks.
private final class Transfer {
    let curl: UnsafePointer<ccurl_api>
    let handle: UnsafeMutableRawPointer
    let sink: BodySink
    let limit: Int
    let cancellation: CancellationFlag
    var headers: [(name: String, value: String)] = []
    var body: [UInt8] = []
    var received = 0
    var hasher: SHA256Hasher?
    /// Why the transfer was stopped from a callback.
    var problem: String?

    init(
        curl: UnsafePointer<ccurl_api>,
        handle: UnsafeMutableRawPointer,
        sink: BodySink,
        limit: Int,
        cancellation: CancellationFlag,
        hasher: consuming SHA256Hasher
    ) {
        self.hasher = .some(hasher)
        self.curl = curl
        self.handle = handle
        self.sink = sink
        self.limit = limit
        self.cancellation = cancellation
    }

    /// One header line; a status line starts the headers of a new response (after a redirect or a 100).
    func header(_ line: UnsafeRawBufferPointer) {
        let text = trimmed(String(decoding: line, as: UTF8.self))
        if text.hasPrefix("HTTP/") {
            headers.removeAll()
            return
        }
        guard let colon = text.firstIndex(of: ":"), headers.count < 200 else { return }
        let name = text[..<colon].lowercased()
        let value = trimmed(String(text[text.index(after: colon)...]))
        headers.append((name, value))
    }

    /// Body bytes; false stops the transfer.
    func receive(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var status = 0
        ccurl_getinfo_long(curl, handle, CURLINFO_RESPONSE_CODE, &status)
        guard (200..<300).contains(status) else {
            // An error document: keep its start for the message, drop the rest.
            body.append(contentsOf: bytes.prefix(max(0, 4096 - body.count)))
            return true
        }
        received += bytes.count
        guard received <= limit else {
            problem = "the response is larger than \(limit) bytes"
            return false
        }
        hasher?.update(bytes)
        switch sink {
        case .memory:
            body.append(contentsOf: bytes)
        case .file(let fd):
            if case .failure(let error) = Syscalls.writeAll(fd, bytes) {
                problem = "cannot write the download: \(error.errno)"
                return false
            }
        }
        return true
    }

    func finishDigest() -> String {
        guard let hasher = hasher.take() else { return "" }
        return hasher.finish()
    }
}

/// `text` without leading and trailing spaces, tabs and line ends.
func trimmed(_ text: String) -> String {
    let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" }
    guard let first = text.firstIndex(where: { !isSpace($0) }), let last = text.lastIndex(where: { !isSpace($0) })
    else { return "" }
    return String(text[first...last])
}
