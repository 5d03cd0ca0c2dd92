internal import BpfmanImages
internal import BpfmanSigstore
// Image signatures and the trust material behind them (SPEC §8.5): the trust root (`trusted_root.json`), Sigstore
// bundles, cosign's legacy signatures (simple-signing payload plus layer annotations), the keyless verification of
// either against the trust root, and the TUF client that fetches the trust root (metadata, root rotation, the
// target). Everything here comes from a registry, a TUF mirror or a file an operator was handed.
//
// Input: one mode byte, then parts separated by NUL bytes (no JSON document holds a raw NUL):
//   mode 0: trust root                         parseTrustRoot(_:check:)
//   mode 1: trust root, bundle [, blob]        TrustRoot(json:), SignatureMaterial(bundle:message:), verify
//   mode 2: trust root, payload, annotations   the same with SignatureMaterial(legacyPayload:annotations:); the
//                                              annotations are a JSON object of strings
//   mode 3: initial root, timestamp, snapshot, targets, target, 2.root.json, 3.root.json, ...
//                                              TUFClient.update() against that repository in memory (bit 2 of the
//                                              mode byte: the repository is unreachable and the parts after the
//                                              root are the daemon's cached copies)
//
// What must hold: a refusal is the module's error (SigstoreError, or a PullFailure of kind trustRootUnavailable
// naming the trust root's path or the TUF repository), never a trap; parsing and verifying are deterministic (the
// same input parsed or verified twice gives the same material, signer or reason: checked on one input in four,
// picked by a hash of the input so that a failing input fails again, since doing everything twice halved the
// executions per second of what is already the slowest target); caps hold (at most 10
// certificates in a chain, 1 to 8 log entries, 64 proof hashes; the TUF client asks for at most 64 root versions
// and never for more than 512 KiB of metadata or 1 MiB of target); a signer that verifies is named by the leaf's
// subjectAltName at a time the leaf was valid; a TUF update that succeeds returns a target whose length and SHA-256
// its targets metadata lists, and a root of the role root.
internal import FuzzSupport

@testable internal import BpfmanImageFetch

/// A fixed "now" for TUF expiry checks (2026-12-07T00:00:00Z), so a run does not change with the clock.
private let now: Int64 = 1_796_601_600
private let trustRootPath = "/fuzz/trusted_root.json"
private let repository = "https://tuf.fuzz.test"

/// Whether this input is parsed, verified and updated twice (the determinism properties): one input in four,
/// chosen by the FNV-1a hash of its bytes.
private nonisolated(unsafe) var twice = true

private func checksTwice(_ input: UnsafeBufferPointer<UInt8>) -> Bool {
    var hash: UInt32 = 0x811c_9dc5
    for byte in input { hash = (hash ^ UInt32(byte)) &* 0x0100_0193 }
    return hash & 3 == 0
}

private let check = SignatureCheck(
    allowUnsigned: false,
    trustedIdentities: [],
    trustRootPath: trustRootPath,
    trustRootProblem: nil
)

/// Everything a parse produced, as bytes (each field after its length), to compare two parses of the same input.
private struct Summary: Equatable {
    var bytes: [UInt8] = []

    mutating func add(_ field: some Collection<UInt8>) {
        withUnsafeBytes(of: field.count) { bytes += $0 }
        bytes += field
    }

    mutating func add(_ number: Int64) { withUnsafeBytes(of: number) { bytes += $0 } }
}

private func summary(_ material: SignatureMaterial) -> Summary {
    var s = Summary()
    s.add(material.leaf.der)
    for certificate in material.intermediates { s.add(certificate.der) }
    switch material.content {
    case .message(let signature, let digest, let message):
        s.add(signature)
        s.add(digest)
        s.add(message ?? [])
    case .dsse(let type, let payload, let signature):
        s.add(type.utf8)
        s.add(payload)
        s.add(signature)
    }
    for entry in material.entries {
        s.add(entry.logIndex)
        s.add(entry.logID)
        s.add(entry.integratedTime)
        s.add(entry.body)
        s.add(entry.signedEntryTimestamp ?? [])
        if let proof = entry.inclusionProof {
            s.add(proof.logIndex)
            s.add(proof.rootHash)
            s.add(proof.treeSize)
            for hash in proof.hashes { s.add(hash) }
            s.add((proof.checkpoint ?? "").utf8)
        }
    }
    return s
}

private func summary(_ root: TrustRoot) -> Summary {
    var s = Summary()
    for authority in root.authorities {
        for certificate in authority.chain { s.add(certificate.der) }
        s.add(authority.validFor.lowerBound)
        s.add(authority.validFor.upperBound)
    }
    for log in root.logs {
        s.add(log.keyID)
        s.add(log.validFor.lowerBound)
        s.add(log.validFor.upperBound)
    }
    return s
}

private func parseRoot(_ bytes: [UInt8]) -> TrustRoot? {
    do {
        let root = try parseTrustRoot(bytes, check: check)
        require(!root.authorities.isEmpty && !root.logs.isEmpty, "a trust root without an authority or a log")
        for authority in root.authorities {
            require((1...10).contains(authority.chain.count), "an authority of \(authority.chain.count) certificates")
        }
        if twice {
            let again = try? parseTrustRoot(bytes, check: check)
            require(again.map(summary) == summary(root), "the trust root parses differently the second time")
        }
        return root
    } catch {
        guard case .trustRootUnavailable = error.kind else { fail("trust root refused as \(error.kind)") }
        require(error.reason.hasPrefix(trustRootPath + ": "), "the refusal does not name the file: \(error.reason)")
        if twice {
            let again = Result { () throws(PullFailure) in try parseTrustRoot(bytes, check: check) }
            guard case .failure(let second) = again, second.reason == error.reason else {
                fail("the trust root is refused differently the second time: \(error.reason)")
            }
        }
        return nil
    }
}

private func checkMaterial(_ material: SignatureMaterial, legacy: Bool) {
    require(
        material.intermediates.count < SignatureMaterial.chainLimit,
        "\(material.intermediates.count) intermediates"
    )
    require((1...8).contains(material.entries.count), "\(material.entries.count) log entries")
    if legacy { require(material.entries.count == 1, "a legacy signature with \(material.entries.count) entries") }
    for entry in material.entries {
        require((entry.inclusionProof?.hashes.count ?? 0) <= 64, "an inclusion proof of more than 64 hashes")
    }
}

private func verify(_ material: SignatureMaterial, _ again: SignatureMaterial, root: TrustRoot) {
    let verifier = SigstoreVerifier(trustRoot: root, identities: [])
    let first = Result { () throws(SigstoreError) in try verifier.verify(material) }
    let second = twice ? Result { () throws(SigstoreError) in try verifier.verify(again) } : first
    switch (first, second) {
    case (.success(let signer), .success(let other)):
        require(signer == other, "two verifications name different signers")
        let names = (try? material.leaf.signerNames()) ?? []
        require(names.contains(signer.identity), "the signer \(signer.identity) is not in the subjectAltName")
        let validity = material.leaf.validity
        require(
            validity.notBefore <= signer.integratedTime && signer.integratedTime <= validity.notAfter,
            "verified at \(signer.integratedTime), outside the leaf's validity"
        )
        require(
            material.entries.contains { $0.integratedTime == signer.integratedTime },
            "the signing time is no log entry's"
        )
    case (.failure(let error), .failure(let other)):
        require(error.kind == .invalid, "a signature refused as \(error.kind)")
        require(!error.message.isEmpty && error.message == other.message, "refused for different reasons")
    default:
        fail("the same signature verified once and was refused once")
    }
    // What was signed: the image digest the payload or the bundle names.
    // The seeds sign sha256:abab…ab.
    for digest in ["sha256:" + String(repeating: "ab", count: 32), "sha256:" + hex(sha256(material.leaf.der))] {
        let one = Result { () throws(SigstoreError) in try material.content.checkImage(digest: digest) }
        let two = twice ? Result { () throws(SigstoreError) in try again.content.checkImage(digest: digest) } : one
        switch (one, two) {
        case (.success, .success): break
        case (.failure(let a), .failure(let b)):
            require(a.kind == .invalid && a.message == b.message, "checkImage refused differently")
        default: fail("checkImage is not deterministic")
        }
    }
}

private func signatures(_ parts: [[UInt8]], legacy: Bool) {
    guard parts.count >= 2 else { return }
    let root = parseRoot(parts[0])
    func parse() -> Result<SignatureMaterial, SigstoreError> {
        Result { () throws(SigstoreError) in
            if legacy {
                guard parts.count >= 3,
                    let annotations = try? decodeJSON([String: String].self, parts[2])
                else { throw SigstoreError(.invalid, "no annotations") }
                return try SignatureMaterial(legacyPayload: parts[1], annotations: annotations)
            }
            return try SignatureMaterial(bundle: parts[1], message: parts.count >= 3 ? parts[2] : nil)
        }
    }
    let first = parse()
    switch (first, twice ? parse() : first) {
    case (.success(let material), .success(let again)):
        checkMaterial(material, legacy: legacy)
        require(summary(material) == summary(again), "the signature parses differently the second time")
        if let root { verify(material, again, root: root) }
    case (.failure(let error), .failure(let other)):
        require(error.kind == .invalid, "a signature refused as \(error.kind)")
        require(!error.message.isEmpty && error.message == other.message, "refused for different reasons")
    default:
        fail("the same signature parsed once and was refused once")
    }
}

/// The TUF client against a repository held in memory.
private func tuf(_ parts: [[UInt8]], unreachable: Bool) {
    guard let initial = parts.first else { return }
    func part(_ index: Int) -> [UInt8]? { index < parts.count ? parts[index] : nil }
    let request = TUFRequest(
        repository: repository,
        root: initial,
        timestamp: unreachable ? part(1) : nil,
        snapshot: unreachable ? part(2) : nil,
        targets: unreachable ? part(3) : nil,
        trustedRoot: unreachable ? part(4) : nil
    )
    var rootsAsked = 0
    func run() -> Result<TUFUpdate, PullFailure> {
        rootsAsked = 0
        let client = TUFClient(request: request, now: now) { (path, limit) throws(PullFailure) in
            require(limit >= 0, "a negative limit for \(path)")
            let file: [UInt8]?
            if path.hasPrefix("targets/") {
                require(limit <= TUFClient.targetLimit, "\(limit) bytes allowed for the target")
                file = part(4)
            } else {
                require(limit <= TUFClient.metadataLimit, "\(limit) bytes allowed for \(path)")
                if unreachable { throw .transfer("\(path): connection refused") }
                if path.hasSuffix(".root.json") {
                    rootsAsked += 1
                    require(rootsAsked <= TUFClient.maxRootRotations, "more than 64 root versions asked for")
                    let version = Int(path.prefix { $0 != "." }) ?? 0
                    file = version >= 2 ? part(version + 3) : nil
                } else if path == "timestamp.json" {
                    file = part(1)
                } else if path.hasSuffix("snapshot.json") {
                    file = part(2)
                } else if path.hasSuffix("targets.json") {
                    file = part(3)
                } else {
                    fail("the client asked for \(path)")
                }
            }
            // The HTTP session stops reading at the limit: more is a transfer failure.
            if let file, file.count > limit { throw .transfer("\(path): more than \(limit) bytes") }
            return file
        }
        return Result { () throws(PullFailure) in try client.update() }
    }
    let first = run()
    switch (first, twice ? run() : first) {
    case (.success(let update), .success(let again)):
        require(
            update.root == again.root && update.timestamp == again.timestamp && update.snapshot == again.snapshot
                && update.targets == again.targets && update.trustedRoot == again.trustedRoot,
            "two updates returned different metadata"
        )
        let failed = { (reason: String) in PullFailure(kind: .trustRootUnavailable, reason: reason) }
        guard let root = try? Metadata(update.root, role: "root", what: "root", failed),
            let targets = try? Metadata(update.targets, role: "targets", what: "targets", failed),
            let entry = targets.signed.object("targets")[TUFClient.targetName],
            let file = try? FileMeta(entry, of: TUFClient.targetName, failed)
        else { fail("an update returned metadata that does not parse") }
        require(root.version >= 1, "root version \(root.version)")
        require(update.trustedRoot.count <= TUFClient.targetLimit, "a target over the limit")
        require(file.length == update.trustedRoot.count, "the target's length is not the one listed")
        require(file.sha256 == hex(sha256(update.trustedRoot)), "the target's hash is not the one listed")
        require((update.unreachable != nil) == unreachable, "unreachable \(update.unreachable ?? "nil")")
    case (.failure(let error), .failure(let other)):
        guard case .trustRootUnavailable = error.kind else { fail("TUF refused as \(error.kind): \(error.reason)") }
        require(error.reason.hasPrefix("TUF repository \(repository): "), "the refusal does not name the repository")
        require(error.reason == other.reason, "refused for different reasons")
    default:
        fail("the same repository updated once and was refused once")
    }
}

/// The canonical JSON that TUF signs: what it writes parses back to the same value (strings without control
/// characters, which canonical JSON writes raw).
private func canonical(_ bytes: [UInt8]) {
    guard let value = try? decodeJSON(JSONValue.self, bytes) else { return }
    let text = value.canonical
    guard !text.contains(where: { $0 < 0x20 }) else { return }
    let again = try? decodeJSON(JSONValue.self, text)
    require(again == value, "canonical JSON does not parse back to the same value")
    require(again?.canonical == text, "canonical JSON is not stable")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let mode = data[0]
    twice = checksTwice(UnsafeBufferPointer(start: data, count: size))
    let parts = UnsafeBufferPointer(start: data + 1, count: size - 1)
        .split(separator: 0, maxSplits: 70, omittingEmptySubsequences: false).map(Array.init)
    switch mode & 3 {
    case 0: _ = parseRoot(parts[0])
    case 1: signatures(parts, legacy: false)
    case 2: signatures(parts, legacy: true)
    default:
        if let first = parts.first { canonical(first) }
        tuf(parts, unreachable: mode & 4 != 0)
    }
    return 0
}
