internal import FoundationEssentials

/// What was signed and how: the content and signature, the signer's certificate, and the transparency-log entries
/// that vouch for the signature. Built from a Sigstore bundle or from cosign's legacy `.sig` annotations.
package struct SignatureMaterial {
    package enum Content {
        /// A signature over a message. `message` holds its bytes when they are known (a legacy simple-signing
        /// payload, a blob being verified); a bundle alone carries only the message's SHA-256.
        case message(signature: [UInt8], sha256: [UInt8], message: [UInt8]?)
        /// A DSSE envelope: the signature is over PAE(payloadType, payload).
        case dsse(payloadType: String, payload: [UInt8], signature: [UInt8])

        var signature: [UInt8] {
            switch self {
            case .message(let signature, _, _), .dsse(_, _, let signature): signature
            }
        }
    }

    package var content: Content
    package var leaf: Certificate
    /// Certificates shipped with the signature (legacy chain annotation, a v0.1/v0.2 bundle's chain); used only as
    /// candidates for intermediates, never as roots.
    package var intermediates: [Certificate]
    package var entries: [LogEntry]

    /// At most this many certificates travel with one signature (Fulcio's chains have two or three).
    package static let chainLimit = 10
}

/// One Rekor entry as a bundle or a legacy bundle annotation carries it.
package struct LogEntry {
    package var logIndex: Int64
    /// The log's key id (SHA-256 of its key).
    package var logID: [UInt8]
    package var integratedTime: Int64
    /// The entry's canonical JSON body, as the log stored it.
    package var body: [UInt8]
    package var signedEntryTimestamp: [UInt8]?
    package var inclusionProof: InclusionProof?
}

package struct InclusionProof {
    package var logIndex: Int64
    package var rootHash: [UInt8]
    package var treeSize: Int64
    package var hashes: [[UInt8]]
    /// The signed checkpoint (a signed note) naming `rootHash` and `treeSize`.
    package var checkpoint: String?
}

/// A protobuf-JSON 64-bit integer: a string of digits, or a number.
struct JSONInt64: Decodable {
    var value: Int64

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let number = try? container.decode(Int64.self) {
            value = number
        } else if let text = try? container.decode(String.self), let number = Int64(text) {
            value = number
        } else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a 64-bit integer")
        }
    }
}

/// The Sigstore bundle media types this verifier reads (v0.1 to v0.3).
package let knownBundleMediaTypes: Set<String> = [
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle.v0.3+json",
]

private func decoded(_ text: String?, _ what: String) throws(SigstoreError) -> [UInt8] {
    guard let text else { throw .invalid("the \(what) is missing") }
    guard let bytes = base64Decoded(text) else { throw .invalid("the \(what) is not valid base64") }
    return bytes
}

extension SignatureMaterial {
    /// Reads a Sigstore bundle (`application/vnd.dev.sigstore.bundle…+json`, v0.1 to v0.3).
    /// - Parameter message: the signed bytes when the caller has them (a blob); nil for an image.
    /// - Throws: `SigstoreError.invalid` for malformed JSON, an unknown media type, a key-based bundle, bad base64.
    package init(bundle json: [UInt8], message: [UInt8]? = nil) throws(SigstoreError) {
        try loadLibcrypto()
        struct RawBytes: Decodable { var rawBytes: String? }
        struct Chain: Decodable { var certificates: [RawBytes]? }
        struct Hint: Decodable { var hint: String? }
        struct LogID: Decodable { var keyId: String? }
        struct KindVersion: Decodable {
            var kind: String?
            var version: String?
        }
        struct Promise: Decodable { var signedEntryTimestamp: String? }
        struct Checkpoint: Decodable { var envelope: String? }
        struct Proof: Decodable {
            var logIndex: JSONInt64?
            var rootHash: String?
            var treeSize: JSONInt64?
            var hashes: [String]?
            var checkpoint: Checkpoint?
        }
        struct Entry: Decodable {
            var logIndex: JSONInt64?
            var logId: LogID?
            var kindVersion: KindVersion?
            var integratedTime: JSONInt64?
            var inclusionPromise: Promise?
            var inclusionProof: Proof?
            var canonicalizedBody: String?
        }
        struct Material: Decodable {
            var certificate: RawBytes?
            var x509CertificateChain: Chain?
            var publicKey: Hint?
            var tlogEntries: [Entry]?
        }
        struct Digest: Decodable {
            var algorithm: String?
            var digest: String?
        }
        struct MessageSignature: Decodable {
            var messageDigest: Digest?
            var signature: String?
        }
        struct DSSESignature: Decodable { var sig: String? }
        struct Envelope: Decodable {
            var payload: String?
            var payloadType: String?
            var signatures: [DSSESignature]?
        }
        struct Bundle: Decodable {
            var mediaType: String?
            var verificationMaterial: Material?
            var messageSignature: MessageSignature?
            var dsseEnvelope: Envelope?
        }
        let bundle: Bundle
        do { bundle = try JSONDecoder().decode(Bundle.self, from: Data(json)) } catch {
            throw .invalid("the bundle is not valid JSON: \(error)")
        }
        guard let type = bundle.mediaType, knownBundleMediaTypes.contains(type) else {
            throw .invalid(
                "the bundle has an unknown media type \(bundle.mediaType.map { "\"\($0.prefix(100))\"" } ?? "(none)")"
            )
        }
        guard let material = bundle.verificationMaterial else {
            throw .invalid("the bundle has no verificationMaterial")
        }
        var certificates: [[UInt8]] = []
        if let certificate = material.certificate {
            certificates = [try decoded(certificate.rawBytes, "bundle's certificate")]
        } else if let chain = material.x509CertificateChain?.certificates {
            guard chain.count <= Self.chainLimit else {
                throw .invalid("the certificate chain has \(chain.count) certificates, more than \(Self.chainLimit)")
            }
            for item in chain { certificates.append(try decoded(item.rawBytes, "bundle's certificate")) }
        } else if material.publicKey != nil {
            throw .invalid("the bundle is signed with a public key, not a Fulcio certificate (keyless only)")
        }
        guard let leafDER = certificates.first else { throw .invalid("the bundle carries no certificate") }
        leaf = try Certificate(der: leafDER)
        var intermediates: [Certificate] = []
        for der in certificates.dropFirst() { intermediates.append(try Certificate(der: der)) }
        self.intermediates = intermediates

        if let signature = bundle.messageSignature {
            guard signature.messageDigest?.algorithm == "SHA2_256" else {
                throw .invalid("the bundle's message digest is not SHA2_256")
            }
            let digest = try decoded(signature.messageDigest?.digest, "bundle's message digest")
            guard digest.count == 32 else { throw .invalid("the bundle's message digest is not 32 bytes") }
            content = .message(
                signature: try decoded(signature.signature, "bundle's signature"),
                sha256: digest,
                message: message
            )
        } else if let envelope = bundle.dsseEnvelope {
            guard let signatures = envelope.signatures, signatures.count == 1 else {
                throw .invalid("the bundle's DSSE envelope has \(envelope.signatures?.count ?? 0) signatures, not 1")
            }
            guard let payloadType = envelope.payloadType else { throw .invalid("the DSSE envelope has no payloadType") }
            content = .dsse(
                payloadType: payloadType,
                payload: try decoded(envelope.payload, "DSSE payload"),
                signature: try decoded(signatures[0].sig, "DSSE signature")
            )
        } else {
            throw .invalid("the bundle has neither a messageSignature nor a dsseEnvelope")
        }

        let tlogEntries = material.tlogEntries ?? []
        guard (1...8).contains(tlogEntries.count) else {
            throw .invalid("the bundle has \(tlogEntries.count) transparency-log entries (1 to 8 expected)")
        }
        var entries: [LogEntry] = []
        for entry in tlogEntries {
            var proof: InclusionProof?
            if let given = entry.inclusionProof {
                let hashes = given.hashes ?? []
                guard hashes.count <= 64 else { throw .invalid("the inclusion proof has \(hashes.count) hashes") }
                var decodedHashes: [[UInt8]] = []
                for hash in hashes { decodedHashes.append(try decoded(hash, "inclusion proof's hash")) }
                guard let index = given.logIndex?.value, let size = given.treeSize?.value else {
                    throw .invalid("the inclusion proof lacks logIndex or treeSize")
                }
                proof = InclusionProof(
                    logIndex: index,
                    rootHash: try decoded(given.rootHash, "inclusion proof's root hash"),
                    treeSize: size,
                    hashes: decodedHashes,
                    checkpoint: given.checkpoint?.envelope
                )
            }
            entries.append(
                LogEntry(
                    logIndex: entry.logIndex?.value ?? -1,
                    logID: try decoded(entry.logId?.keyId, "log entry's logId"),
                    integratedTime: entry.integratedTime?.value ?? 0,
                    body: try decoded(entry.canonicalizedBody, "log entry's canonicalizedBody"),
                    signedEntryTimestamp: try entry.inclusionPromise.map { promise throws(SigstoreError) in
                        try decoded(promise.signedEntryTimestamp, "signed entry timestamp")
                    },
                    inclusionProof: proof
                )
            )
        }
        self.entries = entries
    }

    /// Reads a legacy cosign signature: the simple-signing payload (the layer's bytes) and the layer's annotations
    /// `dev.cosignproject.cosign/signature`, `dev.sigstore.cosign/certificate`, `dev.sigstore.cosign/chain` and
    /// `dev.sigstore.cosign/bundle` (the Rekor entry with its signed entry timestamp).
    package init(legacyPayload payload: [UInt8], annotations: [String: String]) throws(SigstoreError) {
        try loadLibcrypto()
        let signature = try decoded(annotations["dev.cosignproject.cosign/signature"], "signature annotation")
        guard let certificatePEM = annotations["dev.sigstore.cosign/certificate"] else {
            throw .invalid("the signature has no certificate annotation (keyless signatures only)")
        }
        guard let leaf = try Certificate.pem(certificatePEM, limit: 1).first else {
            throw .invalid("the certificate annotation holds no PEM certificate")
        }
        self.leaf = leaf
        intermediates = try Certificate.pem(annotations["dev.sigstore.cosign/chain"] ?? "", limit: Self.chainLimit)
        content = .message(signature: signature, sha256: sha256(payload), message: payload)
        guard let bundleText = annotations["dev.sigstore.cosign/bundle"] else {
            throw .invalid("the signature has no transparency-log bundle annotation")
        }
        struct Payload: Decodable {
            var body: String?
            var integratedTime: Int64?
            var logIndex: Int64?
            var logID: String?
        }
        struct RekorBundle: Decodable {
            var SignedEntryTimestamp: String?
            var Payload: Payload?
        }
        let rekor: RekorBundle
        do { rekor = try JSONDecoder().decode(RekorBundle.self, from: Data(bundleText.utf8)) } catch {
            throw .invalid("the bundle annotation is not valid JSON: \(error)")
        }
        guard let entry = rekor.Payload, let time = entry.integratedTime, let index = entry.logIndex,
            let logIDHex = entry.logID, let logID = hexDecoded(logIDHex)
        else { throw .invalid("the bundle annotation lacks integratedTime, logIndex or logID") }
        entries = [
            LogEntry(
                logIndex: index,
                logID: logID,
                integratedTime: time,
                body: try decoded(entry.body, "bundle annotation's body"),
                signedEntryTimestamp: try decoded(rekor.SignedEntryTimestamp, "signed entry timestamp"),
                inclusionProof: nil
            )
        ]
    }
}

/// Bytes of lower- or upper-case hex text, or nil.
package func hexDecoded(_ text: String) -> [UInt8]? {
    let digits = Array(text.utf8)
    guard digits.count % 2 == 0 else { return nil }
    func value(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: c - 0x30
        case 0x61...0x66: c - 0x61 + 10
        case 0x41...0x46: c - 0x41 + 10
        default: nil
        }
    }
    var bytes: [UInt8] = []
    bytes.reserveCapacity(digits.count / 2)
    var index = 0
    while index < digits.count {
        guard let high = value(digits[index]), let low = value(digits[index + 1]) else { return nil }
        bytes.append(high << 4 | low)
        index += 2
    }
    return bytes
}
