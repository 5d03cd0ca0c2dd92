internal import BpfmanImages
internal import Glibc

/// A manifest or index as fetched, with the sha256 of its exact bytes.
struct FetchedDocument {
    var bytes: [UInt8]
    var contentType: String?
    var digest: String
}

/// Where an image's documents and blobs come from: a registry over HTTP(S), or an OCI layout on disk. Every
/// method checks what it returns against the digest it was asked for.
protocol ImageSource {
    /// The manifest or index the reference names.
    mutating func rootManifest(limits: ImageLimits) throws(PullFailure) -> FetchedDocument
    /// A manifest named by an index.
    mutating func manifest(_ descriptor: Descriptor, limits: ImageLimits) throws(PullFailure) -> FetchedDocument
    /// A blob into memory, at most `limit` bytes.
    mutating func blob(_ descriptor: Descriptor, limit: Int) throws(PullFailure) -> [UInt8]
    /// A blob into the file `fd`, at most `limit` bytes.
    mutating func blob(_ descriptor: Descriptor, into fd: CInt, limit: Int) throws(PullFailure)
    /// The manifest or index tagged `tag` in the same repository, or nil when there is none (cosign's signature
    /// tags, SPEC §8.5).
    mutating func taggedManifest(_ tag: String, limits: ImageLimits) throws(PullFailure) -> FetchedDocument?
    /// The OCI 1.1 referrers index of `digest`, or nil when the source has no referrers API.
    mutating func referrers(of digest: String, limits: ImageLimits) throws(PullFailure) -> FetchedDocument?
}

/// Checks a descriptor's size against a cap before anything is transferred (SPEC §8.1).
func checkSize(_ descriptor: Descriptor, limit: Int, what: String) throws(PullFailure) {
    guard descriptor.size <= limit else {
        throw .transfer("\(what) \(descriptor.digest) is \(descriptor.size) bytes, over the cap of \(limit) bytes")
    }
}

/// Checks that what arrived is what the descriptor promised.
func checkContent(_ descriptor: Descriptor, length: Int, digest: String, what: String) throws(PullFailure) {
    guard length == descriptor.size, digest == descriptor.digest else {
        var failure = PullFailure.transfer(
            "\(what) \(descriptor.digest) does not match its descriptor: got \(length) bytes with digest \(digest), "
                + "expected \(descriptor.size) bytes"
        )
        failure.isContentMismatch = true
        throw failure
    }
}

/// The OCI distribution API v2 of one repository (SPEC §8.2): HTTPS, or plain HTTP for a loopback registry
/// that does not speak TLS; Basic and Bearer challenges answered with the pull's credentials.
struct RegistrySource: ImageSource {
    let reference: RegistryReference
    let credentials: RegistryCredentials?
    let tokens: TokenCache
    let session: HTTPSession
    /// `https`, until a loopback registry turns out to speak plain HTTP.
    private var scheme: String
    /// Whether this registry was spoken to over plain HTTP.
    var usesPlainHTTP: Bool { scheme == "http" }
    /// The `Authorization` header that the registry accepted (or that is tried first).
    private var authorization: String?
    /// Whether `authorization` carries the user's credentials (then a 401/403 means they were refused).
    private var sentCredentials = false

    /// - Parameter plainHTTP: a loopback registry already known to speak plain HTTP (no TLS attempt first).
    init(
        reference: RegistryReference,
        credentials: RegistryCredentials?,
        tokens: TokenCache,
        session: HTTPSession,
        plainHTTP: Bool = false
    ) {
        self.scheme = plainHTTP && reference.isLoopback ? "http" : "https"
        self.reference = reference
        self.credentials = credentials
        self.tokens = tokens
        self.session = session
        let scope = "repository:\(reference.repository):pull"
        if let token = tokens.token(registry: reference.host, scope: scope, credentials: credentials) {
            authorization = "Bearer " + token
            sentCredentials = credentials != nil
        }
    }

    mutating func rootManifest(limits: ImageLimits) throws(PullFailure) -> FetchedDocument {
        let response = try send(
            "manifests/\(reference.manifestReference)",
            accept: MediaType.acceptManifests,
            sink: .memory,
            limit: limits.document
        )
        if response.status == 404 { throw PullFailure(kind: .manifestNotFound, reason: "HTTP 404") }
        try expectSuccess(response, what: "manifest \(reference.manifestReference)")
        if let digest = reference.digest, digest != response.digest {
            throw .transfer("the manifest's digest is \(response.digest), not \(digest)")
        }
        return FetchedDocument(
            bytes: response.body,
            contentType: response.header("content-type"),
            digest: response.digest
        )
    }

    mutating func manifest(_ descriptor: Descriptor, limits: ImageLimits) throws(PullFailure) -> FetchedDocument {
        try checkSize(descriptor, limit: limits.document, what: "manifest")
        let response = try send(
            "manifests/\(descriptor.digest)",
            accept: MediaType.acceptManifests,
            sink: .memory,
            limit: descriptor.size
        )
        try expectSuccess(response, what: "manifest \(descriptor.digest)")
        try checkContent(descriptor, length: response.length, digest: response.digest, what: "manifest")
        return FetchedDocument(
            bytes: response.body,
            contentType: response.header("content-type"),
            digest: response.digest
        )
    }

    mutating func blob(_ descriptor: Descriptor, limit: Int) throws(PullFailure) -> [UInt8] {
        try checkSize(descriptor, limit: limit, what: "blob")
        let response = try send("blobs/\(descriptor.digest)", accept: [], sink: .memory, limit: descriptor.size)
        try expectSuccess(response, what: "blob \(descriptor.digest)")
        try checkContent(descriptor, length: response.length, digest: response.digest, what: "blob")
        return response.body
    }

    mutating func blob(_ descriptor: Descriptor, into fd: CInt, limit: Int) throws(PullFailure) {
        try checkSize(descriptor, limit: limit, what: "layer")
        let response = try send("blobs/\(descriptor.digest)", accept: [], sink: .file(fd), limit: descriptor.size)
        try expectSuccess(response, what: "layer \(descriptor.digest)")
        try checkContent(descriptor, length: response.length, digest: response.digest, what: "layer")
    }

    mutating func taggedManifest(_ tag: String, limits: ImageLimits) throws(PullFailure) -> FetchedDocument? {
        let response = try send(
            "manifests/\(tag)",
            accept: MediaType.acceptManifests,
            sink: .memory,
            limit: limits.document
        )
        if response.status == 404 { return nil }
        try expectSuccess(response, what: "manifest \(tag)")
        return FetchedDocument(
            bytes: response.body,
            contentType: response.header("content-type"),
            digest: response.digest
        )
    }

    mutating func referrers(of digest: String, limits: ImageLimits) throws(PullFailure) -> FetchedDocument? {
        // A registry without the API answers 404 (distribution 2.8), 400, 405 or 501, and some refuse the unknown
        // route outright (401 or 403 although the manifest was readable); then the tag schema applies.
        guard
            let response = try? send(
                "referrers/\(digest)",
                accept: [MediaType.ociIndex],
                sink: .memory,
                limit: limits.document
            ),
            (200..<300).contains(response.status)
        else { return nil }
        return FetchedDocument(
            bytes: response.body,
            contentType: response.header("content-type"),
            digest: response.digest
        )
    }

    /// One GET of `/v2/<repository>/<path>`, answering at most one authentication challenge.
    private mutating func send(
        _ path: String,
        accept: [String],
        sink: BodySink,
        limit: Int
    ) throws(PullFailure) -> HTTPResponse {
        var answeredChallenge = false
        while true {
            var headers = accept.isEmpty ? [] : ["Accept: " + accept.joined(separator: ", ")]
            if let authorization { headers.append("Authorization: " + authorization) }
            let response = try get("/v2/\(reference.repository)/\(path)", headers: headers, sink: sink, limit: limit)
            guard response.status == 401 || response.status == 403 else { return response }
            if response.status == 401, !answeredChallenge, let current = authorization, current.hasPrefix("Bearer ") {
                // A token from the cache or from an earlier request of this pull that the registry no longer
                // takes (its token service restarted, or the token ended before its expires_in): forget it and
                // answer the challenge afresh, once. Only a refusal of a fresh token says the credentials are bad.
                tokens.remove(String(current.dropFirst(7)))
                authorization = nil
                sentCredentials = false
            }
            if sentCredentials { throw PullFailure(kind: .credentialsRefused(host: reference.registry), reason: "") }
            guard response.status == 401, !answeredChallenge,
                let challenge = response.header("www-authenticate").flatMap(AuthChallenge.init(header:))
            else {
                throw .transfer(
                    "registry \(reference.registry) answered HTTP \(response.status)"
                        + (credentials == nil ? " and no credentials were given" : "")
                        + registryMessage(response.body)
                )
            }
            answeredChallenge = true
            if challenge.scheme == "basic" {
                guard let credentials else {
                    throw .transfer("registry \(reference.registry) requires credentials and none were given")
                }
                authorization = credentials.basicAuthorization
                sentCredentials = true
            } else {
                authorization = "Bearer " + (try bearerToken(challenge))
                sentCredentials = credentials != nil
            }
        }
    }

    /// A token from the challenge's realm (SPEC §8.2), from the cache while it lives.
    private func bearerToken(_ challenge: AuthChallenge) throws(PullFailure) -> String {
        guard let realm = challenge.parameters["realm"], realm.hasPrefix("https://") || realm.hasPrefix("http://")
        else { throw .transfer("registry \(reference.registry) sent a Bearer challenge without an http(s) realm") }
        let scope = challenge.parameters["scope"] ?? "repository:\(reference.repository):pull"
        if let token = tokens.token(registry: reference.host, scope: scope, credentials: credentials) { return token }
        var query = ["scope=" + percentEncoded(scope)]
        if let service = challenge.parameters["service"] { query.insert("service=" + percentEncoded(service), at: 0) }
        var headers: [String] = []
        if let credentials {
            // Credentials travel to a token service over TLS only, unless it is on this machine.
            guard realm.hasPrefix("https://") || isLoopbackURL(realm) else {
                throw .transfer("refusing to send credentials to the token service \(realm) over plain HTTP")
            }
            headers.append("Authorization: " + credentials.basicAuthorization)
        }
        let separator = realm.contains("?") ? "&" : "?"
        let response = try session.get(
            realm + separator + query.joined(separator: "&"),
            headers: headers,
            sink: .memory,
            limit: 1 << 20,
            allowPlainRedirects: realm.hasPrefix("http://")
        )
        if (response.status == 401 || response.status == 403) && credentials != nil {
            throw PullFailure(kind: .credentialsRefused(host: reference.registry), reason: "")
        }
        guard response.status == 200 else {
            throw .transfer(
                "the token service \(realm) answered HTTP \(response.status)\(registryMessage(response.body))"
            )
        }
        guard let answer = TokenAnswer(response.body), !answer.token.isEmpty else {
            throw .transfer("the token service \(realm) sent no token")
        }
        // The distribution spec's minimum lifetime is 60 s; a token is reused until 5 s before it ends.
        let lifetime = max(answer.expiresIn ?? 60, 60)
        tokens.store(
            answer.token,
            lifetime: .seconds(lifetime - 5),
            registry: reference.host,
            scope: scope,
            credentials: credentials
        )
        return answer.token
    }

    /// A GET on this registry; a loopback registry that does not answer TLS is asked again over plain HTTP.
    private mutating func get(
        _ path: String,
        headers: [String],
        sink: BodySink,
        limit: Int
    ) throws(PullFailure) -> HTTPResponse {
        do {
            return try session.get(
                "\(scheme)://\(reference.host)\(path)",
                headers: headers,
                sink: sink,
                limit: limit,
                allowPlainRedirects: scheme == "http"
            )
        } catch  where scheme == "https" && reference.isLoopback && error.curlCode == 35 {
            scheme = "http"
            return try get(path, headers: headers, sink: sink, limit: limit)
        }
    }

    private func expectSuccess(_ response: HTTPResponse, what: String) throws(PullFailure) {
        guard (200..<300).contains(response.status) else {
            throw .transfer(
                "registry \(reference.registry) answered HTTP \(response.status) for \(what)\(registryMessage(response.body))"
            )
        }
    }
}

/// The answer of a token service: `token` or `access_token`, and `expires_in` seconds.
private struct TokenAnswer {
    var token: String
    var expiresIn: Int?

    init?(_ bytes: [UInt8]) {
        struct Fields: Decodable {
            var token: String?
            var access_token: String?
            var expires_in: Int?
        }
        guard let fields = try? decodeJSON(Fields.self, bytes), let token = fields.token ?? fields.access_token else {
            return nil
        }
        self.token = token
        expiresIn = fields.expires_in
    }
}

/// `: <message>` from a registry's JSON error document (`{"errors":[{"code","message"}]}`), or nothing.
func registryMessage(_ body: [UInt8]) -> String {
    struct Errors: Decodable {
        struct Entry: Decodable {
            var code: String?
            var message: String?
        }
        var errors: [Entry]?
    }
    guard let first = (try? decodeJSON(Errors.self, body))?.errors?.first else { return "" }
    let text = [first.code, first.message].compactMap { $0 }.joined(separator: " ")
    return text.isEmpty ? "" : ": " + String(text.prefix(200))
}

/// RFC 3986 percent-encoding of everything but unreserved characters.
func percentEncoded(_ text: String) -> String {
    var out = ""
    for byte in text.utf8 {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            out.append(Character(Unicode.Scalar(byte)))
        default:
            out += "%" + hex([byte]).uppercased()
        }
    }
    return out
}

/// Whether an http(s) URL's host is a loopback address.
func isLoopbackURL(_ url: String) -> Bool {
    let rest: Substring
    if url.hasPrefix("https://") {
        rest = url.dropFirst(8)
    } else if url.hasPrefix("http://") {
        rest = url.dropFirst(7)
    } else {
        return false
    }
    let authority = rest.prefix { $0 != "/" && $0 != "?" }
    let host = authority.split(separator: "@").last.map(String.init) ?? ""
    return RegistryReference(loopbackProbe: host).isLoopback
}
