package import BpfmanImages
internal import FoundationEssentials

/// Who signed, as the verified certificate says.
package struct VerifiedSigner: Sendable, Equatable {
    /// The certificate's subjectAltName: an e-mail address or a URI.
    package var identity: String
    /// The OIDC issuer (extension 1.3.6.1.4.1.57264.1.8, or the older .1.1).
    package var issuer: String
    /// When the transparency log recorded the signature (seconds since the epoch).
    package var integratedTime: Int64
}

/// Cosign keyless verification (SPEC §8.5): the signature verifies with the leaf certificate's key; the
/// transparency-log entry records this signature and is vouched for by a log key of the trust root; the
/// certificate chains to a certificate authority of the trust root and was valid when the log recorded the entry;
/// and its identity and issuer match the trusted identities (any when none are given). What was signed is
/// checked by the caller (`checkImage`, `checkBlob`).
package struct SigstoreVerifier {
    package let trustRoot: TrustRoot
    package let identities: [TrustedIdentity]

    package init(trustRoot: TrustRoot, identities: [TrustedIdentity]) {
        self.trustRoot = trustRoot
        self.identities = identities
    }

    /// - Throws: `SigstoreError.invalid` with the first step that failed.
    package func verify(_ material: SignatureMaterial) throws(SigstoreError) -> VerifiedSigner {
        let key = try material.leaf.publicKey()
        let signed: Bool
        switch material.content {
        case .message(let signature, let digest, let message?):
            guard sha256(message) == digest else { throw .invalid("the bundle's message digest is not the artifact's") }
            signed = key.verify(signature: signature, message: message)
        case .message(let signature, let digest, nil):
            signed = key.verify(signature: signature, sha256Digest: digest)
        case .dsse(let payloadType, let payload, let signature):
            signed = key.verify(signature: signature, message: preAuthenticationEncoding(payloadType, payload))
        }
        guard signed else { throw .invalid("the signature does not verify with the certificate's key") }

        var time: Int64?
        var entryFailure: SigstoreError?
        for entry in material.entries {
            do {
                time = try entry.verify(for: material, logs: trustRoot.logs)
                break
            } catch {
                entryFailure = entryFailure ?? error
            }
        }
        guard let time else {
            throw entryFailure ?? .invalid("the signature has no transparency-log entry")
        }

        let validity = material.leaf.validity
        guard validity.notBefore <= time, time <= validity.notAfter else {
            throw .invalid(
                "the certificate was not valid when the log recorded the signature (valid \(validity.notBefore)"
                    + "...\(validity.notAfter), recorded \(time))"
            )
        }
        guard material.leaf.allowsCodeSigning else {
            throw .invalid("the certificate's extended key usage does not include code signing")
        }
        try verifyChain(material, at: time)

        let names = try material.leaf.signerNames()
        guard let identity = names.first else { throw .invalid("the certificate names no signer (subjectAltName)") }
        guard let issuer = try oidcIssuer(material.leaf) else {
            throw .invalid("the certificate has no OIDC issuer extension (1.3.6.1.4.1.57264.1.8 or .1.1)")
        }
        if !identities.isEmpty {
            guard names.contains(where: { name in identities.contains { $0.matches(identity: name, issuer: issuer) } })
            else {
                throw .invalid("the signer \(identity) (issuer \(issuer)) is not a trusted identity")
            }
        }
        return VerifiedSigner(identity: identity, issuer: issuer, integratedTime: time)
    }

    /// Tries each certificate authority of the trust root that was valid at `time`.
    private func verifyChain(_ material: SignatureMaterial, at time: Int64) throws(SigstoreError) {
        var failure: SigstoreError?
        var tried = 0
        for authority in trustRoot.authorities where authority.validFor.contains(time) {
            guard let root = authority.chain.last else { continue }
            tried += 1
            do {
                try BpfmanSigstore.verifyChain(
                    leaf: material.leaf,
                    intermediates: Array(authority.chain.dropLast()) + material.intermediates,
                    roots: [root],
                    time: time
                )
                return
            } catch {
                failure = failure ?? error
            }
        }
        guard tried > 0 else {
            throw .invalid("no certificate authority of the trust root was valid when the signature was logged")
        }
        throw failure!
    }

    /// The OIDC issuer: extension .1.8 holds a DER UTF8String, the older .1.1 the raw text.
    private func oidcIssuer(_ certificate: Certificate) throws(SigstoreError) -> String? {
        if let value = certificate.extensionValue("1.3.6.1.4.1.57264.1.8") {
            guard let text = derUTF8String(value) else {
                throw .invalid("the certificate's OIDC issuer extension is not a UTF8String")
            }
            return text
        }
        return certificate.extensionValue("1.3.6.1.4.1.57264.1.1").map { String(decoding: $0, as: UTF8.self) }
    }
}

/// DSSE's pre-authentication encoding: `DSSEv1 <len(type)> <type> <len(payload)> <payload>`.
package func preAuthenticationEncoding(_ payloadType: String, _ payload: [UInt8]) -> [UInt8] {
    Array("DSSEv1 \(payloadType.utf8.count) \(payloadType) \(payload.count) ".utf8) + payload
}

/// The text of a DER UTF8String (tag 12), short or long length form, nothing after it.
func derUTF8String(_ der: [UInt8]) -> String? {
    guard der.count >= 2, der[0] == 0x0c else { return nil }
    var length = Int(der[1])
    var start = 2
    if length & 0x80 != 0 {
        let count = length & 0x7f
        guard (1...3).contains(count), der.count >= 2 + count else { return nil }
        length = der[2..<2 + count].reduce(0) { $0 << 8 | Int($1) }
        start = 2 + count
    }
    guard der.count == start + length else { return nil }
    return String(validating: der[start...], as: UTF8.self)
}

// MARK: - What was signed

/// The digest-naming fields of the payloads cosign signs: simple signing (`critical.image.docker-manifest-digest`)
/// and in-toto statements (`subject[].digest.sha256`).
private struct SignedPayload: Decodable {
    struct Critical: Decodable {
        struct Image: Decodable {
            var dockerManifestDigest: String?
            enum CodingKeys: String, CodingKey { case dockerManifestDigest = "docker-manifest-digest" }
        }
        var image: Image?
    }
    struct Subject: Decodable { var digest: [String: String]? }
    var critical: Critical?
    var subject: [Subject]?

    init(_ bytes: [UInt8]) throws(SigstoreError) {
        do { self = try JSONDecoder().decode(SignedPayload.self, from: Data(bytes)) } catch {
            throw .invalid("the signed payload is not valid JSON")
        }
    }

    /// The sha256 digests (`sha256:<hex>`) the payload names.
    var digests: [String] {
        if let digest = critical?.image?.dockerManifestDigest { return [digest] }
        return (subject ?? []).compactMap { $0.digest?["sha256"].map { "sha256:" + $0.lowercased() } }
    }
}

extension SignatureMaterial.Content {
    /// Checks that what was signed names the image `digest` (`sha256:<hex>`): the simple-signing payload or the
    /// DSSE statement names it, or a bundle's message is the manifest itself.
    package func checkImage(digest: String) throws(SigstoreError) {
        switch self {
        case .message(_, let messageDigest, nil):
            guard "sha256:" + hex(messageDigest) == digest else {
                throw .invalid("the bundle signs sha256:\(hex(messageDigest)), not the image's digest \(digest)")
            }
        case .message(_, _, let payload?), .dsse(_, let payload, _):
            let named = try SignedPayload(payload).digests
            guard named.contains(digest) else {
                throw .invalid(
                    "the signed payload names \(named.first ?? "no digest"), not the image's digest \(digest)"
                )
            }
        }
    }

    /// Checks that what was signed is the blob whose SHA-256 is `sha256Digest`.
    package func checkBlob(sha256Digest: [UInt8]) throws(SigstoreError) {
        switch self {
        case .message(_, let messageDigest, _):
            guard messageDigest == sha256Digest else { throw .invalid("the bundle signs another artifact") }
        case .dsse(_, let payload, _):
            guard try SignedPayload(payload).digests.contains("sha256:" + hex(sha256Digest)) else {
                throw .invalid("the DSSE statement does not name the artifact's digest")
            }
        }
    }
}
