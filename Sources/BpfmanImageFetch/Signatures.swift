internal import BpfmanImages
internal import BpfmanSigstore

/// Where cosign puts an image's signatures (SPEC §8.5), found and verified in the fetcher before any layer is
/// downloaded: the legacy tag `sha256-<hex>.sig` (a manifest whose simple-signing layers carry the signature,
/// certificate, chain and Rekor bundle as annotations), and OCI 1.1 referrers of the manifest with artifact type
/// `application/vnd.dev.sigstore.bundle.v0.3+json` (the referrers API, else the `sha256-<hex>` tag schema).
enum SignatureMediaType {
    static let bundle = "application/vnd.dev.sigstore.bundle.v0.3+json"
    static let simpleSigning = "application/vnd.dev.cosign.simplesigning.v1+json"
}

/// The fields of a referrer manifest that matter here.
private struct Referrer: Decodable {
    var artifactType: String?
    var subject: Descriptor?
    var layers: [Descriptor]?
}

/// One signature as found, not yet parsed.
enum FoundSignature {
    case legacy(payload: [UInt8], annotations: [String: String])
    case bundle([UInt8])

    var source: String {
        switch self {
        case .legacy: "legacy .sig tag"
        case .bundle: "OCI referrer bundle"
        }
    }
}

/// Caps on signature artifacts: a signature layer or bundle is a few KiB.
private let signatureLimit = 1 << 20
private let signatureCount = 16

extension Puller {
    /// Checks the signatures of the image whose manifest or index is `root` (SPEC §8.5).
    /// - Parameter trustRoot: reads the trust root; called only when a signature is found.
    /// - Returns: what was verified, or an empty report for an unsigned image that the policy allows.
    /// - Throws: `unsigned`, `signatureInvalid` (with every signature's reason) or `trustRootUnavailable`.
    func checkSignatures(
        of root: FetchedDocument,
        from source: inout some ImageSource,
        check: SignatureCheck,
        trustRoot: () throws(PullFailure) -> TrustRoot
    ) throws(PullFailure) -> SignatureReport {
        let found: [FoundSignature]
        do { found = try findSignatures(of: root.digest, in: &source) } catch  where error.isContentMismatch {
            // A signature manifest or layer that is not what its descriptor says is a bad signature, not a
            // network failure.
            throw PullFailure(kind: .signatureInvalid, reason: error.reason)
        }
        guard !found.isEmpty else {
            guard check.allowUnsigned else { throw PullFailure(kind: .unsigned, reason: "") }
            return SignatureReport()
        }
        let verifier = SigstoreVerifier(trustRoot: try trustRoot(), identities: check.trustedIdentities)
        var reasons: [String] = []
        for signature in found {
            do throws(SigstoreError) {
                let material =
                    switch signature {
                    case .legacy(let payload, let annotations):
                        try SignatureMaterial(legacyPayload: payload, annotations: annotations)
                    case .bundle(let bytes): try SignatureMaterial(bundle: bytes)
                    }
                try material.content.checkImage(digest: root.digest)
                let signer = try verifier.verify(material)
                return SignatureReport(
                    verifiedDigest: root.digest,
                    identity: signer.identity,
                    issuer: signer.issuer,
                    source: signature.source
                )
            } catch {
                reasons.append("\(signature.source): \(error.message)")
            }
        }
        throw PullFailure(kind: .signatureInvalid, reason: reasons.joined(separator: "; "))
    }

    /// The signatures of `digest`: legacy ones first, then referrer bundles.
    private func findSignatures(
        of digest: String,
        in source: inout some ImageSource
    ) throws(PullFailure)
        -> [FoundSignature]
    {
        let hexDigest = digest.dropFirst("sha256:".count)
        var found: [FoundSignature] = []
        if let document = try source.taggedManifest("sha256-\(hexDigest).sig", limits: limits),
            case .manifest(_, let layers) = try ManifestDocument(
                bytes: document.bytes,
                contentType: document.contentType
            )
        {
            for layer in layers.prefix(signatureCount) where layer.mediaType == SignatureMediaType.simpleSigning {
                let payload = try source.blob(try layer.checked(), limit: signatureLimit)
                found.append(.legacy(payload: payload, annotations: layer.annotations ?? [:]))
            }
        }
        var index = try source.referrers(of: digest, limits: limits)
        if index == nil { index = try source.taggedManifest("sha256-\(hexDigest)", limits: limits) }
        guard let index,
            case .index(let manifests) = try ManifestDocument(bytes: index.bytes, contentType: index.contentType)
        else { return found }
        for descriptor in manifests.prefix(signatureCount)
        where descriptor.artifactType == SignatureMediaType.bundle
            || (descriptor.artifactType == nil && descriptor.mediaType == MediaType.ociManifest)
        {
            let document = try source.manifest(try descriptor.checked(), limits: limits)
            guard let referrer = try? decodeJSON(Referrer.self, document.bytes),
                referrer.subject?.digest == digest,
                let layer = referrer.layers?.first(where: { $0.mediaType == SignatureMediaType.bundle })
            else { continue }
            found.append(.bundle(try source.blob(try layer.checked(), limit: signatureLimit)))
        }
        return found
    }
}

/// Parses the trust root the daemon opened as fd 5 (SPEC §8.5); `bytes` is nil when it could not be read.
func parseTrustRoot(_ bytes: [UInt8]?, check: SignatureCheck) throws(PullFailure) -> TrustRoot {
    func unavailable(_ reason: String) -> PullFailure { PullFailure(kind: .trustRootUnavailable, reason: reason) }
    if let problem = check.trustRootProblem { throw unavailable(problem) }
    guard let bytes else { throw unavailable("\(check.trustRootPath) cannot be read or is over 4 MiB") }
    do { return try TrustRoot(json: bytes) } catch { throw unavailable("\(check.trustRootPath): \(error.message)") }
}
