internal import BpfmanImages
internal import BpfmanSigstore
internal import FoundationEssentials

/// A TUF client (The Update Framework specification 1.0, "Detailed client workflow") for one target, Sigstore's
/// `trusted_root.json` (SPEC §8.5), run in the fetcher: the metadata and the target are untrusted bytes from the
/// network. It starts from the root the daemon trusts (its cached copy, else the initial root) and
/// - follows the root chain: version N+1 must be signed by a threshold of version N's root keys and of its own,
///   and carry version N+1; the final root must not have expired;
/// - verifies timestamp → snapshot → targets, each signed by a threshold of its role's keys in the root, of the
///   version and (when given) the length and hashes its parent names, not expired, and never older than the
///   copy the daemon trusts (rollback);
/// - downloads the target (consistent snapshots: `targets/<sha256>.trusted_root.json`) and checks its length
///   and SHA-256 against the targets metadata.
/// Delegated targets are not searched: Sigstore lists `trusted_root.json` in the top-level targets.
struct TUFClient {
    /// Reads `path` under the repository: the bytes, or nil when the repository has no such file (404/403). A
    /// repository that cannot be reached (network, other HTTP statuses) throws a `.transfer` failure.
    typealias Download = (_ path: String, _ limit: Int) throws(PullFailure) -> [UInt8]?

    /// Caps on what is read: Sigstore's metadata files are a few KiB, its trust root about 10 KiB.
    static let metadataLimit = 512 << 10
    static let targetLimit = 1 << 20
    /// Root versions followed in one update.
    static let maxRootRotations = 64
    static let targetName = "trusted_root.json"

    var request: TUFRequest
    var now: Int64
    var download: Download

    func failed(_ reason: String) -> PullFailure {
        PullFailure(kind: .trustRootUnavailable, reason: "TUF repository \(request.repository): \(reason)")
    }

    /// Runs the update and returns what was verified. When the repository cannot be reached, the cached
    /// metadata and target are used while the cached root, timestamp, snapshot and targets have not expired (TUF's
    /// freshness window: Sigstore's timestamp lives a week), so an outage of the repository does not stop signed
    /// pulls; a repository that answers with bad metadata is never bypassed this way.
    func update() throws(PullFailure) -> TUFUpdate {
        do { try loadLibcrypto() } catch { throw failed(error.message) }
        do { return try refresh() } catch {
            guard case .transfer = error.kind else { throw error }
            if let cached = cachedUpdate(unreachable: error.reason) { return cached }
            throw failed(error.reason)
        }
    }

    /// The cached metadata and target, if all of it is still fresh and consistent.
    private func cachedUpdate(unreachable reason: String) -> TUFUpdate? {
        guard let timestampBytes = request.timestamp, let snapshotBytes = request.snapshot,
            let targetsBytes = request.targets, let target = request.trustedRoot,
            let root = try? Metadata(request.root, role: "root", what: "root", failed),
            let timestamp = try? Metadata(timestampBytes, role: "timestamp", what: "timestamp", failed),
            let snapshot = try? Metadata(snapshotBytes, role: "snapshot", what: "snapshot", failed),
            let targets = try? Metadata(targetsBytes, role: "targets", what: "targets", failed),
            [root.expires, timestamp.expires, snapshot.expires, targets.expires].allSatisfy({ $0 > now }),
            let entry = targets.signed.object("targets")[Self.targetName],
            let file = try? FileMeta(entry, of: Self.targetName, failed),
            file.length == target.count, file.sha256 == hex(sha256(target))
        else { return nil }
        return TUFUpdate(
            root: request.root,
            timestamp: timestampBytes,
            snapshot: snapshotBytes,
            targets: targetsBytes,
            trustedRoot: target,
            unreachable: reason
        )
    }

    private func refresh() throws(PullFailure) -> TUFUpdate {
        // The root the daemon trusts was verified when it was cached, or is the initial root given out of band.
        var rootBytes = request.root
        var root = try Metadata(rootBytes, role: "root", what: "the trusted root", failed)
        var rootRoles = try RootRoles(root, failed)
        let firstRoles = rootRoles
        for _ in 0..<Self.maxRootRotations {
            let next = root.version + 1
            guard let bytes = try download("\(next).root.json", Self.metadataLimit) else { break }
            let candidate = try Metadata(bytes, role: "root", what: "\(next).root.json", failed)
            try rootRoles.check(
                candidate,
                role: "root",
                what: "\(next).root.json (by the keys of root \(root.version))",
                failed
            )
            let candidateRoles = try RootRoles(candidate, failed)
            try candidateRoles.check(candidate, role: "root", what: "\(next).root.json (by its own keys)", failed)
            guard candidate.version == next else {
                throw failed("\(next).root.json has version \(candidate.version)")
            }
            (root, rootRoles, rootBytes) = (candidate, candidateRoles, bytes)
        }
        guard root.expires > now else { throw failed("root version \(root.version) expired (freeze attack?)") }
        // Cached metadata signed by keys the new root no longer lists is dropped, not compared against.
        func cached(_ bytes: [UInt8]?, _ role: String) -> Metadata? {
            guard let bytes, rootRoles.roles[role] == firstRoles.roles[role] else { return nil }
            return try? Metadata(bytes, role: role, what: role, failed)
        }
        let oldTimestamp = cached(request.timestamp, "timestamp")
        let oldSnapshot = cached(request.snapshot, "snapshot")
        let oldTargets = cached(request.targets, "targets")

        // Timestamp.
        guard let timestampBytes = try download("timestamp.json", Self.metadataLimit) else {
            throw failed("timestamp.json not found")
        }
        let timestamp = try Metadata(timestampBytes, role: "timestamp", what: "timestamp.json", failed)
        try rootRoles.check(timestamp, role: "timestamp", what: "timestamp.json", failed)
        let snapshotMeta = try timestamp.meta("snapshot.json", failed)
        if let oldTimestamp {
            guard timestamp.version >= oldTimestamp.version else {
                throw failed("rollback: timestamp version \(timestamp.version) < \(oldTimestamp.version)")
            }
            if let old = try? oldTimestamp.meta("snapshot.json", failed), snapshotMeta.version < old.version {
                throw failed("rollback: snapshot version \(snapshotMeta.version) < \(old.version)")
            }
        }
        guard timestamp.expires > now else { throw failed("timestamp.json expired") }

        // Snapshot.
        let consistent = root.consistentSnapshot
        let snapshotPath = consistent ? "\(snapshotMeta.version).snapshot.json" : "snapshot.json"
        let snapshotBytes = try fetch(snapshotPath, meta: snapshotMeta, limit: Self.metadataLimit)
        let snapshot = try Metadata(snapshotBytes, role: "snapshot", what: snapshotPath, failed)
        try rootRoles.check(snapshot, role: "snapshot", what: snapshotPath, failed)
        guard snapshot.version == snapshotMeta.version else {
            throw failed(
                "\(snapshotPath) has version \(snapshot.version), timestamp.json names \(snapshotMeta.version)"
            )
        }
        if let oldSnapshot, oldSnapshot.version > snapshot.version {
            throw failed("rollback: snapshot version \(snapshot.version) < \(oldSnapshot.version)")
        }
        if let oldSnapshot {
            for (name, old) in oldSnapshot.signed.object("meta") {
                guard let new = try? snapshot.meta(name, failed) else {
                    throw failed("rollback: \(snapshotPath) no longer lists \(name)")
                }
                if let oldVersion = old.integer("version"), new.version < oldVersion {
                    throw failed("rollback: \(name) version \(new.version) < \(oldVersion)")
                }
            }
        }
        guard snapshot.expires > now else { throw failed("\(snapshotPath) expired") }

        // Targets.
        let targetsMeta = try snapshot.meta("targets.json", failed)
        let targetsPath = consistent ? "\(targetsMeta.version).targets.json" : "targets.json"
        let targetsBytes = try fetch(targetsPath, meta: targetsMeta, limit: Self.metadataLimit)
        let targets = try Metadata(targetsBytes, role: "targets", what: targetsPath, failed)
        try rootRoles.check(targets, role: "targets", what: targetsPath, failed)
        guard targets.version == targetsMeta.version else {
            throw failed("\(targetsPath) has version \(targets.version), the snapshot names \(targetsMeta.version)")
        }
        if let oldTargets, oldTargets.version > targets.version {
            throw failed("rollback: targets version \(targets.version) < \(oldTargets.version)")
        }
        guard targets.expires > now else { throw failed("\(targetsPath) expired") }

        // The target.
        guard let entry = targets.signed.object("targets")[Self.targetName] else {
            throw failed("\(targetsPath) lists no \(Self.targetName)")
        }
        let file = try FileMeta(entry, of: Self.targetName, failed)
        guard let length = file.length, length <= Self.targetLimit, let digest = file.sha256 else {
            throw failed("\(Self.targetName) needs a length of at most \(Self.targetLimit) bytes and a sha256 hash")
        }
        let targetPath = "targets/" + (consistent ? digest + "." : "") + Self.targetName
        // The cached target is kept while the targets metadata lists it unchanged.
        let target: [UInt8]
        if let cached = request.trustedRoot, cached.count == length, hex(sha256(cached)) == digest {
            target = cached
        } else {
            target = try fetch(targetPath, meta: file, limit: length)
        }
        return TUFUpdate(
            root: rootBytes,
            timestamp: timestampBytes,
            snapshot: snapshotBytes,
            targets: targetsBytes,
            trustedRoot: target
        )
    }

    /// Downloads `path` and checks it against the length and hashes its parent gives.
    private func fetch(_ path: String, meta: FileMeta, limit: Int) throws(PullFailure) -> [UInt8] {
        guard let bytes = try download(path, min(limit, meta.length ?? limit)) else {
            throw failed("\(path) not found")
        }
        if let length = meta.length, bytes.count != length {
            throw failed("\(path) is \(bytes.count) bytes, its metadata says \(length)")
        }
        if let digest = meta.sha256, hex(sha256(bytes)) != digest {
            throw failed("\(path) does not match its sha256 hash in the metadata")
        }
        return bytes
    }
}

/// A JSON value, kept whole so the `signed` part can be written in canonical JSON (what TUF signs): keys sorted,
/// no whitespace, only `"` and `\` escaped in strings, integers only.
indirect enum JSONValue: Decodable, Equatable {
    case object([String: JSONValue])
    case array([JSONValue])
    case string(String)
    case integer(Int64)
    case bool(Bool)
    case null

    init(from decoder: any Decoder) throws {
        // JSON's types do not overlap, so the order only decides how many failed attempts (each a thrown error
        // with its coding path) a value costs: metadata is mostly strings and objects, so those come first.
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([String: JSONValue].self) {
            self = .object(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else {
            self = .bool(try container.decode(Bool.self))
        }
    }

    func object(_ key: String) -> [String: JSONValue] {
        if case .object(let fields) = self, case .object(let value)? = fields[key] { return value }
        return [:]
    }

    func string(_ key: String) -> String? {
        if case .object(let fields) = self, case .string(let value)? = fields[key] { return value }
        return nil
    }

    func integer(_ key: String) -> Int64? {
        if case .object(let fields) = self, case .integer(let value)? = fields[key] { return value }
        return nil
    }

    var canonical: [UInt8] {
        var out: [UInt8] = []
        write(into: &out)
        return out
    }

    private func write(into out: inout [UInt8]) {
        func quoted(_ text: String) {
            out.append(0x22)
            for byte in text.utf8 {
                if byte == 0x22 || byte == 0x5c { out.append(0x5c) }
                out.append(byte)
            }
            out.append(0x22)
        }
        switch self {
        case .null: out += Array("null".utf8)
        case .bool(let value): out += Array((value ? "true" : "false").utf8)
        case .integer(let value): out += Array(String(value).utf8)
        case .string(let value): quoted(value)
        case .array(let values):
            out.append(0x5b)
            for (index, value) in values.enumerated() {
                if index > 0 { out.append(0x2c) }
                value.write(into: &out)
            }
            out.append(0x5d)
        case .object(let fields):
            out.append(0x7b)
            // Keys in code point order; UTF-8's byte order is that order, without decoding a scalar.
            let sorted = fields.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
            for (index, (key, value)) in sorted.enumerated() {
                if index > 0 { out.append(0x2c) }
                quoted(key)
                out.append(0x3a)
                value.write(into: &out)
            }
            out.append(0x7d)
        }
    }
}

/// One metadata file: `{"signed": {...}, "signatures": [{"keyid", "sig"}]}`.
struct Metadata {
    var signed: JSONValue
    var signatures: [(keyID: String, signature: [UInt8])]
    var version: Int64
    var expires: Int64

    var consistentSnapshot: Bool {
        if case .object(let fields) = signed, case .bool(true)? = fields["consistent_snapshot"] { return true }
        return false
    }

    init(
        _ bytes: [UInt8],
        role: String,
        what: String,
        _ failed: (String) -> PullFailure
    ) throws(PullFailure) {
        guard let document = try? JSONDecoder().decode(JSONValue.self, from: Data(bytes)),
            case .object(let fields) = document, let signed = fields["signed"], case .object = signed,
            case .array(let signatures)? = fields["signatures"]
        else { throw failed("\(what) is not TUF metadata") }
        guard signed.string("_type") == role else {
            throw failed("\(what) has type \(signed.string("_type") ?? "none"), not \(role)")
        }
        guard let spec = signed.string("spec_version"), spec.split(separator: ".").first == "1" else {
            throw failed("\(what) has an unsupported spec_version")
        }
        guard let version = signed.integer("version"), version > 0 else { throw failed("\(what) has no version") }
        guard let text = signed.string("expires"), let expires = rfc3339Seconds(text) else {
            throw failed("\(what) has no valid expiry")
        }
        self.signed = signed
        self.version = version
        self.expires = expires
        self.signatures = signatures.compactMap { entry in
            guard let keyID = entry.string("keyid"), let sig = entry.string("sig"), let bytes = hexDecoded(sig) else {
                return nil
            }
            return (keyID, bytes)
        }
    }

    /// The entry for `name` in `meta` (timestamp → snapshot, snapshot → targets).
    func meta(_ name: String, _ failed: (String) -> PullFailure) throws(PullFailure) -> FileMeta {
        guard let entry = signed.object("meta")[name] else { throw failed("metadata lists no \(name)") }
        let meta = try FileMeta(entry, of: name, failed)
        guard meta.version > 0 else { throw failed("metadata gives \(name) no version") }
        return meta
    }
}

/// What a parent says of a file: version (metadata), length and SHA-256 (when given).
struct FileMeta {
    var version: Int64
    var length: Int?
    var sha256: String?

    init(_ entry: JSONValue, of name: String, _ failed: (String) -> PullFailure) throws(PullFailure) {
        version = entry.integer("version") ?? 0
        if let length = entry.integer("length") {
            guard length >= 0, length <= Int64(Int32.max) else { throw failed("\(name) has an invalid length") }
            self.length = Int(length)
        }
        sha256 =
            entry.object("hashes").isEmpty
            ? nil
            : entry.object("hashes")["sha256"].flatMap {
                if case .string(let hex) = $0 { hex.lowercased() } else { nil }
            }
        if !entry.object("hashes").isEmpty && sha256 == nil {
            throw failed("\(name) has no sha256 hash (the only one this client checks)")
        }
    }
}

/// A root's keys and roles: who may sign what, and how many must.
struct RootRoles: Equatable {
    struct Role: Equatable {
        var keyIDs: Set<String>
        var threshold: Int
    }

    var keys: [String: [UInt8]]
    var roles: [String: Role]

    init(_ root: Metadata, _ failed: (String) -> PullFailure) throws(PullFailure) {
        keys = [:]
        for (id, key) in root.signed.object("keys") {
            // Keys of a type this client cannot use are kept out; they count for no signature.
            if let der = Self.subjectPublicKeyInfo(key) { keys[id] = der }
        }
        roles = [:]
        for name in ["root", "timestamp", "snapshot", "targets"] {
            guard case .object(let fields)? = root.signed.object("roles")[name],
                case .array(let ids)? = fields["keyids"], case .integer(let threshold)? = fields["threshold"],
                threshold >= 1
            else { throw failed("root version \(root.version) has no valid \(name) role") }
            roles[name] = Role(
                keyIDs: Set(ids.compactMap { if case .string(let id) = $0 { id } else { nil } }),
                threshold: Int(threshold)
            )
        }
    }

    /// The DER SubjectPublicKeyInfo of an ed25519 key (hex of the 32 raw bytes) or an ECDSA key (PEM).
    static func subjectPublicKeyInfo(_ key: JSONValue) -> [UInt8]? {
        guard let type = key.string("keytype"), let value = key.object("keyval")["public"],
            case .string(let text) = value
        else { return nil }
        switch type {
        case "ed25519":
            guard key.string("scheme") == "ed25519", let raw = hexDecoded(text), raw.count == 32 else { return nil }
            return [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00] + raw
        case "ecdsa", "ecdsa-sha2-nistp256":
            guard key.string("scheme") == "ecdsa-sha2-nistp256" else { return nil }
            let body = text.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
            return base64Decoded(body)
        default: return nil
        }
    }

    /// Checks that a threshold of distinct keys of `role` signed `metadata`'s canonical `signed`.
    func check(
        _ metadata: Metadata,
        role: String,
        what: String,
        _ failed: (String) -> PullFailure
    ) throws(PullFailure) {
        guard let role = roles[role] else { throw failed("\(what): no \(role) role") }
        let message = metadata.signed.canonical
        // Distinct keys count, not key ids: one key listed under two ids signs once.
        var good = Set<[UInt8]>()
        for (keyID, signature) in metadata.signatures where role.keyIDs.contains(keyID) {
            guard let der = keys[keyID], !good.contains(der), let key = try? PublicKey(subjectPublicKeyInfo: der)
            else { continue }
            if key.verify(signature: signature, message: message) { good.insert(der) }
        }
        guard good.count >= role.threshold else {
            throw failed("\(what): \(good.count) valid signature(s), the threshold is \(role.threshold)")
        }
    }
}
